/**
 * local_recipient_maps: is an address in a local domain (mydestination) a known local recipient?
 * Postfix's smtpd asks this at RCPT TO (`550 5.1.1 <x@y>: Recipient address rejected: User
 * unknown in local recipient table`); local(8) itself never does. The tables understand
 * `unix:passwd.byname` (the passwd file, ./passwd.ts) and alias files (./aliases.ts) as well as
 * the shared table types. Search order as Postfix's mail_addr_find() for a local domain:
 * `user+ext@domain`, `user@domain`, `user+ext`, `user`, `@domain`; passwd and alias tables
 * see the local-part keys only.
 */
import { INDEXED_TYPES, openTable } from '../config/tables/index.js';
import type { Params } from '../config/types.js';
import { splitAddr } from './agent.js';
import { openAliasMaps } from './aliases.js';
import { passwdFile } from './passwd.js';

type Probe = (key: string, localPartKey: boolean) => Promise<boolean>;

export interface LocalRecipientMapsOptions {
  readonly params: Params;
  readonly passwdFile?: string;
  readonly configDir?: string;
  readonly warn?: (text: string) => void;
}

export class LocalRecipientMaps {
  private readonly probes: Probe[] = [];
  private readonly delimiters: string;

  constructor(o: LocalRecipientMapsOptions) {
    this.delimiters = o.params.recipient_delimiter;
    const warn = o.warn ?? (() => undefined);
    for (const raw of o.params.local_recipient_maps) {
      const spec = raw.startsWith('proxy:') ? raw.slice('proxy:'.length) : raw;
      if (spec === 'unix:passwd.byname') {
        const pw = passwdFile(o.passwdFile ?? '/etc/passwd');
        this.probes.push(async (key, lp) => lp && (await pw.getpwnam(key)) !== null);
        continue;
      }
      const type = spec.slice(0, Math.max(0, spec.indexOf(':')));
      if (type === 'texthash' || INDEXED_TYPES.includes(type) || type === 'nis') {
        const [table] = openAliasMaps([raw], { ...(o.configDir !== undefined ? { configDir: o.configDir } : {}), warn });
        if (table) this.probes.push(async (key, lp) => lp && table.get(key) !== undefined);
        continue;
      }
      const table = openTable(raw, o.configDir !== undefined ? { file: 'main.cf', line: 0, configDir: o.configDir } : undefined);
      this.probes.push(async (key) => table.get(key) !== undefined);
    }
  }

  /** True when local_recipient_maps is empty: every local address is accepted (postconf(5)). */
  get acceptsAll(): boolean {
    return this.probes.length === 0;
  }

  /** Whether `address` is a known local recipient. Throws when a table cannot be read. */
  async known(address: string): Promise<boolean> {
    if (this.acceptsAll) return true;
    const a = address.toLowerCase();
    const at = a.lastIndexOf('@');
    const local = at < 0 ? a : a.slice(0, at);
    const domain = at < 0 ? '' : a.slice(at);
    const { user, extension } = splitAddr(local, this.delimiters);
    const keys: [string, boolean][] = [];
    if (domain !== '') {
      keys.push([`${local}${domain}`, false]);
      if (extension !== null) keys.push([`${user}${domain}`, false]);
    }
    keys.push([local, true]);
    if (extension !== null) keys.push([user, true]);
    if (domain !== '') keys.push([domain, false]);
    for (const probe of this.probes) {
      for (const [k, lp] of keys) if (await probe(k, lp)) return true;
    }
    return false;
  }
}

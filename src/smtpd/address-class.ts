/**
 * Address classes as Postfix's trivial-rewrite resolves them for smtpd (ADDRESS_CLASS_README):
 * local (mydestination, or a literal of one of our addresses), virtual alias
 * (virtual_alias_domains), virtual mailbox (virtual_mailbox_domains), relay (relay_domains),
 * default (anything else). smtpd uses the class for relay control (reject_unauth_destination)
 * and for the recipient tables (reject_unlisted_recipient: local_recipient_maps,
 * virtual_mailbox_maps, relay_recipient_maps, virtual_alias_maps).
 *
 * Reads: mydestination, myorigin, myhostname, inet_interfaces, proxy_interfaces,
 * virtual_alias_domains, virtual_alias_maps, virtual_mailbox_domains, virtual_mailbox_maps,
 * relay_domains, relay_recipient_maps, local_recipient_maps, canonical_maps,
 * recipient_canonical_maps, recipient_delimiter, allow_percent_hack, parent_domain_matches_subdomains,
 * double_bounce_sender. Touches on disk: the table files named there, /etc/passwd (for
 * `proxy:unix:passwd.byname`), alias files (aliases(5) syntax).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import type { Params } from '../config/types.js';
import { type LookupTable, openTable } from '../config/tables/index.js';
import { expand6 } from './peer.js';

export type AddressClass = 'local' | 'alias' | 'virtual' | 'relay' | 'default';

export interface Resolved {
  readonly class: AddressClass;
  /** The address after the percent hack and domain canonicalisation (lower-case domain). */
  readonly address: string;
  readonly localPart: string;
  readonly domain: string;
  /** The local part still holds routing (`@`, `%`, `!`): not an authorized destination (allow_untrusted_routing = no). */
  readonly routed: boolean;
}

/** A table that may be missing at run time: lookups on it find nothing. */
interface Table {
  readonly spec: string;
  get(key: string): string | undefined;
}

/** A Postfix domain list (mydestination, relay_domains, ...): patterns, !exclusions, /files, tables. */
export class DomainList {
  private readonly entries: { negate: boolean; kind: 'name' | 'table'; name: string; table: Table | null }[] = [];
  constructor(
    values: readonly string[],
    private readonly parentStyle: boolean,
    warn: (t: string) => void,
  ) {
    for (const raw of values) this.add(raw, warn);
  }

  private add(raw: string, warn: (t: string) => void): void {
    let v = raw.trim();
    if (v === '') return;
    let negate = false;
    while (v.startsWith('!')) {
      negate = !negate;
      v = v.slice(1);
    }
    if (v.startsWith('/')) {
      try {
        for (const line of fs.readFileSync(v, 'utf8').split('\n')) {
          const t = line.replace(/#.*/, '').trim();
          for (const w of t.split(/[\s,]+/)) if (w) this.add(negate ? `!${w}` : w, warn);
        }
      } catch (e) {
        warn(`open ${v}: ${(e as Error).message}`);
      }
      return;
    }
    if (/^[a-z0-9_]+:/i.test(v)) {
      this.entries.push({ negate, kind: 'table', name: v, table: safeOpen(v, warn) });
      return;
    }
    this.entries.push({ negate, kind: 'name', name: v.toLowerCase(), table: null });
  }

  get empty(): boolean {
    return this.entries.length === 0;
  }

  /** First match wins; a `!pattern` match means "no". */
  matches(domain: string): boolean {
    const d = domain.toLowerCase().replace(/\.$/, '');
    for (const e of this.entries) {
      if (this.entryMatches(e, d)) return !e.negate;
    }
    return false;
  }

  private entryMatches(e: { kind: 'name' | 'table'; name: string; table: Table | null }, d: string): boolean {
    if (e.kind === 'table') {
      if (e.table === null) return false;
      if (e.table.get(d) !== undefined) return true;
      const labels = d.split('.');
      for (let i = 1; i < labels.length; i++) {
        const parent = labels.slice(i).join('.');
        if (this.parentStyle ? e.table.get(parent) !== undefined : e.table.get(`.${parent}`) !== undefined) return true;
      }
      return false;
    }
    if (e.name === d) return true;
    if (e.name.startsWith('.')) return d.endsWith(e.name);
    return this.parentStyle && d.endsWith(`.${e.name}`);
  }
}

function safeOpen(spec: string, warn: (t: string) => void): Table | null {
  try {
    return openTable(spec);
  } catch (e) {
    warn(`${spec}: table unavailable: ${(e as Error).message}`);
    return null;
  }
}

/** Keys of an aliases(5) file: `name: value` lines, continuation lines start with whitespace. */
function aliasKeys(file: string): Set<string> {
  const keys = new Set<string>();
  const text = fs.readFileSync(file, 'utf8');
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || /^\s/.test(line)) continue;
    const m = /^("[^"]*"|[^:\s]+)\s*:/.exec(line);
    if (m) keys.add(m[1]!.replace(/^"|"$/g, '').toLowerCase());
  }
  return keys;
}

/** /etc/passwd user names (Postfix's `proxy:unix:passwd.byname`). */
function passwdTable(file = '/etc/passwd'): Table {
  let names: Set<string>;
  try {
    names = new Set(
      fs
        .readFileSync(file, 'utf8')
        .split('\n')
        .map((l) => l.split(':')[0]!)
        .filter((n) => n !== '' && !n.startsWith('#')),
    );
  } catch {
    names = new Set();
  }
  return { spec: 'unix:passwd.byname', get: (k) => (names.has(k) ? k : undefined) };
}

/**
 * One table of local_recipient_maps / alias_maps. `proxy:` is stripped; `unix:passwd.byname` is
 * /etc/passwd; a hash/btree/lmdb/dbm table whose source is in aliases(5) syntax (alias_maps) is
 * read as such. A table that cannot be opened (nis:, a missing file) finds nothing (a warning is
 * logged once), so unknown users are still rejected.
 */
export function recipientTable(spec: string, o: { aliases: boolean; warn: (t: string) => void }): Table | null {
  let s = spec.trim();
  if (s.startsWith('proxy:')) s = s.slice('proxy:'.length);
  if (s === 'unix:passwd.byname') return passwdTable();
  const m = /^(hash|btree|lmdb|dbm|cdb|sdbm):(.+)$/.exec(s);
  if (o.aliases && m) {
    try {
      const keys = aliasKeys(m[2]!);
      return { spec: s, get: (k) => (keys.has(k.toLowerCase()) ? k : undefined) };
    } catch (e) {
      o.warn(`${spec}: table unavailable: ${(e as Error).message}`);
      return null;
    }
  }
  return safeOpen(s, o.warn);
}

/** Our own addresses (for `user@[192.0.2.1]` local literals): inet_interfaces + proxy_interfaces. */
function localAddresses(params: Params): Set<string> {
  const out = new Set<string>();
  const add = (a: string): void => {
    const x = a.replace(/^\[|\]$/g, '');
    if (net.isIPv6(x)) out.add(expand6(x));
    else if (net.isIPv4(x)) out.add(x);
  };
  const ifs = params.inet_interfaces.map((s) => s.toLowerCase());
  if (ifs.includes('all') || ifs.length === 0) {
    for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) add(i.address);
  } else if (ifs.includes('loopback-only')) {
    add('127.0.0.1');
    add('::1');
  }
  for (const a of [...params.inet_interfaces, ...params.proxy_interfaces]) add(a);
  return out;
}

export class AddressResolver {
  readonly mydestination: DomainList;
  readonly virtualAlias: DomainList;
  readonly virtualMailbox: DomainList;
  readonly relay: DomainList;
  private readonly localAddrs: Set<string>;
  private readonly localRcptMaps: Table[];
  private readonly virtualMailboxMaps: Table[];
  private readonly relayRcptMaps: Table[];
  private readonly aliasLikeMaps: Table[];
  private readonly checkLocal: boolean;
  private readonly checkVirtual: boolean;
  private readonly checkRelay: boolean;

  constructor(
    private readonly params: Params,
    warn: (t: string) => void,
  ) {
    const parent = new Set(params.parent_domain_matches_subdomains.map((s) => s.toLowerCase()));
    this.mydestination = new DomainList(params.mydestination, false, warn);
    this.virtualAlias = new DomainList(params.virtual_alias_domains, false, warn);
    this.virtualMailbox = new DomainList(params.virtual_mailbox_domains, false, warn);
    this.relay = new DomainList(params.relay_domains, parent.has('relay_domains'), warn);
    this.localAddrs = localAddresses(params);
    const open = (specs: readonly string[], aliases: boolean): Table[] =>
      specs.map((s) => recipientTable(s, { aliases, warn })).filter((t): t is Table => t !== null);
    const aliasSpecs = new Set(params.alias_maps);
    this.localRcptMaps = params.local_recipient_maps.map((s) => recipientTable(s, { aliases: aliasSpecs.has(s), warn })).filter((t): t is Table => t !== null);
    this.virtualMailboxMaps = open(params.virtual_mailbox_maps, false);
    this.relayRcptMaps = open(params.relay_recipient_maps, false);
    this.aliasLikeMaps = open([...params.recipient_canonical_maps, ...params.canonical_maps, ...params.virtual_alias_maps], false);
    this.checkLocal = params.local_recipient_maps.length > 0;
    this.checkVirtual = params.virtual_mailbox_maps.length > 0;
    this.checkRelay = params.relay_recipient_maps.length > 0;
  }

  /** Is the domain one of ours for local delivery (mydestination or a literal of our address)? */
  isLocalDomain(domain: string): boolean {
    const d = domain.toLowerCase();
    if (d.startsWith('[') && d.endsWith(']')) {
      let a = d.slice(1, -1);
      if (a.startsWith('ipv6:')) a = a.slice(5);
      if (net.isIPv6(a)) return this.localAddrs.has(expand6(a));
      return net.isIPv4(a) && this.localAddrs.has(a);
    }
    return this.mydestination.matches(d);
  }

  /** Resolve an envelope address to its class (trivial-rewrite resolve_addr()). */
  resolve(address: string): Resolved {
    let addr = address;
    let routed = false;
    for (let hops = 0; hops < 10; hops++) {
      const at = addr.lastIndexOf('@');
      let local = at < 0 ? addr : addr.slice(0, at);
      let domain = at < 0 ? '' : addr.slice(at + 1).toLowerCase().replace(/\.$/, '');
      if (domain === '') domain = this.params.myorigin.toLowerCase();
      // A local domain with routing in the local part: strip our domain and look again
      // (user%other@mydomain, "user@other"@mydomain; RFC 5321 3.6.1 source routes).
      if (this.isLocalDomain(domain) && /[@%!]/.test(local)) {
        if (local.includes('@')) {
          addr = local;
          routed = true;
          continue;
        }
        if (this.params.allow_percent_hack && local.includes('%')) {
          const p = local.lastIndexOf('%');
          addr = `${local.slice(0, p)}@${local.slice(p + 1)}`;
          routed = true;
          continue;
        }
        if (this.params.swap_bangpath && local.includes('!')) {
          const b = local.indexOf('!');
          addr = `${local.slice(b + 1)}@${local.slice(0, b)}`;
          routed = true;
          continue;
        }
      }
      local = local.replace(/^"(.*)"$/, '$1');
      const cls: AddressClass = this.isLocalDomain(domain)
        ? 'local'
        : this.virtualAlias.matches(domain)
          ? 'alias'
          : this.virtualMailbox.matches(domain)
            ? 'virtual'
            : this.relay.matches(domain)
              ? 'relay'
              : 'default';
      return { class: cls, address: `${local}@${domain}`, localPart: local, domain, routed: routed || (cls !== 'local' && /[@%!]/.test(local)) };
    }
    return { class: 'default', address: addr, localPart: addr, domain: '', routed: true };
  }

  /** Postfix mail_addr_find(): user@domain, user (local domains), @domain, each also without the extension. */
  private find(tables: readonly Table[], r: Resolved): boolean {
    if (tables.length === 0) return false;
    const keys: string[] = [];
    const local = r.localPart.toLowerCase();
    const bare = this.stripExtension(local);
    keys.push(`${local}@${r.domain}`);
    if (bare !== local) keys.push(`${bare}@${r.domain}`);
    if (r.class === 'local') {
      keys.push(local);
      if (bare !== local) keys.push(bare);
    }
    keys.push(`@${r.domain}`);
    for (const t of tables) for (const k of keys) if (t.get(k) !== undefined) return true;
    return false;
  }

  private stripExtension(local: string): string {
    const delims = this.params.recipient_delimiter;
    if (delims === '') return local;
    for (let i = 0; i < local.length; i++) {
      if (delims.includes(local[i]!)) return i > 0 ? local.slice(0, i) : local;
    }
    return local;
  }

  /**
   * The recipient-table verdict of check_rcpt_maps(): null when the address is known (or its class
   * has no table), else the table name for "User unknown in <table>".
   */
  unknownUser(r: Resolved): { table: string; codeParam: 'local' | 'virtual' | 'relay' | 'alias' } | null {
    if (this.find(this.aliasLikeMaps, r)) return null;
    switch (r.class) {
      case 'alias':
        return { table: 'virtual alias table', codeParam: 'alias' };
      case 'local': {
        if (!this.checkLocal) return null;
        const lp = r.localPart.toLowerCase();
        const exempt = [this.params.double_bounce_sender.toLowerCase(), 'postmaster', 'mailer-daemon'];
        if (exempt.includes(lp)) return null;
        return this.find(this.localRcptMaps, r) ? null : { table: 'local recipient table', codeParam: 'local' };
      }
      case 'virtual':
        if (!this.checkVirtual) return null;
        return this.find(this.virtualMailboxMaps, r) ? null : { table: 'virtual mailbox table', codeParam: 'virtual' };
      case 'relay':
        if (!this.checkRelay) return null;
        return this.find(this.relayRcptMaps, r) ? null : { table: 'relay recipient table', codeParam: 'relay' };
      default:
        return null;
    }
  }
}

export type { LookupTable };

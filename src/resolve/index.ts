/**
 * resolve: what Postfix's trivial-rewrite(8) answers qmgr, plus cleanup(8)'s virtual alias
 * rewriting (Postern does it at delivery time; the queue file keeps the recipients as received).
 *
 * What it does:
 *   - canonicalise an envelope address: a bare `user` gets `@$myorigin` (append_at_myorigin),
 *     `site!user` becomes `user@site` (swap_bangpath), `user%site@<local domain>` becomes
 *     `user@site` (allow_percent_hack), a trailing dot of the domain goes;
 *   - expand virtual aliases (virtual_alias_maps, virtual(5) lookup order, recursive, an address
 *     may expand to itself once, limits virtual_alias_recursion_limit/expansion_limit, unmatched
 *     extensions propagated when propagate_unmatched_extensions has `virtual`);
 *   - classify the address (ADDRESS_CLASS_README): local ($mydestination, or an address literal of
 *     $inet_interfaces/$proxy_interfaces) → $local_transport; virtual alias domain →
 *     `error:5.1.1 User unknown in virtual alias table`; $virtual_mailbox_domains →
 *     $virtual_transport; $relay_domains → $relay_transport; else $default_transport;
 *     $relayhost replaces the nexthop of the relay and default classes; a `transport:nexthop`
 *     parameter value sets the nexthop; then transport_maps (transport(5): full address, address
 *     without extension, domain, `.parent` domains, `*`) override transport and/or nexthop.
 *
 * Data in: addresses (from the queue file's envelope: trusted shape, untrusted content).
 * Out: plain Resolution values. Reads: the lookup tables named in main.cf (once, when the
 * Resolver is built), and the host's interface addresses when inet_interfaces = all. No DNS.
 *
 * main.cf parameters: myorigin, myhostname, mydestination, inet_interfaces, proxy_interfaces,
 * local_transport, virtual_transport, relay_transport, default_transport, relayhost,
 * transport_maps, relay_domains, virtual_alias_domains, virtual_alias_maps,
 * virtual_mailbox_domains, recipient_delimiter, owner_request_special, double_bounce_sender,
 * propagate_unmatched_extensions, virtual_alias_recursion_limit, virtual_alias_expansion_limit,
 * swap_bangpath, allow_percent_hack, append_at_myorigin, resolve_numeric_domain,
 * show_user_unknown_table_name, parent_domain_matches_subdomains, empty_address_recipient.
 */
import * as os from 'node:os';
import { canonicalClientAddress, formatIp } from '../config/tables/address.js';
import { type LookupTable, openTable } from '../config/tables/index.js';
import type { Params } from '../config/types.js';
import { addExtension, type ExtensionOptions, literalAddress, splitAddress, splitExtension, validHostname } from './address.js';
import { DomainList } from './domain-list.js';

export { addExtension, literalAddress, splitAddress, splitExtension, stripExtension, validHostname } from './address.js';
export { DomainList } from './domain-list.js';

/** ADDRESS_CLASS_README's classes. */
export type AddressClass = 'local' | 'alias' | 'virtual' | 'relay' | 'default';

export interface Resolution {
  /** The recipient after canonicalisation (what the agent delivers to). */
  readonly address: string;
  readonly addressClass: AddressClass;
  /** master.cf transport name: `local`, `virtual`, `smtp`, `relay`, `error`, `retry`, `discard`, ... */
  readonly transport: string;
  /** Transport-specific: a domain, `[host]:port`, or the text of error:/discard:. */
  readonly nexthop: string;
}

/** The result of virtual alias expansion of one recipient. */
export type Expansion =
  | { readonly ok: true; readonly addresses: readonly string[] }
  /** Expansion failed (loop, limits): defer with this status, as cleanup does (`4.6.0 Alias expansion error`). */
  | { readonly ok: false; readonly dsn: string; readonly reason: string };

export interface ResolverOptions {
  /** config_directory, for relative table paths. */
  readonly configDir?: string;
  /** main.cf, for error messages. */
  readonly mainCfPath?: string;
  /** This host's addresses (address literals naming them are local). Default: from inet_interfaces. */
  readonly interfaceAddresses?: readonly string[];
  /** Receives Postfix's warnings (`unreasonable virtual_alias_maps map nesting for ...`). */
  readonly warn?: (text: string) => void;
}

/** A `transport:nexthop` value split at the first colon (transport(5)). */
export function parseTransport(value: string): { transport: string; nexthop: string } {
  const colon = value.indexOf(':');
  return colon < 0 ? { transport: value, nexthop: '' } : { transport: value.slice(0, colon), nexthop: value.slice(colon + 1) };
}

function hostInterfaceAddresses(inet_interfaces: readonly string[]): string[] {
  const lc = inet_interfaces.map((s) => s.toLowerCase());
  if (lc.includes('all')) {
    const out: string[] = [];
    for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.push(a.address);
    return out;
  }
  if (lc.includes('loopback-only')) return ['127.0.0.1', '::1'];
  return [...inet_interfaces];
}

/** Split a lookup result into addresses: commas and white space separate, quoted strings kept (mystrtokq). */
export function splitAddressList(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let angle = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (ch === '\\' && quoted && i + 1 < value.length) {
      cur += ch + value[++i]!;
      continue;
    }
    if (ch === '"') quoted = !quoted;
    else if (!quoted && ch === '<') angle++;
    else if (!quoted && ch === '>' && angle > 0) angle--;
    if (!quoted && angle === 0 && /[\s,]/.test(ch)) {
      if (cur !== '') out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  if (cur !== '') out.push(cur);
  return out.map((a) => (a.startsWith('<') && a.endsWith('>') ? a.slice(1, -1) : a));
}

export class Resolver {
  private readonly p: Params;
  private readonly opts: ResolverOptions;
  private readonly tables = new Map<string, LookupTable>();
  private readonly mydestination: DomainList;
  private readonly relayDomains: DomainList;
  private readonly aliasDomains: DomainList;
  private readonly mailboxDomains: DomainList;
  private readonly transportMaps: LookupTable[];
  private readonly aliasMaps: LookupTable[];
  private readonly localIps: Set<string>;
  private readonly ext: ExtensionOptions;
  private readonly transportParentStyle: boolean;

  constructor(params: Params, opts: ResolverOptions = {}) {
    this.p = params;
    this.opts = opts;
    const pdms = new Set(params.parent_domain_matches_subdomains.map((s) => s.toLowerCase()));
    const listOpts = (name: string) => ({
      parentMatches: pdms.has(name),
      tables: this.tables,
      ...(opts.configDir !== undefined ? { configDir: opts.configDir } : {}),
      ...(opts.mainCfPath !== undefined ? { mainCfPath: opts.mainCfPath } : {}),
    });
    this.mydestination = new DomainList('mydestination', params.mydestination, listOpts('mydestination'));
    this.relayDomains = new DomainList('relay_domains', params.relay_domains, listOpts('relay_domains'));
    this.aliasDomains = new DomainList('virtual_alias_domains', params.virtual_alias_domains, listOpts('virtual_alias_domains'));
    this.mailboxDomains = new DomainList('virtual_mailbox_domains', params.virtual_mailbox_domains, listOpts('virtual_mailbox_domains'));
    this.transportMaps = params.transport_maps.map((s) => this.table(s));
    this.aliasMaps = params.virtual_alias_maps.map((s) => this.table(s));
    this.transportParentStyle = pdms.has('transport_maps');
    const ips = [...(opts.interfaceAddresses ?? hostInterfaceAddresses(params.inet_interfaces)), ...params.proxy_interfaces];
    this.localIps = new Set();
    for (const a of ips) {
      const ip = canonicalClientAddress(a);
      if (ip !== undefined) this.localIps.add(formatIp(ip));
    }
    this.ext = {
      recipient_delimiter: params.recipient_delimiter,
      owner_request_special: params.owner_request_special,
      double_bounce_sender: params.double_bounce_sender,
    };
  }

  private table(spec: string): LookupTable {
    let t = this.tables.get(spec);
    if (t === undefined) {
      t = openTable(spec, { file: this.opts.mainCfPath ?? 'main.cf', line: 0, ...(this.opts.configDir !== undefined ? { configDir: this.opts.configDir } : {}) });
      this.tables.set(spec, t);
    }
    return t;
  }

  /** resolve_local(3): is `domain` one of ours ($mydestination, or a literal of our interfaces)? */
  isLocalDomain(domain: string): boolean {
    let d = domain.toLowerCase();
    if (d.endsWith('.') && !d.endsWith('..')) d = d.slice(0, -1);
    if (d === '') return false;
    const lit = literalAddress(d);
    if (lit !== null) return this.localIps.has(lit) || this.mydestination.matches(d);
    return this.mydestination.matches(d);
  }

  /** Rewrite to canonical form (see the header). The null address becomes $empty_address_recipient. */
  canonicalize(address: string): string {
    let addr = address === '' ? this.p.empty_address_recipient : address;
    let { local, domain } = splitAddress(addr);
    if (domain === null) {
      const bang = this.p.swap_bangpath ? local.indexOf('!') : -1;
      if (bang > 0 && bang < local.length - 1) {
        domain = local.slice(0, bang);
        local = local.slice(bang + 1);
      } else {
        domain = this.p.append_at_myorigin ? this.p.myorigin : this.p.myhostname;
      }
    }
    if (domain.endsWith('.') && !domain.endsWith('..') && domain.length > 1) domain = domain.slice(0, -1);
    addr = `${local}@${domain}`;
    // resolve_addr(): strip a local domain and look again for routing operators in the local part.
    for (let i = 0; i < 10; i++) {
      const s = splitAddress(addr);
      if (s.domain === null || !this.isLocalDomain(s.domain)) break;
      const l = s.local.startsWith('"') && s.local.endsWith('"') && s.local.length > 1 ? s.local.slice(1, -1) : s.local;
      let next: string | null = null;
      if (l.includes('@')) next = l;
      else if (this.p.allow_percent_hack && l.includes('%')) {
        const pct = l.lastIndexOf('%');
        next = `${l.slice(0, pct)}@${l.slice(pct + 1)}`;
      } else if (this.p.swap_bangpath && l.indexOf('!') > 0) {
        const bang = l.indexOf('!');
        next = `${l.slice(bang + 1)}@${l.slice(0, bang)}`;
      }
      if (next === null || next.endsWith('@') || next.startsWith('@')) break;
      addr = next;
    }
    return addr;
  }

  /**
   * Virtual alias expansion of one recipient (cleanup_map1n.c), after canonicalisation. An
   * address without an entry expands to itself.
   */
  expandVirtual(address: string): Expansion {
    const start = this.canonicalize(address);
    if (this.aliasMaps.length === 0) return { ok: true, addresses: [start] };
    const list = [start];
    const beenHere = new Set<string>();
    const fail = (what: string): Expansion => {
      this.opts.warn?.(`unreasonable virtual_alias_maps map ${what} for ${start} -- message not accepted, try again later`);
      return { ok: false, dsn: '4.6.0', reason: 'Alias expansion error' };
    };
    for (let arg = 0; arg < list.length; arg++) {
      if (list.length > this.p.virtual_alias_expansion_limit) return fail('expansion size');
      for (let count = 0; ; count++) {
        const cur = list[arg]!;
        if (beenHere.has(cur.toLowerCase())) break;
        if (count >= this.p.virtual_alias_recursion_limit) return fail('nesting');
        const result = this.aliasLookup(cur);
        if (result === null) break;
        for (let i = 0; i < result.length; i++) {
          if (i === 0) list[arg] = result[0]!;
          else list.push(result[i]!);
          // An address may expand into itself once.
          if (result[i]!.toLowerCase() === cur.toLowerCase()) beenHere.add(cur.toLowerCase());
        }
        if (result.length === 0) break;
      }
    }
    const seen = new Set<string>();
    const out: string[] = [];
    for (const a of list) {
      const k = a.toLowerCase();
      if (seen.has(k)) continue;
      seen.add(k);
      out.push(a);
    }
    return { ok: true, addresses: out };
  }

  /** mail_addr_map(): virtual(5) search order; the result addresses canonicalised, extension propagated. */
  private aliasLookup(address: string): string[] | null {
    const { local, domain } = splitAddress(address);
    const { base, extension } = splitExtension(local, this.ext);
    const find = (key: string, partial: boolean): string | undefined => {
      for (const t of this.aliasMaps) {
        if (partial && t.kind === 'pattern') continue;
        const v = t.get(key);
        if (v !== undefined) return v;
      }
      return undefined;
    };
    let value = find(address, false);
    let stripped = false;
    if (value === undefined && extension !== null && domain !== null) {
      value = find(`${base}@${domain}`, true);
      stripped = value !== undefined;
    }
    if (value === undefined && domain !== null && (domain.toLowerCase() === this.p.myorigin.toLowerCase() || this.isLocalDomain(domain))) {
      value = find(local, true);
      if (value === undefined && extension !== null) {
        value = find(base, true);
        stripped = value !== undefined;
      }
    }
    if (value === undefined && domain !== null) value = find(`@${domain}`, true);
    if (value === undefined) return null;
    const propagate = stripped && extension !== null && this.p.propagate_unmatched_extensions.some((s) => s.toLowerCase() === 'virtual');
    return splitAddressList(value).map((a) => {
      const canon = this.canonicalize(a);
      return propagate ? addExtension(canon, extension) : canon;
    });
  }

  /** transport(5) lookup: the table value for the address, or undefined. */
  private transportLookup(address: string, domain: string): string | undefined {
    if (this.transportMaps.length === 0) return undefined;
    const find = (key: string, partial: boolean): string | undefined => {
      for (const t of this.transportMaps) {
        if (partial && t.kind === 'pattern') continue;
        const v = t.get(key);
        if (v !== undefined) return v;
      }
      return undefined;
    };
    let v = find(address, false);
    if (v !== undefined) return v;
    const { local } = splitAddress(address);
    const { base, extension } = splitExtension(local, this.ext);
    if (extension !== null) {
      v = find(`${base}@${domain}`, true);
      if (v !== undefined) return v;
    }
    const name = domain.toLowerCase();
    v = find(name, true);
    if (v !== undefined) return v;
    for (let dot = name.indexOf('.', 1); dot >= 0; dot = name.indexOf('.', dot + 1)) {
      const key = this.transportParentStyle ? name.slice(dot + 1) : name.slice(dot);
      v = find(key, true);
      if (v !== undefined) return v;
    }
    return find('*', false);
  }

  /** Address class, transport and nexthop for one (already alias-expanded) recipient. */
  resolve(recipient: string): Resolution {
    const address = this.canonicalize(recipient);
    const { domain: d } = splitAddress(address);
    const domain = d ?? this.p.myhostname;
    const bad = (): Resolution => ({ address, addressClass: 'default', transport: 'error', nexthop: '5.1.3 bad address syntax' });
    let local: boolean;
    if (domain.startsWith('[')) {
      if (literalAddress(domain) === null) return bad();
      local = this.isLocalDomain(domain);
    } else if (!validHostname(domain)) {
      // resolve_numeric_domain: user@1.2.3.4 as user@[1.2.3.4].
      const ip = canonicalClientAddress(domain);
      if (!this.p.resolve_numeric_domain || ip === undefined) return bad();
      const lit = `[${domain}]`;
      return this.resolve(`${splitAddress(address).local}@${lit}`);
    } else {
      local = this.isLocalDomain(domain);
    }
    let cls: AddressClass;
    let channel: string;
    let nexthop: string;
    if (local) {
      cls = 'local';
      channel = this.p.local_transport;
      nexthop = domain;
    } else if (this.aliasDomains.matches(domain)) {
      const table = this.p.show_user_unknown_table_name ? ' in virtual alias table' : '';
      return { address, addressClass: 'alias', transport: 'error', nexthop: `5.1.1 User unknown${table}` };
    } else if (this.mailboxDomains.matches(domain)) {
      cls = 'virtual';
      channel = this.p.virtual_transport;
      nexthop = domain;
    } else {
      if (this.relayDomains.matches(domain)) {
        cls = 'relay';
        channel = this.p.relay_transport;
      } else {
        cls = 'default';
        channel = this.p.default_transport;
      }
      nexthop = this.p.relayhost !== '' ? this.p.relayhost : domain;
    }
    const param = parseTransport(channel);
    let transport = param.transport;
    if (param.nexthop !== '') nexthop = param.nexthop;
    const entry = this.transportLookup(address, domain);
    if (entry !== undefined) {
      // transport.c update_entry(): `:nexthop` keeps the transport; `transport:` resets the nexthop.
      const t = parseTransport(entry);
      if (t.transport === '') {
        if (t.nexthop !== '') nexthop = t.nexthop;
      } else {
        transport = t.transport;
        if (t.nexthop !== '') nexthop = t.nexthop;
        else if (transport === 'error' || transport === 'retry') nexthop = 'Address is undeliverable';
        else nexthop = domain;
      }
    }
    return { address, addressClass: cls, transport, nexthop };
  }
}

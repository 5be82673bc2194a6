/**
 * The access(5) search order: which keys Postfix's SMTP server looks up, in which order, for an
 * email address, a domain (HELO name, domain part), or a client (hostname, then address).
 * Pattern tables (regexp, pcre, cidr) see only the whole key; fixed tables also see the partial
 * keys (Postfix smtpd_check.c check_domain_access/check_addr_access and mail_addr_find with
 * MA_FIND_FULL|NOEXT|DOMAIN|LOCALPART_AT).
 */
import { canonicalClientAddress, formatIp, parseIp } from './address.js';
import type { LookupTable } from './index.js';

export type AccessKind = 'address' | 'domain' | 'client';

export interface AccessOptions {
  /**
   * parent_domain_matches_subdomains lists smtpd_access_maps (Postfix 3.7's default: yes): the key
   * `example.com` also matches `sub.example.com`. When false, only `.example.com` does.
   */
  readonly parentDomainMatchesSubdomains?: boolean;
  /** recipient_delimiter: a set of characters (`+`, `+-`); empty = no extension stripping. */
  readonly recipientDelimiter?: string;
  /** owner_request_special (default true): with `-` as delimiter, keep owner-foo and foo-request whole. */
  readonly ownerRequestSpecial?: boolean;
  /** double_bounce_sender (default `double-bounce`): never split. */
  readonly doubleBounceSender?: string;
}

/** The options as main.cf sets them (pass `config.params`, or a service's params). */
export function accessOptionsFrom(params: {
  readonly parent_domain_matches_subdomains: readonly string[];
  readonly recipient_delimiter: string;
  readonly owner_request_special: boolean;
  readonly double_bounce_sender: string;
}): AccessOptions {
  return {
    parentDomainMatchesSubdomains: params.parent_domain_matches_subdomains.some((f) => f.toLowerCase() === 'smtpd_access_maps'),
    recipientDelimiter: params.recipient_delimiter,
    ownerRequestSpecial: params.owner_request_special,
    doubleBounceSender: params.double_bounce_sender,
  };
}

export interface AccessKey {
  readonly key: string;
  /** A derived key (parent domain, address without extension, shorter network): fixed tables only. */
  readonly partial: boolean;
}

/**
 * The keys for one search, in order.
 * - 'address' (`user+foo@domain`): `user+foo@domain`, `user@domain`, `domain` and its parents
 *   (`sub.example.com`, `example.com`, `com`; with parentDomainMatchesSubdomains false:
 *   `sub.example.com`, `.example.com`, `.com`), `user+foo@`, `user@`. A key without `@` (the null
 *   sender's `<>`) is looked up as is.
 * - 'domain': the domain, then parents as above; an IP address is looked up once.
 * - 'client': `name[addr]` or a bare `addr`: the hostname and its parents, then the address and
 *   its networks (`1.2.3.4`, `1.2.3`, `1.2`, `1`; `2001:db8:1:2:3:4:5:6`, …, `2001`).
 *   `::ffff:a.b.c.d` is searched as `a.b.c.d`; IPv6 in the compressed form Postfix prints.
 */
export function accessKeys(kind: AccessKind, key: string, opts: AccessOptions = {}): AccessKey[] {
  const pdms = opts.parentDomainMatchesSubdomains ?? true;
  const out: AccessKey[] = [];
  if (kind === 'domain') {
    domainKeys(key, pdms, out);
  } else if (kind === 'client') {
    const m = /^(.*)\[([^\]]*)\]$/.exec(key);
    const name = m === null ? undefined : m[1]!;
    const addr = m === null ? key : m[2]!;
    if (name !== undefined && name !== '') domainKeys(name, pdms, out);
    addressNetworkKeys(addr, out);
  } else {
    mailAddressKeys(key, pdms, opts, out);
  }
  return out.filter((k) => k.key !== '');
}

/** Search `tables` (in order, for each key) as access(5) says; the first value found. */
export function accessLookup(tables: LookupTable | readonly LookupTable[], kind: AccessKind, key: string, opts: AccessOptions = {}): string | undefined {
  const list: readonly LookupTable[] = isTableList(tables) ? tables : [tables];
  for (const k of accessKeys(kind, key, opts)) {
    for (const table of list) {
      if (k.partial && table.kind === 'pattern') continue;
      const value = table.get(k.key);
      if (value !== undefined) return value;
    }
  }
  return undefined;
}

function isTableList(t: LookupTable | readonly LookupTable[]): t is readonly LookupTable[] {
  return Array.isArray(t);
}

function domainKeys(domain: string, pdms: boolean, out: AccessKey[]): void {
  let name = domain;
  let partial = false;
  while (name !== '') {
    out.push({ key: name, partial });
    // "Don't apply subdomain magic to numerical hostnames."
    if (parseIp(domain) !== undefined) break;
    const next = name.indexOf('.', 1);
    if (next < 0) break;
    name = pdms ? name.slice(next + 1) : name.slice(next);
    partial = true;
  }
}

function addressNetworkKeys(addr: string, out: AccessKey[]): void {
  const canonical = canonicalClientAddress(addr);
  let s = canonical === undefined ? addr : formatIp(canonical);
  const delim = s.includes(':') ? ':' : '.';
  out.push({ key: s, partial: false });
  for (let cut = s.lastIndexOf(delim); cut >= 0; cut = s.lastIndexOf(delim)) {
    s = s.slice(0, cut);
    out.push({ key: s, partial: true });
  }
}

function mailAddressKeys(full: string, pdms: boolean, opts: AccessOptions, out: AccessKey[]): void {
  const at = full.lastIndexOf('@');
  out.push({ key: full, partial: false });
  if (at < 0) return;
  const local = full.slice(0, at);
  const bareLocal = stripExtension(local, opts);
  if (bareLocal !== undefined) out.push({ key: bareLocal + full.slice(at), partial: true });
  let name = full.slice(at + 1);
  while (name !== '') {
    out.push({ key: name, partial: true });
    const next = name.indexOf('.', 1);
    if (next < 0) break;
    name = pdms ? name.slice(next + 1) : name.slice(next);
  }
  out.push({ key: `${local}@`, partial: true });
  if (bareLocal !== undefined) out.push({ key: `${bareLocal}@`, partial: true });
}

/** Postfix split_addr: the localpart without its extension, or undefined when it has none. */
function stripExtension(local: string, opts: AccessOptions): string | undefined {
  const delims = opts.recipientDelimiter ?? '';
  if (delims === '') return undefined;
  const lower = local.toLowerCase();
  if (lower === 'postmaster' || lower === 'mailer-daemon' || lower === (opts.doubleBounceSender ?? 'double-bounce').toLowerCase()) return undefined;
  if (delims.includes('-') && (opts.ownerRequestSpecial ?? true)) {
    if (lower.startsWith('owner-')) return undefined;
    if (local.length - 8 > 0 && lower.endsWith('-request')) return undefined;
  }
  let idx = -1;
  for (let i = 0; i < local.length; i++) {
    if (delims.includes(local[i]!)) {
      idx = i;
      break;
    }
  }
  if (idx <= 0) return undefined;
  return local.slice(0, idx);
}

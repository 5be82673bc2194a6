/**
 * The SMTP client's identity: printable address forms and the forward-confirmed host name
 * (Postfix smtpd_peer.c).
 *
 * - `addr`: the address as logged and matched (`192.0.2.1`, `2001:db8::1`; an IPv4-mapped IPv6
 *   address `::ffff:192.0.2.1` becomes `192.0.2.1` when IPv4 is enabled, as Postfix does).
 * - `rfcAddr`: the form for Received: headers, `IPv6:2001:db8::1` for IPv6 (RFC 5321 4.1.3).
 * - `name`: the reverse (PTR) name only when it is a valid host name that resolves back to the
 *   client address (forward-confirmed); otherwise `unknown`. `reverseName` is the unverified PTR
 *   name (reject_unknown_reverse_client_hostname). Statuses tell permanent from temporary failure
 *   (reject_unknown_client_hostname replies 450 for temporary ones).
 *
 * All DNS goes through a `Resolver` so tests inject a mock and never touch the system resolver.
 */
import * as dns from 'node:dns';
import * as net from 'node:net';

export type PeerStatus = 'ok' | 'temp' | 'perm' | 'forged';

export interface Peer {
  readonly addr: string;
  readonly rfcAddr: string;
  readonly port: number;
  readonly family: 4 | 6;
  readonly name: string;
  readonly nameStatus: PeerStatus;
  readonly reverseName: string;
  readonly reverseStatus: PeerStatus;
  /** `name[addr]`, as every log line writes the client. */
  readonly namaddr: string;
}

/** A DNS failure: `temp` (SERVFAIL, timeout) or `perm` (NXDOMAIN, no data). */
export class ResolverError extends Error {
  readonly kind: 'temp' | 'perm';
  constructor(kind: 'temp' | 'perm', message: string) {
    super(message);
    this.name = 'ResolverError';
    this.kind = kind;
  }
}

/** What a mail domain looks like in the DNS (reject_unknown_sender/recipient_domain). */
export type MailhostStatus = 'ok' | 'notfound' | 'nullmx' | 'tempfail';

export interface Resolver {
  /** PTR names of an address. Throws ResolverError. */
  reverse(addr: string): Promise<string[]>;
  /** Addresses of a host name in one family. Throws ResolverError. */
  lookup(name: string, family: 4 | 6): Promise<string[]>;
  /** Does the domain have MX, A or AAAA records (RFC 5321 5.1)? */
  mailhost(domain: string): Promise<MailhostStatus>;
  /** Does the host name have A or AAAA records (reject_unknown_helo_hostname)? */
  hostAddress(name: string): Promise<MailhostStatus>;
  /**
   * A DNSBL query (smtpd_check.c rbl_pagein()): the A records of `name` and, when there are some, its
   * TXT strings. null: not listed (NXDOMAIN, no A record). Throws ResolverError('temp') on a lookup error.
   */
  dnsbl?(name: string): Promise<{ readonly a: readonly string[]; readonly txt: readonly string[] } | null>;
}

const TEMP_CODES = new Set([dns.TIMEOUT, dns.SERVFAIL, dns.CONNREFUSED, dns.REFUSED, 'EAI_AGAIN', dns.CANCELLED]);

function dnsError(e: unknown): ResolverError {
  const code = typeof e === 'object' && e !== null && 'code' in e ? String((e as { code: unknown }).code) : '';
  return new ResolverError(TEMP_CODES.has(code) ? 'temp' : 'perm', code || String(e));
}

/**
 * The host's resolver: reverse lookups with getnameinfo (so /etc/hosts counts, as for Postfix's
 * sockaddr_to_hostname()), forward lookups with getaddrinfo, MX/A/AAAA with the DNS.
 */
export function systemResolver(o: { servers?: readonly string[] } = {}): Resolver {
  const r = new dns.promises.Resolver({ timeout: 5000, tries: 2 });
  // Tests point the DNS lookups (not getnameinfo/getaddrinfo) at a server of their own.
  if (o.servers !== undefined) r.setServers([...o.servers]);
  const hasAny = async (name: string, withMx: boolean): Promise<MailhostStatus> => {
    let temp = false;
    if (withMx) {
      try {
        const mx = await r.resolveMx(name);
        if (mx.length === 1 && mx[0]!.exchange === '' ) return 'nullmx';
        if (mx.length > 0) return 'ok';
      } catch (e) {
        if (dnsError(e).kind === 'temp') temp = true;
      }
    }
    for (const f of [r.resolve4.bind(r), r.resolve6.bind(r)]) {
      try {
        if ((await f(name)).length > 0) return 'ok';
      } catch (e) {
        if (dnsError(e).kind === 'temp') temp = true;
      }
    }
    return temp ? 'tempfail' : 'notfound';
  };
  return {
    async dnsbl(name) {
      let a: string[];
      try {
        a = await r.resolve4(name);
      } catch (e) {
        const err = dnsError(e);
        if (err.kind === 'temp') throw err;
        return null;
      }
      if (a.length === 0) return null;
      let txt: string[] = [];
      try {
        txt = (await r.resolveTxt(name)).map((chunks) => chunks.join(''));
      } catch {
        // listed without a reason
      }
      return { a, txt };
    },
    async reverse(addr) {
      try {
        const { hostname } = await dns.promises.lookupService(addr, 0);
        if (net.isIP(hostname) !== 0) throw new ResolverError('perm', 'no name');
        return [hostname];
      } catch (e) {
        if (e instanceof ResolverError) throw e;
        throw dnsError(e);
      }
    },
    async lookup(name, family) {
      try {
        const res = await dns.promises.lookup(name, { family, all: true });
        return res.map((a) => a.address);
      } catch (e) {
        throw dnsError(e);
      }
    },
    mailhost: (domain) => hasAny(domain, true),
    hostAddress: (name) => hasAny(name, false),
  };
}

/**
 * A resolver that knows nothing: every name and address is unknown. For tests that do not
 * care about DNS, and for `smtpd_peername_lookup = no`.
 */
export function nullResolver(): Resolver {
  const none = async (): Promise<never> => {
    throw new ResolverError('perm', 'not found');
  };
  return { reverse: none, lookup: none, mailhost: async () => 'notfound', hostAddress: async () => 'notfound' };
}

/** Postfix valid_hostname(): letters, digits, '-', '_'; labels 1-63; not all-numeric. */
export function validHostname(name: string): boolean {
  if (name.length === 0 || name.length > 255) return false;
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  const labels = n.split('.');
  let nonNumeric = false;
  for (const l of labels) {
    if (l.length === 0 || l.length > 63) return false;
    if (!/^[A-Za-z0-9_-]+$/.test(l)) return false;
    if (l.startsWith('-') || l.endsWith('-')) return false;
    if (/[^0-9]/.test(l)) nonNumeric = true;
  }
  return nonNumeric;
}

/** Address forms of a socket peer. `::ffff:a.b.c.d` becomes `a.b.c.d` when IPv4 is enabled. */
export function peerAddress(remote: string, ipv4Enabled: boolean): { addr: string; rfcAddr: string; family: 4 | 6 } {
  let a = remote;
  const pct = a.indexOf('%');
  if (pct >= 0) a = a.slice(0, pct);
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (m && ipv4Enabled) a = m[1]!;
  if (net.isIPv6(a)) return { addr: a, rfcAddr: `IPv6:${a}`, family: 6 };
  return { addr: a, rfcAddr: a, family: 4 };
}

function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  if (net.isIPv6(a) && net.isIPv6(b)) return expand6(a) === expand6(b);
  return false;
}

/** Full 8-group lower-case form of an IPv6 address (for comparisons). */
export function expand6(a: string): string {
  let s = a.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (v4) {
    const h = (Number(v4[1]) << 8) | Number(v4[2]);
    const l = (Number(v4[3]) << 8) | Number(v4[4]);
    s = s.slice(0, v4.index) + h.toString(16) + ':' + l.toString(16);
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, null];
  const hp = head ? head.split(':') : [];
  const tp = tail ? tail.split(':') : [];
  const fill = tail === null ? [] : new Array(8 - hp.length - tp.length).fill('0');
  return [...hp, ...fill, ...tp].map((g) => g.padStart(4, '0')).join(':');
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ResolverError('temp', 'timeout')), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Look up the client's name as Postfix's smtpd_peer_sockaddr_to_hostname(): PTR, then the
 * name's addresses in the client's family must include the client address. `warn` receives
 * Postfix's warnings (`hostname X does not resolve to address A`).
 */
export async function lookupPeer(
  o: { addr: string; rfcAddr: string; family: 4 | 6; port: number; lookup: boolean; resolver: Resolver; timeoutMs: number },
  warn: (text: string) => void,
): Promise<Peer> {
  const base = { addr: o.addr, rfcAddr: o.rfcAddr, port: o.port, family: o.family };
  const unknown = (status: PeerStatus, rstatus: PeerStatus, reverseName = 'unknown'): Peer => ({
    ...base,
    name: 'unknown',
    nameStatus: status,
    reverseName,
    reverseStatus: rstatus,
    namaddr: `unknown[${o.addr}]`,
  });
  if (!o.lookup) return unknown('perm', 'perm');
  let names: string[];
  try {
    names = await withTimeout(o.resolver.reverse(o.addr), o.timeoutMs);
  } catch (e) {
    const kind = e instanceof ResolverError ? e.kind : 'temp';
    return unknown(kind, kind);
  }
  const ptr = names.map((n) => (n.endsWith('.') ? n.slice(0, -1) : n)).find((n) => validHostname(n));
  if (ptr === undefined) return unknown('perm', 'perm');
  let addrs: string[];
  try {
    addrs = await withTimeout(o.resolver.lookup(ptr, o.family), o.timeoutMs);
  } catch (e) {
    const kind = e instanceof ResolverError ? e.kind : 'temp';
    warn(`hostname ${ptr} does not resolve to address ${o.addr}${kind === 'perm' ? ': Name or service not known' : ': Temporary failure in name resolution'}`);
    return unknown(kind === 'temp' ? 'temp' : 'forged', 'ok', ptr);
  }
  if (!addrs.some((a) => sameAddress(a, o.addr))) {
    warn(`hostname ${ptr} does not resolve to address ${o.addr}`);
    return unknown('forged', 'ok', ptr);
  }
  return { ...base, name: ptr, nameStatus: 'ok', reverseName: ptr, reverseStatus: 'ok', namaddr: `${ptr}[${o.addr}]` };
}

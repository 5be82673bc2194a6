/**
 * Everything one smtpd service (one master.cf line) shares between its sessions: its effective
 * parameters, TLS engine, cleanup, compiled restrictions, address classes, client counters and
 * the small lists (smtpd_forbidden_commands, smtpd_noop_commands, fast_flush_domains, ...).
 * Built once per service and rebuilt on reload; sessions keep the one they started with.
 */
import * as dns from 'node:dns';
import * as net from 'node:net';
import * as os from 'node:os';
import { Cleanup, type CleanupOptions } from '../cleanup/index.js';
import { buildAddressList, buildMynetworks, type NetworkMatcher } from '../config/mynetworks.js';
import { type LookupTable, openTable } from '../config/tables/index.js';
import { wordMatcher } from '../config/tables/word-list.js';
import { openUserDb, type UserDb } from '../auth/index.js';
import { MECHANISMS } from '../sasl/index.js';
import { PosternError } from '../errors.js';
import type { Params } from '../config/types.js';
import type { Log, Logger } from '../log/index.js';
import { type RootRead, receivedTlsLines, SmtpdTls, type SmtpdTlsLevel, smtpdTlsLevel, type TlsSession } from '../tls/index.js';
import { AddressResolver, DomainList } from './address-class.js';
import { type Anvil, clientKey } from './anvil.js';
import type { Resolver } from './peer.js';
import { Policy } from './restrictions.js';

export interface SmtpdHooks {
  /** ETRN (RFC 1985): deliver deferred mail for a site now. The queue issue provides it. */
  etrn?(site: string): Promise<void>;
  /** Wait after a failed SASL login (default 2 s, Dovecot's auth_failure_delay); tests pass a shorter one. */
  authFailureDelay?(): Promise<void>;
}

export interface ServiceContext {
  readonly params: Params;
  readonly serviceName: string;
  readonly tls: SmtpdTls | null;
  readonly tlsLevel: SmtpdTlsLevel;
  readonly tlsWrapper: boolean;
  readonly cleanup: Cleanup;
  readonly policy: Policy;
  readonly addresses: AddressResolver;
  readonly resolver: Resolver;
  readonly anvil: Anvil;
  readonly limitExceptions: NetworkMatcher;
  readonly bareLfExclusions: NetworkMatcher;
  anvilKey(addr: string): string;
  isNoopCommand(verb: string): boolean;
  isForbiddenCommand(verb: string): boolean;
  etrnAllowed(site: string): boolean;
  etrn(site: string): Promise<void>;
  receivedTlsLines(s: TlsSession): string[];
  /** local_header_rewrite_clients / always_add_missing_headers: complete headers as local mail. */
  addMissingHeaders(addr: string, sasl: boolean): boolean;
  /** The SASL user database (smtpd_sasl_auth_enable = yes), else null. */
  readonly userDb: UserDb | null;
  /** smtpd_tls_auth_only, implied by smtpd_tls_security_level = encrypt and wrappermode. */
  readonly authOnly: boolean;
  /** Mechanisms offered with or without TLS (smtpd_sasl_[tls_]security_options, smtpd_sasl_mechanism_filter). */
  saslMechanisms(tls: boolean): readonly string[];
  /** smtpd_sasl_exceptions_networks: do not announce AUTH to this client. */
  saslException(name: string, addr: string): boolean;
  authFailureDelay(): Promise<void>;
}

/**
 * The mechanisms left after a security options list (Dovecot flags PLAIN and LOGIN "plaintext",
 * so `noplaintext` removes both; `noanonymous` has nothing to remove) and smtpd_sasl_mechanism_filter.
 */
export function saslMechanismList(options: readonly string[], filter: readonly string[], warn: (t: string) => void): string[] {
  const opts = new Set(options.map((o) => o.toLowerCase()));
  let mechs = opts.has('noplaintext') ? [] : [...MECHANISMS];
  if (filter.length > 0) {
    const keep = wordMatcher(filter, warn);
    mechs = mechs.filter((m) => keep(m));
  }
  return mechs;
}

/** Dovecot's auth_failure_delay default: a failed login is answered after 2 s. */
const AUTH_FAILURE_DELAY_MS = 2000;

/**
 * local_header_rewrite_clients (Postfix cleanup's header rewriting context, smtpd.c): the words
 * Postern acts on, and `check_address_map type:table` (the client address looked up as is; the
 * result is ignored, no subnet search). permit_tls_clientcerts and permit_tls_all_clientcerts
 * are not done yet; they and unknown words are warned about once and match nothing.
 */
function headerRewriteClients(values: readonly string[], warn: (t: string) => void): (string | LookupTable)[] {
  const out: (string | LookupTable)[] = [];
  for (let i = 0; i < values.length; i++) {
    const raw = values[i]!;
    const v = raw.toLowerCase();
    if (v === 'permit_inet_interfaces' || v === 'permit_mynetworks' || v === 'permit_sasl_authenticated') out.push(v);
    else if (v === 'check_address_map' && i + 1 < values.length) {
      const spec = values[++i]!;
      try {
        out.push(openTable(spec));
      } catch (e) {
        warn(`local_header_rewrite_clients: ${spec}: table unavailable: ${(e as Error).message}`);
      }
    } else if (v === 'permit_tls_clientcerts' || v === 'permit_tls_all_clientcerts') warn(`parameter local_header_rewrite_clients: ${raw} is not supported yet; ignored`);
    else if (raw.includes(':')) {
      // A bare type:table is check_address_map's table (Postfix accepts both forms).
      try {
        out.push(openTable(raw));
      } catch (e) {
        warn(`local_header_rewrite_clients: ${raw}: table unavailable: ${(e as Error).message}`);
      }
    } else warn(`parameter local_header_rewrite_clients: invalid request: ${raw}`);
  }
  return out;
}

/**
 * permit_inet_interfaces: is `addr` one of the addresses `$inet_interfaces` names (Postfix
 * own_inet_addr())? `all`: every interface address of the host; `loopback-only`: 127.0.0.1 and ::1;
 * else the listed addresses and host names (looked up once, as the master does for binding). Each
 * filtered by `$inet_protocols`. With `inet_interfaces = 127.0.0.1`, a client on ::1 is remote.
 */
async function inetInterfaces(params: Params): Promise<(addr: string) => boolean> {
  const protocols = params.inet_protocols.map((v) => v.toLowerCase());
  const v4 = protocols.includes('all') || protocols.includes('ipv4');
  const v6 = protocols.includes('all') || protocols.includes('ipv6');
  const set = new Set<string>();
  const add = (address: string): void => {
    const a = address.replace(/%.*$/, '').toLowerCase();
    const family = net.isIP(a);
    if ((family === 4 && v4) || (family === 6 && v6)) set.add(a);
  };
  const values = params.inet_interfaces.length > 0 ? params.inet_interfaces : ['all'];
  for (const raw of values) {
    const v = raw.toLowerCase();
    if (v === 'all') {
      for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) add(i.address);
    } else if (v === 'loopback-only') {
      add('127.0.0.1');
      add('::1');
    } else {
      const host = raw.replace(/^\[|\]$/g, '');
      if (net.isIP(host) !== 0) add(host);
      else {
        // A name the master could bind was resolvable at start; one that is not now matches nothing.
        const found = await dns.promises.lookup(host, { all: true, verbatim: true }).catch(() => []);
        for (const a of found) add(a.address);
      }
    }
  }
  return (addr) => set.has(addr.toLowerCase());
}

export interface BuildOptions {
  readonly params: Params;
  readonly serviceName: string;
  readonly log: Log;
  readonly logger: Logger;
  readonly resolver: Resolver;
  readonly anvil: Anvil;
  readonly hooks: SmtpdHooks;
  /** Reuse a TLS engine (reload keeps it and reloads its files). */
  readonly tls?: SmtpdTls | null;
  /**
   * SIGHUP: the engine in use until now. Should the new settings' certificates fail to load, it
   * stays in use (with a warning) instead of TLS going away: a mail server that stops offering
   * STARTTLS because a renewal left a bad file would send its peers to plaintext.
   */
  readonly previousTls?: SmtpdTls | null;
  /** Reads TLS files this process may no longer open after the privilege drop (../master/root-reader.ts). */
  readonly rootRead?: RootRead;
  readonly cleanup?: Cleanup;
  /** Settings outside the registry (restriction classes), expanded. */
  readonly setting?: (name: string) => string | undefined;
  /** Test seams for the Cleanup this service creates (a failing file system, a full disk). */
  readonly cleanupOptions?: Partial<Pick<CleanupOptions, 'fs' | 'statfs' | 'dirSync' | 'clock'>>;
}

/** Build a service context. Throws PosternError/ConfigError on a configuration that cannot run. */
export async function buildService(o: BuildOptions): Promise<ServiceContext> {
  const p = o.params;
  const warn = (t: string): void => o.logger.warning(t);
  const addresses = new AddressResolver(p, warn);
  const policy = new Policy({ params: p, addresses, resolver: o.resolver, warn, ...(o.setting ? { setting: o.setting } : {}) });
  const tlsLevel = smtpdTlsLevel(p, o.logger);
  const tlsWrapper = p.smtpd_tls_wrappermode;
  let tls: SmtpdTls | null = o.tls ?? null;
  if (tls === null && (tlsLevel !== 'none' || tlsWrapper)) {
    try {
      tls = await SmtpdTls.create(p, o.logger, o.rootRead ? { rootRead: o.rootRead } : {});
    } catch (e) {
      if (o.previousTls?.available) {
        o.logger.warning(`cannot initialize the server-side TLS engine: ${(e as Error).message}; keeping the previous TLS settings`);
        tls = o.previousTls;
      } else {
        // As Postfix: TLS is then unavailable (454 / wrappermode connections dropped), the service runs.
        o.logger.warning(`cannot initialize the server-side TLS engine: ${(e as Error).message}`);
        tls = null;
      }
    }
  }
  const cleanup = o.cleanup ?? new Cleanup({ queue_directory: p.queue_directory, params: p, log: o.log, ...(o.cleanupOptions ?? {}) });
  const listOf = (param: string, values: readonly string[]): NetworkMatcher => {
    try {
      return buildAddressList(param, values);
    } catch (e) {
      warn(`${(e as Error).message}; ${param} matches nothing`);
      return { matches: () => false };
    }
  };
  const noop = wordMatcher(p.smtpd_noop_commands, warn);
  const forbidden = wordMatcher(p.smtpd_forbidden_commands, warn);
  const flush = new DomainList(p.fast_flush_domains, p.parent_domain_matches_subdomains.map((s) => s.toLowerCase()).includes('fast_flush_domains'), warn);
  const local = await inetInterfaces(p);
  const mynetworks = buildMynetworks(p);
  const rewriteClients = headerRewriteClients(p.local_header_rewrite_clients, warn);
  let userDb: UserDb | null = null;
  let mechsPlain: readonly string[] = [];
  let mechsTls: readonly string[] = [];
  if (p.smtpd_sasl_auth_enable) {
    userDb = openUserDb(p, warn);
    mechsPlain = saslMechanismList(p.smtpd_sasl_security_options, p.smtpd_sasl_mechanism_filter, warn);
    mechsTls = saslMechanismList(p.smtpd_sasl_tls_security_options, p.smtpd_sasl_mechanism_filter, warn);
    if (mechsPlain.length === 0 && mechsTls.length === 0) {
      // Postfix: "fatal: no SASL authentication mechanisms" / "... discards all mechanisms in ...".
      throw new PosternError('auth', `smtpd_sasl_mechanism_filter, smtpd_sasl_security_options and smtpd_sasl_tls_security_options discard all mechanisms in '${MECHANISMS.join(' ')}'`);
    }
  }
  const saslExceptions = p.smtpd_sasl_exceptions_networks.length > 0 ? listOf('smtpd_sasl_exceptions_networks', p.smtpd_sasl_exceptions_networks) : null;
  return {
    params: p,
    serviceName: o.serviceName,
    tls,
    tlsLevel,
    tlsWrapper,
    cleanup,
    policy,
    addresses,
    resolver: o.resolver,
    anvil: o.anvil,
    limitExceptions: listOf('smtpd_client_event_limit_exceptions', p.smtpd_client_event_limit_exceptions),
    bareLfExclusions: listOf('smtpd_forbid_bare_newline_exclusions', p.smtpd_forbid_bare_newline_exclusions),
    anvilKey: (addr) => `${o.serviceName}:${clientKey(addr, p.smtpd_client_ipv6_prefix_length)}`,
    isNoopCommand: (v) => p.smtpd_noop_commands.length > 0 && noop(v),
    isForbiddenCommand: (v) => forbidden(v),
    etrnAllowed: (site) => flush.matches(site.replace(/^\[|\]$/g, '')),
    etrn: async (site) => {
      if (o.hooks.etrn) await o.hooks.etrn(site);
    },
    receivedTlsLines,
    addMissingHeaders: (addr, sasl) => {
      if (p.always_add_missing_headers) return true;
      for (const r of rewriteClients) {
        if (r === 'permit_inet_interfaces' && local(addr)) return true;
        if (r === 'permit_mynetworks' && mynetworks.matches(addr)) return true;
        if (r === 'permit_sasl_authenticated' && sasl) return true;
        if (typeof r !== 'string' && r.get(addr) !== undefined) return true;
      }
      return false;
    },
    userDb,
    authOnly: p.smtpd_tls_auth_only || tlsLevel === 'encrypt' || tlsWrapper,
    saslMechanisms: (tls) => (tls ? mechsTls : mechsPlain),
    saslException: (_name, addr) => saslExceptions?.matches(addr) ?? false,
    authFailureDelay: () => (o.hooks.authFailureDelay ? o.hooks.authFailureDelay() : new Promise((r) => setTimeout(r, AUTH_FAILURE_DELAY_MS))),
  };
}

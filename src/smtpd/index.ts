/**
 * smtpd — the inbound SMTP daemon (Postfix smtpd(8)) for ports 25, 587 and 465.
 *
 * What it does: speaks SMTP (RFC 5321) with PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME
 * (RFC 6152), SMTPUTF8 (RFC 6531), DSN (RFC 3461), CHUNKING/BDAT (RFC 3030), ENHANCEDSTATUSCODES
 * (RFC 2034/3463), STARTTLS (RFC 3207), ETRN (RFC 1985) and AUTH (RFC 4954: PLAIN, LOGIN against a
 * Dovecot passwd-file, src/auth + src/sasl); applies Postfix's access restrictions
 * and relay policy; hands accepted messages to cleanup; writes Postfix's log lines.
 *
 * Data in: TCP connections handed over by the master (`accept(socket, listener)`); out: queue
 * files through src/cleanup (`250 ... queued as QID` only after the file and its directory entry
 * are fsynced), replies, log lines.
 *
 * Trusts: nothing from the peer. Every read is bounded (line_length_limit, message_size_limit,
 * smtpd_timeout); reply texts never echo raw control characters; the Received: header is built
 * from sanitized values and the socket's address. DNS answers decide only the logged client name
 * (forward-confirmed) and reject_unknown_* restrictions.
 *
 * Touches on disk: queue_directory (via cleanup), the TLS certificate/key files (via src/tls),
 * lookup tables named in restrictions and recipient maps, /etc/passwd (local_recipient_maps), the
 * SASL passwd-file and $config_directory/dovecot.conf (smtpd_sasl_auth_enable).
 *
 * main.cf parameters: smtpd_banner, myhostname, mail_name, smtpd_timeout, smtpd_*_error_limit,
 * smtpd_error_sleep_time, smtpd_junk_command_limit, line_length_limit, message_size_limit,
 * smtpd_recipient_limit, smtpd_recipient_overshoot_limit, smtpd_client_connection_count_limit,
 * smtpd_client_connection_rate_limit, smtpd_client_message_rate_limit,
 * smtpd_client_recipient_rate_limit, smtpd_client_event_limit_exceptions,
 * smtpd_client_ipv6_prefix_length, anvil_rate_time_unit, smtpd_forbid_unauth_pipelining,
 * smtpd_forbid_bare_newline (+ _exclusions, _reject_code), smtpd_forbidden_commands,
 * smtpd_noop_commands, smtpd_discard_ehlo_keywords, disable_vrfy_command, smtputf8_enable,
 * smtpd_helo_required, smtpd_delay_reject, smtpd_delay_open_until_valid_rcpt,
 * smtpd_peername_lookup, smtpd_*_restrictions, smtpd_restriction_classes, mynetworks,
 * mydestination, relay_domains, virtual_*, local_recipient_maps, relay_recipient_maps,
 * fast_flush_domains, soft_bounce, smtpd_reject_footer, smtpd_tls_* (via src/tls),
 * local_header_rewrite_clients, always_add_missing_headers, stress, smtpd_sasl_auth_enable,
 * smtpd_sasl_type, smtpd_sasl_path, smtpd_sasl_security_options, smtpd_sasl_tls_security_options,
 * smtpd_sasl_mechanism_filter, smtpd_sasl_exceptions_networks, smtpd_sasl_response_limit,
 * smtpd_sasl_authenticated_header, smtpd_tls_auth_only, broken_sasl_auth_clients,
 * smtpd_client_auth_rate_limit, smtpd_sender_login_maps, notify_classes, error_notice_recipient,
 * bounce_notice_recipient, double_bounce_sender, smtpd_history_flush_threshold (the postmaster
 * notice of a session with errors, ./transcript.ts).
 */
import type * as net from 'node:net';
import type { CleanupOptions } from '../cleanup/index.js';
import { expandValue, paramsFrom } from '../config/index.js';
import type { Config, MasterService, Params } from '../config/types.js';
import { type Logger, nextSessionId } from '../log/index.js';
import type { Daemon, DaemonContext, DaemonFactory, Listener } from '../master/daemon.js';
import { triggerQmgr } from '../queue/trigger.js';
import type { SmtpdTls } from '../tls/index.js';
import { Anvil } from './anvil.js';
import { lookupPeer, peerAddress, type Resolver, systemResolver } from './peer.js';
import { buildService, type ServiceContext, type SmtpdHooks } from './service.js';
import { Session, smtpdCounters } from './session.js';

export { smtpdCounters } from './session.js';
export type { Resolver, MailhostStatus } from './peer.js';
export { ResolverError, nullResolver, systemResolver } from './peer.js';
export type { SmtpdHooks } from './service.js';

export interface SmtpdOptions {
  /** DNS for client names and reject_unknown_*; tests inject a mock. Default: the host's resolver. */
  readonly resolver?: Resolver;
  readonly hooks?: SmtpdHooks;
  /** Time limit of the client name lookup (default 10 s). */
  readonly peerLookupTimeoutMs?: number;
  /** Test seams for cleanup (a failing file system, a full disk). */
  readonly cleanupOptions?: Partial<Pick<CleanupOptions, 'fs' | 'statfs' | 'dirSync' | 'clock'>>;
}

/**
 * The parameters of a service when the master runs it in stress mode (STRESS_README): main.cf and
 * the service's -o overrides re-read with `stress = yes`, so `${stress?{10}:{300}}s` and friends
 * take their stress values. Only values that differ are taken over.
 */
export function stressParams(config: Pick<Config, 'settings'>, service: Pick<MasterService, 'overrides' | 'params'>): Params {
  const lines: string[] = [];
  for (const s of config.settings.values()) lines.push(`${s.name} = ${s.value}`);
  for (const [k, v] of service.overrides) lines.push(`${k} = ${v}`);
  const text = lines.join('\n');
  const normal = paramsFrom(text, 'main.cf', { warnings: [] }) as unknown as Record<string, unknown>;
  const stressed = paramsFrom(`${text}\nstress = yes`, 'main.cf', { warnings: [] }) as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { ...(service.params as unknown as Record<string, unknown>) };
  for (const k of Object.keys(stressed)) {
    if (k === 'stress') continue;
    if (JSON.stringify(stressed[k]) !== JSON.stringify(normal[k])) out[k] = stressed[k];
  }
  out.stress = 'yes';
  return Object.freeze(out) as unknown as Params;
}

export class Smtpd implements Daemon {
  private normal: ServiceContext;
  private stressed: ServiceContext | null = null;
  private config: Config;
  private service: MasterService;
  private readonly sessions = new Set<Session>();
  /** Sessions per service context, so a replaced TLS engine is closed once its sessions ended. */
  private readonly users = new Map<ServiceContext, number>();
  private retired: ServiceContext[] = [];
  private draining = false;
  private readonly anvil = new Anvil();
  private readonly logger: Logger;

  private constructor(
    private readonly ctx: DaemonContext,
    private readonly opts: SmtpdOptions,
    svc: ServiceContext,
    logger: Logger,
  ) {
    this.normal = svc;
    this.config = ctx.config;
    this.service = ctx.service;
    this.logger = logger;
  }

  /** Build the daemon for one master.cf service. Throws on a configuration Postfix refuses (open relay, ...). */
  static async create(ctx: DaemonContext, opts: SmtpdOptions = {}): Promise<Smtpd> {
    const logger = ctx.log.logger('smtpd', { syslog_name: ctx.service.params.syslog_name });
    const svc = await Smtpd.build(ctx, opts, ctx.service.params, logger, new Anvil());
    const d = new Smtpd(ctx, opts, svc, logger);
    // The anvil is per daemon; rebuild the context to share it.
    d.normal = { ...svc, anvil: d.anvil };
    return d;
  }

  private static build(
    ctx: DaemonContext,
    opts: SmtpdOptions,
    params: Params,
    logger: Logger,
    anvil: Anvil,
    reuse?: ServiceContext,
    previousTls?: SmtpdTls | null,
  ): Promise<ServiceContext> {
    return buildService({
      params,
      serviceName: ctx.service.name,
      log: ctx.log,
      logger,
      resolver: opts.resolver ?? systemResolver(),
      anvil,
      // ETRN (RFC 1985): ask the running qmgr to flush the site's deferred mail (postqueue -s).
      hooks: opts.hooks ?? { etrn: (site) => triggerQmgr(params.queue_directory, { site }) },
      setting: (name) => {
        const v = ctx.service.overrides.get(name) ?? ctx.config.settings.get(name)?.value;
        return v === undefined ? undefined : expandValue(v, ctx.config.settings);
      },
      ...(opts.cleanupOptions ? { cleanupOptions: opts.cleanupOptions } : {}),
      ...(ctx.rootRead ? { rootRead: ctx.rootRead } : {}),
      ...(reuse ? { tls: reuse.tls, cleanup: reuse.cleanup } : {}),
      ...(previousTls ? { previousTls } : {}),
    });
  }

  /** Sessions in progress. */
  get activeSessions(): number {
    return this.sessions.size;
  }

  accept(socket: net.Socket, listener: Listener): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    socket.on('error', () => {});
    // Stress mode: the master says connections wait, or this service reached its process limit.
    const stress = listener.stress || this.sessions.size >= this.service.maxproc;
    void this.startSession(socket, stress).catch((e: unknown) => {
      smtpdCounters.exceptions++;
      this.logger.warning(`internal error starting a session: ${(e as Error).message}`);
      socket.destroy();
    });
  }

  private async contextFor(stress: boolean): Promise<ServiceContext> {
    if (!stress) return this.normal;
    if (this.stressed === null) {
      const params = stressParams(this.config, this.service);
      const svc = await Smtpd.build({ ...this.ctx, config: this.config, service: this.service }, this.opts, params, this.logger, this.anvil, this.normal);
      this.stressed = { ...svc, anvil: this.anvil };
    }
    return this.stressed;
  }

  private async startSession(socket: net.Socket, stress: boolean): Promise<void> {
    const svc = await this.contextFor(stress);
    const p = svc.params;
    const id = nextSessionId();
    const log = this.ctx.log.logger('smtpd', { syslog_name: p.syslog_name, id });
    const ipv4 = p.inet_protocols.some((x) => x === 'all' || x === 'ipv4');
    const a = peerAddress(socket.remoteAddress ?? '0.0.0.0', ipv4);
    const peer = await lookupPeer(
      { ...a, port: socket.remotePort ?? 0, lookup: p.smtpd_peername_lookup, resolver: svc.resolver, timeoutMs: this.opts.peerLookupTimeoutMs ?? 10000 },
      (t) => log.warning(t),
    );
    if (socket.destroyed && socket.readableEnded) {
      // Gone before we could greet; Postfix still logs connect/disconnect.
    }
    // smtpd_client_port_logging: name[addr]:port in every line about this client.
    const shown = p.smtpd_client_port_logging ? { ...peer, namaddr: `${peer.namaddr}:${peer.port}` } : peer;
    const session = new Session(svc, socket, shown, log);
    this.sessions.add(session);
    this.users.set(svc, (this.users.get(svc) ?? 0) + 1);
    try {
      await session.run();
    } finally {
      this.sessions.delete(session);
      this.users.set(svc, (this.users.get(svc) ?? 1) - 1);
      this.closeRetired();
    }
  }

  /** Close the TLS engines of replaced configurations that no session uses any more. */
  private closeRetired(): void {
    const keep: ServiceContext[] = [];
    for (const svc of this.retired) {
      if ((this.users.get(svc) ?? 0) > 0) {
        keep.push(svc);
        continue;
      }
      this.users.delete(svc);
      if (svc.tls !== null && svc.tls !== this.normal.tls && svc.tls !== this.stressed?.tls) svc.tls.close();
    }
    this.retired = keep;
  }

  async reload(config: Config, service: MasterService): Promise<void> {
    const ctx: DaemonContext = { ...this.ctx, config, service };
    const logger = this.ctx.log.logger('smtpd', { syslog_name: service.params.syslog_name });
    const svc = await Smtpd.build(ctx, this.opts, service.params, logger, this.anvil, undefined, this.normal.tls);
    this.config = config;
    this.service = service;
    this.retired.push(this.normal);
    if (this.stressed !== null) this.retired.push(this.stressed);
    this.normal = { ...svc, anvil: this.anvil };
    this.stressed = null;
    this.closeRetired();
  }

  async drain(deadline: number): Promise<void> {
    this.draining = true;
    while (this.sessions.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const s of this.sessions) s.destroy();
    this.normal.tls?.close();
    for (const svc of this.retired) svc.tls?.close();
  }
}

/** A DaemonFactory with options (tests: a mock resolver, hooks). */
export function smtpdFactory(opts: SmtpdOptions = {}): DaemonFactory {
  return (ctx) => Smtpd.create(ctx, opts);
}

/** The master's daemon table entry: `smtpd: async () => (await import('../smtpd/index.js')).createDaemon`. */
export const createDaemon: DaemonFactory = smtpdFactory();

/** Same as createDaemon, with options. */
export function createSmtpd(ctx: DaemonContext, opts: SmtpdOptions = {}): Promise<Smtpd> {
  return Smtpd.create(ctx, opts);
}

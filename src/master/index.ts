/**
 * master: what Postfix's master(8) does, in one process.
 *
 * Reads the services of master.cf (already parsed into Config.services), binds every `inet` service
 * on its addresses (inet_interfaces × inet_protocols, each family its own socket, IPv6 with
 * IPV6_V6ONLY), starts one Daemon per implemented service (./daemons.ts), drops root privileges to
 * mail_owner after binding, and hands each accepted connection to the service's daemon, at most
 * `maxproc` at a time per service (the rest wait, unread, as they would in Postfix's listen queue).
 * SIGHUP (reload): new Config built first, swapped in only when valid; services added, removed or
 * moved are bound/closed; daemons get the new config. SIGTERM: stop accepting, drain, exit.
 *
 * Trusts: the Config (validated). Touches on disk: nothing itself (loadConfig reads main.cf/master.cf).
 * Parameters: inet_interfaces, inet_protocols, mail_owner, syslog_name, myhostname, maillog_file;
 * master.cf type, maxproc, command.
 */
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as os from 'node:os';
import type { Config, MasterService } from '../config/types.js';
import type { Log, Logger } from '../log/index.js';
import type { Daemon, DaemonContext, DaemonFactory, Listener } from './daemon.js';
import { DAEMONS, type DaemonLoader } from './daemons.js';
import { addressKey, BindError, bind, describe, LISTEN_BACKLOG, type ListenAddress, serviceAddresses } from './listen.js';
import { type Account, checkMailOwner, dropPrivileges, runningAsRoot } from './privileges.js';
import { RootReader } from './root-reader.js';

export type { Daemon, DaemonContext, DaemonFactory, Listener } from './daemon.js';

function readVersion(): string {
  try {
    const pkg: unknown = JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
    if (typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string') return pkg.version;
  } catch {
    // not in the package tree (bundled): fall through
  }
  return 'unknown';
}

/** `postern-0.1.0`: where Postfix logs `version 3.7.11`. One token, so log parsers splitting on `,` keep working. */
export const VERSION = `postern-${readVersion()}`;

/** How long SIGTERM waits for sessions to finish before closing them. systemd's default stop timeout is 90s. */
export const DRAIN_TIMEOUT_MS = 10_000;

export interface MasterOptions {
  readonly config: Config;
  readonly log: Log;
  /** Reads and validates the configuration again (SIGHUP); throws ConfigError on a bad file. */
  readonly loadConfig: () => Promise<Config>;
  /** The daemon table (default ./daemons.ts); tests pass their own. */
  readonly daemons?: Readonly<Record<string, DaemonLoader>>;
  readonly drainTimeoutMs?: number;
  /** Drop to mail_owner after binding. Default: exactly when running as root. */
  readonly dropPrivileges?: boolean;
  /** Called after the listeners are bound, before privileges are dropped (embedded mode chowns ./var here). */
  readonly beforeDrop?: (owner: Account) => void | Promise<void>;
}

/** One bound socket, as `listening()` reports it. */
export interface BoundListener {
  readonly service: string;
  readonly address: string;
  readonly family: 4 | 6;
  readonly port: number;
}

interface Waiting {
  readonly socket: net.Socket;
  readonly where: ListenAddress;
}

/** A running master.cf service. */
interface ServiceState {
  service: MasterService;
  daemon: Daemon;
  readonly implemented: boolean;
  readonly listeners: Map<string, { readonly where: ListenAddress; readonly server: net.Server }>;
  active: number;
  readonly waiting: Waiting[];
  busyWarnedAt: number;
}

const serviceKey = (s: MasterService): string => `${s.name}/${s.type}`;

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Stand-in for a command with no implementation yet: the port is bound, connections are closed. */
function closingDaemon(): Daemon {
  const open = new Set<net.Socket>();
  return {
    accept(socket) {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      socket.setTimeout(5_000, () => socket.destroy());
      socket.end();
    },
    async reload() {},
    async drain() {
      for (const s of open) s.destroy();
    },
  };
}

/**
 * maillog_file opened by root at start: after the drop, SIGHUP reopens it (logrotate) as mail_owner,
 * which must then be able to write it. Postfix's postlogd stays root for that; Postern's one process
 * does not, so the file becomes mail_owner's (a logrotate `create` line should name that user too).
 * Only a regular file still owned by root is changed; /dev/stdout and the like are left alone.
 */
function handLogFileTo(file: string, owner: Account): void {
  if (file === '' || !file.startsWith('/')) return;
  try {
    const st = fs.statSync(file);
    if (st.isFile() && st.uid === 0) fs.chownSync(file, owner.uid, owner.gid);
  } catch {
    // not there (logging elsewhere): nothing to hand over
  }
}

export class Master {
  #config: Config;
  readonly #log: Log;
  readonly #logger: Logger;
  readonly #opts: MasterOptions;
  readonly #table: Readonly<Record<string, DaemonLoader>>;
  readonly #services = new Map<string, ServiceState>();
  readonly #sockets = new Set<net.Socket>();
  #owner: Account | null = null;
  /** Started before the privilege drop; reads root-only TLS files on reload. */
  #rootReader: RootReader | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #stopping: Promise<void> | null = null;
  /** False until every daemon runs and privileges are dropped; connections wait in #early. */
  #ready = false;
  readonly #early: { st: ServiceState; where: ListenAddress; socket: net.Socket }[] = [];

  private constructor(opts: MasterOptions) {
    this.#opts = opts;
    this.#config = opts.config;
    this.#log = opts.log;
    this.#logger = opts.log.logger('master', { id: process.pid });
    this.#table = opts.daemons ?? DAEMONS;
  }

  /**
   * Binds, starts the daemons, drops privileges, logs `daemon started`. Throws ConfigError (bad
   * address in master.cf or inet_interfaces), BindError (`bind 0.0.0.0 port 25: Address already in
   * use`) or PosternError (mail_owner); nothing stays bound after a throw.
   */
  static async start(opts: MasterOptions): Promise<Master> {
    const m = new Master(opts);
    try {
      await m.#start();
    } catch (err) {
      await m.#teardown(Date.now());
      throw err;
    }
    return m;
  }

  get config(): Config {
    return this.#config;
  }

  /** Every bound socket (for tests and `postern status`-like reports). */
  listening(): BoundListener[] {
    const out: BoundListener[] = [];
    for (const st of this.#services.values()) {
      for (const { where } of st.listeners.values()) out.push({ service: st.service.name, address: where.address, family: where.family, port: where.port });
    }
    return out;
  }

  async #start(): Promise<void> {
    const config = this.#config;
    const drop = this.#opts.dropPrivileges ?? runningAsRoot();
    // Postfix checks mail_owner before anything else (mail_params.c).
    if (drop) this.#owner = checkMailOwner(config.params.mail_owner, config.mainCfPath);
    // While still root: the child that keeps root's read access to the configured TLS files.
    if (this.#owner !== null) this.#rootReader = RootReader.start(config.configDir);
    const plan: { service: MasterService; addrs: ListenAddress[] }[] = [];
    for (const service of config.services) plan.push({ service, addrs: await serviceAddresses(service, config) });
    // inet daemons start as root (they read root-only TLS keys, as Postfix's smtpd does before it
    // drops privileges); the others (qmgr, pickup) start after the drop, so every queue file they
    // create or move belongs to mail_owner.
    for (const { service, addrs } of plan) {
      if (service.type !== 'inet') continue;
      const st = await this.#createService(config, service, true);
      if (st === null) continue;
      this.#services.set(serviceKey(service), st);
      for (const where of addrs) await this.#listen(st, where, true);
    }
    if (this.#owner !== null) {
      await this.#opts.beforeDrop?.(this.#owner);
      handLogFileTo(config.params.maillog_file, this.#owner);
      dropPrivileges(this.#owner);
    }
    for (const { service } of plan) {
      if (service.type === 'inet') continue;
      const st = await this.#createService(config, service, true);
      if (st !== null) this.#services.set(serviceKey(service), st);
    }
    this.#logger.info(`daemon started -- version ${VERSION}, configuration ${config.configDir}`);
    this.#ready = true;
    for (const e of this.#early.splice(0)) if (!e.socket.destroyed) this.#onConnection(e.st, e.where, e.socket);
  }

  /** A service's daemon (or the closing stand-in). null: nothing to run (non-inet, not implemented). */
  async #createService(config: Config, service: MasterService, starting: boolean): Promise<ServiceState | null> {
    const loader = Object.hasOwn(this.#table, service.command) ? this.#table[service.command] : undefined;
    let daemon: Daemon;
    let implemented = true;
    if (loader === undefined) {
      if (service.type !== 'inet') return null;
      this.#logger.warning(`service "${service.name}" (command ${service.command}) is not implemented yet; connections are closed`);
      daemon = closingDaemon();
      implemented = false;
    } else {
      const ctx: DaemonContext = { config, service, log: this.#log, ...(this.#rootReader !== null ? { rootRead: this.#rootReader.read } : {}) };
      try {
        const factory: DaemonFactory = await loader();
        daemon = await factory(ctx);
      } catch (err) {
        if (starting) throw err;
        this.#logger.warning(`service "${service.name}" (command ${service.command}): ${errorText(err)}; service not started`);
        return null;
      }
    }
    return { service, daemon, implemented, listeners: new Map(), active: 0, waiting: [], busyWarnedAt: 0 };
  }

  /** Binds one address for a service. At start a failure is fatal (throws); on reload it is a warning. */
  async #listen(st: ServiceState, where: ListenAddress, starting: boolean): Promise<boolean> {
    let server: net.Server;
    try {
      server = await bind(where, (socket) => this.#onConnection(st, where, socket));
    } catch (err) {
      // inet_proto.c: a kernel without IPv6 gets "disabling IPv6 name/address support", not a fatal.
      if (err instanceof BindError && err.errno === 'EAFNOSUPPORT' && where.family === 6) {
        this.#logger.warning(`inet_protocols: disabling IPv6 name/address support: ${err.message.replace(/^.*: /, '')}`);
        return false;
      }
      if (starting) throw err;
      const hint = err instanceof BindError && err.errno === 'EACCES' && this.#owner !== null ? ' (privileged ports are bound only at start: restart postern)' : '';
      this.#logger.warning(`${errorText(err)}${hint}`);
      return false;
    }
    server.on('error', (err: NodeJS.ErrnoException) => {
      // accept(2) errors (EMFILE...): Postfix logs and carries on.
      this.#logger.warning(`accept ${describe(where)}: ${err.message}`);
    });
    st.listeners.set(addressKey(where), { where, server });
    return true;
  }

  #onConnection(st: ServiceState, where: ListenAddress, socket: net.Socket): void {
    socket.on('error', () => {});
    if (this.#stopping !== null || !st.listeners.has(addressKey(where))) {
      socket.destroy();
      return;
    }
    if (!this.#ready) {
      // Bound but not started yet (privileges not dropped): no session may run as root. The
      // client waits, as it would in the listen queue, until #start() hands it over.
      this.#early.push({ st, where, socket });
      return;
    }
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    const limit = st.service.maxproc;
    if (limit > 0 && st.active >= limit) {
      if (st.waiting.length >= LISTEN_BACKLOG) {
        socket.destroy();
        return;
      }
      const w: Waiting = { socket, where };
      st.waiting.push(w);
      socket.once('close', () => {
        const i = st.waiting.indexOf(w);
        if (i >= 0) st.waiting.splice(i, 1);
      });
      this.#warnBusy(st);
      return;
    }
    this.#handOver(st, where, socket);
  }

  /** master_avail.c: once per 1000 seconds per service. */
  #warnBusy(st: ServiceState): void {
    const now = Date.now();
    if (st.busyWarnedAt !== 0 && now - st.busyWarnedAt < 1_000_000) return;
    st.busyWarnedAt = now;
    const s = st.service;
    // `service "smtp" (25)`: the master.cf name, then the endpoint as Postfix's master names it.
    const endpoint = s.listen === null || s.listen.host !== null ? s.name : String(s.listen.port);
    this.#logger.warning(`service "${s.name}" (${endpoint}) has reached its process limit "${s.maxproc}": new clients may experience noticeable delays`);
    this.#logger.warning('to avoid this condition, increase the process count in master.cf or reduce the service time per client');
    this.#logger.warning('see http://www.postfix.org/STRESS_README.html for examples of stress-adapting configuration settings');
  }

  #handOver(st: ServiceState, where: ListenAddress, socket: net.Socket): void {
    st.active++;
    socket.once('close', () => {
      st.active--;
      this.#dequeue(st);
    });
    const limit = st.service.maxproc;
    const listener: Listener = {
      service: st.service,
      address: where.address,
      port: where.port,
      stress: st.waiting.length > 0 || (limit > 0 && st.active >= limit),
    };
    try {
      st.daemon.accept(socket, listener);
    } catch (err) {
      this.#logger.warning(`service "${st.service.name}": accept: ${errorText(err)}`);
      socket.destroy();
    }
  }

  #dequeue(st: ServiceState): void {
    const limit = st.service.maxproc;
    while (this.#stopping === null && st.waiting.length > 0 && (limit <= 0 || st.active < limit)) {
      const w = st.waiting.shift()!;
      if (w.socket.destroyed) continue;
      this.#handOver(st, w.where, w.socket);
    }
  }

  /** Runs jobs (reload, stop) one at a time, in arrival order. */
  #serialize<T>(job: () => Promise<T>): Promise<T> {
    const p = this.#queue.then(job, job);
    this.#queue = p.catch(() => {});
    return p;
  }

  /**
   * SIGHUP. Reopens the log, reads the configuration again and, when it is valid, swaps it in: daemons
   * get `reload`, services added/removed/moved are bound/drained. A bad configuration is a `warning:`
   * and the old one stays. Resolves true when the new configuration is in effect.
   */
  reload(): Promise<boolean> {
    return this.#serialize(() => this.#reload());
  }

  async #reload(): Promise<boolean> {
    if (this.#stopping !== null) return false;
    try {
      this.#log.reopen();
    } catch (err) {
      this.#logger.warning(`reopen ${this.#config.params.maillog_file}: ${errorText(err)}`);
    }
    for (const st of this.#services.values()) st.daemon.reopenLog?.();
    this.#logger.info(`reload -- version ${VERSION}, configuration ${this.#config.configDir}`);
    let next: Config;
    const plan = new Map<string, ListenAddress[]>();
    try {
      next = await this.#opts.loadConfig();
      for (const service of next.services) plan.set(serviceKey(service), await serviceAddresses(service, next));
    } catch (err) {
      this.#logger.warning(`${errorText(err)}; keeping the old configuration`);
      return false;
    }
    const old = this.#config;
    this.#config = next;
    const p = next.params;
    if (p.syslog_name !== old.params.syslog_name || p.myhostname !== old.params.myhostname || p.maillog_file !== old.params.maillog_file) {
      try {
        this.#log.configure({ syslog_name: p.syslog_name, myhostname: p.myhostname, maillog_file: p.maillog_file });
      } catch (err) {
        this.#logger.warning(`maillog_file ${p.maillog_file}: ${errorText(err)}`);
      }
    }
    for (const w of next.warnings) this.#logger.warning(w);
    if (this.#owner !== null && p.mail_owner !== this.#owner.name) {
      this.#logger.warning(`mail_owner changed to "${p.mail_owner}": still running as "${this.#owner.name}" until restart`);
    }
    await this.#reconcile(next, plan);
    return true;
  }

  async #reconcile(next: Config, plan: Map<string, ListenAddress[]>): Promise<void> {
    const deadline = Date.now() + (this.#opts.drainTimeoutMs ?? DRAIN_TIMEOUT_MS);
    const keep = new Set<string>();
    const retiring: Promise<void>[] = [];
    for (const service of next.services) {
      const key = serviceKey(service);
      keep.add(key);
      const addrs = plan.get(key) ?? [];
      let st = this.#services.get(key);
      if (st !== undefined && st.service.command !== service.command) {
        this.#logger.info(`service "${service.name}": command changed from ${st.service.command} to ${service.command}`);
        retiring.push(this.#retire(st, deadline));
        this.#services.delete(key);
        st = undefined;
      }
      if (st === undefined) {
        const created = await this.#createService(next, service, false);
        if (created === null) continue;
        this.#services.set(key, created);
        for (const where of addrs) {
          if (await this.#listen(created, where, false)) this.#logger.info(`service "${service.name}": listening on ${describe(where)}`);
        }
        continue;
      }
      st.service = service;
      if (st.implemented) {
        try {
          await st.daemon.reload(next, service);
        } catch (err) {
          this.#logger.warning(`service "${service.name}" (command ${service.command}): reload: ${errorText(err)}; keeping its old settings`);
        }
      }
      // Close what is no longer wanted first: 0.0.0.0:25 → 127.0.0.1:25 cannot bind while 0.0.0.0:25 listens.
      const wanted = new Map(addrs.map((a) => [addressKey(a), a]));
      for (const [k, { where, server }] of st.listeners) {
        if (wanted.has(k)) continue;
        st.listeners.delete(k);
        server.close();
        this.#logger.info(`service "${service.name}": stopped listening on ${describe(where)}`);
      }
      for (const [k, where] of wanted) {
        if (st.listeners.has(k)) continue;
        if (await this.#listen(st, where, false)) this.#logger.info(`service "${service.name}": listening on ${describe(where)}`);
      }
      this.#dequeue(st);
    }
    for (const [key, st] of this.#services) {
      if (keep.has(key)) continue;
      this.#services.delete(key);
      this.#logger.info(`service "${st.service.name}": removed from master.cf`);
      retiring.push(this.#retire(st, deadline));
    }
    // Removed services drain in the background; the reload is done.
    void Promise.allSettled(retiring);
  }

  /** Stops a service: listeners closed, waiting clients dropped, daemon drained by the deadline. */
  async #retire(st: ServiceState, deadline: number): Promise<void> {
    for (const { server } of st.listeners.values()) server.close();
    st.listeners.clear();
    for (const w of st.waiting.splice(0)) w.socket.destroy();
    await this.#drainDaemon(st, deadline);
  }

  async #drainDaemon(st: ServiceState, deadline: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
    });
    try {
      await Promise.race([st.daemon.drain(deadline), timeout]);
    } catch (err) {
      this.#logger.warning(`service "${st.service.name}" (command ${st.service.command}): drain: ${errorText(err)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * SIGTERM/SIGINT: logs `terminating on signal N` (signal given), stops accepting, drains every
   * daemon (at most drainTimeoutMs), closes what is left. Idempotent.
   */
  stop(signal: NodeJS.Signals | null = null): Promise<void> {
    if (this.#stopping === null) {
      if (signal !== null) this.#logger.info(`terminating on signal ${os.constants.signals[signal] ?? signal}`);
      const deadline = Date.now() + (this.#opts.drainTimeoutMs ?? DRAIN_TIMEOUT_MS);
      const stopping = this.#serialize(() => this.#teardown(deadline));
      this.#stopping = stopping;
    }
    return this.#stopping;
  }

  async #teardown(deadline: number): Promise<void> {
    this.#stopping ??= Promise.resolve();
    const states = [...this.#services.values()];
    const closed: Promise<void>[] = [];
    for (const st of states) {
      for (const { server } of st.listeners.values()) closed.push(new Promise((resolve) => server.close(() => resolve())));
      st.listeners.clear();
      for (const w of st.waiting.splice(0)) w.socket.destroy();
    }
    await Promise.all(states.map((st) => this.#drainDaemon(st, deadline)));
    this.#services.clear();
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    await Promise.all(closed);
    this.#rootReader?.close();
    this.#rootReader = null;
  }
}

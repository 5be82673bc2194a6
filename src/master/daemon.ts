/**
 * The contract between the master and the daemons it runs (smtpd, imapd, later qmgr, pickup, ...).
 *
 * Postfix's master(8) forks one process per session and hands it the accepted socket. Postern (stage 1,
 * DESIGN section 1) runs every daemon in the master's process: the master binds the listeners of
 * master.cf, accepts, and hands each connection to the service's Daemon object. The objects below are
 * all that crosses that boundary, so a later split into worker processes changes the transport only.
 *
 * Life of a daemon:
 *   1. `factory(ctx)` once per master.cf service whose command has an implementation, at start (before
 *      privileges are dropped, so a daemon may read root-only files such as TLS keys here) or when a
 *      reload adds the service. A factory that throws a ConfigError stops `postern run` at start
 *      (`fatal:`) and is a `warning:` on reload (the service then keeps its old daemon, or stays down).
 *   2. `accept(socket, listener)` for each connection on one of the service's listeners (inet only).
 *      The master has already attached an 'error' listener to the socket (so a forgotten handler
 *      cannot crash the process) and counts the socket against the service's maxproc until it closes.
 *   3. `reload(config, service)` after SIGHUP with the new, already-validated configuration. Sessions
 *      in progress may keep the old settings; new sessions use the new ones. Throwing keeps the daemon
 *      running on its old settings (the master logs a warning).
 *   4. `drain(deadline)` on SIGTERM/SIGINT, or when a reload removes the service: stop starting new
 *      work, let sessions finish, and resolve by `deadline` (absolute, Date.now() scale). Sockets still
 *      open at the deadline are destroyed by the master. The object is not used afterwards.
 */
import type * as net from 'node:net';
import type { Config, MasterService } from '../config/types.js';
import type { Log } from '../log/index.js';
import type { RootRead } from '../tls/pem.js';

/** Which listener accepted a connection. */
export interface Listener {
  /** The service as currently configured (after a reload, the new MasterService). */
  readonly service: MasterService;
  /** The local address the listener is bound to: `0.0.0.0`, `::`, `127.0.0.1`, `::1`, ... (no brackets). */
  readonly address: string;
  readonly port: number;
  /**
   * True when the service reached its maxproc limit and connections are waiting: Postfix then runs
   * new processes with `-o stress=yes` (STRESS_README), which daemons use for shorter timeouts.
   */
  readonly stress: boolean;
}

export interface Daemon {
  /** A new connection on one of this service's listeners. Must not throw for a bad peer. */
  accept(socket: net.Socket, listener: Listener): void;
  /** SIGHUP: the new configuration (validated) and this service's new entry. */
  reload(config: Config, service: MasterService): Promise<void>;
  /** Shut down gracefully by `deadline` (ms since the epoch). */
  drain(deadline: number): Promise<void>;
  /**
   * SIGHUP: the master has just reopened the log (logrotate). A daemon that writes the log from a
   * thread of its own reopens its copy; one that logs through ctx.log needs nothing.
   */
  reopenLog?(): void;
}

export interface DaemonContext {
  readonly config: Config;
  readonly service: MasterService;
  /** The process log; a daemon makes its loggers with `log.logger(name, { syslog_name: service.params.syslog_name })`. */
  readonly log: Log;
  /**
   * Set once the master runs as mail_owner after starting as root: reads a TLS file of the
   * configuration that this process may no longer open (./root-reader.ts).
   */
  readonly rootRead?: RootRead;
}

export type DaemonFactory = (ctx: DaemonContext) => Promise<Daemon>;

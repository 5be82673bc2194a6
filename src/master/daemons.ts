/**
 * The daemon table: master.cf command name → lazy loader of its implementation. A daemon module is
 * imported only when a service runs it, so `postern run` with no imap service never loads imapd.
 *
 * To add a daemon, add ONE line here. Its module exports a DaemonFactory (see ./daemon.ts), e.g.:
 *
 *   smtpd: async () => (await import('../smtpd/index.js')).createDaemon,
 *
 * A command not in this table still gets its inet ports bound (so the port shows in `ss -ltn`), but
 * the master logs `warning: service "NAME" (command CMD) is not implemented yet; connections are
 * closed` once and closes each connection. Non-inet services (pickup, qmgr, ...) without an entry are
 * ignored quietly: in Postern those jobs live inside the daemons that need them.
 */
import type { DaemonFactory } from './daemon.js';

export type DaemonLoader = () => Promise<DaemonFactory>;

export const DAEMONS: Readonly<Record<string, DaemonLoader>> = {
  smtpd: async () => (await import('../smtpd/index.js')).createDaemon,
  // qmgr runs the delivery agents of master.cf's unix services itself (../qmgr/agents.ts).
  qmgr: async () => (await import('../qmgr/index.js')).createDaemon,
  pickup: async () => (await import('../pickup/index.js')).createDaemon,
};

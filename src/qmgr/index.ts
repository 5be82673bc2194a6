/**
 * qmgr: the queue manager (Postfix qmgr(8)), one scheduler for the whole queue.
 *
 * What it does: picks up a new queue file the moment cleanup commits it (the queue kick, no
 * polling on the hot path) and rescans incoming/ and deferred/ every queue_run_delay; moves files
 * incoming/deferred → active/ within qmgr_message_active_limit; expands virtual aliases and
 * resolves each recipient (../resolve: address class, transport, nexthop); queues deliveries per
 * destination (transport + nexthop, or recipient@nexthop when <transport>_destination_recipient_limit
 * is 1) and runs at most <transport>_destination_concurrency_limit of them per destination and
 * master.cf maxproc per transport, with at most <transport>_destination_recipient_limit
 * recipients per request; hands DeliveryRequests to the agents (./agents.ts) and logs their
 * DeliveryStatus as Postfix's per-recipient line under the agent's name; keeps per-recipient
 * progress in the state log; then removes the file (`QID: removed`), or defers it (mtime = next
 * try, backoff = time in queue within minimal_backoff_time..maximal_backoff_time), returns it as
 * expired after maximal_queue_lifetime (bounce_queue_lifetime, at most that, for mail from `<>`), sends one
 * delay notice after delay_warning_time, and sends bounces/success notices through ../bounce.
 * Corrupt files go to corrupt/. hold/ is left alone. A trigger socket (./trigger.ts) lets
 * postqueue/sendmail/ETRN ask for a flush.
 *
 * Data in: queue files (validated by ../queue before use), the state logs, master.cf/main.cf.
 * Out: renames and removals in queue_directory (it alone moves, marks and deletes queue files:
 * DESIGN invariant 2), new notice messages via cleanup, log lines. Trusts agents to return one
 * status per recipient; a missing status or an agent exception counts as a temporary failure.
 *
 * main.cf parameters: queue_directory, queue_run_delay, qmgr_message_active_limit,
 * default_destination_concurrency_limit, default_destination_recipient_limit,
 * <transport>_destination_concurrency_limit, <transport>_destination_recipient_limit,
 * minimal_backoff_time, maximal_backoff_time, maximal_queue_lifetime, bounce_queue_lifetime,
 * delay_warning_time, delay_logging_resolution_limit, double_bounce_sender, and the parameters of
 * ../resolve and ../bounce. RFCs: 3461 (NOTIFY/ORCPT/RET/ENVID), 3464 (DSN), 3463 (status codes).
 */
import { Cleanup } from '../cleanup/index.js';
import type { Config } from '../config/types.js';
import type { Daemon, DaemonFactory } from '../master/daemon.js';
import { removeStaleTemporaryFiles } from '../queue/directories.js';
import { buildAgents } from './agents.js';
import { Qmgr } from './scheduler.js';
import { startQmgrThread } from './thread-client.js';
import { startTriggerServer } from './trigger.js';

export { AGENT_FACTORIES, type AgentContext, type AgentFactory, buildAgents } from './agents.js';
export { builtinErrorAgent, splitStatus } from './builtin.js';
export { deliveryLogLine, formatTv } from './log-line.js';
export { type AgentTable, FORCE_EXPIRE_MODE, Qmgr, type QmgrOptions, type TransportAgent } from './scheduler.js';
export { parseTrigger, startTriggerServer, type TriggerServer } from './trigger.js';

/**
 * The master's daemon for a `qmgr` service line (master.cf `qmgr unix n - n 300 1 qmgr`): the
 * scheduler and its delivery agents run in a worker thread of their own (./thread.ts), so
 * deliveries and smtpd sessions use two cores; with a log kept in memory (tests), in this thread.
 */
export const createDaemon: DaemonFactory = async (ctx) => (ctx.log.shareable !== null ? startQmgrThread(ctx, ctx.log.shareable) : createInProcess(ctx));

/** The qmgr daemon in the calling thread (the worker thread runs this). */
export const createInProcess: DaemonFactory = async (ctx) => {
  let config: Config = ctx.config;
  const params = ctx.service.params;
  const syslog_name = ctx.service.overrides.has('syslog_name') ? params.syslog_name : undefined;
  const logger = ctx.log.logger('qmgr', syslog_name !== undefined ? { syslog_name } : {});
  const cleanup = new Cleanup({ queue_directory: params.queue_directory, params, log: ctx.log });
  const agents = await buildAgents(config, ctx.log, cleanup);
  const qmgr = await Qmgr.start({ config: { ...config, params }, log: ctx.log, agents, cleanup, ...(syslog_name !== undefined ? { syslog_name } : {}) });
  // Temporary files a crash left in incoming/ (never published, never acknowledged), as Postfix's
  // start-up `postsuper -s` cleans them: those older than this process.
  await removeStaleTemporaryFiles(params.queue_directory, process.uptime() * 1000).catch((err: unknown) => {
    logger.warning(`incoming: removing stale temporary files: ${err instanceof Error ? err.message : String(err)}`);
  });
  let trigger = await startTriggerServer(params.queue_directory, qmgr, logger).catch((err: unknown) => {
    logger.warning(`trigger endpoint: ${err instanceof Error ? err.message : String(err)}; postqueue -f will not reach this qmgr`);
    return null;
  });
  const daemon: Daemon = {
    accept(socket) {
      socket.destroy();
    },
    async reload(next, service) {
      config = next;
      const p = service.params;
      if (p.queue_directory !== params.queue_directory) logger.warning('queue_directory changed: still using the old one until restart');
      qmgr.reload({ ...next, params: { ...p, queue_directory: params.queue_directory } }, await buildAgents(next, ctx.log, cleanup));
    },
    async drain(deadline) {
      await trigger?.close();
      trigger = null;
      await qmgr.stop(deadline);
    },
  };
  return daemon;
};

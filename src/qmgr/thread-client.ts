/**
 * qmgr in a worker thread, seen from the master's thread (DESIGN 1: a split of the stages changes
 * the transport between them, not the stages). The scheduler and its delivery agents run in
 * ./thread.ts; smtpd and pickup stay here. This side forwards cleanup's kicks (a queue file
 * committed in this thread) with the queue file's facts, and passes reload, log reopen and drain
 * on. The worker logs to the same destination itself: whole lines per write, O_APPEND for a file.
 *
 * Only plain values cross: Config, MasterService, QueueFile and the messages below. Should the
 * worker die of a bug, the process ends as it would have with the qmgr in this thread (an
 * uncaught exception): every acknowledged message is on disk, and the next start delivers it.
 */
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { Config, MasterService } from '../config/types.js';
import type { LogOptions } from '../log/index.js';
import type { Daemon, DaemonContext } from '../master/daemon.js';
import type { QueueName } from '../queue/directories.js';
import type { QueueFile } from '../queue/file.js';
import { queueKick } from '../queue/kick.js';

/** master thread → worker */
export type ToQmgrThread =
  | { readonly type: 'kick'; readonly id: string; readonly queue: QueueName; readonly file?: QueueFile }
  | { readonly type: 'reload'; readonly config: Config; readonly service: MasterService }
  | { readonly type: 'reopen' }
  | { readonly type: 'drain'; readonly deadline: number };

/** worker → master thread */
export type FromQmgrThread = { readonly type: 'ready' } | { readonly type: 'failed'; readonly message: string } | { readonly type: 'drained' };

/** What the worker starts from (workerData). */
export interface QmgrThreadData {
  readonly config: Config;
  readonly service: MasterService;
  readonly log: LogOptions;
}

/** Starts the worker and resolves once its qmgr runs; rejects with the reason it could not start. */
export async function startQmgrThread(ctx: DaemonContext, log: LogOptions): Promise<Daemon> {
  const logger = ctx.log.logger('qmgr');
  const data: QmgrThreadData = { config: ctx.config, service: ctx.service, log };
  const worker = new Worker(new URL('./thread.js', import.meta.url), { workerData: data });
  const exited = once(worker, 'exit').then(([code]) => ({ type: 'failed', message: `qmgr thread exited with status ${code}` }) as const);
  const failed = once(worker, 'error').then(([err]) => ({ type: 'failed', message: (err as Error).message }) as const);
  const first = await Promise.race([once(worker, 'message').then(([m]) => m as FromQmgrThread), failed, exited]);
  if (first.type !== 'ready') {
    await worker.terminate();
    throw new Error(first.type === 'failed' ? first.message : 'qmgr thread did not start');
  }
  const post = (m: ToQmgrThread): void => worker.postMessage(m);
  const unsubscribe = queueKick(ctx.service.params.queue_directory).on((id, queue, file) => post({ type: 'kick', id, queue, ...(file !== undefined ? { file } : {}) }));
  let draining = false;
  let drained: (() => void) | null = null;
  worker.on('message', (m: FromQmgrThread) => {
    if (m.type === 'drained') drained?.();
  });
  worker.on('error', (err) => {
    if (!draining) logger.fatal(`qmgr thread: ${err.stack ?? err.message}`);
  });
  worker.on('exit', (code) => {
    unsubscribe();
    drained?.();
    if (draining) return;
    logger.fatal(`qmgr thread exited with status ${code}; stopping (acknowledged mail is in the queue for the next start)`);
    process.exit(1);
  });
  return {
    accept(socket) {
      socket.destroy();
    },
    async reload(config, service) {
      post({ type: 'reload', config, service });
    },
    reopenLog() {
      post({ type: 'reopen' });
    },
    async drain(deadline) {
      if (draining) return;
      draining = true;
      unsubscribe();
      const done = new Promise<void>((resolve) => {
        drained = resolve;
        // A worker that does not answer by the deadline is ended anyway (as the master ends sessions).
        setTimeout(resolve, Math.max(0, deadline - Date.now()) + 1000).unref();
      });
      post({ type: 'drain', deadline });
      await done;
      await worker.terminate();
    },
  };
}

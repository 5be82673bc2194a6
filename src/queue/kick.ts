/**
 * "A new file is in incoming/": cleanup fires it after a commit is durable, qmgr listens and
 * picks the file up at once instead of waiting for its next queue scan (issue 4: no polling delay
 * on the hot path). One QueueKick per queue directory in this process; a listener's exception is
 * returned to the firer (who logs it), never thrown into the committer.
 */
import * as path from 'node:path';
import type { QueueName } from './directories.js';
import type { QueueFile } from './file.js';

/**
 * `file`: the queue file as its writer knows it (envelope, hash, layout; path in `queue`), so a
 * listener in the same process need not read and hash it again. Absent when only the id is known.
 */
export type KickListener = (queueId: string, queue: QueueName, file?: QueueFile) => void;

export class QueueKick {
  private readonly listeners = new Set<KickListener>();

  /** Subscribe; returns the function that unsubscribes. */
  on(listener: KickListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Call every listener; returns the errors they threw. */
  fire(queueId: string, queue: QueueName = 'incoming', file?: QueueFile): unknown[] {
    const errors: unknown[] = [];
    for (const l of [...this.listeners]) {
      try {
        l(queueId, queue, file);
      } catch (err) {
        errors.push(err);
      }
    }
    return errors;
  }

  get listenerCount(): number {
    return this.listeners.size;
  }
}

const kicks = new Map<string, QueueKick>();

/** The process-wide QueueKick of `queue_directory` (cleanup fires it, qmgr listens). */
export function queueKick(queue_directory: string): QueueKick {
  const key = path.resolve(queue_directory);
  let k = kicks.get(key);
  if (!k) {
    k = new QueueKick();
    kicks.set(key, k);
  }
  return k;
}

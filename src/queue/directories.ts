/**
 * The queue's directories under `queue_directory` (DESIGN 5: the state of a message is the
 * directory its file is in; the next retry time is the file's mtime).
 *
 *   incoming/  cleanup publishes complete files here (and keeps its temporary files here, named
 *              `<usec>.<pid>.<n>.tmp`, which are never valid queue ids)
 *   active/    qmgr's active window
 *   deferred/  waiting for a retry (mtime = next attempt)
 *   hold/      on hold (postsuper -h)
 *   corrupt/   files that failed validation, kept for the admin
 *   maildrop/  sendmail(1) submissions waiting for pickup
 *   state/     per-message state logs (./state-log.ts), named by queue id
 *   spare/     files of delivered messages, reused by cleanup for new ones (./spare.ts); never
 *              queue files
 *
 * Modes follow Postfix's postfix-files: the queue directories 0700, maildrop 0730 (Postfix makes
 * it group postdrop; a submitting program needs write access), queue_directory itself 0755.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { PosternError } from '../errors.js';
import { type DurableOptions, renameDurable, unlinkDurable } from '../io/durable.js';
import { isQueueId } from './id.js';
import { SPARE_DIR } from './spare.js';

export const QUEUE_NAMES = ['incoming', 'active', 'deferred', 'hold', 'corrupt', 'maildrop'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];
/** The directory of per-message state logs. */
export const STATE_DIR = 'state';

const MODES: Readonly<Record<QueueName | typeof STATE_DIR | typeof SPARE_DIR, number>> = {
  incoming: 0o700,
  active: 0o700,
  deferred: 0o700,
  hold: 0o700,
  corrupt: 0o700,
  // 1733 (world-writable, sticky, not listable): Node cannot be set-gid postdrop as Postfix's
  // postdrop is, so sendmail(1) run by any user writes here directly (src/pickup/maildrop.ts).
  maildrop: 0o1733,
  state: 0o700,
  spare: 0o700,
};

/** Path of a queue file: `queue_directory/queue/id`. Throws on a malformed id (never build paths from junk). */
export function queueFilePath(queue_directory: string, queue: QueueName, queueId: string): string {
  if (!isQueueId(queueId)) throw new PosternError('queue', `invalid queue id: ${JSON.stringify(queueId)}`);
  return path.join(queue_directory, queue, queueId);
}

export function queueDirPath(queue_directory: string, queue: QueueName | typeof STATE_DIR): string {
  return path.join(queue_directory, queue);
}

/** cleanup's temporary file names: `<usec>.<pid>.<n>.tmp` (Postfix uses `<usec>.<pid>`). */
export const TEMP_NAME_RE = /^\d+\.\d+\.\d+\.tmp$/;

const initialized = new Map<string, Promise<void>>();

/**
 * Create queue_directory and its subdirectories with safe modes (existing ones get their mode
 * fixed), then fsync queue_directory so the new entries survive a crash. Idempotent; concurrent
 * calls for the same directory share one run.
 */
export function createQueueDirectories(queue_directory: string): Promise<void> {
  const key = path.resolve(queue_directory);
  let p = initialized.get(key);
  if (!p) {
    p = doCreate(key);
    initialized.set(key, p);
    p.catch(() => initialized.delete(key));
  }
  return p;
}

async function doCreate(queue_directory: string): Promise<void> {
  try {
    await fsp.mkdir(queue_directory, { recursive: true, mode: 0o755 });
    for (const name of [...QUEUE_NAMES, STATE_DIR, SPARE_DIR] as const) {
      const dir = path.join(queue_directory, name);
      const mode = MODES[name];
      try {
        await fsp.mkdir(dir, { mode });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const st = await fsp.lstat(dir);
      if (!st.isDirectory()) throw new PosternError('queue', `${dir}: not a directory`);
      // mkdir's mode is filtered by the umask; set it exactly.
      if ((st.mode & 0o7777) !== mode) await fsp.chmod(dir, mode);
    }
    const fh = await fsp.open(queue_directory, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof PosternError) throw err;
    throw new PosternError('queue', `create queue directories in ${queue_directory}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Remove cleanup temporary files left in incoming/ by a crash (never published, never
 * acknowledged). Only files older than `olderThanMs` go, so a transaction in progress in this or
 * another process is left alone. Returns the names removed. Call at start, before accepting mail.
 */
export async function removeStaleTemporaryFiles(queue_directory: string, olderThanMs = 0, now = Date.now()): Promise<string[]> {
  const dir = path.join(queue_directory, 'incoming');
  const removed: string[] = [];
  for (const name of await fsp.readdir(dir)) {
    if (!TEMP_NAME_RE.test(name)) continue;
    const file = path.join(dir, name);
    try {
      const st = await fsp.lstat(file);
      if (now - st.mtimeMs < olderThanMs) continue;
      await fsp.unlink(file);
      removed.push(name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return removed;
}

/** The queue ids in one queue directory (anything else there, like temporary files, is skipped). */
export async function listQueueIds(queue_directory: string, queue: QueueName): Promise<string[]> {
  return (await fsp.readdir(path.join(queue_directory, queue))).filter(isQueueId);
}

/**
 * Move a queue file to another queue by rename (same file system: the inode, and so the queue id,
 * stays), durably (both directories synced). `mtime` sets the file's modification time first
 * (deferred/: the time of the next delivery attempt). For qmgr and postsuper only (DESIGN
 * invariant 2).
 */
export async function moveQueueFile(
  queue_directory: string,
  queueId: string,
  from: QueueName,
  to: QueueName,
  o: DurableOptions & { readonly mtime?: Date } = {},
): Promise<void> {
  const src = queueFilePath(queue_directory, from, queueId);
  if (o.mtime) await fsp.utimes(src, o.mtime, o.mtime);
  await renameDurable(src, queueFilePath(queue_directory, to, queueId), o);
}

/** Delete a queue file durably (its state log is the caller's to remove afterwards). */
export async function removeQueueFile(queue_directory: string, queueId: string, queue: QueueName, o: DurableOptions = {}): Promise<void> {
  await unlinkDurable(queueFilePath(queue_directory, queue, queueId), o);
}

/**
 * Spare queue files: a delivered message's file is kept in `queue_directory/spare/` and the next
 * transaction writes its message into it, instead of unlinking one file and creating another.
 *
 * Why: on ext4 without a journal (as on the VM this was measured on) every inode allocation skips,
 * one by one, the inodes freed in the last ~30 s (ext4 ialloc.c recently_deleted(), which reads each
 * one's inode-table block), holding the directory lock meanwhile. A queue that creates and frees one
 * file per message pays that scan on every create: `perf` put a third of Postern's end-to-end CPU in
 * it, and as much again spinning on the directory lock. With spare files no queue inode is freed and
 * the end-to-end CPU per message fell 16–26% (bench/README.md). Postfix has no such pool.
 *
 * Rules that keep it safe (DESIGN invariant 1: only a complete, fsynced file is ever a queue file):
 * - A spare file's content is junk, never read: cleanup writes the whole queue file over it from
 *   its start (no O_TRUNC, ./file.ts says why), cuts it to the new length, fdatasyncs, and only
 *   then renames it into incoming/ (or hold/) under its new queue id, exactly as it publishes a
 *   new file. A crash at any point leaves a spare file in spare/.
 * - Names are the file's inode number, so two files can never want the same name in spare/.
 * - Only the main thread of the server takes spare files (cleanup of smtpd and pickup; the qmgr
 *   thread's own cleanup for notices creates new files), and it remembers the ones it has taken,
 *   so no file is handed out twice. qmgr only adds files (renamed out of active/ after the last
 *   recipient is done) and never touches them afterwards.
 * - At most SPARE_LIMIT files, each at most SPARE_MAX_BYTES (the old content waits there until the
 *   file is taken; a bigger or surplus file is unlinked as before). qmgr's count is an upper bound
 *   (files taken since it last looked are still counted), refreshed from the directory at most
 *   every SPARE_RECOUNT_MS while the pool looks full.
 * Queue tools (mailq, postsuper, postcat) do not look in spare/.
 */
import * as nfs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { isMainThread } from 'node:worker_threads';

export const SPARE_DIR = 'spare';
export const SPARE_LIMIT = 256;
export const SPARE_MAX_BYTES = 256 * 1024;
const SPARE_RECOUNT_MS = 100;
/** When spare/ was empty, look again after this long (a readdir per transaction otherwise). */
const REFILL_MS = 50;

const NAME_RE = /^[1-9]\d*$/;

interface TakePool {
  free: string[];
  readonly taken: Set<string>;
  lookedAt: number;
}

const takers = new Map<string, TakePool>();

function takePool(queue_directory: string): TakePool {
  const key = path.resolve(queue_directory);
  let p = takers.get(key);
  if (!p) {
    p = { free: [], taken: new Set(), lookedAt: Number.NEGATIVE_INFINITY };
    takers.set(key, p);
  }
  return p;
}

/**
 * A spare file to write a new queue file into (its path), or null: none, or not the main thread.
 * The caller owns it until giveBack() or published().
 */
export function takeSpare(queue_directory: string, now = Date.now()): string | null {
  if (!isMainThread) return null;
  const p = takePool(queue_directory);
  if (p.free.length === 0) {
    if (now - p.lookedAt < REFILL_MS) return null;
    p.lookedAt = now;
    let names: string[];
    try {
      names = nfs.readdirSync(path.join(queue_directory, SPARE_DIR));
    } catch {
      return null;
    }
    for (const n of names) if (NAME_RE.test(n) && !p.taken.has(n)) p.free.push(n);
    if (p.free.length === 0) return null;
  }
  const name = p.free.pop() as string;
  p.taken.add(name);
  return path.join(queue_directory, SPARE_DIR, name);
}

/** The transaction did not use the spare file (aborted): it stays in spare/ for the next one. */
export function giveBack(queue_directory: string, file: string): void {
  const p = takePool(queue_directory);
  const name = path.basename(file);
  if (p.taken.delete(name)) p.free.push(name);
}

/** The spare file was renamed away (published) or unlinked: forget it. */
export function published(queue_directory: string, file: string): void {
  takePool(queue_directory).taken.delete(path.basename(file));
}

/** qmgr's side: files it has put into spare/ since it last counted them there. */
export class SpareKeeper {
  private count = Number.POSITIVE_INFINITY;
  private countedAt = Number.NEGATIVE_INFINITY;
  /** Files kept and unlinked (for tests and measurements). */
  kept = 0;
  unlinked = 0;

  constructor(
    private readonly queue_directory: string,
    private readonly limit = SPARE_LIMIT,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Retire a queue file whose message is done: rename it into spare/ while there is room and it is
   * small, unlink it otherwise. Rejects as unlink(2) would (ENOENT when someone removed it).
   */
  async retire(file: string, size: number): Promise<void> {
    if (size <= SPARE_MAX_BYTES && this.room()) {
      let ino: bigint | null = null;
      try {
        const st = nfs.lstatSync(file, { bigint: true });
        if (st.isFile() && st.nlink === 1n) ino = st.ino;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw err;
      }
      if (ino !== null) {
        try {
          await fsp.rename(file, path.join(this.queue_directory, SPARE_DIR, String(ino)));
          this.count += 1;
          this.kept += 1;
          return;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !nfs.existsSync(path.join(this.queue_directory, SPARE_DIR))) {
            // No spare/ (a queue made by an older version): unlink as before.
          } else if ((err as NodeJS.ErrnoException).code !== 'EXDEV') {
            throw err;
          }
        }
      }
    }
    await fsp.unlink(file);
    this.unlinked += 1;
  }

  private room(): boolean {
    if (this.count < this.limit) return true;
    const now = this.clock();
    if (now - this.countedAt < SPARE_RECOUNT_MS) return false;
    this.countedAt = now;
    try {
      this.count = nfs.readdirSync(path.join(this.queue_directory, SPARE_DIR)).length;
    } catch {
      this.count = Number.POSITIVE_INFINITY;
    }
    return this.count < this.limit;
  }
}

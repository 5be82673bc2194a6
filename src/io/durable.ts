/**
 * Durable file writes: write a file, fsync it, rename it into place, fsync the directory.
 *
 * DESIGN invariant 1 ("250 means on disk"): a file counts as stored only when its data AND its
 * directory entry are on stable storage. POSIX does not make a rename durable until the
 * directory itself is fsync()ed (rename(2) + fsync(2) on the parent), so every publish ends
 * with a directory sync. Many concurrent publishers into the same directory share directory
 * syncs through DirSync (group commit): a caller that renamed before a sync *started* is covered
 * by that sync; a caller that arrives while a sync is running waits for the next one, which
 * starts as soon as the running one ends and covers everyone who arrived meanwhile. Batching,
 * never skipping.
 *
 * All file-system calls go through a DurableFs so tests can count syncs or inject failures.
 * Touches only the paths its callers name.
 *
 * Which calls run where: a thread-pool trip costs more CPU than a cheap call itself (a hand-off,
 * futex wake-ups on both sides, a promise), so calls on an open descriptor that only touch the page
 * cache or the inode in memory (write, read, fstat, ftruncate, fchmod, fchown, close) are made
 * synchronously, as Postfix's processes make them. Calls that may wait for the disk stay in libuv's
 * thread pool: fsync/fdatasync, and the directory operations open(O_CREAT), rename and unlink —
 * on ext4 those wait for the journal while another directory fsync commits it (measured: a
 * synchronous open then blocked the event loop ~0.9 ms per message under load).
 */
import * as nfs from 'node:fs';
import { constants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

/** The error a synchronous call threw, as the rejected promise its async form would give. */
function settle<T>(call: () => T): Promise<T> {
  try {
    return Promise.resolve(call());
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * An open file: the subset of fs/promises' FileHandle that durable writes and queue readers use,
 * with the same signatures, over a plain descriptor (see the header for which calls are synchronous).
 */
export class FileRef {
  #fd: number;
  constructor(fd: number) {
    this.#fd = fd;
  }

  /**
   * open(2): in the thread pool when it may create or truncate (a directory change that can wait for
   * the journal, see the header), inline when it only opens what exists.
   */
  static open(file: string, flags: number | string, mode?: number): Promise<FileRef> {
    const n = typeof flags === 'number' ? flags : flags === 'r' ? constants.O_RDONLY : -1;
    if (n >= 0 && (n & (constants.O_CREAT | constants.O_TRUNC)) === 0) return settle(() => new FileRef(nfs.openSync(file, n)));
    return new Promise((resolve, reject) => {
      nfs.open(file, flags, mode, (err, fd) => (err ? reject(err) : resolve(new FileRef(fd))));
    });
  }

  get fd(): number {
    return this.#fd;
  }

  #live(): number {
    if (this.#fd < 0) throw Object.assign(new Error('file closed'), { code: 'EBADF' });
    return this.#fd;
  }

  stat(o: { bigint: true }): Promise<nfs.BigIntStats>;
  stat(o?: { bigint?: false }): Promise<nfs.Stats>;
  stat(o?: { bigint?: boolean }): Promise<nfs.Stats | nfs.BigIntStats> {
    return settle(() => (o?.bigint === true ? nfs.fstatSync(this.#live(), { bigint: true }) : nfs.fstatSync(this.#live())));
  }

  read(buffer: Buffer, offset: number, length: number, position: number | null): Promise<{ bytesRead: number; buffer: Buffer }> {
    return settle(() => ({ bytesRead: nfs.readSync(this.#live(), buffer, offset, length, position), buffer }));
  }

  write(buffer: Buffer, offset: number, length: number, position: number | null): Promise<{ bytesWritten: number; buffer: Buffer }> {
    return settle(() => ({ bytesWritten: nfs.writeSync(this.#live(), buffer, offset, length, position), buffer }));
  }

  writev(buffers: readonly Buffer[], position?: number): Promise<{ bytesWritten: number; buffers: readonly Buffer[] }> {
    return settle(() => ({ bytesWritten: nfs.writevSync(this.#live(), buffers as Buffer[], position), buffers }));
  }

  truncate(len = 0): Promise<void> {
    return settle(() => nfs.ftruncateSync(this.#live(), len));
  }

  chmod(mode: number): Promise<void> {
    return settle(() => nfs.fchmodSync(this.#live(), mode));
  }

  chown(uid: number, gid: number): Promise<void> {
    return settle(() => nfs.fchownSync(this.#live(), uid, gid));
  }

  /** fdatasync(2), in the thread pool. */
  datasync(): Promise<void> {
    return this.#pooled(nfs.fdatasync);
  }

  /** fsync(2), in the thread pool. */
  sync(): Promise<void> {
    return this.#pooled(nfs.fsync);
  }

  #pooled(call: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      call(this.#live(), (err) => (err ? reject(err) : resolve()));
    });
  }

  close(): Promise<void> {
    return settle(() => {
      const fd = this.#live();
      this.#fd = -1;
      nfs.closeSync(fd);
    });
  }
}

/** The file-system calls durable writes make; nodeFs is the real one, tests wrap it. */
export interface DurableFs {
  open(file: string, flags: number, mode?: number): Promise<FileRef>;
  /** Write all of `data` at `position` (null: the current file position), looping over short writes. */
  write(fh: FileRef, data: readonly Buffer[], position: number | null): Promise<void>;
  /** fdatasync(2): the file's data and the metadata needed to read it back (its size). */
  syncFile(fh: FileRef): Promise<void>;
  close(fh: FileRef): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** link(2): a second name for a file; fails with EEXIST rather than replace one (Maildir new/). */
  link(from: string, to: string): Promise<void>;
  unlink(file: string): Promise<void>;
  /** fsync(2) on the directory itself, so the entries created or renamed in it are durable. */
  syncDir(dir: string): Promise<void>;
}

async function writeAll(fh: FileRef, data: readonly Buffer[], position: number | null): Promise<void> {
  let bufs = data.filter((b) => b.length > 0);
  let pos = position;
  while (bufs.length > 0) {
    const total = bufs.reduce((n, b) => n + b.length, 0);
    const { bytesWritten } = bufs.length === 1 ? await fh.write(bufs[0]!, 0, bufs[0]!.length, pos) : await fh.writev(bufs, pos ?? undefined);
    if (bytesWritten === total) return;
    if (bytesWritten <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    // A short write (e.g. the disk filled up mid-buffer): continue after what was written;
    // the next write reports the real error (ENOSPC).
    if (pos !== null) pos += bytesWritten;
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const b of bufs) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      rest.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
    bufs = rest;
  }
}

/** The real file system (synchronous calls, fsyncs in the thread pool; see the header). */
export const nodeFs: DurableFs = {
  open: (file, flags, mode) => FileRef.open(file, flags, mode),
  write: writeAll,
  syncFile: (fh) => fh.datasync(),
  close: (fh) => fh.close(),
  rename: (from, to) => fsp.rename(from, to),
  link: (from, to) => fsp.link(from, to),
  unlink: (file) => fsp.unlink(file),
  async syncDir(dir) {
    const fh = await FileRef.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
};

interface Waiters {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function waiters(): Waiters {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

interface DirState {
  running: Promise<void> | null;
  /** Callers that arrived while `running` was in flight: served by the next sync. */
  next: Waiters | null;
}

/**
 * Group commit of directory syncs. `sync(dir)` resolves after an fsync of `dir` that started
 * after the call; concurrent callers share syncs (at most one running and one queued per
 * directory). A failed sync rejects every caller it was meant to cover.
 */
export class DirSync {
  private readonly dirs = new Map<string, DirState>();
  /** Directory fsyncs actually issued (for tests and measurements). */
  syncs = 0;
  /** sync() calls served (syncs <= requests). */
  requests = 0;

  constructor(private readonly fs: DurableFs = nodeFs) {}

  sync(dir: string): Promise<void> {
    this.requests += 1;
    const key = path.resolve(dir);
    let st = this.dirs.get(key);
    if (!st) {
      st = { running: null, next: null };
      this.dirs.set(key, st);
    }
    if (st.running === null) return this.start(key, st);
    if (st.next === null) st.next = waiters();
    return st.next.promise;
  }

  private start(key: string, st: DirState): Promise<void> {
    this.syncs += 1;
    const run = this.fs.syncDir(key);
    st.running = run;
    const done = (): void => {
      st.running = null;
      const next = st.next;
      st.next = null;
      if (next) {
        this.start(key, st).then(next.resolve, next.reject);
      } else {
        this.dirs.delete(key);
      }
    };
    run.then(done, done);
    return run;
  }
}

/** The process-wide DirSync over the real file system: every publisher shares its batches. */
export const defaultDirSync = new DirSync(nodeFs);

export interface DurableOptions {
  readonly fs?: DurableFs;
  readonly dirSync?: DirSync;
  /** File mode of a new file (default 0o600). */
  readonly mode?: number;
}

let tempCounter = 0;

/** A name in the same directory that no other writer uses: `.name.tmp.<pid>.<n>.<random>`. */
export function tempNameFor(file: string): string {
  tempCounter += 1;
  const rnd = Math.floor(Math.random() * 0x100000000)
    .toString(16)
    .padStart(8, '0');
  return path.join(path.dirname(file), `.${path.basename(file)}.tmp.${process.pid}.${tempCounter}.${rnd}`);
}

/**
 * Write `data` to `file` durably and atomically: a temporary file in the same directory is
 * written and fdatasync()ed, renamed over `file`, then the directory is fsync()ed (shared).
 * Readers see the old content or the new, never a part. On failure the temporary is removed.
 */
export async function writeFileDurable(file: string, data: Buffer | string, o: DurableOptions = {}): Promise<void> {
  const fs = o.fs ?? nodeFs;
  const dirSync = o.dirSync ?? (o.fs ? new DirSync(fs) : defaultDirSync);
  const tmp = tempNameFor(file);
  const fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, o.mode ?? 0o600);
  let renamed = false;
  try {
    try {
      await fs.write(fh, [typeof data === 'string' ? Buffer.from(data) : data], 0);
      await fs.syncFile(fh);
    } finally {
      await fs.close(fh);
    }
    await fs.rename(tmp, file);
    renamed = true;
    await dirSync.sync(path.dirname(file));
  } catch (err) {
    if (!renamed) await fs.unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/**
 * Move a file durably (same file system): rename, then sync the target directory and, when it
 * differs, the source directory (so the old entry cannot reappear after a crash).
 */
export async function renameDurable(from: string, to: string, o: DurableOptions = {}): Promise<void> {
  const fs = o.fs ?? nodeFs;
  const dirSync = o.dirSync ?? (o.fs ? new DirSync(fs) : defaultDirSync);
  await fs.rename(from, to);
  const toDir = path.dirname(path.resolve(to));
  const fromDir = path.dirname(path.resolve(from));
  await Promise.all(toDir === fromDir ? [dirSync.sync(toDir)] : [dirSync.sync(toDir), dirSync.sync(fromDir)]);
}

/** Remove a file durably: unlink, then sync its directory. */
export async function unlinkDurable(file: string, o: DurableOptions = {}): Promise<void> {
  const fs = o.fs ?? nodeFs;
  const dirSync = o.dirSync ?? (o.fs ? new DirSync(fs) : defaultDirSync);
  await fs.unlink(file);
  await dirSync.sync(path.dirname(file));
}

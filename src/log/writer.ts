/**
 * Where log lines go: `maillog_file` (a path, opened O_APPEND), `/dev/stdout`, or standard error.
 *
 * Lines are queued and written once per event-loop turn in chunks that hold only whole lines, one
 * write(2) per chunk, so a line is never split and never interleaved with another — in this process
 * (one writer) and between processes appending to the same file (O_APPEND makes each write(2) land
 * whole at the end). Chunks for pipes, sockets and terminals are at most PIPE_BUF (4096) bytes, the
 * size POSIX makes atomic on a pipe shared with other writers.
 *
 * The write(2) itself is synchronous (`fs.writeSync`): a caller of `Logger.info()` never does I/O,
 * the turn that flushes does one write per 64 KiB of lines (microseconds into the page cache), and
 * there is never a write in flight in the thread pool — so `fatal`, `close()`, `reopen()` and process
 * exit can flush synchronously without reordering. A non-blocking pipe that is full (EAGAIN) is
 * retried on a timer; the queue is bounded (MAX_PENDING_CHARS) and what does not fit is counted and
 * reported once writing resumes, so a stalled reader cannot make the server grow without limit.
 */
import * as fs from 'node:fs';
import { PosternError } from '../errors.js';
import { strerror } from './strerror.js';

/** Bytes per write(2) for regular files. */
const FILE_CHUNK = 64 * 1024;
/** POSIX PIPE_BUF on Linux: writes up to this size are atomic on a pipe. */
const PIPE_CHUNK = 4096;
/** Upper bound on queued, unwritten text (characters). */
export const MAX_PENDING_CHARS = 8 * 1024 * 1024;
/** A synchronous flush gives up on a pipe nobody reads after this long. */
const SYNC_FLUSH_LIMIT_MS = 2000;

export interface LineSink {
  /** Queue one complete line (without its newline). */
  write(line: string): void;
  /** Write everything queued now, before returning. */
  flushSync(): void;
  /** Reopen the file by name (logrotate); no-op for stdio and memory. */
  reopen(): void;
  /** Flush and release the file. The sink accepts no more lines. */
  close(): void;
}

/** `maillog_file` value → what to open. Empty means standard error (Postfix logs to syslog; we have none). */
export function targetOf(maillog_file: string): { fd: number } | { path: string } {
  if (maillog_file === '') return { fd: 2 };
  if (maillog_file === '/dev/stdout') return { fd: 1 };
  if (maillog_file === '/dev/stderr') return { fd: 2 };
  return { path: maillog_file };
}

const openSinks = new Set<FdSink>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: exactly what flushSync is.
  process.on('exit', () => {
    for (const sink of openSinks) sink.flushSync();
  });
}

function isEagain(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'EAGAIN' || code === 'EWOULDBLOCK';
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Writes lines to a file descriptor: a path opened for append, or fd 1/2. */
export class FdSink implements LineSink {
  private fd: number;
  private readonly path: string | null;
  private chunkLimit: number;
  private pending: string[] = [];
  private pendingChars = 0;
  /** The unwritten tail of a chunk a full pipe accepted only in part: always written first. */
  private partial: Buffer | null = null;
  private dropped = 0;
  private scheduled: NodeJS.Immediate | NodeJS.Timeout | null = null;
  private closed = false;
  private reportedError = false;
  private readonly dropNotice: (count: number) => string;

  /** Throws PosternError('log') when the file cannot be opened. */
  constructor(maillog_file: string, dropNotice: (count: number) => string) {
    const target = targetOf(maillog_file);
    this.dropNotice = dropNotice;
    if ('path' in target) {
      this.path = target.path;
      this.fd = FdSink.openPath(target.path);
    } else {
      this.path = null;
      this.fd = target.fd;
    }
    this.chunkLimit = this.chunkLimitFor(this.fd);
    openSinks.add(this);
    installExitHook();
  }

  private static openPath(path: string): number {
    try {
      return fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o640);
    } catch (err) {
      throw new PosternError('log', `open maillog_file "${path}": ${strerror(err)}`, { cause: err });
    }
  }

  private chunkLimitFor(fd: number): number {
    try {
      return fs.fstatSync(fd).isFile() ? FILE_CHUNK : PIPE_CHUNK;
    } catch {
      return PIPE_CHUNK;
    }
  }

  write(line: string): void {
    if (this.closed) return;
    if (this.pendingChars + line.length + 1 > MAX_PENDING_CHARS) {
      this.dropped++;
      return;
    }
    this.pending.push(`${line}\n`);
    this.pendingChars += line.length + 1;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled !== null) return;
    this.scheduled = setImmediate(() => {
      this.scheduled = null;
      this.flush(false);
    });
  }

  flushSync(): void {
    if (this.scheduled !== null) {
      clearTimeout(this.scheduled as NodeJS.Timeout);
      clearImmediate(this.scheduled as NodeJS.Immediate);
      this.scheduled = null;
    }
    this.flush(true);
  }

  /**
   * Write the partial chunk, then queued lines in whole-line chunks. In async mode a full pipe
   * (EAGAIN) parks the rest and retries on a timer; in sync mode it retries in place for up to
   * SYNC_FLUSH_LIMIT_MS.
   */
  private flush(sync: boolean): void {
    const deadline = sync ? Date.now() + SYNC_FLUSH_LIMIT_MS : 0;
    for (;;) {
      if (this.partial === null) {
        if (this.dropped > 0 && this.pendingChars < MAX_PENDING_CHARS / 2) {
          const notice = `${this.dropNotice(this.dropped)}\n`;
          this.dropped = 0;
          this.pending.push(notice);
          this.pendingChars += notice.length;
        }
        if (this.pending.length === 0) return;
        this.partial = Buffer.from(this.takeChunk());
      }
      // 'failed' dropped that chunk (reported once); the next chunk may fare better (ENOSPC passes).
      const status = this.writePartial();
      if (status !== 'again') continue;
      // EAGAIN: the reader is behind.
      if (!sync) {
        this.scheduled = setTimeout(() => {
          this.scheduled = null;
          this.flush(false);
        }, 10);
        return;
      }
      if (Date.now() > deadline) return;
      sleepSync(1);
    }
  }

  /** Join queued lines into one chunk of at most chunkLimit bytes (a longer single line goes alone). */
  private takeChunk(): string {
    let n = 0;
    let size = 0;
    // Characters ≤ bytes; a chunk of mostly ASCII stays within the limit, and a multi-byte line only
    // makes one write(2) larger, never splits it.
    while (n < this.pending.length && (n === 0 || size + this.pending[n]!.length <= this.chunkLimit)) {
      size += this.pending[n]!.length;
      n++;
    }
    const lines = n === this.pending.length ? this.pending : this.pending.slice(0, n);
    this.pending = n === this.pending.length ? [] : this.pending.slice(n);
    this.pendingChars -= size;
    return lines.length === 1 ? lines[0]! : lines.join('');
  }

  private writePartial(): 'done' | 'again' | 'failed' {
    const buf = this.partial!;
    let off = 0;
    try {
      while (off < buf.length) off += fs.writeSync(this.fd, buf, off, buf.length - off);
      this.partial = null;
      return 'done';
    } catch (err) {
      this.partial = off === 0 ? buf : buf.subarray(off);
      if (isEagain(err)) return 'again';
      // EIO, ENOSPC, EBADF, EPIPE: the chunk is lost. Say so once on stderr (unless that is the log).
      this.partial = null;
      if (!this.reportedError && this.fd !== 2) {
        this.reportedError = true;
        try {
          fs.writeSync(2, `postern: warning: write maillog_file ${this.path ?? `fd ${this.fd}`}: ${strerror(err)}\n`);
        } catch {
          // nowhere left to report
        }
      }
      return 'failed';
    }
  }

  reopen(): void {
    if (this.closed || this.path === null) return;
    this.flushSync();
    const fd = FdSink.openPath(this.path);
    const old = this.fd;
    this.fd = fd;
    this.chunkLimit = this.chunkLimitFor(fd);
    this.reportedError = false;
    fs.closeSync(old);
  }

  close(): void {
    if (this.closed) return;
    this.flushSync();
    this.closed = true;
    openSinks.delete(this);
    if (this.path !== null) fs.closeSync(this.fd);
  }
}

/** Keeps lines in memory (tests). */
export class MemorySink implements LineSink {
  readonly lines: string[] = [];
  private closed = false;
  write(line: string): void {
    if (!this.closed) this.lines.push(line);
  }
  flushSync(): void {}
  reopen(): void {}
  close(): void {
    this.closed = true;
  }
}

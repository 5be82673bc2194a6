/**
 * UNIX mbox append (Postfix local(8) mailbox.c/file.c, virtual(8) mailbox.c, global/mbox_open.c,
 * util/safe_open.c): lock, open or create, check, append `From sender  date` + the prepended
 * header lines + the message with `>From ` quoting + a blank line, fsync; on any error truncate
 * the file back to where it was, so readers never see half a message.
 *
 * Locking: dotlock only (`file.lock` created exclusively, deliver_lock_attempts tries
 * deliver_lock_delay apart, a lock older than stale_lock_time is removed) — Node has no fcntl()
 * or flock(), so Postfix's default `fcntl, dotlock` becomes `dotlock`; mail readers that honour
 * dotlocks (mutt, Dovecot's mbox_write_locks default includes dotlock) are safe. Deliveries from
 * this process to the same file are additionally serialised in memory.
 *
 * Size limit (mailbox_size_limit, virtual_mailbox_limit): Postfix sets the process file size
 * limit, so a write past it fails with EFBIG; here the writer checks the same bound itself.
 */
import { constants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { type DurableFs, nodeFs, type FileRef } from '../io/durable.js';
import { LfCopier } from './copy.js';
import { type MailboxOwner, mustChown } from './dirs.js';
import { errnoOf, errText, MailboxError, mboxDsn, systemError } from './errors.js';
import { copyMessage } from './maildir.js';

export interface DotlockOptions {
  /** deliver_lock_attempts */
  readonly attempts: number;
  /** deliver_lock_delay, milliseconds */
  readonly delayMs: number;
  /** stale_lock_time, seconds */
  readonly staleSeconds: number;
}

export interface MboxDeliveryOptions {
  readonly file: string;
  /** Envelope sender for the `From ` line ('' = null sender, written as MAILER-DAEMON). */
  readonly sender: string;
  readonly prepend: readonly string[];
  readonly message: AsyncIterable<Buffer>;
  /** Owner given a newly created file when running as root. */
  readonly owner?: MailboxOwner | null;
  /** Status for errors without a more specific class (local 5.2.0, virtual 4.2.0). */
  readonly defaultDsn: string;
  /** strict_mailbox_ownership: the uid that must own an existing file (null = no check). */
  readonly requireUid?: number | null;
  /** Refuse an executable regular file (local(8) file delivery: "file is executable"). */
  readonly refuseExecutable?: boolean;
  /** Accept a destination that is not a regular file (local(8) /file deliveries, e.g. /dev/null). */
  readonly allowNonRegular?: boolean;
  /** A dotlock that cannot be created for a reason other than "locked" is skipped (MBOX_DOT_LOCK_MAY_FAIL). */
  readonly lockMayFail?: boolean;
  /** Maximal file size in bytes after the append (0 = none): EFBIG past it. */
  readonly sizeLimit?: number;
  readonly lock: DotlockOptions;
  /** The time for the `From ` line; default now. */
  readonly now?: () => Date;
  readonly fs?: DurableFs;
}

/** What kind of refusal a MailboxError from appendToMbox is, for callers that word it their way. */
export type MboxProblem = 'not-regular' | 'not-owner' | 'executable' | null;

export class MboxError extends MailboxError {
  readonly problem: MboxProblem;
  constructor(dsn: string, reason: string, errno: string | null, problem: MboxProblem, options?: { cause?: unknown }) {
    super(dsn, reason, errno, options);
    this.problem = problem;
  }
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number): string => String(n).padStart(2, '0');

/** asctime(localtime(t)) without the newline: `Wed Nov 25 06:07:17 2026`. */
export function asctime(d: Date): string {
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${d.getFullYear()}`;
}

/** The mbox `From ` line (mail_copy.c MAIL_COPY_FROM): two spaces before the date; <> is MAILER-DAEMON. */
export function fromLine(sender: string, when: Date): string {
  return `From ${sender === '' ? 'MAILER-DAEMON' : quoteSender(sender)}  ${asctime(when)}`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Postfix dot_lockfile(): create `path.lock` exclusively; returns the lock file, throws MailboxError. */
export async function dotlock(file: string, o: DotlockOptions, def: string): Promise<string> {
  const lock = `${file}.lock`;
  let lastErr: unknown = null;
  for (let count = 1; ; count++) {
    try {
      const fh = await fsp.open(lock, constants.O_WRONLY | constants.O_EXCL | constants.O_CREAT, 0);
      await fh.close();
      return lock;
    } catch (err) {
      lastErr = err;
      if (count >= o.attempts || errnoOf(err) !== 'EEXIST') break;
    }
    try {
      const st = await fsp.stat(lock);
      if (Date.now() / 1000 > st.ctimeMs / 1000 + o.staleSeconds) await fsp.unlink(lock);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') {
        lastErr = err;
        break;
      }
    }
    // rand_sleep(delay, delay / 2): delay ± a quarter.
    await sleep(o.delayMs * (0.75 + Math.random() * 0.5));
  }
  const code = errnoOf(lastErr);
  const dsn = code === 'EEXIST' ? mboxDsn('EAGAIN', def) : mboxDsn(code, def);
  throw new MailboxError(dsn, `unable to create lock file ${lock}: ${errText(lastErr)}`, code, { cause: lastErr });
}

/** In-process serialisation per file (a dotlock retry would otherwise sleep a whole second). */
const queues = new Map<string, Promise<unknown>>();
async function serialised<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = queues.get(key) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.catch(() => undefined);
  queues.set(key, tail);
  try {
    return await run;
  } finally {
    if (queues.get(key) === tail) queues.delete(key);
  }
}

/** Append one message to an mbox file. Throws MailboxError/MboxError with Postfix's texts. */
export function appendToMbox(o: MboxDeliveryOptions): Promise<{ size: number }> {
  return serialised(o.file, () => append(o));
}

async function append(o: MboxDeliveryOptions): Promise<{ size: number }> {
  const fs = o.fs ?? nodeFs;
  const def = o.defaultDsn;
  let lockFile: string | null = null;
  // mbox_open(): dotlock when the file is missing or a regular file.
  let pre: Awaited<ReturnType<typeof fsp.stat>> | null = null;
  try {
    pre = await fsp.stat(o.file);
  } catch {
    pre = null;
  }
  if (pre === null || pre.isFile()) {
    try {
      lockFile = await dotlock(o.file, o.lock, def);
    } catch (err) {
      if (!(o.lockMayFail && err instanceof MailboxError && err.errno !== 'EEXIST')) throw err;
    }
  }
  try {
    let fh: FileRef;
    let created = false;
    try {
      try {
        fh = await fs.open(o.file, constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw err;
        fh = await fs.open(o.file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        created = true;
      }
    } catch (err) {
      const code = errnoOf(err);
      // O_NOFOLLOW on a symlink gives ELOOP: safe_open's "file is a symbolic link".
      const text = code === 'ELOOP' ? 'file is a symbolic link' : `cannot open file: ${errText(err)}`;
      throw new MailboxError(mboxDsn(code === 'ELOOP' ? 'EPERM' : code, def), text, code, { cause: err });
    }
    try {
      return await writeLocked(o, fs, fh, created);
    } finally {
      await fs.close(fh).catch(() => undefined);
    }
  } finally {
    if (lockFile !== null) await fsp.unlink(lockFile).catch(() => undefined);
  }
}

async function writeLocked(o: MboxDeliveryOptions, fs: DurableFs, fh: FileRef, created: boolean): Promise<{ size: number }> {
  const def = o.defaultDsn;
  let st = await fh.stat();
  if (created && mustChown(o.owner)) {
    try {
      await fh.chown(o.owner.uid, o.owner.gid);
      st = await fh.stat();
    } catch (err) {
      throw systemError('cannot change file ownership', err, def);
    }
  }
  if (st.isDirectory()) throw new MboxError(mboxDsn('EISDIR', def), 'file is a directory', 'EISDIR', 'not-regular');
  const regular = st.isFile();
  if (!regular && !o.allowNonRegular) throw new MboxError('5.2.0', `destination ${o.file} is not a regular file`, null, 'not-regular');
  if (regular && st.nlink !== 1) throw new MboxError(mboxDsn('EPERM', def), `file has ${st.nlink} hard links`, 'EPERM', null);
  if (regular && o.refuseExecutable && (st.mode & 0o111) !== 0) throw new MboxError('5.7.1', 'file is executable', null, 'executable');
  if (o.requireUid !== undefined && o.requireUid !== null && st.uid !== o.requireUid) {
    throw new MboxError('4.2.0', `destination ${o.file} is not owned by recipient`, null, 'not-owner');
  }
  const orig = st.size;
  const limit = regular ? (o.sizeLimit ?? 0) : 0;
  const limited: DurableFs =
    limit > 0
      ? {
          ...fs,
          write: async (h, data, pos) => {
            const n = data.reduce((s, b) => s + b.length, 0);
            const now = (await h.stat()).size;
            if (now + n > limit) throw Object.assign(new Error('file too large'), { code: 'EFBIG' });
            await fs.write(h, data, pos);
          },
        }
      : fs;
  const from = Buffer.from(`${fromLine(o.sender, (o.now ?? (() => new Date()))())}\n`, 'utf8');
  try {
    // MAIL_COPY_MBOX: From_ line, headers, quoted content, then one blank line (MAIL_COPY_BLANK).
    const body = await copyMessage(limited, fh, o.prepend, withBlankLine(o.message), new LfCopier(true), null, [from]);
    try {
      if (regular) await fs.syncFile(fh);
    } catch (err) {
      throw systemError('error writing message', err, '5.3.0');
    }
    return { size: body };
  } catch (err) {
    if (regular) await fh.truncate(orig).catch(() => undefined);
    throw err;
  }
}

/** The message then an empty line: the copier ends the last line, the extra LF is the blank line. */
async function* withBlankLine(message: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let last = -1;
  for await (const chunk of message) {
    if (chunk.length > 0) last = chunk[chunk.length - 1]!;
    yield chunk;
  }
  yield Buffer.from(last === 0x0a || last === -1 ? '\n' : '\n\n');
}

/** The sender as quote_822_local() prints it in the From_ line. */
function quoteSender(sender: string): string {
  const at = sender.lastIndexOf('@');
  const local = at < 0 ? sender : sender.slice(0, at);
  if (local === '' || /^[^\s()<>@,;:\\".[\]\x00-\x1f\x7f]+(\.[^\s()<>@,;:\\".[\]\x00-\x1f\x7f]+)*$/.test(local)) return sender;
  return `"${local.replace(/(["\\])/g, '\\$1')}"${at < 0 ? '' : sender.slice(at)}`;
}

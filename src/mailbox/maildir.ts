/**
 * Maildir delivery (https://cr.yp.to/proto/maildir.html; Postfix local(8)/virtual(8) maildir.c).
 *
 *   1. create tmp/<unique> exclusively (mode 0600; the Maildir and its cur/ new/ tmp/ are created
 *      with mode 0700 when missing, owned by the mailbox owner when we run as root);
 *   2. write the prepended header lines and the message with LF line ends, then fsync;
 *   3. link it to new/<unique'> — never rename over an existing name — and remove tmp/<unique>;
 *   4. fsync new/ (shared with concurrent deliveries, ../io/durable.ts DirSync), then announce the
 *      new message on the change feed (./changes.ts).
 *
 * Names: tmp/ `<sec>.M<usec>P<pid>Q<n>.<host>` (Postfix uses `<sec>.P<pid>.<host>`, unique because
 * each of its delivery processes does one delivery at a time; one Postern process runs many at
 * once, so a per-process counter joins the pid); new/ `<sec>.V<dev>I<ino>M<usec>.<host>` with
 * device and inode in hex, exactly Postfix's `%lu.V%lxI%lxM%lu.%s`. `<host>` is gethostname()
 * with `/` as `\057` and `:` as `\072` (the Maildir spec).
 *
 * A failure anywhere removes the tmp/ file (and the new/ link when the directory sync failed), so
 * new/ never holds a partial message; the error is a MailboxError with Postfix's text and status
 * (ENOSPC → 4.3.0 "error writing message: No space left on device").
 *
 * Running as root for a non-root owner, Postfix writes with the owner's privileges; Postern cannot
 * switch privileges per delivery (one process, concurrent deliveries), so it refuses tmp/ or new/
 * when they are symbolic links or not owned by the owner (EACCES), creates the file as root and
 * gives it to the owner before the first byte is written. A race between that check and the
 * create remains possible for an owner who can rename directories in the Maildir; the file name is
 * unpredictable and the file is never world-readable.
 */
import { constants, lstatSync, type Stats } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type DirSync, type DurableFs, defaultDirSync, DirSync as GroupSync, nodeFs, type FileRef } from '../io/durable.js';
import { PosternError } from '../errors.js';
import { type MicroTime, microNow } from '../queue/id.js';
import { type MailboxChanges, mailboxChanges } from './changes.js';
import { LfCopier } from './copy.js';
import { type MailboxOwner, makeDirs, mustChown } from './dirs.js';
import { errnoOf, errText, MailboxError, mboxDsn, systemError } from './errors.js';

export type { MailboxOwner } from './dirs.js';

export interface MaildirDeliveryOptions {
  /** The Maildir (with or without a trailing `/`). */
  readonly maildir: string;
  /** Header lines to put first, without line ends (`Return-Path: <a@b>`, `Delivered-To: c@d`). */
  readonly prepend: readonly string[];
  /** The message as queued (CRLF or LF lines), streamed; read once. */
  readonly message: AsyncIterable<Buffer>;
  /** Who owns the mailbox (files and directories are chowned to it when running as root). */
  readonly owner?: MailboxOwner | null;
  /** Status for errors without a more specific class: local(8) uses 5.2.0, virtual(8) 4.2.0. */
  readonly defaultDsn: string;
  /** Change feed to announce the new message on; default the process-wide one. */
  readonly changes?: MailboxChanges;
  /** File-system layer for the message file (tests inject failures); default the real one. */
  readonly fs?: DurableFs;
  readonly dirSync?: DirSync;
  /** Tests: the clock for the unique names. */
  readonly now?: () => MicroTime;
}

export interface MaildirDelivered {
  /** The Maildir, absolute, without trailing slash (the MailboxChange `mailbox`). */
  readonly mailbox: string;
  /** The message's name in new/. */
  readonly file: string;
  /** Bytes written. */
  readonly size: number;
  /** Problems that did not stop the delivery, as `warning:` texts for the caller's logger. */
  readonly warnings: readonly string[];
}

let deliveries = 0;
const WRITE_CHUNK = 64 * 1024;

/** gethostname() made safe for a Maildir name (the spec: `/` → `\057`, `:` → `\072`). */
export function maildirHostname(name: string = localHostname()): string {
  return name.replace(/\//g, '\\057').replace(/:/g, '\\072');
}

let hostnameCache: { name: string; at: number } | null = null;

/** os.hostname() (a uname(2) per call), remembered for a minute: it was one syscall per delivery. */
function localHostname(): string {
  const now = Date.now();
  if (hostnameCache === null || now - hostnameCache.at > 60_000) hostnameCache = { name: os.hostname(), at: now };
  return hostnameCache.name;
}

/** Postfix's Maildir name for a file, from its device and inode: `%lu.V%lxI%lxM%lu.%s`. */
export function maildirName(t: MicroTime, dev: bigint, ino: bigint, host: string): string {
  return `${t.sec}.V${dev.toString(16)}I${ino.toString(16)}M${t.usec}.${host}`;
}

function readError(err: unknown): MailboxError {
  if (err instanceof PosternError && err.code === 'corrupt') {
    // Postfix defers a delivery from a damaged queue file (MAIL_COPY_STAT_CORRUPT).
    return new MailboxError('4.3.0', 'error reading message: queue file is damaged', null, { cause: err });
  }
  const code = errnoOf(err);
  const dsn = code === 'EAGAIN' || code === 'ESTALE' ? '4.3.0' : code === null ? '4.3.0' : '5.3.0';
  return new MailboxError(dsn, `error reading message: ${errText(err)}`, code, { cause: err });
}

async function requireOwnedDir(dir: string, owner: MailboxOwner): Promise<void> {
  let st: Stats;
  try {
    // lstat(2) inline: an inode lookup, no journal wait (io/durable.ts on which calls leave the pool).
    st = lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // created below, by us
    throw err;
  }
  if (st.isSymbolicLink() || !st.isDirectory() || st.uid !== owner.uid) {
    throw Object.assign(new Error(`${dir}: not a directory owned by uid ${owner.uid}`), { code: 'EACCES' });
  }
}

/**
 * Stream the prepended lines and `message` into `out` through a copier, writing in 64 KiB
 * batches. Read errors and write errors come back as MailboxError with Postfix's texts.
 */
export async function copyMessage(
  fs: DurableFs,
  fh: FileRef,
  prepend: readonly string[],
  message: AsyncIterable<Buffer>,
  copier: LfCopier,
  position: number | null,
  first: readonly Buffer[] = [],
): Promise<number> {
  let pending: Buffer[] = [...first];
  for (const line of prepend) pending.push(Buffer.from(`${line}\n`, 'utf8'));
  let pendingBytes = pending.reduce((n, b) => n + b.length, 0);
  let written = 0;
  let pos = position;
  const flush = async (): Promise<void> => {
    if (pendingBytes === 0) return;
    const bufs = pending;
    const n = pendingBytes;
    pending = [];
    pendingBytes = 0;
    try {
      await fs.write(fh, bufs, pos);
    } catch (err) {
      throw systemError('error writing message', err, '5.3.0');
    }
    written += n;
    if (pos !== null) pos += n;
  };
  const it = message[Symbol.asyncIterator]();
  for (;;) {
    let r: IteratorResult<Buffer>;
    try {
      r = await it.next();
    } catch (err) {
      throw readError(err);
    }
    if (r.done) break;
    const before = pending.length;
    copier.push(r.value, pending);
    for (let i = before; i < pending.length; i++) pendingBytes += pending[i]!.length;
    if (pendingBytes >= WRITE_CHUNK) await flush();
  }
  const before = pending.length;
  copier.end(pending);
  for (let i = before; i < pending.length; i++) pendingBytes += pending[i]!.length;
  await flush();
  return written;
}

/** Create the Maildir's cur/ new/ tmp/ (and the Maildir) when missing. */
export async function ensureMaildir(maildir: string, owner: MailboxOwner | null | undefined, dirSync: DirSync = defaultDirSync): Promise<void> {
  // new/ last: a crash in between never leaves a Maildir whose new/ exists without its cur/.
  for (const sub of ['tmp', 'cur', 'new']) await makeDirs(path.join(maildir, sub), 0o700, owner, dirSync);
}

/** Maildirs being created in this process, so concurrent first deliveries share one creation. */
const creating = new Map<string, Promise<void>>();

/**
 * ensureMaildir(), one creation at a time per Maildir: a concurrent delivery must never look at
 * directories another one made but has not chowned yet (it saw them owned by root and deferred
 * with "maildir access problem ... Permission denied").
 */
function ensureMaildirShared(root: string, owner: MailboxOwner | null, dirSync: DirSync): Promise<void> {
  const running = creating.get(root);
  if (running !== undefined) return running;
  const p = ensureMaildir(root, owner, dirSync).finally(() => creating.delete(root));
  creating.set(root, p);
  return p;
}

/** Deliver one message into a Maildir. Throws MailboxError (Postfix's text and status). */
export async function deliverToMaildir(o: MaildirDeliveryOptions): Promise<MaildirDelivered> {
  const fs = o.fs ?? nodeFs;
  const dirSync = o.dirSync ?? (o.fs ? new GroupSync(o.fs) : defaultDirSync);
  const root = path.resolve(o.maildir);
  const tmpDir = path.join(root, 'tmp');
  const newDir = path.join(root, 'new');
  const host = maildirHostname();
  const t = (o.now ?? microNow)();
  deliveries += 1;
  const tmpFile = path.join(tmpDir, `${t.sec}.M${t.usec}P${process.pid}Q${deliveries}.${host}`);
  const owner = o.owner ?? null;
  const chown = mustChown(owner);
  const def = o.defaultDsn;

  const open = (): Promise<FileRef> => fs.open(tmpFile, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  let fh: FileRef;
  // Another delivery is creating this Maildir: let it finish (and chown) first.
  await creating.get(root)?.catch(() => undefined);
  try {
    if (chown) {
      await requireOwnedDir(tmpDir, owner);
      await requireOwnedDir(newDir, owner);
    }
    try {
      fh = await open();
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
      await ensureMaildirShared(root, owner, dirSync);
      fh = await open();
    }
  } catch (err) {
    throw systemError(`create maildir file ${tmpFile}`, err, def);
  }

  let newFile: string | null = null;
  let closed = false;
  let linked = false;
  let size = 0;
  try {
    let st: { dev: bigint; ino: bigint };
    try {
      if (chown) await fh.chown(owner.uid, owner.gid);
      st = await fh.stat({ bigint: true });
    } catch (err) {
      throw systemError(`create maildir file ${tmpFile}`, err, def);
    }
    newFile = path.join(newDir, maildirName(t, st.dev, st.ino, host));
    size = await copyMessage(fs, fh, o.prepend, o.message, new LfCopier(false), 0);
    try {
      await fs.syncFile(fh);
      closed = true;
      await fs.close(fh);
    } catch (err) {
      throw systemError('error writing message', err, '5.3.0');
    }
    try {
      try {
        await fs.link(tmpFile, newFile);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw err;
        await ensureMaildirShared(root, owner, dirSync);
        await fs.link(tmpFile, newFile);
      }
      linked = true;
      await dirSync.sync(newDir);
    } catch (err) {
      throw systemError(`create maildir file ${newFile}`, err, def);
    }
  } catch (err) {
    if (!closed) await fs.close(fh).catch(() => undefined);
    if (linked && newFile !== null) await fs.unlink(newFile).catch(() => undefined);
    await fs.unlink(tmpFile).catch(() => undefined);
    if (err instanceof MailboxError) throw err;
    throw new MailboxError(mboxDsn(errnoOf(err), '4.3.0'), `maildir write: ${errText(err)}`, errnoOf(err), { cause: err });
  }
  // The message is safe in new/; a leftover tmp/ link is only clutter (Postfix warns likewise).
  const warnings: string[] = [];
  await fs.unlink(tmpFile).catch((err: unknown) => {
    warnings.push(`remove ${tmpFile}: ${errText(err)}`);
  });
  const file = path.basename(newFile);
  const change = { mailbox: root, kind: 'added' as const, files: [file], uids: [], modseq: null };
  for (const err of (o.changes ?? mailboxChanges).emit(change)) warnings.push(`mailbox change listener failed: ${errText(err)}`);
  return { mailbox: root, file, size, warnings };
}

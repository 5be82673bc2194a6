/**
 * Maildrop files: what `postern sendmail` leaves in queue_directory/maildrop/ for pickup
 * (Postfix's postdrop(1) → maildrop → pickup(8)). Works while the server is stopped: the file
 * waits until pickup hands it to cleanup.
 *
 * Format, version 1 (the queue file's layout, ../queue/file.ts, with its own magic and trailer):
 *
 *   +----------------------------------------------------------------------------+
 *   | magic     15 bytes   "POSTERN DROP 1\n"                                    |
 *   | content   C bytes    the message as submitted, CRLF line ends              |
 *   | envelope  E bytes    one line of UTF-8 JSON (MaildropEnvelope) + "\n"      |
 *   | end       97 bytes   "DROP1 " C:16 hex " " E:8 hex " " SHA-256:64 hex "\n" |
 *   +----------------------------------------------------------------------------+
 *
 * The SHA-256 covers magic, content and envelope. A file is valid only when its length, trailer,
 * hash and envelope all check out: a truncated or garbage file is refused as a whole (pickup moves
 * it to corrupt/). The envelope goes last so the content streams to disk as it is read (the
 * recipients of `sendmail -t` are known only after the header section).
 *
 * Naming and durability: the writer creates `<name>.tmp` (never picked up), writes, fdatasyncs,
 * renames it to `<name>` and fsyncs maildrop/ before sendmail exits 0. `<name>` is five hex digits
 * of the submission time's microseconds and 16 random hex digits (upper case, so it reads like a
 * short queue id and passes ../queue/id.ts isQueueId): unguessable, because maildrop/ is
 * world-writable (mode 1733, see ./index.ts) and its files world-readable (0644, pickup runs as
 * mail_owner and must read files that local users own), so the name is what keeps one user from
 * opening another's pending message.
 *
 * Trust: nothing in a maildrop file is trusted. The submitting user id is the file's owner, never a
 * field of the file (pickup logs `uid=N` from fstat).
 */
import { createHash, type Hash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import * as path from 'node:path';
import { PosternError } from '../errors.js';
import { type DurableFs, nodeFs, FileRef } from '../io/durable.js';
import { type EnvelopeRecipient, isEnvelopeRecipient } from '../queue/envelope.js';

export const MAILDROP_MAGIC = Buffer.from('POSTERN DROP 1\n', 'latin1');
export const MAILDROP_END_LENGTH = 97;
const END_RE = /^DROP1 ([0-9a-f]{16}) ([0-9a-f]{8}) ([0-9a-f]{64})\n$/;
const WRITE_CHUNK = 64 * 1024;
/** Largest envelope accepted back (recipients of a big -t list fit easily). */
const MAX_ENVELOPE = 16 * 1024 * 1024;

/** A maildrop file's final name. */
export const MAILDROP_NAME_RE = /^[0-9A-F]{21}$/;
/** A maildrop file still being written (or left by a crashed sendmail). */
export const MAILDROP_TEMP_RE = /^[0-9A-F]{21}\.tmp$/;

export interface MaildropEnvelope {
  readonly version: 1;
  /** Submission time, ms since the epoch (the message's arrival_time). */
  readonly time: number;
  /** As submitted: the login name, or the -f / MAIL FROM address (internal form); '' = <>. */
  readonly sender: string;
  /** sendmail -F (or the user's GECOS name) for an added From: field. */
  readonly fullName: string | null;
  /** As submitted (not yet canonicalised: pickup appends @$myorigin). */
  readonly recipients: readonly EnvelopeRecipient[];
  readonly ret: 'FULL' | 'HDRS' | null;
  readonly envid: string | null;
  readonly smtputf8: boolean;
  readonly body: '7BIT' | '8BITMIME' | null;
}

/** A fresh maildrop file name. */
export function maildropName(nowMs: number = Date.now()): string {
  const usec = Math.floor((nowMs * 1000) % 1e6);
  return usec.toString(16).toUpperCase().padStart(5, '0') + randomBytes(8).toString('hex').toUpperCase();
}

/**
 * Writes one maildrop file: create(), write() the content, commit(envelope). Nothing is visible to
 * pickup before commit() renames the finished, synced file into place.
 */
export class MaildropWriter {
  private readonly hash: Hash = createHash('sha256');
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private done = false;
  /** Content bytes written so far. */
  contentLength = 0;

  private constructor(
    private readonly fs: DurableFs,
    private readonly fh: FileRef,
    readonly dir: string,
    /** The final name (also the id `sendmail -bs` reports). */
    readonly name: string,
    /** 0 = no limit (message_size_limit). */
    private readonly sizeLimit: number,
  ) {
    this.hash.update(MAILDROP_MAGIC);
    this.pending.push(MAILDROP_MAGIC);
    this.pendingBytes = MAILDROP_MAGIC.length;
  }

  get tempPath(): string {
    return path.join(this.dir, `${this.name}.tmp`);
  }

  get finalPath(): string {
    return path.join(this.dir, this.name);
  }

  /** Create `maildrop/<name>.tmp` exclusively, mode 0644 (pickup reads it as another user). */
  static async create(maildropDir: string, o: { sizeLimit?: number; fs?: DurableFs; now?: number } = {}): Promise<MaildropWriter> {
    const fs = o.fs ?? nodeFs;
    for (let attempt = 0; ; attempt++) {
      const name = maildropName(o.now);
      try {
        const fh = await fs.open(path.join(maildropDir, `${name}.tmp`), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
        // The umask may have removed the read bits pickup needs.
        await fh.chmod(0o644).catch(() => undefined);
        return new MaildropWriter(fs, fh, maildropDir, name, o.sizeLimit ?? 0);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err;
      }
    }
  }

  /**
   * Append content (CRLF lines). Throws PosternError 'too-big' beyond the size limit (Postfix:
   * "message file too big"); the caller aborts.
   */
  async write(chunk: Buffer): Promise<void> {
    if (this.done) throw new PosternError('maildrop', 'write after commit');
    if (chunk.length === 0) return;
    this.contentLength += chunk.length;
    if (this.sizeLimit > 0 && this.contentLength > this.sizeLimit) throw new PosternError('too-big', 'message file too big');
    this.hash.update(chunk);
    this.pending.push(Buffer.from(chunk));
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= WRITE_CHUNK) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const bufs = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    await this.fs.write(this.fh, bufs, null);
  }

  /**
   * Append the envelope and trailer, fdatasync, rename into place, fsync maildrop/. Resolves only
   * when the file and its name are durable (sendmail's exit 0 means the message is safe).
   * Returns the file's name.
   */
  async commit(envelope: MaildropEnvelope): Promise<string> {
    if (this.done) throw new PosternError('maildrop', 'commit twice');
    this.done = true;
    const env = Buffer.from(`${JSON.stringify(envelope)}\n`, 'utf8');
    this.hash.update(env);
    const sha = this.hash.digest('hex');
    const end = `DROP1 ${this.contentLength.toString(16).padStart(16, '0')} ${env.length.toString(16).padStart(8, '0')} ${sha}\n`;
    this.pending.push(env, Buffer.from(end, 'latin1'));
    this.pendingBytes += env.length + MAILDROP_END_LENGTH;
    try {
      await this.flush();
      await this.fs.syncFile(this.fh);
    } finally {
      await this.fs.close(this.fh);
    }
    await this.fs.rename(this.tempPath, this.finalPath);
    await this.fs.syncDir(this.dir);
    return this.name;
  }

  /** Close and remove the temporary file. Never throws. */
  async abort(): Promise<void> {
    if (!this.done) {
      this.done = true;
      await this.fs.close(this.fh).catch(() => undefined);
    }
    await this.fs.unlink(this.tempPath).catch(() => undefined);
  }
}

/** A validated maildrop file, open for reading its content. */
export interface MaildropFile {
  readonly name: string;
  readonly path: string;
  readonly envelope: MaildropEnvelope;
  /** The submitting user: the file's owner. */
  readonly uid: number;
  readonly mtimeMs: number;
  /** File size in bytes (what mailq shows for maildrop files, as Postfix does). */
  readonly size: number;
  readonly contentLength: number;
  /** The content in pieces of at most 64 KiB. */
  content(): AsyncGenerator<Buffer>;
  close(): Promise<void>;
}

function bad(file: string, what: string): PosternError {
  return new PosternError('corrupt', `${file}: ${what}`);
}

async function readAt(fh: FileRef, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let off = 0;
  while (off < length) {
    const { bytesRead } = await fh.read(buf, off, length - off, position + off);
    if (bytesRead === 0) break;
    off += bytesRead;
  }
  return buf.subarray(0, off);
}

type Check = (v: unknown) => boolean;
const isStr: Check = (v) => typeof v === 'string';
const isStrOrNull: Check = (v) => v === null || typeof v === 'string';

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Throws PosternError 'corrupt' naming the first bad field. */
export function checkMaildropEnvelope(v: unknown, where: string): MaildropEnvelope {
  const fail = (field: string): never => {
    throw bad(where, `bad envelope field: ${field}`);
  };
  if (!isRecord(v)) return fail('envelope');
  if (v.version !== 1) fail('version');
  if (typeof v.time !== 'number' || !Number.isFinite(v.time)) fail('time');
  if (!isStr(v.sender)) fail('sender');
  if (!isStrOrNull(v.fullName)) fail('fullName');
  if (!Array.isArray(v.recipients) || !v.recipients.every(isEnvelopeRecipient)) fail('recipients');
  if (!(v.ret === null || v.ret === 'FULL' || v.ret === 'HDRS')) fail('ret');
  if (!isStrOrNull(v.envid)) fail('envid');
  if (typeof v.smtputf8 !== 'boolean') fail('smtputf8');
  if (!(v.body === null || v.body === '7BIT' || v.body === '8BITMIME')) fail('body');
  return v as unknown as MaildropEnvelope;
}

/**
 * Open and validate a maildrop file. Symbolic links are refused (O_NOFOLLOW: maildrop/ is
 * world-writable), as are non-regular files and files with more than one link. Throws
 * PosternError 'corrupt' for a file that is not a complete maildrop file; file-system errors
 * (ENOENT, EACCES, ELOOP for a symlink) as they are.
 */
export async function openMaildropFile(file: string): Promise<MaildropFile> {
  const fh = await FileRef.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw bad(file, 'not a regular file');
    if (st.nlink > 1) throw bad(file, `file has ${st.nlink} links`);
    const size = st.size;
    if (size < MAILDROP_MAGIC.length + MAILDROP_END_LENGTH) throw bad(file, `file too short (${size} bytes)`);
    const magic = await readAt(fh, MAILDROP_MAGIC.length, 0);
    if (!magic.equals(MAILDROP_MAGIC)) throw bad(file, 'not a maildrop file (bad magic)');
    const m = END_RE.exec((await readAt(fh, MAILDROP_END_LENGTH, size - MAILDROP_END_LENGTH)).toString('latin1'));
    if (!m) throw bad(file, 'missing or damaged end record (truncated?)');
    const contentLength = Number.parseInt(m[1]!, 16);
    const envelopeLength = Number.parseInt(m[2]!, 16);
    if (MAILDROP_MAGIC.length + contentLength + envelopeLength + MAILDROP_END_LENGTH !== size) throw bad(file, 'file size does not match its end record');
    if (envelopeLength > MAX_ENVELOPE) throw bad(file, 'envelope too large');
    const h = createHash('sha256');
    const chunk = Buffer.allocUnsafe(256 * 1024);
    const limit = size - MAILDROP_END_LENGTH;
    for (let pos = 0; pos < limit; ) {
      const { bytesRead } = await fh.read(chunk, 0, Math.min(chunk.length, limit - pos), pos);
      if (bytesRead === 0) throw bad(file, 'file shrank while reading');
      h.update(chunk.subarray(0, bytesRead));
      pos += bytesRead;
    }
    if (h.digest('hex') !== m[3]) throw bad(file, 'hash mismatch');
    const envBuf = await readAt(fh, envelopeLength, MAILDROP_MAGIC.length + contentLength);
    let parsed: unknown;
    try {
      parsed = JSON.parse(envBuf.toString('utf8'));
    } catch {
      throw bad(file, 'envelope is not valid JSON');
    }
    const envelope = checkMaildropEnvelope(parsed, file);
    let closed = false;
    return {
      name: path.basename(file),
      path: file,
      envelope,
      uid: st.uid,
      mtimeMs: st.mtimeMs,
      size,
      contentLength,
      async *content() {
        for (let pos = 0; pos < contentLength; ) {
          const want = Math.min(64 * 1024, contentLength - pos);
          const buf = await readAt(fh, want, MAILDROP_MAGIC.length + pos);
          if (buf.length !== want) throw bad(file, 'file shrank while reading');
          pos += want;
          yield buf;
        }
      },
      async close() {
        if (closed) return;
        closed = true;
        await fh.close();
      },
    };
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

/**
 * Queue file format, version 1 (DESIGN 3: immutable once published; envelope, arrival time,
 * message, end marker with length and hash).
 *
 *   +----------------------------------------------------------------------------+
 *   | magic     16 bytes   "POSTERN QUEUE 1\n"                                   |
 *   | content   C bytes    the message as cleanup stored it, CRLF line ends       |
 *   | envelope  E bytes    one line of UTF-8 JSON (QueueEnvelope, ./envelope.ts)   |
 *   |                      followed by "\n"                                        |
 *   | end       96 bytes   "END1 " C:16 hex " " E:8 hex " " SHA-256:64 hex "\n"    |
 *   +----------------------------------------------------------------------------+
 *
 * The SHA-256 covers every byte before the end record (magic, content, envelope). A file is
 * valid only when it is exactly 16 + C + E + 96 bytes long, the end record parses, the hash
 * matches and the envelope checks; so a file truncated anywhere (a crash, a full disk), with
 * garbage appended, or with a flipped bit is rejected as a whole — never delivered in part.
 *
 * Why a trailer rather than a header rewritten in place: the content streams to disk while
 * DATA arrives (a 50 MB message is never held in memory) and the envelope is complete only at
 * the end of DATA. Appending it keeps the file a single sequential write with no seek back, the
 * end record at the very end doubles as the completeness mark, and the published file is never
 * modified again (per-recipient progress goes to a separate state log, ./state-log.ts).
 *
 * The content is the message except for the header fields cleanup adds at the end of DATA
 * (its Received: goes first, Message-Id:/Date:/From: at the end of the header section): those
 * are known only then, so the envelope lists them as inserts `{at, text}` at byte offsets of the
 * content, and readers get the message with them spliced in (openMessage/readMessage). The
 * content before `headerEnd` is the original header section (after cleanup's per-header work:
 * header_size_limit truncation, message_drop_headers); from `headerEnd` on, the body.
 */
import { createHash, type Hash } from 'node:crypto';
import { constants } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { PosternError } from '../errors.js';
import { type DurableFs, nodeFs, FileRef } from '../io/durable.js';
import { checkEnvelope, type QueueEnvelope } from './envelope.js';
import { isQueueId } from './id.js';

export const QUEUE_FILE_MAGIC = Buffer.from('POSTERN QUEUE 1\n', 'latin1');
export const END_RECORD_LENGTH = 96;
const END_RE = /^END1 ([0-9a-f]{16}) ([0-9a-f]{8}) ([0-9a-f]{64})\n$/;
/** Content bytes buffered before a write is issued. */
const WRITE_CHUNK = 64 * 1024;

function endRecord(contentLength: number, envelopeLength: number, sha256: string): Buffer {
  const rec = `END1 ${contentLength.toString(16).padStart(16, '0')} ${envelopeLength.toString(16).padStart(8, '0')} ${sha256}\n`;
  return Buffer.from(rec, 'latin1');
}

/**
 * Writes one queue file sequentially: magic, content (streamed), then envelope and end record.
 * write() never blocks: bytes are buffered up to 64 KiB, then handed to the disk in order; the
 * first I/O error is kept and reported by finish(). `pendingBytes` is what is not yet written
 * (await drain() when it is high).
 */
export class QueueFileWriter {
  private readonly hash: Hash = createHash('sha256');
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private inflight = 0;
  private chain: Promise<void> = Promise.resolve();
  private error: unknown = null;
  private closed = false;
  /** Content bytes written (accepted) so far. */
  contentLength = 0;
  /** The whole file's size, once finish() succeeded. */
  fileSize = 0;

  private constructor(
    private readonly fs: DurableFs,
    private readonly fh: FileRef,
    readonly file: string,
    /** A spare file written over in place: finish() cuts it to the new length. */
    private readonly overwrite = false,
  ) {
    this.hash.update(QUEUE_FILE_MAGIC);
    this.buffered.push(QUEUE_FILE_MAGIC);
    this.bufferedBytes = QUEUE_FILE_MAGIC.length;
  }

  /**
   * Create `file` exclusively (mode 0600), or with `reuse` open an existing spare file
   * (../queue/spare.ts) to write over it from the start; its inode, like a new one's, makes the
   * queue id. A spare file is not opened with O_TRUNC: writing over its blocks in place and
   * cutting it to the new length in finish() keeps them allocated, so the fdatasync writes the
   * data alone, without the block bitmaps and group descriptors that freeing and allocating them
   * again dirties (ext4 without a journal writes those with the file's fsync), and without the
   * inode when the length is unchanged (fdatasync(2) skips a timestamps-only inode change).
   */
  static async create(file: string, fs: DurableFs = nodeFs, reuse = false): Promise<{ writer: QueueFileWriter; inode: bigint }> {
    const fh = await fs.open(file, reuse ? constants.O_WRONLY | constants.O_NOFOLLOW : constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      const st = await fh.stat({ bigint: true });
      // A spare file is only reused as it was left: a plain 0600 file of ours with one name.
      if (reuse && (!st.isFile() || st.nlink !== 1n || (st.mode & 0o7777n) !== 0o600n || (process.geteuid !== undefined && st.uid !== BigInt(process.geteuid())))) {
        throw new PosternError('queue', `${file}: not reusable (mode ${(st.mode & 0o7777n).toString(8)}, ${st.nlink} links, uid ${st.uid})`);
      }
      return { writer: new QueueFileWriter(fs, fh, file, reuse), inode: st.ino };
    } catch (err) {
      await fh.close().catch(() => undefined);
      await fs.unlink(file).catch(() => undefined);
      throw err;
    }
  }

  get failed(): unknown {
    return this.error;
  }

  get pendingBytes(): number {
    return this.bufferedBytes + this.inflight;
  }

  /** Append content bytes. The chunk is not copied: the caller must not modify it afterwards. */
  write(chunk: Buffer): void {
    if (this.closed) throw new PosternError('queue', 'write after finish');
    if (chunk.length === 0) return;
    this.contentLength += chunk.length;
    if (this.error !== null) return; // already failed: finish() reports it
    this.hash.update(chunk);
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    if (this.bufferedBytes >= WRITE_CHUNK) this.flush();
  }

  private flush(): void {
    if (this.bufferedBytes === 0) return;
    const bufs = this.buffered;
    const n = this.bufferedBytes;
    this.buffered = [];
    this.bufferedBytes = 0;
    this.inflight += n;
    this.chain = this.chain.then(async () => {
      try {
        if (this.error === null) await this.fs.write(this.fh, bufs, null);
      } catch (err) {
        this.error ??= err;
      } finally {
        this.inflight -= n;
      }
    });
  }

  /** Resolves when everything written so far has reached the file (or failed). */
  drain(): Promise<void> {
    this.flush();
    return this.chain;
  }

  /**
   * Append the envelope and the end record, fdatasync and close. Throws the first I/O error of
   * the whole file. Returns the SHA-256 (hex) recorded in the end record.
   */
  async finish(envelope: QueueEnvelope): Promise<string> {
    if (this.closed) throw new PosternError('queue', 'finish twice');
    if (envelope.contentLength !== this.contentLength) {
      throw new PosternError('queue', `envelope says ${envelope.contentLength} content bytes, wrote ${this.contentLength}`);
    }
    const env = Buffer.from(`${JSON.stringify(envelope)}\n`, 'utf8');
    this.hash.update(env);
    const sha = this.hash.digest('hex');
    this.buffered.push(env, endRecord(this.contentLength, env.length, sha));
    this.bufferedBytes += env.length + END_RECORD_LENGTH;
    this.fileSize = QUEUE_FILE_MAGIC.length + this.contentLength + env.length + END_RECORD_LENGTH;
    await this.drain();
    this.closed = true;
    try {
      if (this.error !== null) throw this.error;
      // Old content past the new end must not stay in the file: readers take the end record from the
      // file's last bytes. The length is part of what fdatasync makes durable.
      if (this.overwrite) await this.fh.truncate(this.fileSize);
      await this.fs.syncFile(this.fh);
    } finally {
      await this.fs.close(this.fh).catch((err: unknown) => {
        this.error ??= err;
      });
    }
    if (this.error !== null) throw this.error;
    return sha;
  }

  /** Stop writing and close (the caller removes the file). Never throws. */
  async discard(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.buffered = [];
    this.bufferedBytes = 0;
    this.error ??= new PosternError('queue', 'discarded');
    await this.chain;
    await this.fs.close(this.fh).catch(() => undefined);
  }
}

/** A validated queue file. Content is read from disk on demand; the file is not kept open. */
export interface QueueFile {
  readonly path: string;
  readonly envelope: QueueEnvelope;
  /** SHA-256 (hex) of the file from its end record; the state log is bound to it. */
  readonly sha256: string;
  /** Offset of the content segment in the file. */
  readonly contentOffset: number;
  /** File size in bytes. */
  readonly fileSize: number;
}

export interface ReadQueueFileOptions {
  /** Verify the SHA-256 over the whole file (default true). false checks structure only. */
  readonly verifyHash?: boolean;
}

function corrupt(file: string, what: string): PosternError {
  return new PosternError('corrupt', `${file}: ${what}`);
}

async function readExactly(fh: FileRef, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let off = 0;
  while (off < length) {
    const { bytesRead } = await fh.read(buf, off, length - off, position + off);
    if (bytesRead === 0) break;
    off += bytesRead;
  }
  return off === length ? buf : buf.subarray(0, off);
}

/**
 * Open and validate a queue file. Throws PosternError code 'corrupt' when the file is not a
 * complete, intact queue file (truncated, garbage, bad hash, bad envelope, or an id in the
 * envelope that differs from the file's name). File-system errors (ENOENT when another process
 * moved the file, EIO) are thrown as they are: they say nothing about the file's content.
 */
export async function readQueueFile(file: string, o: ReadQueueFileOptions = {}): Promise<QueueFile> {
  const fh = await FileRef.open(file, 'r');
  try {
    const st = await fh.stat();
    const size = st.size;
    if (!st.isFile()) throw corrupt(file, 'not a regular file');
    if (size < QUEUE_FILE_MAGIC.length + END_RECORD_LENGTH) throw corrupt(file, `file too short (${size} bytes)`);
    const magic = await readExactly(fh, QUEUE_FILE_MAGIC.length, 0);
    if (!magic.equals(QUEUE_FILE_MAGIC)) throw corrupt(file, 'not a queue file (bad magic)');
    const endBuf = await readExactly(fh, END_RECORD_LENGTH, size - END_RECORD_LENGTH);
    const m = END_RE.exec(endBuf.toString('latin1'));
    if (!m) throw corrupt(file, 'missing or damaged end record (truncated?)');
    const contentLength = Number.parseInt(m[1]!, 16);
    const envelopeLength = Number.parseInt(m[2]!, 16);
    const sha256 = m[3]!;
    if (QUEUE_FILE_MAGIC.length + contentLength + envelopeLength + END_RECORD_LENGTH !== size) {
      throw corrupt(file, 'file size does not match its end record');
    }
    if (o.verifyHash !== false) {
      const h = createHash('sha256');
      const limit = size - END_RECORD_LENGTH;
      // Sized to the file: a fresh 256 KiB buffer per small message was most of the drain's GC.
      const chunk = Buffer.allocUnsafe(Math.min(256 * 1024, limit));
      for (let pos = 0; pos < limit; ) {
        const { bytesRead } = await fh.read(chunk, 0, Math.min(chunk.length, limit - pos), pos);
        if (bytesRead === 0) throw corrupt(file, 'file shrank while reading');
        h.update(chunk.subarray(0, bytesRead));
        pos += bytesRead;
      }
      if (h.digest('hex') !== sha256) throw corrupt(file, 'hash mismatch');
    }
    const envBuf = await readExactly(fh, envelopeLength, QUEUE_FILE_MAGIC.length + contentLength);
    if (envBuf.length !== envelopeLength || envBuf[envBuf.length - 1] !== 0x0a) throw corrupt(file, 'damaged envelope');
    let parsed: unknown;
    try {
      parsed = JSON.parse(envBuf.toString('utf8'));
    } catch {
      throw corrupt(file, 'envelope is not valid JSON');
    }
    const envelope = checkEnvelope(parsed, file);
    if (envelope.contentLength !== contentLength) throw corrupt(file, 'content length differs from end record');
    const base = path.basename(file);
    if (isQueueId(base) && base !== envelope.queueId) throw corrupt(file, `queue id ${envelope.queueId} in a file named ${base}`);
    return { path: file, envelope, sha256, contentOffset: QUEUE_FILE_MAGIC.length, fileSize: size };
  } finally {
    await fh.close();
  }
}

export interface OpenMessageOptions {
  /** Only the header section (with cleanup's added fields): for RET=HDRS bounces (RFC 3461 4.3). */
  readonly headersOnly?: boolean;
}

/**
 * The message as delivered: the stored content with the envelope's header inserts spliced in,
 * streamed from the file in 64 KiB pieces (memory stays bounded for any size). The file is
 * opened when reading starts and closed at the end or on destroy().
 */
export function openMessage(qf: QueueFile, o: OpenMessageOptions = {}): Readable {
  return Readable.from(messageChunks(qf, o), { objectMode: false });
}

async function* messageChunks(qf: QueueFile, o: OpenMessageOptions): AsyncGenerator<Buffer> {
  const env = qf.envelope;
  const end = o.headersOnly ? env.headerEnd : env.contentLength;
  const fh = await FileRef.open(qf.path, 'r');
  try {
    let pos = 0;
    const copy = async function* (upTo: number): AsyncGenerator<Buffer> {
      while (pos < upTo) {
        const want = Math.min(64 * 1024, upTo - pos);
        const buf = await readExactly(fh, want, qf.contentOffset + pos);
        if (buf.length !== want) throw corrupt(qf.path, 'file shrank while reading');
        pos += want;
        yield buf;
      }
    };
    for (const ins of env.inserts) {
      if (ins.at > end) break;
      yield* copy(ins.at);
      yield Buffer.from(ins.text, 'utf8');
    }
    yield* copy(end);
  } finally {
    await fh.close();
  }
}

/** The whole message in memory (small messages, tests, postcat). */
export async function readMessage(qf: QueueFile, o: OpenMessageOptions = {}): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of messageChunks(qf, o)) parts.push(chunk);
  return Buffer.concat(parts);
}

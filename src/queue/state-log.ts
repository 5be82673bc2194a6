/**
 * Per-message state log (DESIGN 5, issue 4): which recipients of a queue file are done, without
 * ever rewriting the queue file (it stays immutable once published). One append-only file per
 * message: `queue_directory/state/<queue id>`. Written by qmgr alone (DESIGN invariant 2).
 *
 * Format, version 1:
 *
 *   "POSTERN STATE 1 " <SHA-256 of the queue file, 64 hex> "\n"      (81 bytes)
 *   then one line per record:  <JSON object> " " <CRC-32 of the JSON bytes, 8 hex> "\n"
 *
 * - The header binds the log to one queue file: short queue ids repeat over time (./id.ts), so a
 *   log left behind by a crash between removing a queue file and removing its log must never
 *   apply to a later message that gets the same id. A log whose hash differs is discarded.
 * - A crash can tear the last record; its missing newline or bad CRC shows it. open() cuts the
 *   file back to the last good record before appending, so a torn record never glues onto the
 *   next one. Losing a torn "done" record means delivering that recipient again: a duplicate,
 *   never a loss (DESIGN invariant 2).
 * - append() resolves after fdatasync unless told otherwise (see there); the file is created by the
 *   first append. qmgr appends the records of a pass's last delivery only when the message stays
 *   in the queue (../qmgr/scheduler.ts write()), so a message that one delivery finishes costs no
 *   state-log I/O at all.
 * - Records with a good CRC but a kind this version does not know are kept and skipped.
 */
import { constants, existsSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { PosternError } from '../errors.js';
import { DirSync, type DurableFs, defaultDirSync, nodeFs, type FileRef } from '../io/durable.js';
import { STATE_DIR } from './directories.js';
import { isQueueId } from './id.js';

/** A recipient needs no more work: delivered, relayed, expanded (alias), or failed and bounced. */
export interface DoneRecord {
  readonly kind: 'done';
  /** Index into the envelope's recipients. */
  readonly rcpt: number;
  /** RFC 3464 2.3.3 Action (as `status=` in the log: sent → delivered/relayed, bounced → failed). */
  readonly action: 'delivered' | 'relayed' | 'expanded' | 'failed' | 'discarded';
  /** RFC 3463 status, e.g. "2.0.0", "5.1.1". */
  readonly status: string;
  /** ms since the epoch. */
  readonly at: number;
}

/**
 * A temporary failure of a recipient: mailq's reason text, and what a bounce reports when the
 * message is force-expired (`postsuper -e`) before it is tried again (Postfix's defer log).
 */
export interface DeferredRecord {
  readonly kind: 'deferred';
  readonly rcpt: number;
  readonly status: string;
  readonly reason: string;
  readonly at: number;
  /** The address tried, when virtual_alias_maps expanded the recipient into several. */
  readonly address?: string;
  /** Remote-MTA and Diagnostic-Code for the DSN, when the agent gave them. */
  readonly remoteMta?: string;
  readonly diagnostic?: string;
}

/** A DSN about this message was queued (so a retry after a crash does not send it twice). */
export interface NotifiedRecord {
  readonly kind: 'notified';
  readonly notice: 'bounce' | 'delay' | 'success';
  /** Queue id of the notification message. */
  readonly queueId: string;
  /** The recipients it reported on. */
  readonly rcpts: readonly number[];
  readonly at: number;
}

export type StateRecord = DoneRecord | DeferredRecord | NotifiedRecord;

const HEADER_PREFIX = 'POSTERN STATE 1 ';
const HEADER_LENGTH = HEADER_PREFIX.length + 64 + 1;

function header(sha256: string): Buffer {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new PosternError('queue', `bad queue file hash: ${sha256}`);
  return Buffer.from(`${HEADER_PREFIX}${sha256}\n`, 'latin1');
}

function encodeRecord(r: StateRecord): Buffer {
  const json = Buffer.from(JSON.stringify(r), 'utf8');
  const crc = zlib.crc32(json).toString(16).padStart(8, '0');
  return Buffer.concat([json, Buffer.from(` ${crc}\n`, 'latin1')]);
}

const isCount = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function knownRecord(v: Record<string, unknown>): StateRecord | null {
  if (typeof v.at !== 'number') return null;
  switch (v.kind) {
    case 'done':
      if (!isCount(v.rcpt) || typeof v.status !== 'string') return null;
      if (!['delivered', 'relayed', 'expanded', 'failed', 'discarded'].includes(v.action as string)) return null;
      return v as unknown as DoneRecord;
    case 'deferred':
      if (!isCount(v.rcpt) || typeof v.status !== 'string' || typeof v.reason !== 'string') return null;
      for (const k of ['address', 'remoteMta', 'diagnostic'] as const) if (v[k] !== undefined && typeof v[k] !== 'string') return null;
      return v as unknown as DeferredRecord;
    case 'notified':
      if (!['bounce', 'delay', 'success'].includes(v.notice as string) || typeof v.queueId !== 'string') return null;
      if (!Array.isArray(v.rcpts) || !v.rcpts.every(isCount)) return null;
      return v as unknown as NotifiedRecord;
    default:
      return null;
  }
}

interface Parsed {
  /** false: missing, damaged or for another queue file (discard it). */
  readonly headerOk: boolean;
  readonly records: StateRecord[];
  /** Byte offset just after the last intact record. */
  readonly goodEnd: number;
}

/** Parse a state log's bytes for the queue file with hash `sha256`. */
export function parseStateLog(buf: Buffer, sha256: string): Parsed {
  const want = header(sha256);
  if (buf.length < HEADER_LENGTH || !buf.subarray(0, HEADER_LENGTH).equals(want)) {
    return { headerOk: false, records: [], goodEnd: 0 };
  }
  const records: StateRecord[] = [];
  let pos = HEADER_LENGTH;
  for (;;) {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) break; // torn last record (or none)
    const line = buf.subarray(pos, nl);
    const sp = line.lastIndexOf(0x20);
    if (sp < 0 || line.length - sp - 1 !== 8) break;
    const json = line.subarray(0, sp);
    const crc = line.subarray(sp + 1).toString('latin1');
    if (!/^[0-9a-f]{8}$/.test(crc) || zlib.crc32(json) !== Number.parseInt(crc, 16)) break;
    let v: unknown;
    try {
      v = JSON.parse(json.toString('utf8'));
    } catch {
      break;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v) || typeof (v as { kind?: unknown }).kind !== 'string') break;
    const rec = knownRecord(v as Record<string, unknown>);
    if (rec) records.push(rec);
    pos = nl + 1;
  }
  return { headerOk: true, records, goodEnd: pos };
}

export function stateLogPath(queue_directory: string, queueId: string): string {
  if (!isQueueId(queueId)) throw new PosternError('queue', `invalid queue id: ${JSON.stringify(queueId)}`);
  return path.join(queue_directory, STATE_DIR, queueId);
}

export interface StateLogOptions {
  readonly fs?: DurableFs;
  readonly dirSync?: DirSync;
}

/** An open state log for one queue file; qmgr keeps it open while the message is active. */
export class StateLog {
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  /** Records written since the last fdatasync. */
  private dirty = false;

  private constructor(
    private readonly fs: DurableFs,
    private readonly dirSync: DirSync,
    /** null until the first append: most messages finish in one pass and never need a log file. */
    private fh: FileRef | null,
    readonly path: string,
    private readonly header: Buffer,
    private size: number,
    private readonly list: StateRecord[],
  ) {}

  /**
   * Open the state log of queue file `queueId` whose end record holds `sha256`, when one exists.
   * A stale or damaged log is reset; a torn tail is cut off. No file is created here: append()
   * creates it (a message delivered in its first pass never has one).
   */
  static async open(queue_directory: string, queueId: string, sha256: string, o: StateLogOptions = {}): Promise<StateLog> {
    const fs = o.fs ?? nodeFs;
    const dirSync = o.dirSync ?? (o.fs ? new DirSync(fs) : defaultDirSync);
    const file = stateLogPath(queue_directory, queueId);
    const hdr = header(sha256);
    // Most messages have no log: ask without making an ENOENT error (and its stack trace) each time.
    if (fs === nodeFs && !existsSync(file)) return new StateLog(fs, dirSync, null, file, hdr, 0, []);
    let fh: FileRef;
    try {
      fh = await fs.open(file, constants.O_RDWR);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return new StateLog(fs, dirSync, null, file, hdr, 0, []);
    }
    try {
      const st = await fh.stat();
      const buf = Buffer.allocUnsafe(st.size);
      let off = 0;
      while (off < st.size) {
        const { bytesRead } = await fh.read(buf, off, st.size - off, off);
        if (bytesRead === 0) break;
        off += bytesRead;
      }
      const parsed = parseStateLog(buf.subarray(0, off), sha256);
      let size = off;
      if (!parsed.headerOk) {
        // Damaged, or left over from another message with the same id: start afresh.
        await fh.truncate(0);
        await fs.write(fh, [hdr], 0);
        await fs.syncFile(fh);
        size = hdr.length;
      } else if (parsed.goodEnd < size) {
        await fh.truncate(parsed.goodEnd);
        await fs.syncFile(fh);
        size = parsed.goodEnd;
      }
      return new StateLog(fs, dirSync, fh, file, hdr, size, parsed.headerOk ? parsed.records : []);
    } catch (err) {
      await fs.close(fh).catch(() => undefined);
      throw err;
    }
  }

  get records(): readonly StateRecord[] {
    return this.list;
  }

  /** True when the log file exists (it was there at open, or an append created it). */
  get exists(): boolean {
    return this.fh !== null;
  }

  /** Indexes of recipients with a `done` record. */
  doneRecipients(): Set<number> {
    const s = new Set<number>();
    for (const r of this.list) if (r.kind === 'done') s.add(r.rcpt);
    return s;
  }

  /** Append records in one write; resolves after fdatasync (and a directory sync when this created the file). */
  append(...records: StateRecord[]): Promise<void> {
    return this.write(records, true);
  }

  /**
   * Append records in one write without fdatasync: resolves once the write is in the page cache.
   * That survives a crash of the process but not of the machine, where losing a `done` record means
   * delivering that recipient again (a duplicate, never a loss; DESIGN invariant 2) — as Postfix's
   * own in-place "done" marks, which it does not fsync either. sync() makes them durable.
   */
  appendUnsynced(...records: StateRecord[]): Promise<void> {
    return this.write(records, false);
  }

  private write(list: readonly StateRecord[], durable: boolean): Promise<void> {
    if (this.closed) return Promise.reject(new PosternError('queue', `${this.path}: append after close`));
    const body = Buffer.concat(list.map(encodeRecord));
    const run = this.chain.then(async () => {
      let created = false;
      if (this.fh === null) {
        this.fh = await this.fs.open(this.path, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC, 0o600);
        await this.fs.write(this.fh, [this.header], 0);
        this.size = this.header.length;
        created = true;
      }
      await this.fs.write(this.fh, [body], this.size);
      this.size += body.length;
      this.list.push(...list);
      this.dirty = true;
      if (durable) await this.syncNow(created);
    });
    // A failed append leaves `size` where it was: the next append overwrites the partial bytes.
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Make every record appended so far durable (before the queue file moves to deferred/). */
  sync(): Promise<void> {
    const run = this.chain.then(() => this.syncNow(true));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async syncNow(withDir: boolean): Promise<void> {
    if (this.fh === null || !this.dirty) return;
    await this.fs.syncFile(this.fh);
    this.dirty = false;
    if (withDir) await this.dirSync.sync(path.dirname(this.path));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.chain;
    if (this.fh !== null) await this.fs.close(this.fh);
  }
}

/** Read a state log without changing it (mailq, postqueue -j): [] when absent or stale. */
export async function readStateLog(queue_directory: string, queueId: string, sha256: string): Promise<StateRecord[]> {
  try {
    return parseStateLog(await fsp.readFile(stateLogPath(queue_directory, queueId)), sha256).records;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Remove a message's state log (after its queue file is gone). Absent is fine. */
export async function removeStateLog(queue_directory: string, queueId: string, o: StateLogOptions = {}): Promise<void> {
  const fs = o.fs ?? nodeFs;
  try {
    await fs.unlink(stateLogPath(queue_directory, queueId));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

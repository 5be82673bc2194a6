/**
 * cleanup: envelope + message content → one durable queue file in incoming/ (DESIGN 1, 3).
 *
 * What it does: allocates the queue id when a transaction opens (a temporary file in incoming/,
 * id from its inode, ../queue/id.ts); streams the content to that file while DATA/BDAT arrives,
 * repairing line ends and processing the primary header section one field at a time (Postfix
 * cleanup(8): header_size_limit truncation, message_drop_headers, Received: hop count); at
 * commit adds its header fields (smtpd's Received: first; Message-Id:, Date:, From: at the end of
 * the header section when missing and asked to), logs `QID: message-id=<...>`, appends the
 * envelope and end record, fdatasyncs, renames the file to its queue id and fsyncs incoming/
 * (shared with concurrent commits, ../io/durable.ts). commit() resolves only then: the caller's
 * 250 means the file and its directory entry are on disk (DESIGN invariant 1). Then qmgr is kicked.
 *
 * Data in: bytes from smtpd/pickup (untrusted content, already dot-unstuffed) and a CleanupInput
 * (trusted: built by smtpd from checked values). Out: a queue file (../queue/file.ts), log lines
 * as `postfix/cleanup[pid]`. Touches queue_directory only. Any I/O failure removes the file and
 * gives `451 4.3.0 Error: queue file write error`; nothing half-written is ever published.
 *
 * Memory per transaction is bounded: one header field (header_size_limit), one line prefix of
 * the same size, and up to 64 KiB of unwritten content (more only while the disk lags; write()
 * returns false then and drain() waits).
 *
 * main.cf parameters: myhostname, header_size_limit, hopcount_limit, message_size_limit,
 * message_drop_headers, cleanup_replace_stray_cr_lf, undisclosed_recipients_header,
 * enable_long_queue_ids, queue_minfree (checkSpace).
 * RFCs: 5322 (3.6 header fields, 3.3 date), 5321 4.4 (Received:), 3461 (DSN envelope).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type LookupTable, openTable } from '../config/tables/index.js';
import type { Params } from '../config/types.js';
import { PosternError } from '../errors.js';
import { type DirSync, type DurableFs, defaultDirSync, DirSync as GroupSync, nodeFs } from '../io/durable.js';
import type { Log, Logger } from '../log/index.js';
import { strerror } from '../log/strerror.js';
import { type Reply, ReplyError, reply } from '../proto/smtp/reply.js';
import { giveBack, published, takeSpare } from '../queue/spare.js';
import { createQueueDirectories, queueDirPath, queueFilePath } from '../queue/directories.js';
import { type EnvelopeRecipient, type HeaderInsert, originalRecipient, type QueueEnvelope } from '../queue/envelope.js';
import { QUEUE_FILE_MAGIC, type QueueFile, QueueFileWriter } from '../queue/file.js';
import { type MicroTime, makeQueueId, microNow } from '../queue/id.js';
import { type QueueKick, queueKick } from '../queue/kick.js';
import { HeaderChecks } from './header-checks.js';
import { fromField, HeaderPass, headerNameLength, LineEnds, mailDate, messageIdFor } from './headers.js';

export type { ClientFacts, EnvelopeRecipient } from '../queue/envelope.js';
export { type PostMailInput, postMail } from './post-mail.js';

/**
 * Postfix cleanup_out_recipient(): a recipient equal to an earlier one of the same message is
 * dropped, so `RCPT TO:<bob@x>` twice (or Bob@X) gets one delivery. Equal means, case folded
 * (been_here BH_FLAG_FOLD): the same DSN ORCPT, NOTIFY, original and final address; with
 * enable_original_recipient = no, the address alone. The first `limit` distinct recipients are
 * remembered (duplicate_filter_limit; 0: all); duplicates of later ones pass, as in Postfix.
 */
export function uniqueRecipients<R extends EnvelopeRecipient>(list: readonly R[], limit: number, withOrcpt: boolean): R[] {
  const seen = new Set<string>();
  const out: R[] = [];
  for (const r of list) {
    const notify = r.notify === null ? '' : r.notify === 'NEVER' ? 'NEVER' : [...r.notify].map((n) => n.toUpperCase()).sort().join(',');
    // cleanup_addr.c: a recipient without ORCPT is compared as if it had rfc822;address.
    const key = (withOrcpt ? `${r.orcpt ?? `rfc822;${r.address}`}\n${notify}\n${originalRecipient(r)}\n${r.address}` : r.address).toLowerCase();
    if (seen.has(key)) continue;
    if (limit <= 0 || seen.size < limit) seen.add(key);
    out.push(r);
  }
  return out;
}

/**
 * header_checks REDIRECT (every recipient becomes the target, the first one's ORCPT kept, as for
 * access(5) REDIRECT) and BCC (one more recipient, NOTIFY=NEVER).
 */
function checkedRecipients(
  list: readonly EnvelopeRecipient[],
  checks: HeaderChecks,
  autoBcc: (l: readonly EnvelopeRecipient[]) => readonly EnvelopeRecipient[],
): readonly EnvelopeRecipient[] {
  let out = list;
  if (checks.redirect !== null) {
    const first = list[0];
    out = [{ address: checks.redirect, notify: first?.notify ?? null, orcpt: first?.orcpt ?? (first ? `rfc822;${first.address}` : null) }];
  }
  out = autoBcc(out);
  if (checks.bcc.length > 0) out = [...out, ...checks.bcc.map((address) => ({ address, notify: 'NEVER' as const, orcpt: null }))];
  return out;
}

/**
 * Automatic blind copies (cleanup_addr.c), each a recipient with NOTIFY=NEVER: sender_bcc_maps
 * when the sender is seen (so before the recipients), recipient_bcc_maps after each recipient,
 * always_bcc last. Keys as mail_addr_find(): the address, the address without its extension,
 * then @domain (the bare local part of local domains is not tried); the value's first word.
 */
/** A *_bcc_maps table could not be searched: the message is not accepted (Postfix: CLEANUP_STAT_WRITE). */
class BccLookupError extends Error {
  constructor(readonly map: string) {
    super(`${map} map lookup problem`);
  }
}

function withBcc(list: readonly EnvelopeRecipient[], sender: string, c: Cleanup): readonly EnvelopeRecipient[] {
  const p = c.params;
  if (c.senderBcc.length === 0 && c.recipientBcc.length === 0 && p.always_bcc === '') return list;
  const find = (tables: readonly (LookupTable | null)[], name: string, address: string): string | null => {
    if (address === '' || tables.length === 0) return null;
    const at = address.lastIndexOf('@');
    const local = (at < 0 ? address : address.slice(0, at)).toLowerCase();
    const domain = at < 0 ? '' : address.slice(at + 1).toLowerCase();
    const delim = p.recipient_delimiter === '' ? -1 : [...local].findIndex((ch, i) => i > 0 && p.recipient_delimiter.includes(ch));
    const keys = [at < 0 ? local : `${local}@${domain}`];
    if (delim > 0) keys.push(at < 0 ? local.slice(0, delim) : `${local.slice(0, delim)}@${domain}`);
    if (domain !== '') keys.push(`@${domain}`);
    for (const k of keys) {
      for (const t of tables) {
        if (t === null) throw new BccLookupError(name);
        const v = t.get(k);
        if (v !== undefined) return v.trim().split(/\s+/)[0] ?? null;
      }
    }
    return null;
  };
  const bcc = (address: string): EnvelopeRecipient => ({ address, notify: 'NEVER', orcpt: null });
  const out: EnvelopeRecipient[] = [];
  const s = find(c.senderBcc, 'sender_bcc_maps', sender);
  if (s) out.push(bcc(s));
  for (const r of list) {
    out.push(r);
    const b = find(c.recipientBcc, 'recipient_bcc_maps', r.address);
    if (b) out.push(bcc(b));
  }
  if (p.always_bcc !== '' && list.length > 0) out.push(bcc(p.always_bcc));
  return out;
}

/** The envelope as the queue file keeps it (sender, recipients, DSN RET/ENVID, SMTPUTF8, BODY, client; null client = local), and what cleanup adds. */
export interface CleanupInput extends Pick<QueueEnvelope, 'sender' | 'recipients' | 'ret' | 'envid' | 'smtputf8' | 'body' | 'client'> {
  /**
   * smtpd's complete Received: field (`Received: from ...`), folded lines separated by CRLF or LF
   * and starting with white space; a final line end is optional. null = cleanup adds none.
   */
  readonly receivedHeader: string | null;
  /** Add Message-Id:, Date:, From: when missing (always_add_missing_headers / local_header_rewrite_clients). */
  readonly addMissingHeaders: boolean;
  /** sendmail -F: the full name for an added From: field. */
  readonly fullName?: string | null;
  /** ms since the epoch; default: when the transaction opened. Used for Date: and the envelope. */
  readonly arrivalTime?: number;
  /** access(5) HOLD: the file goes to hold/ instead of incoming/ (qmgr leaves it alone; postsuper -H releases it). */
  readonly hold?: boolean;
  /**
   * access(5) DISCARD: nothing is queued, the commit succeeds ("claim successful delivery and
   * silently discard"), whatever else went wrong with the content (Postfix cleanup_flush()).
   */
  readonly discard?: boolean;
  /** access(5) PREPEND: header fields put first, above smtpd's Received: (Postfix smtpd DATA). */
  readonly prependHeaders?: readonly string[];
}

export interface CleanupResult {
  readonly queueId: string;
  /** Message size as stored and delivered (content + added header fields), bytes. */
  readonly size: number;
}

export interface CleanupTxn {
  readonly queueId: string;
  /**
   * Message content (headers + body, CRLF lines, already dot-unstuffed). Copied; streamed to
   * disk. Returns false when more than 1 MiB waits for the disk: await drain() before more.
   */
  write(chunk: Buffer): boolean;
  /** Resolves when the content written so far has reached the file (or failed). */
  drain(): Promise<void>;
  /** Content bytes accepted by write() but not yet written to the file. */
  readonly pendingBytes: number;
  /**
   * Envelope, then write + fdatasync the file, rename it into place, fsync incoming/ (group
   * commit across transactions). Resolves only when durable. Throws ReplyError 451 4.3.0 on any
   * I/O failure (file removed), 554 5.4.0 when hopcount_limit is reached, 552 5.3.4 when the
   * content exceeded message_size_limit. Logs "QID: message-id=<...>".
   */
  commit(input: CleanupInput): Promise<CleanupResult>;
  /** Removes the temporary file. After a successful commit it does nothing. */
  abort(): Promise<void>;
  /** Bytes of the content taken as its primary header section so far. */
  readonly headerBytes: number;
  /**
   * The content already has hopcount_limit - 1 Received: fields, so with smtpd's own Received:
   * commit() rejects it (554 5.4.0 Error: too many hops, Postfix's hopcount_limit).
   */
  readonly tooManyHeaders: boolean;
}

export interface CleanupOptions {
  readonly queue_directory: string;
  readonly params: Params;
  readonly log: Log;
  /** File-system layer (tests count syncs or inject failures). Default: the real one. */
  readonly fs?: DurableFs;
  /** Shared directory-sync batcher. Default: the process-wide one (or a new one over `fs`). */
  readonly dirSync?: DirSync;
  /** Wall clock in ms since the epoch (may be fractional); default: the system clock with µs. */
  readonly clock?: () => number;
  /** Statfs for checkSpace (tests); default fs.statfsSync. */
  readonly statfs?: (dir: string) => Promise<{ bsize: number; bavail: number }>;
}

/** Postfix smtpd_check_queue(): free space must exceed 1.5 x message_size_limit (smtpd_space_multf). */
const SPACE_MULTIPLIER = 1.5;
/** write() returns false above this many unwritten bytes. */
const HIGH_WATER = 1024 * 1024;

/**
 * Why cleanup refused a message, as Postfix cleanup's status bits tell smtpd (cleanup_stat.c
 * CLEANUP_STAT_WRITE, _SIZE, _HOPS, _CONT, _DEFER): smtpd takes the reply from it, and the
 * notify_classes class of the error (write: resource; size, hops: bounce; cont, defer: policy).
 */
export type CleanupStatus = 'write' | 'size' | 'hops' | 'cont' | 'defer';

/** A ReplyError from cleanup, with the status it stands for. */
export class CleanupError extends ReplyError {
  constructor(
    reply: Reply,
    readonly status: CleanupStatus,
  ) {
    super(reply);
    this.name = 'CleanupError';
  }
}

const writeError = (): CleanupError => new CleanupError(reply(451, '4.3.0', 'Error: queue file write error'), 'write');
const tooBig = (): CleanupError => new CleanupError(reply(552, '5.3.4', 'Error: message file too big'), 'size');
const tooManyHops = (): CleanupError => new CleanupError(reply(554, '5.4.0', 'Error: too many hops'), 'hops');

let tempCounter = 0;

export class Cleanup {
  readonly queue_directory: string;
  /** Fired with the queue id after each durable commit; qmgr listens (same object as queueKick(queue_directory)). */
  readonly kick: QueueKick;
  /** @internal */ readonly params: Params;
  /** @internal */ readonly logger: Logger;
  /** @internal */ readonly fs: DurableFs;
  /** @internal */ readonly dirSync: DirSync;
  private readonly log: Log;
  private readonly clock: (() => number) | undefined;
  private readonly statfs: (dir: string) => Promise<{ bsize: number; bavail: number }>;
  /** @internal */ readonly myhostname: string;
  /** @internal */ readonly dropHeaders: ReadonlySet<string>;
  /** @internal header_checks tables; null for one that could not be opened (each message then gets 451). */
  readonly headerTables: readonly (LookupTable | null)[];
  /** @internal body_checks tables, as headerTables. */
  readonly bodyTables: readonly (LookupTable | null)[];
  /** @internal sender_bcc_maps, recipient_bcc_maps (null: could not be opened; warned). */
  readonly senderBcc: readonly (LookupTable | null)[];
  readonly recipientBcc: readonly (LookupTable | null)[];

  constructor(opts: CleanupOptions) {
    this.queue_directory = opts.queue_directory;
    this.params = opts.params;
    this.log = opts.log;
    this.logger = opts.log.logger('cleanup');
    this.fs = opts.fs ?? nodeFs;
    this.dirSync = opts.dirSync ?? (opts.fs ? new GroupSync(opts.fs) : defaultDirSync);
    this.clock = opts.clock;
    // statfs(2) is a cheap metadata call: made synchronously, as io/durable.ts explains.
    this.statfs = opts.statfs ?? (async (dir) => fs.statfsSync(dir));
    this.kick = queueKick(opts.queue_directory);
    this.myhostname = opts.params.myhostname !== '' ? opts.params.myhostname : os.hostname();
    this.dropHeaders = new Set(opts.params.message_drop_headers.map((h) => h.toLowerCase()));
    const open = (name: 'header_checks' | 'body_checks' | 'sender_bcc_maps' | 'recipient_bcc_maps'): (LookupTable | null)[] =>
      opts.params[name].map((spec) => {
        try {
          return openTable(spec);
        } catch (e) {
          this.logger.warning(`${name}: ${spec}: ${(e as Error).message}; mail is not accepted until it can be opened`);
          return null;
        }
      });
    this.headerTables = open('header_checks');
    this.bodyTables = open('body_checks');
    this.senderBcc = open('sender_bcc_maps');
    this.recipientBcc = open('recipient_bcc_maps');
  }

  /** @internal The creation time with microseconds. */
  now(): MicroTime {
    if (!this.clock) return microNow();
    const us = Math.floor(this.clock() * 1000);
    return { sec: Math.floor(us / 1e6), usec: us % 1e6 };
  }

  /**
   * Checks free space (queue_minfree, 1.5 x message_size_limit as Postfix's smtpd does at MAIL
   * FROM): throws ReplyError 452 4.3.1 Insufficient system storage, and logs Postfix's warning
   * through `logger` (smtpd's session logger; default a `smtpd` logger).
   */
  async checkSpace(logger?: Logger): Promise<void> {
    await createQueueDirectories(this.queue_directory);
    const st = await this.statfs(this.queue_directory);
    const bsize = Number(st.bsize);
    const bavail = Number(st.bavail);
    const blocks = (bytes: number): number => Math.floor(bytes / bsize);
    // smtpd_check.c smtpd_check_queue(); message_size_limit 0 = no limit (blocks(0) = 0).
    if (blocks(this.params.queue_minfree) >= bavail || blocks(this.params.message_size_limit) >= bavail / SPACE_MULTIPLIER) {
      (logger ?? this.log.logger('smtpd')).warning(
        `not enough free space in mail queue: ${bavail * bsize} bytes < ${SPACE_MULTIPLIER}*message size limit`,
      );
      throw new ReplyError(reply(452, '4.3.1', 'Insufficient system storage'));
    }
  }

  /**
   * Opens a new queue file in incoming/ (not visible to qmgr until commit). Allocates the queue id.
   * Throws ReplyError 451 4.3.0 when the file cannot be created (full disk, permissions).
   */
  async open(): Promise<CleanupTxn> {
    const created = this.now();
    tempCounter += 1;
    const temp = path.join(queueDirPath(this.queue_directory, 'incoming'), `${created.usec}.${process.pid}.${tempCounter}.tmp`);
    let opened: { writer: QueueFileWriter; inode: bigint };
    try {
      await createQueueDirectories(this.queue_directory);
      // A spare file (../queue/spare.ts) when there is one; a new one otherwise, or when it fails.
      const spare = takeSpare(this.queue_directory);
      if (spare !== null) {
        try {
          opened = await QueueFileWriter.create(spare, this.fs, true);
          return this.txn(opened, spare, created, true);
        } catch {
          published(this.queue_directory, spare);
        }
      }
      opened = await QueueFileWriter.create(temp, this.fs);
    } catch (err) {
      // Postfix mail_queue_enter(): "create file incoming/...: %m"; smtpd answers as for a write error.
      this.logger.warning(`mail_queue_enter: create file incoming/${path.basename(temp)}: ${strerror(err)}`);
      throw writeError();
    }
    return this.txn(opened, temp, created, false);
  }

  private txn(opened: { writer: QueueFileWriter; inode: bigint }, temp: string, created: { sec: number; usec: number }, spare: boolean): CleanupTxn {
    const queueId = makeQueueId(this.params.enable_long_queue_ids, created, opened.inode);
    return new Txn(this, opened.writer, temp, queueId, created.sec * 1000 + created.usec / 1000, spare);
  }
}

type TxnState = 'open' | 'committing' | 'committed' | 'failed' | 'aborted';

class Txn implements CleanupTxn {
  private state: TxnState = 'open';
  private readonly lineEnds: LineEnds;
  private readonly headers: HeaderPass;
  private readonly checks: HeaderChecks;
  private received = 0;
  private oversize = false;
  private committing: Promise<unknown> | null = null;

  constructor(
    private readonly c: Cleanup,
    private readonly writer: QueueFileWriter,
    private readonly temp: string,
    readonly queueId: string,
    private readonly createdMs: number,
    private readonly spare: boolean,
  ) {
    this.lineEnds = new LineEnds(c.params.cleanup_replace_stray_cr_lf);
    this.checks = new HeaderChecks(c.headerTables, (t) => c.logger.warning(t), c.bodyTables);
    this.headers = new HeaderPass({
      header_size_limit: c.params.header_size_limit,
      dropHeaders: c.dropHeaders,
      out: (b) => writer.write(b),
      ...(c.headerTables.length > 0 ? { check: (f: Buffer) => this.checks.check(f) } : {}),
      ...(c.bodyTables.length > 0 ? { checkBody: (l: Buffer) => this.checks.checkBody(l), bodyCheckLimit: c.params.body_checks_size_limit } : {}),
    });
  }

  get headerBytes(): number {
    return this.headers.headerBytes;
  }

  get tooManyHeaders(): boolean {
    return this.headers.facts.received + 1 >= this.c.params.hopcount_limit;
  }

  write(chunk: Buffer): boolean {
    if (this.state !== 'open') throw new PosternError('cleanup', `${this.queueId}: write after ${this.state}`);
    if (chunk.length === 0 || this.oversize) return true;
    this.received += chunk.length;
    const limit = this.c.params.message_size_limit;
    if (limit > 0 && this.received > limit) {
      // smtpd enforces message_size_limit itself; this only keeps a runaway writer off the disk.
      this.oversize = true;
      return true;
    }
    this.headers.push(this.lineEnds.push(Buffer.from(chunk)));
    return this.writer.pendingBytes < HIGH_WATER;
  }

  drain(): Promise<void> {
    return this.writer.drain();
  }

  get pendingBytes(): number {
    return this.writer.pendingBytes;
  }

  commit(input: CleanupInput): Promise<CleanupResult> {
    if (this.state !== 'open') return Promise.reject(new PosternError('cleanup', `${this.queueId}: commit after ${this.state}`));
    this.state = 'committing';
    const p = this.doCommit(input);
    this.committing = p.catch(() => undefined);
    return p;
  }

  private async doCommit(input: CleanupInput): Promise<CleanupResult> {
    const log = this.c.logger;
    const params = this.c.params;
    const id = this.queueId;
    const rejectWith = async (err: Error): Promise<never> => {
      await this.removeTemp();
      this.state = 'failed';
      throw err;
    };
    if (input.recipients.length === 0) return rejectWith(new PosternError('cleanup', `${id}: no recipients specified`));

    this.headers.push(this.lineEnds.end());
    this.headers.end();
    const facts = this.headers.facts;
    const headerEnd = this.headers.headerEnd ?? this.headers.outBytes;

    const checks = this.checks;
    if (checks.events.length > 0) {
      // cleanup_act_log(): the client as MAIL_ATTR_LOG_ORIGIN ("local" for pickup), the last recipient.
      const cl = input.client;
      const origin = cl === null ? 'local' : `${cl.name}[${cl.addr}]`;
      const last = input.recipients[input.recipients.length - 1];
      let ctx = ` from=<${input.sender}>${last !== undefined ? ` to=<${last.address}>` : ''}`;
      if (cl !== null) ctx += ` proto=${/^(UTF8)?ESMTP/.test(cl.protocol) ? 'ESMTP' : 'SMTP'}${cl.helo !== null ? ` helo=<${cl.helo}>` : ''}`;
      for (const e of checks.events) log.info(`${id}: ${e.action}: ${e.context} ${e.content.slice(0, 200)} from ${origin};${ctx}${e.text !== '' ? `: ${e.text}` : ''}`);
    }
    if (checks.lookupError) {
      log.warning(`${id}: ${checks.lookupErrorMap} map lookup problem -- message not accepted, try again later`);
      return rejectWith(writeError());
    }
    if (input.discard === true || checks.discard) {
      // cleanup_flush(): success is reported whatever happened, the file is removed, and (as
      // observed with 3.7) not even the message-id line is logged.
      await this.removeTemp();
      this.state = 'committed';
      return { queueId: id, size: this.writer.contentLength };
    }

    // Postfix logs each Message-ID while reading the headers, before any verdict on the message.
    for (const m of facts.ids) log.info(`${id}: ${m.resent ? 'resent-' : ''}message-id=${m.value}`);

    const hops = facts.received + (input.receivedHeader !== null ? 1 : 0);
    if (hops >= params.hopcount_limit) {
      log.warning(`${id}: message rejected: hopcount exceeded`);
      return rejectWith(tooManyHops());
    }
    if (this.oversize) {
      log.warning(`${id}: queue file size limit exceeded`);
      return rejectWith(tooBig());
    }
    if (checks.reason !== null) {
      // smtpd answers cleanup's CLEANUP_STAT_CONT with 550, CLEANUP_STAT_DEFER (a 4.x.x reason) with 451.
      const m = /^(\d\.\d{1,3}\.\d{1,3}) ?([\s\S]*)$/.exec(checks.reason)!;
      const defer = m[1]![0] === '4';
      return rejectWith(new CleanupError(reply(defer ? 451 : 550, m[1]!, m[2]!), defer ? 'defer' : 'cont'));
    }

    const inserts: HeaderInsert[] = [];
    for (const h of input.prependHeaders ?? []) inserts.push({ at: 0, text: normalizeField(h) });
    if (input.receivedHeader !== null) inserts.push({ at: 0, text: normalizeField(input.receivedHeader) });
    let addedId: string | null = null;
    if (input.addMissingHeaders) {
      // cleanup_message.c cleanup_header_done_callback(): Resent- variants when the message has
      // Resent- fields (RFC 5322 3.6.6).
      const pre = facts.resent ? 'Resent-' : '';
      const lc = pre.toLowerCase();
      const arrival = input.arrivalTime ?? this.createdMs;
      if (!facts.seen.has(`${lc}message-id`)) {
        const msgid = messageIdFor(id, this.createdMs, this.c.myhostname, params.enable_long_queue_ids);
        inserts.push({ at: headerEnd, text: `${pre}Message-Id: ${msgid}\r\n` });
        log.info(`${id}: ${lc}message-id=${msgid}`);
        facts.seen.add(`${lc}message-id`);
        if (pre === '') addedId = msgid;
      }
      if (!facts.seen.has(`${lc}date`)) inserts.push({ at: headerEnd, text: `${pre}Date: ${mailDate(arrival)}\r\n` });
      if (!facts.seen.has(`${lc}from`)) inserts.push({ at: headerEnd, text: fromField(pre, input.sender, input.fullName ?? null) });
      const visible = ['to', 'resent-to', 'cc', 'resent-cc'].some((h) => facts.seen.has(h));
      const witheld = params.undisclosed_recipients_header;
      if (!visible && witheld !== '') {
        if (headerNameLength(Buffer.from(witheld, 'utf8')) > 0) inserts.push({ at: headerEnd, text: normalizeField(witheld) });
        else log.warning(`bad undisclosed_recipients_header header text "${witheld}" -- need "headername: headervalue"`);
      }
    }
    if (!facts.seen.has('message-id')) log.info(`${id}: message-id=<>`);

    const contentLength = this.writer.contentLength;
    const size = contentLength + inserts.reduce((n, i) => n + Buffer.byteLength(i.text), 0);
    let recipients: readonly EnvelopeRecipient[];
    try {
      recipients = checkedRecipients(input.recipients, checks, (l) => withBcc(l, input.sender, this.c));
    } catch (e) {
      if (!(e instanceof BccLookupError)) throw e;
      log.warning(`${id}: ${e.map} map lookup problem -- message not accepted, try again later`);
      return rejectWith(writeError());
    }
    const envelope: QueueEnvelope = {
      version: 1,
      queueId: id,
      arrivalTime: input.arrivalTime ?? Math.floor(this.createdMs),
      sender: input.sender,
      recipients: uniqueRecipients(
        recipients,
        params.duplicate_filter_limit,
        params.enable_original_recipient,
      ).map((r) => ({
        address: r.address,
        notify: r.notify === null || r.notify === 'NEVER' ? r.notify : [...r.notify],
        orcpt: r.orcpt,
        // Postfix writes the original recipient record only with enable_original_recipient.
        ...(r.original !== undefined && params.enable_original_recipient ? { original: r.original } : {}),
      })),
      ret: input.ret,
      envid: input.envid,
      smtputf8: input.smtputf8,
      body: input.body,
      client: input.client,
      messageId: facts.firstMessageId ?? addedId,
      contentLength,
      headerEnd,
      inserts,
      size,
    };

    const queue = input.hold === true || checks.hold ? 'hold' : 'incoming';
    const final = queueFilePath(this.c.queue_directory, queue, id);
    let renamed = false;
    let sha256 = '';
    try {
      sha256 = await this.writer.finish(envelope);
      await this.c.fs.rename(this.temp, final);
      renamed = true;
      if (this.spare) published(this.c.queue_directory, this.temp);
      await this.c.dirSync.sync(path.dirname(final));
    } catch (err) {
      log.warning(`${id}: write queue file: ${strerror(err)}`);
      await this.writer.discard();
      await this.c.fs.unlink(renamed ? final : this.temp).catch(() => undefined);
      if (this.spare && !renamed) published(this.c.queue_directory, this.temp);
      this.state = 'failed';
      throw (err as NodeJS.ErrnoException).code === 'EFBIG' ? tooBig() : writeError();
    }
    this.state = 'committed';
    if (queue === 'incoming') {
      const file: QueueFile = { path: final, envelope, sha256, contentOffset: QUEUE_FILE_MAGIC.length, fileSize: this.writer.fileSize };
      for (const err of this.c.kick.fire(id, 'incoming', file)) log.warning(`${id}: queue kick listener failed: ${strerror(err)}`);
    }
    return { queueId: id, size };
  }

  private async removeTemp(): Promise<void> {
    await this.writer.discard();
    if (this.spare) {
      // Never published: it stays a spare file (its content is junk either way).
      giveBack(this.c.queue_directory, this.temp);
      return;
    }
    await this.c.fs.unlink(this.temp).catch(() => undefined);
  }

  async abort(): Promise<void> {
    if (this.state === 'committing') {
      await this.committing;
      return;
    }
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await this.removeTemp();
  }
}

/**
 * A header field given as text → CRLF lines. Continuation lines that do not start with white
 * space get a TAB, so text can never start a new header field; CR, LF and NUL inside a line go.
 */
function normalizeField(text: string): string {
  const lines = text.split(/\r?\n/);
  while (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return lines
    .map((l, i) => {
      const clean = l.replace(/[\r\n\0]/g, '');
      return i > 0 && !/^[ \t]/.test(clean) ? `\t${clean}` : clean;
    })
    .map((l) => `${l}\r\n`)
    .join('');
}

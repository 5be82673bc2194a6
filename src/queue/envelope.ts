/**
 * The envelope stored in a queue file (DESIGN 3): who the message is from and for, with the DSN
 * parameters (RFC 3461), RET/ENVID, SMTPUTF8 (RFC 6531), BODY (RFC 6152/3030), the arrival time,
 * and the client facts that logs, Received: and bounces need. Plain JSON-serialisable values, so
 * the same object travels between stages (or processes) unchanged.
 */
import { PosternError } from '../errors.js';

/** What smtpd knows about the client (null in CleanupInput for local submissions). */
export interface ClientFacts {
  /** Verified (forward-confirmed) name, or 'unknown'. */
  readonly name: string;
  readonly addr: string;
  readonly port: number;
  readonly helo: string | null;
  /** SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP, ... (RFC 3848 with-protocol). */
  readonly protocol: string;
  readonly tls: { readonly protocol: string; readonly cipher: string; readonly bits: number; readonly algBits: number } | null;
  readonly saslUsername: string | null;
  readonly localAddr: string;
}

export interface EnvelopeRecipient {
  readonly address: string;
  /** RFC 3461 4.1 NOTIFY: null = not given (default: FAILURE,DELAY). */
  readonly notify: readonly string[] | 'NEVER' | null;
  /** RFC 3461 4.2 ORCPT as `addr-type;xtext-decoded address`, e.g. `rfc822;user@example.com`. */
  readonly orcpt: string | null;
  /**
   * The address the mail was first sent to, when this recipient came from expanding it: local(8)
   * alias forwarding puts the alias here (Postfix's original recipient record, REC_TYPE_ORCP,
   * `original_recipient:` in postcat). Absent: the recipient's own address. It is what Postfix
   * logs as `orig_to=`, writes as X-Original-To: and names in bounces ("expanded from").
   */
  readonly original?: string;
}

/** The address a recipient was sent to originally (its `original`, else its own address). */
export function originalRecipient(r: EnvelopeRecipient): string {
  return r.original ?? r.address;
}

/** A header field cleanup adds, spliced into the stored content at byte offset `at`. */
export interface HeaderInsert {
  readonly at: number;
  /** Complete header field with its CRLF line end(s), e.g. `Received: from ...\r\n\tby ...\r\n`. */
  readonly text: string;
}

export interface QueueEnvelope {
  readonly version: 1;
  readonly queueId: string;
  /** Milliseconds since the epoch: when the message arrived (Postfix's arrival_time). */
  readonly arrivalTime: number;
  /** '' = null sender <>. */
  readonly sender: string;
  /** In order; a recipient's index here is its number in the state log. */
  readonly recipients: readonly EnvelopeRecipient[];
  readonly ret: 'FULL' | 'HDRS' | null;
  readonly envid: string | null;
  readonly smtputf8: boolean;
  readonly body: '7BIT' | '8BITMIME' | 'BINARYMIME' | null;
  /** null = local submission (sendmail/pickup, bounce). */
  readonly client: ClientFacts | null;
  /** Message-ID (with angle brackets) for threading bounces; null when the message has none. */
  readonly messageId: string | null;
  /** Byte length of the stored content (the content segment of the file). */
  readonly contentLength: number;
  /** Offset in the stored content where the header section ends (the empty line, or the body). */
  readonly headerEnd: number;
  /** Added header fields, in output order (ascending `at`). */
  readonly inserts: readonly HeaderInsert[];
  /** Size of the message as delivered: contentLength + the inserts' bytes. */
  readonly size: number;
}

type Check = (v: unknown) => boolean;
const isStr: Check = (v) => typeof v === 'string';
const isStrOrNull: Check = (v) => v === null || typeof v === 'string';
const isCount: Check = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A well-formed EnvelopeRecipient record (queue file and maildrop file alike). */
export function isEnvelopeRecipient(v: unknown): v is EnvelopeRecipient {
  if (!isRecord(v) || !isStr(v.address) || !isStrOrNull(v.orcpt)) return false;
  if (v.original !== undefined && !isStr(v.original)) return false;
  const n = v.notify;
  return n === null || n === 'NEVER' || (Array.isArray(n) && n.every(isStr));
}

function checkClient(v: unknown): boolean {
  if (v === null) return true;
  if (!isRecord(v)) return false;
  if (!isStr(v.name) || !isStr(v.addr) || !isCount(v.port) || !isStrOrNull(v.helo) || !isStr(v.protocol)) return false;
  if (!isStrOrNull(v.saslUsername) || !isStr(v.localAddr)) return false;
  const t = v.tls;
  return t === null || (isRecord(t) && isStr(t.protocol) && isStr(t.cipher) && isCount(t.bits) && isCount(t.algBits));
}

/**
 * Check that parsed JSON is a QueueEnvelope (a file that passed the hash check can still come
 * from a buggy or foreign writer). Throws PosternError('corrupt') naming the first bad field.
 */
export function checkEnvelope(v: unknown, where: string): QueueEnvelope {
  const bad = (field: string): never => {
    throw new PosternError('corrupt', `${where}: bad envelope field: ${field}`);
  };
  if (!isRecord(v)) return bad('envelope');
  if (v.version !== 1) bad('version');
  if (!isStr(v.queueId)) bad('queueId');
  if (typeof v.arrivalTime !== 'number' || !Number.isFinite(v.arrivalTime)) bad('arrivalTime');
  if (!isStr(v.sender)) bad('sender');
  if (!Array.isArray(v.recipients) || !v.recipients.every(isEnvelopeRecipient)) bad('recipients');
  if (!(v.ret === null || v.ret === 'FULL' || v.ret === 'HDRS')) bad('ret');
  if (!isStrOrNull(v.envid)) bad('envid');
  if (typeof v.smtputf8 !== 'boolean') bad('smtputf8');
  if (!(v.body === null || v.body === '7BIT' || v.body === '8BITMIME' || v.body === 'BINARYMIME')) bad('body');
  if (!checkClient(v.client)) bad('client');
  if (!isStrOrNull(v.messageId)) bad('messageId');
  if (!isCount(v.contentLength)) bad('contentLength');
  const contentLength = v.contentLength as number;
  if (!isCount(v.headerEnd) || (v.headerEnd as number) > contentLength) bad('headerEnd');
  if (!Array.isArray(v.inserts)) return bad('inserts');
  let last = 0;
  let added = 0;
  for (const ins of v.inserts) {
    if (!isRecord(ins) || !isCount(ins.at) || !isStr(ins.text)) return bad('inserts');
    const at = ins.at as number;
    if (at < last || at > contentLength) bad('inserts');
    last = at;
    added += Buffer.byteLength(ins.text as string);
  }
  if (v.size !== contentLength + added) bad('size');
  return v as unknown as QueueEnvelope;
}

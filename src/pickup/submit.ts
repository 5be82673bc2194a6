/**
 * The enqueue half of `postern sendmail` (Postfix sendmail.c enqueue() + postdrop): read a
 * message from a stream, find its recipients, write a durable maildrop file (./maildrop.ts).
 *
 * Input handling, as Postfix's sendmail:
 *   - lines end at LF; trailing CRs are removed (sendmail_fix_line_endings = always, Postfix's
 *     default) and every line is stored with CRLF; a last line without LF is kept;
 *   - leading `From ` / `>From ` lines (mbox separators) are dropped;
 *   - a line with a single `.` ends the input unless -i / -oi (no dot-unstuffing: `..` stays);
 *   - lines longer than line_length_limit pass in pieces (memory stays bounded); a `.` that is the
 *     tail of a long line never ends the input;
 *   - -t: recipients from To:, Cc:, Bcc: (or Resent-To/Cc/Bcc:) of the primary header section,
 *     added to those on the command line (Postfix >= 2.1). The Bcc: field is removed later by
 *     cleanup (message_drop_headers, default `bcc, content-length, resent-bcc, return-path`).
 *
 * Errors are SubmitError values with the sysexits(3) code sendmail exits with.
 */
import { strerror } from '../log/strerror.js';
import type { EnvelopeRecipient } from '../queue/envelope.js';
import { parseAddressList, RecipientExtractor } from './address.js';
import { type MaildropEnvelope, MaildropWriter } from './maildrop.js';

/** sysexits.h */
export const EX_OK = 0;
export const EX_USAGE = 64;
export const EX_DATAERR = 65;
export const EX_NOINPUT = 66;
export const EX_UNAVAILABLE = 69;
export const EX_SOFTWARE = 70;
export const EX_OSERR = 71;
export const EX_CANTCREAT = 73;
export const EX_IOERR = 74;
export const EX_TEMPFAIL = 75;
export const EX_NOPERM = 77;
export const EX_CONFIG = 78;

/** A failure with the exit status sendmail(1) gives for it. */
export class SubmitError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'SubmitError';
  }
}

export interface SubmitOptions {
  /** queue_directory/maildrop. */
  readonly maildropDir: string;
  /** Internal form as given (login name, -f address); '' = <>. */
  readonly sender: string;
  readonly fullName: string | null;
  /** Command-line recipient arguments, each an address list. */
  readonly recipientArgs: readonly string[];
  /** -t */
  readonly extract: boolean;
  /** A lone "." ends the input (not -i / -oi). */
  readonly dotEnds: boolean;
  readonly notify: readonly string[] | 'NEVER' | null;
  readonly ret: 'FULL' | 'HDRS' | null;
  readonly envid: string | null;
  readonly body: '7BIT' | '8BITMIME' | null;
  readonly smtputf8: boolean;
  /** line_length_limit: longest piece handled at once. */
  readonly line_length_limit: number;
  /** message_size_limit (0 = none). */
  readonly message_size_limit: number;
  /** header_size_limit: longest header field examined by -t. */
  readonly header_size_limit: number;
  /** For error texts: `sender(uid): ...` as Postfix. */
  readonly uid: number;
  readonly now?: number;
}

export interface SubmitResult {
  /** The maildrop file's name. */
  readonly name: string;
  readonly recipients: readonly string[];
  readonly contentLength: number;
}

const LF = 0x0a;
const CR = 0x0d;
const CRLF = Buffer.from('\r\n', 'latin1');
const FROM_RE = /^>*From /;

/**
 * Finds the primary header section in the stored lines and hands each complete header field to a
 * RecipientExtractor. Keeps at most header_size_limit bytes of one field.
 */
class HeaderScanner {
  private field: Buffer[] = [];
  private fieldBytes = 0;
  private line: Buffer[] = [];
  private lineBytes = 0;
  done = false;

  constructor(
    private readonly extractor: RecipientExtractor,
    private readonly limit: number,
  ) {}

  /** A piece of a line; `complete` when the line ends here. */
  push(piece: Buffer, complete: boolean): void {
    if (this.done) return;
    if (this.lineBytes < this.limit) {
      const keep = piece.subarray(0, this.limit - this.lineBytes);
      this.line.push(keep);
      this.lineBytes += keep.length;
    }
    if (complete) this.endLine();
  }

  private endLine(): void {
    const line = Buffer.concat(this.line);
    this.line = [];
    this.lineBytes = 0;
    if (line.length === 0) {
      this.end();
      return;
    }
    const first = line[0]!;
    if ((first === 0x20 || first === 0x09) && this.field.length > 0) {
      if (this.fieldBytes < this.limit) {
        this.field.push(Buffer.from('\n'), line);
        this.fieldBytes += line.length + 1;
      }
      return;
    }
    // RFC 5322 2.2: field-name = 1*(printable ASCII except ":"), then ":".
    const colon = line.indexOf(0x3a);
    let isHeader = colon > 0;
    for (let i = 0; isHeader && i < colon; i++) {
      const c = line[i]!;
      if (c < 0x21 || c > 0x7e) isHeader = false;
    }
    this.flush();
    if (!isHeader) {
      this.end();
      return;
    }
    this.field.push(line);
    this.fieldBytes = line.length;
  }

  private flush(): void {
    if (this.field.length === 0) return;
    const text = Buffer.concat(this.field).toString('utf8');
    this.field = [];
    this.fieldBytes = 0;
    const colon = text.indexOf(':');
    this.extractor.field(text.slice(0, colon).trim(), text.slice(colon + 1));
  }

  /** End of the header section (empty line, a non-header line, or end of input). */
  end(): void {
    if (this.done) return;
    if (this.line.length > 0) {
      this.endLine();
      if (this.done) return;
    }
    this.flush();
    this.done = true;
  }
}

/** The -N notify list; null when malformed (Postfix: "bad -N option value -- ignored"). */
export function parseNotifyOption(value: string): readonly string[] | 'NEVER' | null {
  const words = value
    .split(/[\s,]+/)
    .filter((w) => w !== '')
    .map((w) => w.toUpperCase());
  if (words.length === 0) return null;
  if (words.includes('NEVER')) return words.every((w) => w === 'NEVER') ? 'NEVER' : null;
  const order: readonly string[] = ['SUCCESS', 'FAILURE', 'DELAY'];
  if (!words.every((w) => order.includes(w))) return null;
  return order.filter((k) => words.includes(k));
}

/**
 * Read a message from `input`, write it into maildrop/ and return its name. Throws SubmitError
 * (EX_USAGE when there is no recipient, EX_DATAERR for a message over message_size_limit,
 * EX_TEMPFAIL for a write error); the temporary file is removed on any failure.
 */
export async function submit(input: AsyncIterable<Buffer | string>, o: SubmitOptions): Promise<SubmitResult> {
  const who = `${o.sender}(${o.uid})`;
  let writer: MaildropWriter;
  try {
    writer = await MaildropWriter.create(o.maildropDir, { sizeLimit: o.message_size_limit, ...(o.now !== undefined ? { now: o.now } : {}) });
  } catch (err) {
    throw new SubmitError(EX_TEMPFAIL, `${who}: error writing queue file: ${errText(err)}`);
  }
  const extractor = new RecipientExtractor();
  const headers = o.extract ? new HeaderScanner(extractor, Math.max(o.header_size_limit, 1)) : null;
  const limit = Math.max(o.line_length_limit, 1);

  let skipFrom = true;
  let prevPartial = false;
  let finished = false;
  let cur: Buffer[] = [];
  let curBytes = 0;

  /** One record: a complete line (without its LF) or a piece of a long line. */
  const record = async (raw: Buffer, complete: boolean): Promise<void> => {
    let piece = raw;
    if (skipFrom) {
      if (complete && FROM_RE.test(piece.toString('latin1', 0, Math.min(piece.length, 64)))) return;
      skipFrom = false;
    }
    if (complete) {
      let end = piece.length;
      while (end > 0 && piece[end - 1] === CR) end--;
      piece = piece.subarray(0, end);
      if (o.dotEnds && !prevPartial && piece.length === 1 && piece[0] === 0x2e) {
        finished = true;
        return;
      }
    }
    headers?.push(piece, complete);
    await writer.write(piece);
    if (complete) await writer.write(CRLF);
    prevPartial = !complete;
  };

  try {
    for await (const data of input) {
      const chunk = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let pos = 0;
      while (pos < chunk.length && !finished) {
        const nl = chunk.indexOf(LF, pos);
        const end = nl < 0 ? chunk.length : nl;
        // Keep the current line below `limit` bytes: longer lines go out in pieces.
        let from = pos;
        while (curBytes + (end - from) > limit) {
          const take = limit - curBytes;
          cur.push(chunk.subarray(from, from + take));
          from += take;
          const piece = Buffer.concat(cur);
          cur = [];
          curBytes = 0;
          await record(piece, false);
          if (finished) break;
        }
        if (finished) break;
        cur.push(chunk.subarray(from, end));
        curBytes += end - from;
        if (nl < 0) break;
        const line = Buffer.concat(cur);
        cur = [];
        curBytes = 0;
        await record(line, true);
        pos = nl + 1;
      }
      if (finished) break;
    }
    if (!finished && curBytes > 0) await record(Buffer.concat(cur), true);
    headers?.end();

    const recipients: string[] = [];
    for (const arg of o.recipientArgs) recipients.push(...parseAddressList(arg));
    if (o.extract) recipients.push(...extractor.recipients());
    if (recipients.length === 0) {
      throw new SubmitError(
        EX_USAGE,
        o.extract
          ? `${who}: No recipient addresses found in message header`
          : `${who}: Recipient addresses must be specified on the command line or via the -t option`,
      );
    }
    const envelope: MaildropEnvelope = {
      version: 1,
      time: o.now ?? Date.now(),
      sender: o.sender,
      fullName: o.fullName,
      recipients: recipients.map((address): EnvelopeRecipient => ({ address, notify: o.notify === null || o.notify === 'NEVER' ? o.notify : [...o.notify], orcpt: null })),
      ret: o.ret,
      envid: o.envid,
      smtputf8: o.smtputf8,
      body: o.body,
    };
    const contentLength = writer.contentLength;
    const name = await writer.commit(envelope);
    return { name, recipients, contentLength };
  } catch (err) {
    await writer.abort();
    if (err instanceof SubmitError) throw err;
    if ((err as { code?: unknown }).code === 'too-big') throw new SubmitError(EX_DATAERR, `${who}: message file too big`);
    throw new SubmitError(EX_TEMPFAIL, `${who}: error writing queue file: ${errText(err)}`);
  }
}

function errText(err: unknown): string {
  return strerror(err);
}

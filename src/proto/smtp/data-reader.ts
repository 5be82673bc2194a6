/**
 * The DATA content state machine: RFC 5321 4.1.1.4 (end of mail data) and 4.5.2 (transparency,
 * dot-unstuffing), safe against SMTP smuggling.
 *
 * End of data is ONLY "<CRLF>.<CRLF>" (or ".<CRLF>" as the very first line), whatever the
 * bare-newline policy: "\n.\n", "\r\n.\n", "\n.\r\n" and "\r.\r" never end the message.
 *
 * Line endings (postconf(5) smtpd_forbid_bare_newline, Postfix 3.9): a line ending in a bare LF
 * is accepted and stored as if it ended in CRLF; a lone "." line that ends in a bare LF, or that
 * follows a line ending in a bare LF, is neither the end of data nor content: it is dropped, as
 * Postfix 3.9 does when it requires the standard End-of-DATA sequence. A CR not followed by LF is
 * content (flagged `bareCr`; optionally replaced by a space as cleanup_replace_stray_cr_lf does).
 * "\r\r\n" is a line ending in a bare CR, then CRLF.
 *
 * Reading of the policy values (Postfix 3.9 postconf(5)):
 *   normalize (3.9 default) — accept bare-LF lines, treat them as CRLF, require CRLF.CRLF;
 *   note                    — as normalize, and the session logs "notes=bare_lf" on disconnect;
 *   yes                     — compatibility alias for normalize (3.9; in 3.7.9/3.8.4 "yes"
 *                             meant "reply Error: bare <LF> received and disconnect");
 *   reject                  — as normalize, but the session replies
 *                             "<smtpd_forbid_bare_newline_reject_code> 5.5.2 <myhostname> Error:
 *                             bare <LF> received" once data ends (see bareLfReply());
 *   no                      — Postfix < 3.9 would also accept "\n.\n" as end of data: Postern
 *                             never does (smuggling); otherwise as normalize.
 * So the policy changes only what the session does with `bareLf` (bareNewlineAction()); the
 * bytes the reader produces are the same for every policy.
 *
 * Memory: the reader keeps at most two unprocessed bytes between calls (a "." or ".\r" at the
 * start of a line, or a trailing CR). Content is returned as it arrives; when nothing needs to
 * change it is a subarray of the pushed chunk (no copy), so callers must not reuse chunk memory.
 */
import { isAscii } from 'node:buffer';
import { reply, type Reply } from './reply.js';

export type BareNewlinePolicy = 'normalize' | 'note' | 'yes' | 'reject' | 'no';

export interface DataResult {
  /** Unstuffed message bytes with CRLF line ends (may share memory with the pushed chunk). */
  readonly content: Buffer;
  /** The end-of-data line was seen. */
  readonly done: boolean;
  /** Bytes after the end-of-data line (pipelined commands); empty unless done. */
  readonly rest: Buffer;
}

export interface DataReaderOptions {
  readonly bareNewline: BareNewlinePolicy;
  /**
   * 'data' (default): DATA content, dot-unstuffing and end-of-data detection.
   * 'bdat': BDAT (RFC 3030) text content: the same line-ending normalization and counters, no
   * dot handling, never done; call end() after the LAST chunk. (BODY=BINARYMIME content must not
   * go through a reader at all: it is binary.)
   */
  readonly mode?: 'data' | 'bdat';
  /** Replace each CR that is not part of CRLF with a space (cleanup_replace_stray_cr_lf). Default false. */
  readonly replaceStrayCr?: boolean;
}

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');
const SPACE = Buffer.from(' ');

/** What the session does when a message had bare-LF lines. */
export function bareNewlineAction(policy: BareNewlinePolicy): 'accept' | 'note' | 'reject' {
  if (policy === 'reject') return 'reject';
  if (policy === 'note') return 'note';
  return 'accept';
}

/** Postfix 3.9: "%d 5.5.2 %s Error: bare <LF> received" (code = smtpd_forbid_bare_newline_reject_code). */
export function bareLfReply(code: number, myhostname: string): Reply {
  return reply(code, '5.5.2', `${myhostname} Error: bare <LF> received`);
}

export class DataReader {
  readonly policy: BareNewlinePolicy;
  readonly #replaceStrayCr: boolean;
  readonly #bdat: boolean;

  // Counters (see getters).
  #bytes = 0;
  #wireBytes = 0;
  #lines = 0;
  #longestLine = 0;
  #bareLf = false;
  #bareCr = false;
  #nul = false;
  #eightBit = false;

  // Parser state at the position just before #held.
  #atLineStart = true;
  #prevBareLf = false;
  #lineLen = 0;
  #held: Buffer = EMPTY;
  #done = false;

  constructor(opts: DataReaderOptions) {
    this.policy = opts.bareNewline;
    this.#replaceStrayCr = opts.replaceStrayCr ?? false;
    this.#bdat = opts.mode === 'bdat';
  }

  /** Content bytes produced so far (unstuffed, CRLF line ends): what message_size_limit counts. */
  get bytes(): number {
    return this.#bytes;
  }
  /** Bytes consumed from the wire, including the end-of-data line. */
  get wireBytes(): number {
    return this.#wireBytes;
  }
  /** Lines received (including dropped lone-dot lines, excluding the end-of-data line). */
  get lines(): number {
    return this.#lines;
  }
  /** Longest line as received, in octets, without its CRLF or LF (RFC 5321 4.5.3.1.6 counts +2). */
  get longestLine(): number {
    return this.#longestLine;
  }
  /** Some line ended in a bare LF. */
  get bareLf(): boolean {
    return this.#bareLf;
  }
  /** Some CR was not followed by LF. */
  get bareCr(): boolean {
    return this.#bareCr;
  }
  /** Some content byte was NUL. */
  get nul(): boolean {
    return this.#nul;
  }
  /** Some content byte had the high bit set (needs 8BITMIME/BINARYMIME, RFC 6152). */
  get eightBit(): boolean {
    return this.#eightBit;
  }
  /** The end-of-data line has been seen. */
  get done(): boolean {
    return this.#done;
  }

  push(chunk: Buffer): DataResult {
    if (this.#done) return { content: EMPTY, done: true, rest: chunk };
    const b = this.#held.length === 0 ? chunk : Buffer.concat([this.#held, chunk]);
    this.#held = EMPTY;
    const len = b.length;
    // Hot path (see the file comment): no closures here, so every variable stays a register.
    const out: Buffer[] = [];
    let seg = 0; // start of the input not yet emitted (unchanged bytes are emitted as subarrays)
    let pos = 0;
    let end = len; // end of the consumed part
    let done = false;
    let atLineStart = this.#atLineStart;
    let prevBareLf = this.#prevBareLf;
    let lineLen = this.#lineLen;
    let longest = this.#longestLine;
    let lines = 0;
    let bareLf = false;
    const dots = !this.#bdat;
    const replaceCr = this.#replaceStrayCr;
    // Next CR at or after pos; -1 = not searched yet; len + 1 = none left. Once a bare CR has
    // been seen and nothing is replaced, there is no need to look for more.
    let nextCr = replaceCr || !this.#bareCr ? -1 : len + 1;

    while (pos < len) {
      if (atLineStart && dots && b[pos] === DOT) {
        // RFC 5321 4.5.2: a line starting with "." — end of data, or a stuffed dot.
        if (pos + 1 >= len) {
          end = pos;
          break;
        }
        const c1 = b[pos + 1];
        if (c1 === LF) {
          // "." + bare LF: never the end (smuggling); dropped as Postfix 3.9 does.
          if (pos > seg) out.push(b.subarray(seg, pos));
          seg = pos + 2;
          bareLf = true;
          prevBareLf = true;
          lines++;
          if (longest < 1) longest = 1;
          pos += 2;
          continue;
        }
        if (c1 === CR) {
          if (pos + 2 >= len) {
            end = pos;
            break;
          }
          if (b[pos + 2] === LF) {
            if (pos > seg) out.push(b.subarray(seg, pos));
            seg = pos + 3;
            if (!prevBareLf) {
              // "<CRLF>.<CRLF>" (or ".<CRLF>" first): end of data.
              end = pos + 3;
              done = true;
              break;
            }
            // "\n.\r\n": never the end; dropped as Postfix 3.9 does.
            prevBareLf = false;
            lines++;
            if (longest < 1) longest = 1;
            pos += 3;
            continue;
          }
        }
        // Stuffed dot: drop it, the rest of the line is content.
        if (pos > seg) out.push(b.subarray(seg, pos));
        seg = pos + 1;
        lineLen = 1;
        pos += 1;
      }
      atLineStart = false;
      const lf = b.indexOf(LF, pos);
      const crlf = lf > pos && b[lf - 1] === CR;
      // Content of this line in this chunk: up to the CRLF/LF, or to the end of the chunk minus
      // a trailing CR (held back: it may start a CRLF).
      const contentEnd = lf < 0 ? (b[len - 1] === CR ? len - 1 : len) : crlf ? lf - 1 : lf;
      if (nextCr < pos) {
        nextCr = b.indexOf(CR, pos);
        if (nextCr < 0) nextCr = len + 1;
      }
      if (nextCr < contentEnd) {
        // Stray CR(s): content, flagged, optionally replaced by a space.
        this.#bareCr = true;
        if (!replaceCr) nextCr = len + 1;
        while (nextCr < contentEnd) {
          if (nextCr > seg) out.push(b.subarray(seg, nextCr));
          out.push(SPACE);
          seg = nextCr + 1;
          nextCr = b.indexOf(CR, nextCr + 1);
          if (nextCr < 0) nextCr = len + 1;
        }
      }
      lineLen += contentEnd - pos;
      if (lf < 0) {
        end = contentEnd;
        pos = contentEnd;
        break;
      }
      if (lineLen > longest) longest = lineLen;
      lines++;
      if (!crlf) {
        // Bare LF: stored as CRLF (smtpd_forbid_bare_newline normalize).
        bareLf = true;
        if (lf > seg) out.push(b.subarray(seg, lf));
        out.push(CRLF);
        seg = lf + 1;
      }
      prevBareLf = !crlf;
      lineLen = 0;
      atLineStart = true;
      pos = lf + 1;
    }
    if (!done && end > seg) out.push(b.subarray(seg, end));

    if (end < len && !done) this.#held = Buffer.from(b.subarray(end));
    const consumed = end === len ? b : b.subarray(0, end);
    if (!this.#nul && consumed.indexOf(0) >= 0) this.#nul = true;
    if (!this.#eightBit && !isAscii(consumed)) this.#eightBit = true;
    if (bareLf) this.#bareLf = true;

    this.#atLineStart = atLineStart;
    this.#prevBareLf = prevBareLf;
    this.#lineLen = lineLen;
    this.#longestLine = Math.max(longest, lineLen);
    this.#lines += lines;
    this.#wireBytes += end;
    this.#done = done;

    const content = out.length === 0 ? EMPTY : out.length === 1 ? out[0]! : Buffer.concat(out);
    this.#bytes += content.length;
    return { content, done, rest: done ? b.subarray(end) : EMPTY };
  }

  /**
   * BDAT mode, after the LAST chunk: the content still held back (a trailing CR, which is then a
   * bare CR), and a CRLF when the content does not end with a line end — Postfix stores a missing
   * final line end as a complete line. Returns EMPTY in DATA mode (DATA content ends only with
   * its end-of-data line).
   */
  end(): Buffer {
    if (!this.#bdat || this.#done) return EMPTY;
    this.#done = true;
    const out: Buffer[] = [];
    if (this.#held.length > 0) {
      // Only a lone trailing CR is ever held in BDAT mode.
      this.#bareCr = true;
      out.push(this.#replaceStrayCr ? SPACE : this.#held);
      this.#wireBytes += this.#held.length;
      this.#lineLen += this.#held.length;
      this.#held = EMPTY;
    }
    if (!this.#atLineStart) {
      out.push(CRLF);
      this.#lines++;
      this.#longestLine = Math.max(this.#longestLine, this.#lineLen);
      this.#lineLen = 0;
      this.#atLineStart = true;
    }
    const content = out.length === 0 ? EMPTY : Buffer.concat(out);
    this.#bytes += content.length;
    return content;
  }
}

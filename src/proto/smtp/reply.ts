/**
 * SMTP replies as values (DESIGN invariant 4): a `Reply` is the only thing an SMTP server writes
 * to its socket, and a `ReplyError` carries one out of a command handler.
 *
 * RFC 5321 4.2 (reply syntax, multiline replies), RFC 2034 / RFC 3463 (enhanced status codes).
 * Like Postfix's smtpd, the enhanced code is repeated on every line of a multiline reply
 * (RFC 2034 4: "each line of a multiline reply").
 */
import { PosternError } from '../../errors.js';

export interface Reply {
  readonly code: number;
  readonly enhanced: string | null;
  readonly lines: readonly string[];
}

/** RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39. */
function validCode(code: number): boolean {
  if (!Number.isInteger(code) || code < 200 || code > 599) return false;
  return Math.floor(code / 10) % 10 <= 5;
}

/** RFC 3463 2: class "." subject "." detail; subject and detail 1-3 digits, no leading zeros. */
const ENHANCED_RE = /^([245])\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

/**
 * Turn free text into reply lines that cannot break the wire format: text is split at line
 * breaks (CRLF, CR or LF, as Postfix splits at "\r\n"), and any other control character or DEL
 * becomes '?' (like Postfix's printable()). 8-bit text is kept (RFC 6531 3.7.4 allows UTF-8 in
 * reply text).
 */
function cleanLines(lines: readonly string[]): string[] {
  const out: string[] = [];
  for (const line of lines) {
    for (const part of line.split(/\r\n|\r|\n/)) {
      out.push(part.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '?'));
    }
  }
  if (out.length === 0) out.push('');
  return out;
}

/**
 * Build a reply. `enhanced` is an RFC 3463 code whose class matches the reply code's first digit
 * (a 3xx reply or a reply without ENHANCEDSTATUSCODES semantics passes null).
 * Throws PosternError('reply') on a malformed code: that is a programming error, not peer input.
 */
export function reply(code: number, enhanced: string | null, ...lines: string[]): Reply {
  if (!validCode(code)) throw new PosternError('reply', `invalid SMTP reply code ${code}`);
  if (enhanced !== null) {
    const m = ENHANCED_RE.exec(enhanced);
    if (!m || Number(m[1]) !== Math.floor(code / 100)) {
      throw new PosternError('reply', `enhanced status code ${enhanced} does not fit reply code ${code}`);
    }
  }
  return Object.freeze({ code, enhanced, lines: Object.freeze(cleanLines(lines)) });
}

/** The reply's lines as sent, without CRLF: "250-2.0.0 first", ..., "250 2.0.0 last". */
export function replyLines(r: Reply): string[] {
  // Cleaned again: a Reply may be an object literal that did not come from reply().
  const lines = cleanLines(r.lines);
  return lines.map((text, i) => {
    const sep = i < lines.length - 1 ? '-' : ' ';
    let s = String(r.code) + sep;
    if (r.enhanced !== null) s += text === '' ? r.enhanced : `${r.enhanced} ${text}`;
    else s += text;
    // "250 " with no text at all: RFC 5321 4.2 allows the code alone.
    return s.endsWith(' ') && s.length === 4 ? s.slice(0, 3) : s;
  });
}

/** Wire form: "250-first\r\n250 last\r\n", enhanced code on every line. */
export function formatReply(r: Reply): string {
  return replyLines(r).join('\r\n') + '\r\n';
}

/**
 * One-line text for log records, as Postfix logs a reply: "554 5.7.1 <r>: Relay access denied".
 * Lines of a multiline reply are joined with a space.
 */
export function replyText(r: Reply): string {
  const head = r.enhanced === null ? String(r.code) : `${r.code} ${r.enhanced}`;
  const text = r.lines.join(' ');
  return text === '' ? head : `${head} ${text}`;
}

/** 2yz. */
export function isPositive(r: Reply): boolean {
  return r.code < 300;
}
/** 4yz: transient negative completion (RFC 5321 4.2.1). */
export function isTransient(r: Reply): boolean {
  return r.code >= 400 && r.code < 500;
}
/** 5yz: permanent negative completion (RFC 5321 4.2.1). */
export function isPermanent(r: Reply): boolean {
  return r.code >= 500;
}

/**
 * postconf(5) soft_bounce: a 5xx reply becomes 4xx, and its enhanced code 5.x.y becomes 4.x.y,
 * as Postfix's smtpd_chat_reply() does. Other replies are returned unchanged.
 */
export function softBounce(r: Reply): Reply {
  if (r.code < 500) return r;
  const enhanced = r.enhanced === null ? null : '4' + r.enhanced.slice(1);
  return Object.freeze({ code: r.code - 100, enhanced, lines: r.lines });
}

/** A reply carried out of a command handler; caught at the command boundary and sent. */
export class ReplyError extends Error {
  readonly reply: Reply;
  constructor(reply: Reply) {
    super(replyText(reply));
    this.name = 'ReplyError';
    this.reply = reply;
  }
}

/** Shorthand: throw a ReplyError for reply(code, enhanced, ...lines). */
export function replyError(code: number, enhanced: string | null, ...lines: string[]): ReplyError {
  return new ReplyError(reply(code, enhanced, ...lines));
}

/**
 * The Received: header smtpd prepends (Postfix smtpd.c common_pre_message_handling()), built only
 * from sanitized values: the HELO name after printable()+neuter(), the verified client name, the
 * socket's address, our own name, the queue id, and a recipient quoted as RFC 5322 requires.
 * Nothing the client sent can add a line or a header (RFC 5321 4.4).
 */
import { mailDate } from '../cleanup/headers.js';

/** Characters Postfix replaces in a stored HELO name (smtpd.c NEUTER_CHARACTERS). */
const NEUTER = new Set([' ', '<', '>', '(', ')', '\\', '"', ';', '@']);

/**
 * Postfix printable(s, '?') then neuter(s, NEUTER_CHARACTERS, '?'): controls, DEL, bytes that are
 * not UTF-8 and the characters above become '?'. `s` is the command argument as decoded text.
 */
export function sanitizeHelo(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || c === 0x7f || ch === '\ufffd' || (c >= 0x80 && c < 0xa0)) out += '?';
    else if (NEUTER.has(ch)) out += '?';
    else out += ch;
  }
  return out;
}

/** Postfix printable(s, '?'): controls and DEL become '?' (for log lines quoting the peer). */
export function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, '?');
}

const ATEXT = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\uffff]+$/;

/** Postfix quote_822_local(): the local part as a dot-atom, else as a quoted string. */
export function quoteLocal(address: string): string {
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  const rest = at < 0 ? '' : address.slice(at);
  const isDotAtom = local.length > 0 && local.split('.').every((p) => ATEXT.test(p));
  if (isDotAtom) return address;
  return `"${local.replace(/(["\\])/g, '\\$1')}"${rest}`;
}

/**
 * Postfix comment_sanitize(): text that is safe inside an RFC 5322 comment: controls become '?',
 * backslashes and parentheses that would end or nest the comment are escaped.
 */
export function commentSanitize(s: string): string {
  let depth = 0;
  let out = '';
  for (const ch of printable(s)) {
    if (ch === '\\') out += '\\\\';
    else if (ch === '(') {
      depth++;
      out += ch;
    } else if (ch === ')') {
      if (depth > 0) {
        depth--;
        out += ch;
      } else out += '\\)';
    } else out += ch;
  }
  return out + ')'.repeat(depth);
}

export interface ReceivedFacts {
  /** Sanitized HELO name, or null when the client sent none. */
  readonly helo: string | null;
  readonly clientName: string;
  /** `192.0.2.1` or `IPv6:2001:db8::1`. */
  readonly rfcAddr: string;
  /** Lines of the `(using TLS...)` clause, each without leading tab; empty when not included. */
  readonly tlsLines: readonly string[];
  readonly myhostname: string;
  readonly mailName: string;
  /** smtpd_sasl_authenticated_header = yes: the SASL login, shown as `(Authenticated sender: x)`. */
  readonly authenticatedSender?: string | null;
  /** SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP, UTF8SMTPS, ... (RFC 3848) */
  readonly withProtocol: string;
  readonly queueId: string;
  /** The only recipient, or null when there are several. */
  readonly recipient: string | null;
  readonly date: Date;
}

/** The header as lines (first `Received: ...`, the rest start with a tab). */
export function receivedHeader(f: ReceivedFacts): string[] {
  const lines: string[] = [`Received: from ${f.helo ?? f.clientName} (${f.clientName} [${f.rfcAddr}])`];
  for (const t of f.tlsLines) lines.push(`\t${t}`);
  if (f.authenticatedSender) lines.push(`\t(Authenticated sender: ${commentSanitize(f.authenticatedSender)})`);
  if (f.recipient !== null) {
    lines.push(`\tby ${f.myhostname} (${f.mailName}) with ${f.withProtocol} id ${f.queueId}`);
    lines.push(`\tfor <${quoteLocal(f.recipient)}>; ${mailDate(f.date.getTime())}`);
  } else {
    lines.push(`\tby ${f.myhostname} (${f.mailName}) with ${f.withProtocol} id ${f.queueId};`);
    lines.push(`\t${mailDate(f.date.getTime())}`);
  }
  return lines;
}

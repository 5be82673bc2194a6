/**
 * The Received: header smtpd prepends (Postfix smtpd.c common_pre_message_handling()), built only
 * from sanitized values: the HELO name after printable()+neuter(), the verified client name, the
 * socket's address, our own name, the queue id, and a recipient quoted as RFC 5322 requires.
 * Nothing the client sent can add a line or a header (RFC 5321 4.4).
 */

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

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function zoneName(d: Date): string {
  try {
    const parts = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(d);
    const z = parts.find((p) => p.type === 'timeZoneName')?.value ?? 'UTC';
    return z === 'GMT' && d.getTimezoneOffset() === 0 ? 'UTC' : z;
  } catch {
    return 'UTC';
  }
}

/** RFC 5322 date as Postfix's mail_date(): `Tue,  5 Nov 2025 12:17:11 +0100 (CET)` (day space-padded). */
export function mailDate(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const a = Math.abs(off);
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return (
    `${DAYS[d.getDay()]}, ${String(d.getDate()).padStart(2, ' ')} ${MONTHS[d.getMonth()]} ${d.getFullYear()} ` +
    `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${sign}${p2(Math.floor(a / 60))}${p2(a % 60)} (${zoneName(d)})`
  );
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
  /** SMTP, ESMTP, ESMTPS, UTF8SMTP, UTF8SMTPS, ... */
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
  if (f.recipient !== null) {
    lines.push(`\tby ${f.myhostname} (${f.mailName}) with ${f.withProtocol} id ${f.queueId}`);
    lines.push(`\tfor <${quoteLocal(f.recipient)}>; ${mailDate(f.date)}`);
  } else {
    lines.push(`\tby ${f.myhostname} (${f.mailName}) with ${f.withProtocol} id ${f.queueId};`);
    lines.push(`\t${mailDate(f.date)}`);
  }
  return lines;
}

/**
 * Postfix's log line, byte for byte: `Mon DD HH:MM:SS host syslog_name/service[N]: [severity: ]text`.
 *
 * Source of truth: Postfix 3.7 `util/msg_logger.c` (the `maillog_file` writer): the time stamp is
 * `strftime("%b %d %H:%M:%S ")` in local time — the day is ZERO-padded (`Nov 05`), unlike
 * traditional syslog's `Nov  5`; both forms are read by pflogsumm (`(...) {1,2}(\d{1,2})`) and
 * fail2ban's date detector. The host is the first label of myhostname; info lines carry no
 * severity word, the others `warning: `, `error: `, `fatal: `, `panic: `. The text is at most
 * 2000 bytes (MSG_LOGGER_RECLEN) and non-printable characters become `?` (`util/printable.c`),
 * so a peer can never start a new log line with a CR/LF in what it sent.
 */

export type Severity = 'info' | 'warning' | 'error' | 'fatal' | 'panic';

/** Postfix truncates the message text to this many bytes (msg_logger.c MSG_LOGGER_RECLEN). */
export const MSG_LOGGER_RECLEN = 2000;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** `strftime("%b %d %H:%M:%S")` in the process's local time zone (TZ), C locale month names. */
export function formatTimestamp(d: Date): string {
  return `${MONTHS[d.getMonth()]} ${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** The host field: myhostname up to its first dot (msg_logger.c uses `strcspn(hostname, ".")`). */
export function hostLabel(myhostname: string): string {
  const dot = myhostname.indexOf('.');
  return dot < 0 ? myhostname : myhostname.slice(0, dot);
}

// C0 controls, DEL, C1 controls, and unpaired UTF-16 surrogates (not encodable as UTF-8).
const UNPRINTABLE = /[\x00-\x1f\x7f-\x9f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * Postfix's `printable(text, '?')` for a UTF-8 system: every control character (CR, LF, TAB, ...)
 * and every invalid sequence becomes `?`; then the 2000-byte cap, never cutting a character.
 */
export function printable(text: string): string {
  let s = text.replace(UNPRINTABLE, '?');
  if (s.length > MSG_LOGGER_RECLEN / 4 && Buffer.byteLength(s) > MSG_LOGGER_RECLEN) {
    const buf = Buffer.from(s);
    let cut = MSG_LOGGER_RECLEN;
    // Back up over UTF-8 continuation bytes (10xxxxxx) so the cut falls before a lead byte.
    while (cut > 0 && (buf[cut]! & 0xc0) === 0x80) cut--;
    s = buf.subarray(0, cut).toString('utf8');
  }
  return s;
}

/**
 * One complete line without the newline. `tag` is `syslog_name/service` (`postfix/smtpd`,
 * `postfix/submission/smtpd`), `id` fills the `[N]` slot.
 */
export function formatLine(stamp: string, host: string, tag: string, id: number, severity: Severity, text: string): string {
  const body = printable(text);
  return severity === 'info' ? `${stamp} ${host} ${tag}[${id}]: ${body}` : `${stamp} ${host} ${tag}[${id}]: ${severity}: ${body}`;
}

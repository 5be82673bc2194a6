/**
 * The SMTP session transcript and the postmaster notice made from it (Postfix smtpd_chat.c
 * smtp_chat_append(), smtpd_chat_notify(); smtpd.c chat_reset(), state->error_mask).
 *
 * While notify_classes names any class, a session keeps every command line it reads (`In:  `)
 * and every reply line it sends (`Out: `), greeting included; message content is not kept. Each
 * error reply also notes its class (mail_error.c): `policy` (a restriction rejected, a limit was
 * hit), `protocol` (syntax or sequence error, unknown command), `resource` (452 4.3.1
 * Insufficient system storage, 451 4.3.0 queue file write error), `software` (451 4.3.5 Server
 * configuration error, TLS unavailable), `bounce` (User unknown, message too big, too many hops),
 * `data` (a lookup table failed). A message accepted with 250 forgives the errors before it.
 *
 * At HELO, EHLO, RSET and after each message, a transcript longer than
 * smtpd_history_flush_threshold lines is flushed; at the end of the session it always is. A
 * flushed transcript with an error of a class in notify_classes becomes a notice to
 * error_notice_recipient (to bounce_notice_recipient when a `bounce` error is among them) from
 * double-bounce@$myhostname, laid out by composeTranscriptNotice().
 *
 * Differences from Postfix 3.7, on purpose: an AUTH command keeps its mechanism but its initial
 * response, and every SASL response line after a 334 challenge, are replaced by `[hidden]`
 * (Postfix 3.7 records them as sent, base64 credentials included: CONVENTIONS, never keep AUTH
 * payloads); and a transcript that grows past MAX_TRANSCRIPT_BYTES is flushed then, as at a
 * threshold, so its memory stays bounded whatever a session sends (DESIGN invariant 3).
 */
import { lineWrap } from '../bounce/index.js';

/** Postfix's error classes (mail_error.h), the names notify_classes takes. */
export type MailErrorClass = 'bounce' | '2bounce' | 'data' | 'delay' | 'policy' | 'protocol' | 'resource' | 'software';

/** What AUTH payloads are replaced with in a transcript. */
export const HIDDEN = '[hidden]';

/** The transcript bytes past which it is flushed at once (100 lines of 2 KiB fit below). */
export const MAX_TRANSCRIPT_BYTES = 256 * 1024;

/** A flushed transcript that is to be mailed to the postmaster. */
export interface TranscriptNotice {
  readonly lines: readonly string[];
  readonly errors: ReadonlySet<MailErrorClass>;
  /** Why the session ended early (`lost connection`, `timeout`, `too many errors`), or null. */
  readonly reason: string | null;
}

export class Transcript {
  /** Postfix state->history; null when nothing was recorded since the last flush. */
  private history: string[] | null = null;
  private bytes = 0;
  /** Postfix state->error_mask. */
  private readonly errors = new Set<MailErrorClass>();
  /** Postfix state->notify_mask. */
  private readonly notify: ReadonlySet<string>;

  constructor(notify_classes: readonly string[]) {
    this.notify = new Set(notify_classes.map((c) => c.toLowerCase()));
  }

  /** smtp_chat_append(): nothing is kept when notify_classes is empty. */
  private append(direction: string, text: string): void {
    if (this.notify.size === 0) return;
    const line = direction + text;
    if (this.history === null) this.history = [];
    this.history.push(line);
    this.bytes += line.length;
  }

  /** A line read from the client (smtpd_chat_query()). */
  input(text: string): void {
    this.append('In:  ', text);
  }

  /** One line of a reply as sent (smtpd_chat_reply(), after soft_bounce and the reject footer). */
  output(line: string): void {
    this.append('Out: ', line);
  }

  /** `state->error_mask |= class`. */
  error(c: MailErrorClass): void {
    this.errors.add(c);
  }

  /** A message was accepted: earlier errors are forgiven (smtpd.c `state->error_mask = 0`). */
  forgive(): void {
    this.errors.clear();
  }

  /** The transcript grew past MAX_TRANSCRIPT_BYTES: it must be flushed now. */
  get full(): boolean {
    return this.bytes > MAX_TRANSCRIPT_BYTES;
  }

  /**
   * chat_reset(): when more than `threshold` lines were kept, the transcript and the errors are
   * reset, and returned when one of the errors is of a class in notify_classes.
   */
  reset(threshold: number, reason: string | null): TranscriptNotice | null {
    const h = this.history;
    if (h === null || h.length <= threshold) return null;
    const hit = [...this.errors].some((c) => this.notify.has(c));
    const notice = hit ? { lines: h, errors: new Set(this.errors), reason } : null;
    this.errors.clear();
    this.history = null;
    this.bytes = 0;
    return notice;
  }
}

/**
 * Postfix printable(): control characters, DEL and (without smtputf8_enable, util_utf8_enable)
 * non-ASCII characters become `?`; U+FFFD (what an invalid UTF-8 sequence decoded to) too.
 */
export function printable(text: string, utf8: boolean): string {
  return text.replace(/[\x00-\x1f\x7f]|[^\x00-\x7f]/gu, (ch) => (utf8 && ch !== '\ufffd' && ch.codePointAt(0)! > 0x7f ? ch : '?'));
}

export interface NoticeContext {
  readonly myhostname: string;
  readonly myorigin: string;
  readonly mail_name: string;
  readonly error_notice_recipient: string;
  readonly smtputf8_enable: boolean;
  /** The client as logged, `name[addr]` (with `:port` under smtpd_client_port_logging). */
  readonly namaddr: string;
}

/**
 * The notice after the Date: field (smtpd_chat_notify(); postMail() adds Received: and Date:): From:
 * and To: as header_from_format = standard writes them, Subject: `$mail_name SMTP server: errors
 * from name[addr]`, no MIME header fields; the body "Transcript of session follows.", each line
 * printable and wrapped at 78 columns (continuations indented 4 more), each with one leading space,
 * "Session aborted, reason: ..." when the session ended early, and "For other details, see the
 * local mail logfile". CRLF line ends.
 */
export function composeTranscriptNotice(n: TranscriptNotice, c: NoticeContext): Buffer {
  const qualify = (a: string): string => (a.includes('@') ? a : `${a}@${c.myorigin}`);
  const out = [
    `From: Mail Delivery System <MAILER-DAEMON@${c.myhostname}>`,
    // Cleanup rewrites the bare `postmaster` of Postfix's To: header to postmaster@$myorigin.
    `To: Postmaster <${qualify(c.error_notice_recipient)}>`,
    `Subject: ${c.mail_name} SMTP server: errors from ${c.namaddr}`,
    '',
    'Transcript of session follows.',
    '',
  ];
  for (const line of n.lines) for (const l of lineWrap(printable(line, c.smtputf8_enable), 78, 4)) out.push(` ${l}`);
  out.push('');
  if (n.reason !== null) out.push(`Session aborted, reason: ${n.reason}`);
  out.push('', 'For other details, see the local mail logfile', '');
  return Buffer.from(out.join('\r\n'), 'utf8');
}

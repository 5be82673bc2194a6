/**
 * One delivery status notification as bytes (RFC 3464 multipart/report; RFC 3462 report type
 * delivery-status), laid out as Postfix's bounce(8) writes it (bounce_notify_util.c):
 *
 *   From, Subject, To, Auto-Submitted (RFC 3834), MIME-Version, Content-Type with the
 *   boundary `QUEUEID.unixtime/myhostname`, Content-Transfer-Encoding
 *   part 1 "Notification": the template text (not in postmaster copies), then one line per
 *        recipient `<rcpt> (expanded from <orig>): reason`, wrapped at 79 columns
 *   part 2 "Delivery report" message/delivery-status: Reporting-MTA, Original-Envelope-Id,
 *        X-Postfix-Queue-ID, X-Postfix-Sender, Arrival-Date; per recipient Final-Recipient,
 *        Original-Recipient (the ORCPT, else the address as received), Action, Status,
 *        Remote-MTA, Diagnostic-Code, Will-Retry-Until (delay notices)
 *   part 3 the original: message/rfc822 with a Return-Path: (RET=FULL, and the message is at most
 *        bounce_size_limit bytes), else text/rfc822-headers with the header section only.
 *
 * postMail() puts Received: and Date: before it (post_mail_init()), cleanup adds Message-Id: and
 * canonicalises nothing else. Lines end in CRLF.
 */
import { mailDate } from '../cleanup/headers.js';
import { type QueueFile, readMessage } from '../queue/file.js';
import type { BounceTemplate, TemplateValues } from './templates.js';
import { expandTemplate } from './templates.js';

export interface NoticeRecipient {
  /** The final recipient (after alias expansion). */
  readonly address: string;
  /** The recipient as the envelope has it. */
  readonly envelopeAddress: string;
  /** RFC 3461 ORCPT as stored (`rfc822;addr`), or null. */
  readonly orcpt: string | null;
  /** RFC 3463 status. */
  readonly status: string;
  /** RFC 3464 2.3.3 action for delivered/relayed/expanded (success notices); failure → failed, delay → delayed. */
  readonly action: string;
  /** Human-readable reason (the text of the log line's parentheses). */
  readonly reason: string;
  readonly remoteMta?: string;
  readonly diagnostic?: string;
}

export interface NoticeOptions extends TemplateValues {
  readonly template: BounceTemplate;
  /** The notice's recipient (To:). */
  readonly to: string;
  readonly postmasterCopy: boolean;
  /** RFC 3461 4.3 RET: the whole message or its headers. */
  readonly ret: 'FULL' | 'HDRS';
  readonly original: QueueFile;
  readonly recipients: readonly NoticeRecipient[];
  /** ms since the epoch: Date:, boundary. */
  readonly now: number;
  readonly myorigin: string;
  /** mail_name (X-Postfix-Queue-ID, Diagnostic-Code: X-Postfix). */
  readonly mail_name: string;
  readonly bounce_size_limit: number;
  /**
   * smtputf8_enable: Postfix's bounce(8) then always declares 8bit (addresses and $myhostname may be
   * UTF-8; bounce_notify_util.c "Fix 20140708"), whatever the original was.
   */
  readonly smtputf8_enable?: boolean;
}

/** Postfix line_wrap(): keep lines under `len` columns, break at blanks, indent continuation lines. */
export function lineWrap(text: string, len = 79, indent = 4): string[] {
  const out: string[] = [];
  let curLen = len;
  let curIndent = 0;
  let start = 0;
  let word = 0;
  const trimEnd = (s: string): string => s.replace(/[ \t]+$/, '');
  for (;;) {
    let nextSpace = word;
    while (nextSpace < text.length && text[nextSpace] !== ' ' && text[nextSpace] !== '\t') nextSpace++;
    if (word > start && nextSpace - start > curLen) {
      out.push(' '.repeat(curIndent) + trimEnd(text.slice(start, word)));
      while (word < text.length && (text[word] === ' ' || text[word] === '\t')) word++;
      if (start === 0) {
        curIndent += indent;
        curLen -= indent;
      }
      start = word;
    }
    if (nextSpace >= text.length) break;
    word = nextSpace + 1;
  }
  out.push(' '.repeat(curIndent) + trimEnd(text.slice(start)));
  return out;
}

/** bounce_log_read(): control and non-ASCII characters in logged text become `?`. */
function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?');
}

/**
 * The original's encoding as Postfix's queue file records it: 8bit for RFC 6152 BODY=8BITMIME or
 * BINARYMIME, SMTPUTF8 or a local submission; 7bit for BODY=7BIT; none when an SMTP client named no
 * BODY (bounce(8) then declares no Content-Transfer-Encoding at all).
 */
export function originalEncoding(qf: QueueFile): '7bit' | '8bit' | 'none' {
  const e = qf.envelope;
  if (e.smtputf8 || e.body === '8BITMIME' || e.body === 'BINARYMIME') return '8bit';
  if (e.body === '7BIT') return '7bit';
  return e.client === null ? '8bit' : 'none';
}

/** The notice as CRLF-terminated bytes from From: on, ready for postMail(). */
export async function composeNotice(o: NoticeOptions): Promise<Buffer> {
  const env = o.original.envelope;
  const t = o.template;
  const enc = o.smtputf8_enable === true ? '8bit' : originalEncoding(o.original);
  const eightBit = enc === '8bit';
  const utf8 = env.smtputf8;
  const boundary = `${env.queueId}.${Math.floor(o.now / 1000)}/${o.myhostname}`;
  const mailName = o.mail_name.replace(/[ \t\r\n()<>@,;:\\".[\]]/g, '-');
  const daemon = `MAILER-DAEMON@${o.myhostname}`;
  const sender = env.sender === '' ? daemon : env.sender;
  const from = t.from.replace(/<MAILER-DAEMON>$/, `<MAILER-DAEMON@${o.myorigin}>`);
  const lines: string[] = [];
  const push = (...l: string[]): void => {
    lines.push(...l);
  };

  push(`From: ${from}`);
  push(`Subject: ${o.postmasterCopy ? t.postmasterSubject : t.subject}`);
  push(`To: ${o.to}`);
  push(`Auto-Submitted: ${o.postmasterCopy ? 'auto-generated' : 'auto-replied'}`);
  push('MIME-Version: 1.0');
  push('Content-Type: multipart/report; report-type=delivery-status;');
  push(`\tboundary="${boundary}"`);
  if (enc !== 'none') push(`Content-Transfer-Encoding: ${enc}`);
  push('', 'This is a MIME-encapsulated message.');

  // Part 1: human-readable.
  push('', `--${boundary}`, 'Content-Description: Notification');
  push(`Content-Type: text/plain; charset=${t.charset.toLowerCase() !== 'us-ascii' ? t.charset : eightBit ? 'utf-8' : 'us-ascii'}`);
  if (eightBit) push(`Content-Transfer-Encoding: ${enc}`);
  push('');
  if (!o.postmasterCopy) push(...expandTemplate(t.text, o));
  for (const r of o.recipients) {
    const orig = r.envelopeAddress !== '' && r.envelopeAddress.toLowerCase() !== r.address.toLowerCase() ? r.envelopeAddress : null;
    const line = orig !== null ? `<${r.address}> (expanded from <${orig}>): ${r.reason}` : `<${r.address}>: ${r.reason}`;
    push('', ...lineWrap(printable(line)));
  }

  // Part 2: machine-readable (RFC 3464 2.2, 2.3).
  push('', `--${boundary}`, 'Content-Description: Delivery report', `Content-Type: message/${utf8 ? 'global-' : ''}delivery-status`);
  if (eightBit && utf8) push(`Content-Transfer-Encoding: ${enc}`);
  push('', `Reporting-MTA: dns; ${o.myhostname}`);
  if (env.envid !== null && env.envid !== '') push(`Original-Envelope-Id: ${env.envid}`);
  push(`X-${mailName}-Queue-ID: ${env.queueId}`);
  const addrType = (a: string): string => (utf8 && /[^\x00-\x7f]/.test(a) ? 'utf-8' : 'rfc822');
  push(`X-${mailName}-Sender: ${addrType(sender)}; ${sender}`);
  push(`Arrival-Date: ${mailDate(env.arrivalTime)}`);
  for (const r of o.recipients) {
    push('', `Final-Recipient: ${addrType(r.address)}; ${r.address}`);
    if (r.orcpt !== null && r.orcpt !== '') push(`Original-Recipient: ${r.orcpt}`);
    else if (r.envelopeAddress !== '') push(`Original-Recipient: ${addrType(r.envelopeAddress)}; ${r.envelopeAddress}`);
    push(`Action: ${t.kind === 'failure' ? 'failed' : t.kind === 'delay' ? 'delayed' : r.action}`);
    push(`Status: ${r.status}`);
    if (r.remoteMta !== undefined && r.remoteMta !== '') push(...lineWrap(printable(`Remote-MTA: dns; ${r.remoteMta}`)));
    if (r.diagnostic !== undefined && r.diagnostic !== '') push(...lineWrap(printable(`Diagnostic-Code: smtp; ${r.diagnostic}`)));
    else push(...lineWrap(printable(`Diagnostic-Code: X-${mailName}; ${r.reason}`)));
    if (t.kind === 'delay') push(`Will-Retry-Until: ${mailDate(env.arrivalTime + o.maximal_queue_lifetime * 1000)}`);
  }

  // Part 3: the original (RFC 3461 4.3 RET; bounce_size_limit keeps MIME intact by sending headers only).
  let headersOnly = o.ret === 'HDRS';
  if (o.bounce_size_limit > 0 && env.size > o.bounce_size_limit) headersOnly = true;
  const undelivered = t.kind === 'failure' || t.kind === 'delay';
  push('', `--${boundary}`, `Content-Description: ${undelivered ? 'Undelivered ' : ''}${headersOnly ? 'Message Headers' : 'Message'}`);
  if (utf8) push(`Content-Type: message/${headersOnly ? 'global-headers' : 'global'}`);
  else push(`Content-Type: ${headersOnly ? 'text/rfc822-headers' : 'message/rfc822'}`);
  if (eightBit) push(`Content-Transfer-Encoding: ${enc}`);
  push('', `Return-Path: <${sender}>`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n`, 'utf8');
  let body: Buffer;
  try {
    body = await readMessage(o.original, { headersOnly });
  } catch {
    body = Buffer.from('\t--- Undelivered message unavailable ---\r\n', 'latin1');
  }
  if (body.length > 0 && body[body.length - 1] !== 0x0a) body = Buffer.concat([body, Buffer.from('\r\n', 'latin1')]);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
  return Buffer.concat([head, body, tail]);
}

/**
 * bounce: delivery status notifications (RFC 3464) as Postfix's bounce(8) sends them.
 *
 * What it does: given a queue file and the recipients to report, decides who gets a notice
 * (bounce_notify_service.c, bounce_warn_service.c, bounce_trace_service.c) and posts each one
 * through cleanup as a local submission (./message.ts lays the message out):
 *   failure  to the sender (null sender `<>`) for recipients with NOTIFY=FAILURE or no NOTIFY,
 *            RET as the sender asked (default FULL, bounce_size_limit); a postmaster copy
 *            (headers only, from double-bounce) when notify_classes has `bounce`. A message from
 *            the null sender gets no bounce: its failure goes to 2bounce_notice_recipient when
 *            notify_classes has `bounce` or `2bounce`, else nowhere. A notice about a message
 *            from the double-bounce sender is dropped with a warning (never a triple bounce).
 *   delay    to the sender for NOTIFY=DELAY or no NOTIFY (headers only); a postmaster copy when
 *            notify_classes has `delay` (to delay_notice_recipient).
 *   success  to the sender for NOTIFY=SUCCESS recipients (headers only).
 * NOTIFY=NEVER recipients are in no sender notice. Logs as `postfix/bounce[pid]`:
 *   `QID: sender non-delivery notification: NEWQID`, `QID: postmaster non-delivery notification:
 *   NEWQID`, `QID: sender delay notification: NEWQID`, `QID: postmaster delay notification:
 *   NEWQID`, `QID: sender delivery status notification: NEWQID`.
 *
 * Data in: a validated QueueFile (read-only) and NoticeRecipient values from qmgr. Out: new
 * queue files via Cleanup (which fires the queue kick). Throws what Cleanup throws (ReplyError
 * 451 4.3.0 on a write error): the caller keeps the recipients and tries again later.
 *
 * main.cf parameters: myhostname, myorigin, mydomain, mail_name, notify_classes,
 * bounce_notice_recipient, 2bounce_notice_recipient, delay_notice_recipient,
 * double_bounce_sender, bounce_size_limit, delay_warning_time, maximal_queue_lifetime.
 */
import { type Cleanup, postMail } from '../cleanup/index.js';
import type { Params } from '../config/types.js';
import type { Log, Logger } from '../log/index.js';
import type { QueueFile } from '../queue/file.js';
import { composeNotice, type NoticeRecipient, originalEncoding } from './message.js';
import { type NoticeKind, TEMPLATES } from './templates.js';

export { composeNotice, lineWrap, type NoticeRecipient, type NoticeOptions, originalEncoding } from './message.js';
export { type BounceTemplate, expandTemplate, type NoticeKind, TEMPLATES } from './templates.js';

/** A recipient to report, with its DSN NOTIFY request (RFC 3461 4.1). */
export interface ReportRecipient extends NoticeRecipient {
  readonly notify: readonly string[] | 'NEVER' | null;
}

export interface PostedNotice {
  readonly queueId: string;
  readonly to: string;
  readonly postmaster: boolean;
}

export interface BounceOptions {
  readonly params: Params;
  readonly log: Log;
  readonly cleanup: Cleanup;
  /** ms since the epoch; default Date.now. */
  readonly clock?: () => number;
  /** syslog_name for the `bounce` logger (default: the Log's). */
  readonly syslog_name?: string;
}

const WORDS: Readonly<Record<NoticeKind, string>> = { failure: 'non-delivery', delay: 'delay', success: 'delivery status' };

function wants(r: ReportRecipient, flag: 'FAILURE' | 'DELAY' | 'SUCCESS'): boolean {
  if (r.notify === 'NEVER') return false;
  if (r.notify === null) return flag !== 'SUCCESS';
  return r.notify.some((n) => n.toUpperCase() === flag);
}

export class Bounce {
  private readonly logger: Logger;
  private readonly clock: () => number;

  constructor(private readonly o: BounceOptions) {
    this.logger = o.log.logger('bounce', o.syslog_name !== undefined ? { syslog_name: o.syslog_name } : {});
    this.clock = o.clock ?? Date.now;
  }

  private get p(): Params {
    return this.o.params;
  }

  /** `double-bounce@$myhostname` (mail_addr_double_bounce()). */
  get doubleBounceAddress(): string {
    return `${this.p.double_bounce_sender}@${this.p.myhostname}`;
  }

  private qualify(address: string): string {
    return address.includes('@') ? address : `${address}@${this.p.myorigin}`;
  }

  /**
   * Send the notices of `kind` about `original` for `recipients`. Returns what was posted (empty
   * when nobody is to be told). Throws when cleanup cannot queue a notice.
   */
  async notify(kind: NoticeKind, original: QueueFile, recipients: readonly ReportRecipient[]): Promise<PostedNotice[]> {
    const env = original.envelope;
    const id = env.queueId;
    const classes = new Set(this.p.notify_classes.map((c) => c.toLowerCase()));
    const posted: PostedNotice[] = [];
    if (recipients.length === 0) return posted;
    const sender = env.sender;
    if (sender !== '' && sender.toLowerCase() === this.doubleBounceAddress.toLowerCase()) {
      if (kind === 'success') this.logger.info(`${id}: not sending trace/success notification for double-bounce message`);
      else this.logger.warning(`${id}: undeliverable postmaster notification discarded`);
      return posted;
    }
    if (sender === '') {
      // A notice about a notice goes to the postmaster, if anywhere (never back to <>).
      let to: string | null = null;
      if (kind === 'failure' && (classes.has('bounce') || classes.has('2bounce'))) to = this.p['2bounce_notice_recipient'];
      else if (kind === 'delay' && classes.has('delay')) to = this.p.delay_notice_recipient;
      else if (kind === 'success' && classes.has('2bounce')) to = this.p['2bounce_notice_recipient'];
      if (to === null) {
        if (kind === 'success') this.logger.info(`${id}: not sending trace/success notification for single-bounce message`);
        return posted;
      }
      const qid = await this.post(kind, original, recipients, to, this.doubleBounceAddress, kind !== 'success', kind === 'success' ? 'HDRS' : 'FULL');
      this.logger.info(`${id}: postmaster ${WORDS[kind]} notification: ${qid}`);
      posted.push({ queueId: qid, to, postmaster: true });
      return posted;
    }
    const flag = kind === 'failure' ? 'FAILURE' : kind === 'delay' ? 'DELAY' : 'SUCCESS';
    const mine = recipients.filter((r) => wants(r, flag));
    if (mine.length > 0) {
      const ret = kind === 'failure' ? (env.ret ?? 'FULL') : 'HDRS';
      const qid = await this.post(kind, original, mine, sender, '', false, ret);
      this.logger.info(`${id}: sender ${WORDS[kind]} notification: ${qid}`);
      posted.push({ queueId: qid, to: sender, postmaster: false });
    }
    const copyTo = kind === 'failure' && classes.has('bounce') ? this.p.bounce_notice_recipient : kind === 'delay' && classes.has('delay') ? this.p.delay_notice_recipient : null;
    if (copyTo !== null) {
      try {
        const qid = await this.post(kind, original, recipients, copyTo, this.doubleBounceAddress, true, 'HDRS');
        this.logger.info(`${id}: postmaster ${WORDS[kind]} notification: ${qid}`);
        posted.push({ queueId: qid, to: copyTo, postmaster: true });
      } catch {
        // Not critical: the sender's notice is queued (bounce_notify_service.c).
        this.logger.warning(`${id}: postmaster notice failed while bouncing to ${sender}`);
      }
    }
    return posted;
  }

  private async post(kind: NoticeKind, original: QueueFile, recipients: readonly ReportRecipient[], to: string, from: string, postmasterCopy: boolean, ret: 'FULL' | 'HDRS'): Promise<string> {
    const p = this.p;
    const now = this.clock();
    const content = await composeNotice({
      template: TEMPLATES[kind],
      // Postfix writes the bare notice recipient and cleanup qualifies the header (the envelope
      // recipient keeps the bare name as its original recipient: postMail()).
      to: this.qualify(to),
      postmasterCopy,
      ret,
      original,
      recipients,
      now,
      myhostname: p.myhostname,
      myorigin: p.myorigin,
      mydomain: p.mydomain,
      mail_name: p.mail_name,
      bounce_size_limit: p.bounce_size_limit,
      smtputf8_enable: p.smtputf8_enable,
      delay_warning_time: p.delay_warning_time,
      maximal_queue_lifetime: p.maximal_queue_lifetime,
    });
    const eightBit = p.smtputf8_enable || originalEncoding(original) === '8bit';
    return postMail(this.o.cleanup, { sender: from, recipient: to, content, now, smtputf8: original.envelope.smtputf8, body: eightBit ? '8BITMIME' : '7BIT' });
  }
}

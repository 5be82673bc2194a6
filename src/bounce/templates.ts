/**
 * The built-in bounce templates (bounce(5)): header fields and the human-readable text of the
 * three notices, with Postfix 3.7's wording (Postfix src/bounce/bounce_templates.c, as printed by
 * `postconf -b`). `$myhostname`, `$mydomain`, `$delay_warning_time_<unit>` and
 * `$maximal_queue_lifetime_<unit>` (units: seconds, minutes, hours, days, weeks) are expanded.
 */

export type NoticeKind = 'failure' | 'delay' | 'success';

export interface BounceTemplate {
  readonly kind: NoticeKind;
  readonly charset: string;
  readonly from: string;
  readonly subject: string;
  readonly postmasterSubject: string;
  /** The text, one array element per line. */
  readonly text: readonly string[];
}

const CLOSING = '                   The mail system';
const HELP = ['For further assistance, please send mail to postmaster.', '', 'If you do so, please include this problem report. You can', 'delete your own text from the attached returned message.'];

export const TEMPLATES: Readonly<Record<NoticeKind, BounceTemplate>> = {
  failure: {
    kind: 'failure',
    charset: 'us-ascii',
    from: 'Mail Delivery System <MAILER-DAEMON>',
    subject: 'Undelivered Mail Returned to Sender',
    postmasterSubject: 'Postmaster Copy: Undelivered Mail',
    text: [
      'This is the mail system at host $myhostname.',
      '',
      "I'm sorry to have to inform you that your message could not",
      "be delivered to one or more recipients. It's attached below.",
      '',
      ...HELP,
      '',
      CLOSING,
    ],
  },
  delay: {
    kind: 'delay',
    charset: 'us-ascii',
    from: 'Mail Delivery System <MAILER-DAEMON>',
    subject: 'Delayed Mail (still being retried)',
    postmasterSubject: 'Postmaster Warning: Delayed Mail',
    text: [
      'This is the mail system at host $myhostname.',
      '',
      '####################################################################',
      '# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #',
      '####################################################################',
      '',
      'Your message could not be delivered for more than $delay_warning_time_hours hour(s).',
      'It will be retried until it is $maximal_queue_lifetime_days day(s) old.',
      '',
      ...HELP,
      '',
      CLOSING,
    ],
  },
  success: {
    kind: 'success',
    charset: 'us-ascii',
    from: 'Mail Delivery System <MAILER-DAEMON>',
    subject: 'Successful Mail Delivery Report',
    postmasterSubject: 'Successful Mail Delivery Report',
    text: [
      'This is the mail system at host $myhostname.',
      '',
      'Your message was successfully delivered to the destination(s)',
      'listed below. If the message was delivered to mailbox you will',
      'receive no further notifications. Otherwise you may still receive',
      'notifications of mail delivery errors from other systems.',
      '',
      CLOSING,
    ],
  },
};

const UNITS: Readonly<Record<string, number>> = { seconds: 1, minutes: 60, hours: 3600, days: 86400, weeks: 604800 };

export interface TemplateValues {
  readonly myhostname: string;
  readonly mydomain: string;
  /** Seconds. */
  readonly delay_warning_time: number;
  readonly maximal_queue_lifetime: number;
}

/** Expand the template text's `$name` and `${name}` references (`$$` is a dollar). */
export function expandTemplate(lines: readonly string[], v: TemplateValues): string[] {
  const value = (name: string): string | undefined => {
    if (name === 'myhostname') return v.myhostname;
    if (name === 'mydomain') return v.mydomain;
    const m = /^(delay_warning_time|maximal_queue_lifetime)_(seconds|minutes|hours|days|weeks)$/.exec(name);
    if (m === null) return undefined;
    const seconds = m[1] === 'delay_warning_time' ? v.delay_warning_time : v.maximal_queue_lifetime;
    return String(Math.floor(seconds / UNITS[m[2]!]!));
  };
  return lines.map((line) =>
    line.replace(/\$\$|\$\{([a-z0-9_]+)\}|\$([a-z0-9_]+)/g, (all, braced: string | undefined, bare: string | undefined) => {
      if (all === '$$') return '$';
      return value(braced ?? bare ?? '') ?? all;
    }),
  );
}

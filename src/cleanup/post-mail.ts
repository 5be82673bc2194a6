/**
 * post_mail: a message that Postern writes itself (bounce(8) notices, smtpd's postmaster
 * transcripts), queued through cleanup as a local submission, as Postfix's post_mail(3) does
 * (post_mail.c post_mail_init()): the envelope (sender, one recipient, arrival time, no client),
 * then `Received: by $myhostname ($mail_name)` / `id QID; date` and `Date: date`, then the
 * caller's header fields and body. Cleanup adds Message-Id:. An address without a domain gets
 * `@$myorigin`, as Postfix's cleanup canonicalizes a local submission's envelope; an unqualified
 * recipient (`postmaster`) stays its original recipient, so it is delivered with
 * `X-Original-To: postmaster` as Postfix delivers it.
 *
 * Resolves with the new queue id once the file is durable; throws what cleanup throws (a
 * CleanupError 451 4.3.0 on a write error), after removing the incomplete file.
 */
import { mailDate } from './headers.js';
import type { Cleanup } from './index.js';

export interface PostMailInput {
  /** Envelope sender ('' for the null sender). */
  readonly sender: string;
  readonly recipient: string;
  /** The header fields that follow Date:, the empty line and the body; CRLF line ends. */
  readonly content: Buffer;
  /** ms since the epoch: Received:, Date:, the arrival time. */
  readonly now: number;
  /** RFC 6531: the message needs SMTPUTF8 (its addresses or headers are UTF-8). */
  readonly smtputf8?: boolean;
  /** RFC 6152 body type to record; null = none declared (as post_mail, which sends no encoding). */
  readonly body?: '7BIT' | '8BITMIME' | null;
}

/** Postfix post_mail_fopen() + post_mail_fclose(): the message as a new queue file; its queue id. */
export async function postMail(cleanup: Cleanup, m: PostMailInput): Promise<string> {
  const p = cleanup.params;
  const qualify = (a: string): string => (a === '' || a.includes('@') ? a : `${a}@${p.myorigin}`);
  const txn = await cleanup.open();
  try {
    if (!txn.write(Buffer.from(`Date: ${mailDate(m.now)}\r\n`, 'latin1'))) await txn.drain();
    if (!txn.write(m.content)) await txn.drain();
    const res = await txn.commit({
      sender: qualify(m.sender),
      // The address as given stays the original recipient (X-Original-To:), as in Postfix.
      recipients: [{ address: qualify(m.recipient), notify: null, orcpt: null, ...(m.recipient.includes('@') ? {} : { original: m.recipient }) }],
      ret: null,
      envid: null,
      smtputf8: m.smtputf8 ?? false,
      body: m.body ?? null,
      client: null,
      receivedHeader: `Received: by ${cleanup.myhostname} (${p.mail_name})\r\n\tid ${txn.queueId}; ${mailDate(m.now)}`,
      addMissingHeaders: true,
      arrivalTime: m.now,
    });
    return res.queueId;
  } catch (err) {
    await txn.abort();
    throw err;
  }
}

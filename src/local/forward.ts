/**
 * Forwarding for local(8): recipients that alias expansion sends elsewhere (remote addresses,
 * :include: members, mailing lists with an owner- alias) are not delivered here but resubmitted
 * as a new message, as Postfix's local/forward.c does through cleanup(8): one new queue file per
 * (Delivered-To, sender) pair, starting with `Received: by $myhostname ($mail_name) id NEWQID;
 * date` and `Delivered-To: <alias>` (prepend_delivered_header has `forward`), then the original
 * message. The agent reports `status=sent (forwarded as NEWQID)`.
 *
 * The agent takes the resubmission as a function (LocalAgentOptions.resubmit) so that whoever
 * runs the agents decides which cleanup it goes to; cleanupResubmitter() is that function over a
 * Cleanup (../cleanup).
 */
import type { Cleanup, CleanupInput } from '../cleanup/index.js';
import { mailDate } from '../cleanup/headers.js';
import type { EnvelopeRecipient, QueueEnvelope } from '../queue/envelope.js';

export interface ResubmitRequest {
  /** The queue id of the message being delivered (for logs). */
  readonly queueId: string;
  /** Envelope sender of the new message (the original's, or the list's owner- address). */
  readonly sender: string;
  readonly recipients: readonly EnvelopeRecipient[];
  /** The Delivered-To: field value to put in front (null: prepend_delivered_header lacks `forward`). */
  readonly deliveredTo: string | null;
  /** The original message's envelope (RET, ENVID, SMTPUTF8, BODY). */
  readonly envelope: QueueEnvelope;
  /** Mailing-list expansion: RET and ENVID of the original are not passed on (RFC 3461 5.2.7). */
  readonly resetDsn: boolean;
  /** The original message, streamed (call once). */
  message(): AsyncIterable<Buffer>;
}

/** Submit a new message; resolves with its queue id once it is durable. Throws on failure (a ReplyError for a refusal). */
export type Resubmit = (r: ResubmitRequest) => Promise<string>;

export interface CleanupResubmitOptions {
  readonly myhostname: string;
  /** main.cf mail_name (Postfix's default `Postfix`). */
  readonly mail_name: string;
  /** Clock (ms since the epoch) for the Received: date. */
  readonly clock?: () => number;
}

/** A Resubmit that writes the new message through `cleanup`. */
export function cleanupResubmitter(cleanup: Cleanup, o: CleanupResubmitOptions): Resubmit {
  return async (r) => {
    const txn = await cleanup.open();
    try {
      if (r.deliveredTo !== null) txn.write(Buffer.from(`Delivered-To: ${r.deliveredTo.toLowerCase()}\r\n`, 'utf8'));
      for await (const chunk of r.message()) {
        if (!txn.write(chunk)) await txn.drain();
      }
      const now = (o.clock ?? Date.now)();
      const input: CleanupInput = {
        sender: r.sender,
        recipients: r.recipients,
        ret: r.resetDsn ? null : r.envelope.ret,
        envid: r.resetDsn ? null : r.envelope.envid,
        smtputf8: r.envelope.smtputf8,
        body: r.envelope.body,
        client: null,
        receivedHeader: `Received: by ${o.myhostname} (${o.mail_name})\r\n\tid ${txn.queueId}; ${mailDate(now)}`,
        addMissingHeaders: false,
        arrivalTime: Math.floor(now),
      };
      const res = await txn.commit(input);
      return res.queueId;
    } catch (err) {
      await txn.abort().catch(() => undefined);
      throw err;
    }
  };
}

/**
 * DeliveryStatus values as the local, virtual, discard and error agents report them. The agents
 * log no per-recipient line themselves: qmgr writes Postfix's `to=<...>, relay=..., delay=...,
 * dsn=..., status=... (reason)` from these values (DESIGN 3), with `relay=` the agent's service
 * name (`local`, `virtual`) or `none` (discard, error) as in Postfix.
 *
 * Alias and :include: expansion turns one recipient into several deliveries. Postfix logs one line
 * per expanded address (`to=<leaf>, orig_to=<recipient>`); the agent returns them in `expanded`
 * and sums them up in the recipient's own status: deferred if any was deferred (the recipient is
 * retried whole, as in Postfix), else failed if any failed, else sent.
 */
import type { DeliveryAction, DeliveryLeaf, DeliveryStatus } from '../queue/delivery.js';

/** One delivery made while expanding a recipient (alias member, :include: member, forward). */
export type LeafStatus = DeliveryLeaf;

/** The contract's DeliveryStatus; `expanded` is filled when the recipient was expanded. */
export type LocalDeliveryStatus = DeliveryStatus;

/** The action a status class implies; `sent` is the action for a 2.x.x status. */
export function actionFor(dsn: string, sent: DeliveryAction = 'delivered'): DeliveryAction {
  if (dsn.startsWith('2')) return sent;
  if (dsn.startsWith('4')) return 'deferred';
  return 'failed';
}

export function makeStatus(index: number, dsn: string, reason: string, relay: string, xmitSeconds: number, action?: DeliveryAction): DeliveryStatus {
  return { index, dsn, action: action ?? actionFor(dsn), reason, relay, connSeconds: 0, xmitSeconds };
}

/** Postfix dsn_valid(): an RFC 3463 status at the start of `text`; dsn_split(): it and the rest. */
export function splitDsn(text: string, def: string): { dsn: string; text: string } {
  const t = text.replace(/^[ \t]+/, '');
  const m = /^([245])\.(\d{1,3})\.(\d{1,3})(?=$|[ \t])/.exec(t);
  if (m) return { dsn: m[0], text: t.slice(m[0].length + 1) };
  return { dsn: def, text: t };
}

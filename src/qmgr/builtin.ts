/**
 * What qmgr does itself when no agent is configured for a transport:
 *   - `error` / `retry` (Postfix error(8)): the next hop is `[x.y.z ]text`; error bounces (5.0.0
 *     unless the text has a 5.x.y status), retry defers (4.0.0 unless it has a 4.x.y status).
 *     qmgr also uses them for its own redirects (bad address syntax, alias expansion errors,
 *     administratively expired mail), as Postfix's qmgr does.
 * Any other transport without an agent defers with Postfix's `mail transport unavailable`.
 */
import type { DeliveryAgent, DeliveryRequest, DeliveryStatus } from '../queue/delivery.js';

/** `x.y.z text` → status and text (dsn_split()); `def` when the text has no valid status. */
export function splitStatus(text: string, def: string): { dsn: string; text: string } {
  const m = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)/.exec(text);
  if (m === null) return { dsn: def, text };
  return { dsn: `${m[1]}.${m[2]}.${m[3]}`, text: text.slice(m[0].length) };
}

/** error(8) as `error` (mode bounce) or `retry` (mode defer). */
export function builtinErrorAgent(mode: 'bounce' | 'defer'): DeliveryAgent {
  return {
    async deliver(req: DeliveryRequest): Promise<readonly DeliveryStatus[]> {
      const want = mode === 'bounce' ? '5' : '4';
      const split = splitStatus(req.nexthop, `${want}.0.0`);
      const dsn = split.dsn.startsWith(want) ? split.dsn : `${want}.0.0`;
      const reason = split.text === '' ? (mode === 'bounce' ? 'Address is undeliverable' : 'Delivery deferred') : split.text;
      return req.recipients.map((r) => ({
        index: r.index,
        dsn,
        action: mode === 'bounce' ? 'failed' : 'deferred',
        reason,
        relay: 'none',
        connSeconds: 0,
        xmitSeconds: 0,
      }));
    },
  };
}

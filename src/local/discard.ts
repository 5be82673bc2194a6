/**
 * The discard transport (Postfix discard(8)): every recipient is reported delivered without a
 * delivery — `relay=none, ..., status=sent (TEXT)` where TEXT is the next-hop text from
 * transport_maps (`discard:silently dropped`) or `discarded`. A leading `2.x.y` status in the
 * text is used; any other class is ignored with Postfix's `sent: ignoring dsn code` warning.
 * The queue file is not opened: nothing is read.
 */
import type { Log, Logger } from '../log/index.js';
import type { DeliveryAgent, DeliveryRequest, DeliveryStatus } from '../queue/delivery.js';
import { makeStatus, splitDsn } from './status.js';

export interface DiscardAgentOptions {
  readonly log: Log;
  /** Logger service name; default `discard`. */
  readonly service?: string;
}

export class DiscardAgent implements DeliveryAgent {
  private readonly logger: Logger;

  constructor(o: DiscardAgentOptions) {
    this.logger = o.log.logger(o.service ?? 'discard');
  }

  async deliver(req: DeliveryRequest): Promise<readonly DeliveryStatus[]> {
    const split = splitDsn(req.nexthop, '2.0.0');
    let dsn = split.dsn;
    if (!dsn.startsWith('2')) {
      this.logger.warning(`sent: ignoring dsn code "${dsn}"`);
      dsn = '2.0.0';
    }
    const reason = split.text !== '' ? split.text : 'discarded';
    return req.recipients.map((r) => makeStatus(r.index, dsn, reason, 'none', 0));
  }
}

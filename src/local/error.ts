/**
 * The error and retry transports (Postfix error(8)): every recipient fails with the next-hop
 * text from transport_maps or the resolver, e.g. `error:5.1.1 mailbox unavailable`
 * (`relay=none, ..., dsn=5.1.1, status=bounced (mailbox unavailable)`). The `error` service
 * bounces (default status 5.0.0; a 4.x.y status in the text is replaced by 5.0.0 with Postfix's
 * `bounce_append: ignoring dsn code` warning); the `retry` service defers (default 4.0.0; a
 * non-4 status is replaced likewise). Which one is decided by `mode`, else by the request's
 * transport name (`retry` defers, anything else bounces). The queue file is not opened.
 */
import type { Log, Logger } from '../log/index.js';
import type { DeliveryAgent, DeliveryRequest, DeliveryStatus } from '../queue/delivery.js';
import { makeStatus, splitDsn } from './status.js';

export interface ErrorAgentOptions {
  readonly log: Log;
  /** 'bounce' (error(8) as `error`) or 'defer' (as `retry`); default from the transport name. */
  readonly mode?: 'bounce' | 'defer';
  /** Logger service name; default `error` (the program's name, for the retry transport too). */
  readonly service?: string;
}

export class ErrorAgent implements DeliveryAgent {
  private readonly log: Log;
  private readonly loggers = new Map<string, Logger>();

  constructor(private readonly o: ErrorAgentOptions) {
    this.log = o.log;
  }

  private logger(name: string): Logger {
    let l = this.loggers.get(name);
    if (!l) {
      l = this.log.logger(name);
      this.loggers.set(name, l);
    }
    return l;
  }

  async deliver(req: DeliveryRequest): Promise<readonly DeliveryStatus[]> {
    const mode = this.o.mode ?? (req.transport === 'retry' ? 'defer' : 'bounce');
    const logger = this.logger(this.o.service ?? 'error');
    const cls = mode === 'defer' ? '4' : '5';
    const def = mode === 'defer' ? '4.0.0' : '5.0.0';
    const split = splitDsn(req.nexthop, def);
    let dsn = split.dsn;
    if (!dsn.startsWith(cls)) {
      logger.warning(`${mode === 'defer' ? 'defer_append' : 'bounce_append'}: ignoring dsn code "${dsn}"`);
      dsn = def;
    }
    const reason = split.text;
    return req.recipients.map((r) => makeStatus(r.index, dsn, reason, 'none', 0));
  }
}

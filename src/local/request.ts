/**
 * What every agent here does first with a DeliveryRequest: open the queue file read-only and
 * validate it (../queue/file.ts). A file that cannot be read or fails validation defers every
 * recipient (never a bounce: the message is intact or qmgr's corrupt/ handling takes over).
 */
import { PosternError } from '../errors.js';
import { errText } from '../mailbox/errors.js';
import type { DeliveryRequest } from '../queue/delivery.js';
import { type QueueFile, readQueueFile } from '../queue/file.js';
import { type LocalDeliveryStatus, makeStatus } from './status.js';

export type Opened = { readonly qf: QueueFile } | { readonly failed: readonly LocalDeliveryStatus[] };

export async function openRequest(req: DeliveryRequest, relay: string): Promise<Opened> {
  // qmgr validated this immutable file when it activated it: no second read and hash.
  if (req.file !== undefined && req.file.path === req.queueFile) return { qf: req.file };
  try {
    return { qf: await readQueueFile(req.queueFile) };
  } catch (err) {
    const reason =
      err instanceof PosternError && err.code === 'corrupt' ? 'error reading message: queue file is damaged' : `error reading message: ${errText(err)}`;
    return { failed: req.recipients.map((r) => makeStatus(r.index, '4.3.0', reason, relay, 0)) };
  }
}

/** Seconds since `t0` (performance.now() ms), for delays=.../d. */
export function since(t0: number): number {
  return (performance.now() - t0) / 1000;
}

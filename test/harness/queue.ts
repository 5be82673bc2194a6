/**
 * Scratch queues for tests: a configuration directory with its queue, and a message put through
 * cleanup as a local submission would be.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Cleanup, CleanupInput, EnvelopeRecipient } from '../../src/cleanup/index.js';
import { createQueueDirectories } from '../../src/queue/directories.js';

export interface QueueConfig {
  /** The configuration directory (main.cf, and master.cf when asked for). */
  readonly etc: string;
  /** The queue_directory to name in main.cf. */
  readonly q: string;
  /** A path for maillog_file, beside etc and q (not created). */
  readonly maillog: string;
}

/**
 * A fresh directory under `parent` holding etc/main.cf (text from `mainCf`) and, unless
 * `createQueue` is false, the queue directories under q.
 */
export async function queueConfig(
  parent: string,
  mainCf: (paths: { q: string; maillog: string }) => string,
  o: { createQueue?: boolean; masterCf?: string } = {},
): Promise<QueueConfig> {
  const base = await fsp.mkdtemp(path.join(parent, 'c-'));
  const etc = path.join(base, 'etc');
  const q = path.join(base, 'queue');
  const maillog = path.join(base, 'maillog');
  await fsp.mkdir(etc);
  await fsp.writeFile(path.join(etc, 'main.cf'), mainCf({ q, maillog }));
  if (o.masterCf !== undefined) await fsp.writeFile(path.join(etc, 'master.cf'), o.masterCf);
  if (o.createQueue ?? true) await createQueueDirectories(q);
  return { etc, q, maillog };
}

/**
 * Queues `message` (bytes as given) through `cleanup` as a local submission: no client, no
 * Received: header, no DSN fields, headers left alone unless `input` says otherwise. A recipient
 * given as a string has no NOTIFY/ORCPT. Returns the queue id (the file is in incoming/).
 */
export async function queueMessage(
  cleanup: Cleanup,
  sender: string,
  recipients: readonly (string | EnvelopeRecipient)[],
  message: string,
  input: Partial<CleanupInput> = {},
): Promise<string> {
  const txn = await cleanup.open();
  txn.write(Buffer.from(message));
  const r = await txn.commit({
    sender,
    recipients: recipients.map((r) => (typeof r === 'string' ? { address: r, notify: null, orcpt: null } : r)),
    ret: null,
    envid: null,
    smtputf8: false,
    body: null,
    client: null,
    receivedHeader: null,
    addMissingHeaders: false,
    ...input,
  });
  return r.queueId;
}

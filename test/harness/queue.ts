/**
 * Scratch queues for tests: a temp root per test file, a configuration directory with its queue,
 * and a message put through cleanup as a local submission would be.
 */
import { execFileSync } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, type TestContext } from 'node:test';
import type { Cleanup, CleanupInput } from '../../src/cleanup/index.js';
import { createQueueDirectories } from '../../src/queue/directories.js';

/**
 * A directory `os.tmpdir()/PREFIXxxxxxx` made before the calling file's tests and removed after
 * them. Call at module top level; the returned function gives its path once the tests run.
 */
export function tempRoot(prefix: string): () => string {
  let dir = '';
  before(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  });
  after(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });
  return () => {
    if (dir === '') throw new Error('tempRoot: used before the tests started');
    return dir;
  };
}

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
 * Received: header, no DSN fields, headers left alone unless `input` says otherwise.
 * `recipients` are plain addresses. Returns the queue id (the file is in incoming/).
 */
export async function queueMessage(cleanup: Cleanup, sender: string, recipients: readonly string[], message: string, input: Partial<CleanupInput> = {}): Promise<string> {
  const txn = await cleanup.open();
  txn.write(Buffer.from(message));
  const r = await txn.commit({
    sender,
    recipients: recipients.map((address) => ({ address, notify: null, orcpt: null })),
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

/**
 * Mounts a small tmpfs (`options` as for mount -o, e.g. `size=256k`) on `dir` (created if missing)
 * so a test can fill the disk. Needs root: elsewhere it skips `t` and returns false, except in CI
 * where it throws. The caller unmounts it (`unmount`) in `finally`.
 */
export async function mountTmpfs(t: TestContext, dir: string, options: string): Promise<boolean> {
  await fsp.mkdir(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
    return true;
  } catch (err) {
    if (process.env.CI) throw err;
    t.skip(`cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]}); runs in CI`);
    return false;
  }
}

export function unmount(dir: string): void {
  execFileSync('umount', [dir], { stdio: 'pipe' });
}

/**
 * Integration: the qmgr daemon as the master starts it (master.cf `qmgr` line, agents from the
 * master.cf unix services: the real virtual, discard, error and retry agents), fed by cleanup,
 * writing its log to a file; then pflogsumm (Debian's) reads that log and must count what the
 * test knows happened. Also: the trigger endpoint from the CLI side (triggerQmgr).
 */
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { Cleanup } from '../../src/cleanup/index.js';
import { loadConfig } from '../../src/config/index.js';
import { Log } from '../../src/log/index.js';
import type { Daemon } from '../../src/master/daemon.js';
import { DAEMONS } from '../../src/master/daemons.js';
import { triggerQmgr } from '../../src/queue/trigger.js';
import { queueMessage } from '../harness/queue.js';

const run = promisify(execFile);

let dir: string;
before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-qmgr-it-'));
});
after(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function hasPflogsumm(): Promise<boolean> {
  try {
    await run('pflogsumm', ['--version']);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

let logFileForErrors = '';

async function waitUntil(what: string, cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; log:\n${await fsp.readFile(logFileForErrors, 'utf8').catch(() => '')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('queue: qmgr daemon with the real agents; pflogsumm counts delivered/deferred/bounced as they happened', async (t) => {
  const etc = path.join(dir, 'etc');
  const q = path.join(dir, 'queue');
  const mail = path.join(dir, 'mail');
  const logFile = path.join(dir, 'maillog');
  logFileForErrors = logFile;
  await fsp.mkdir(etc, { recursive: true });
  await fsp.mkdir(mail, { recursive: true });
  const root = process.getuid?.() === 0;
  const uid = root ? 65534 : (process.getuid?.() ?? 1000);
  const gid = root ? 65534 : (process.getgid?.() ?? 1000);
  if (root) await fsp.chown(mail, uid, gid);
  await fsp.writeFile(
    path.join(etc, 'main.cf'),
    [
      'compatibility_level = 3.6',
      'myhostname = mx.example.test',
      'mydomain = example.test',
      'mydestination = localhost',
      `queue_directory = ${q}`,
      `maillog_file = ${logFile}`,
      'inet_interfaces = loopback-only',
      'queue_run_delay = 3600s',
      'virtual_mailbox_domains = example.test',
      `virtual_mailbox_base = ${mail}`,
      'virtual_mailbox_maps = static:box/',
      `virtual_uid_maps = static:${uid}`,
      `virtual_gid_maps = static:${gid}`,
      'virtual_minimum_uid = 1',
      'strict_mailbox_ownership = no',
      'transport_maps = inline:{ {bounce.test = error:5.1.1 user unknown here}, {defer.test = retry:4.4.1 try again later}, {drop.test = discard:dropped it} }',
      '',
    ].join('\n'),
  );
  await fsp.writeFile(
    path.join(etc, 'master.cf'),
    [
      'qmgr      unix  n       -       n       300     1       qmgr',
      'error     unix  -       -       n       -       -       error',
      'retry     unix  -       -       n       -       -       error',
      'discard   unix  -       -       n       -       -       discard',
      'virtual   unix  -       n       n       -       -       virtual',
      '',
    ].join('\n'),
  );
  const config = await loadConfig({ configDir: etc });
  assert.deepEqual(config.warnings, []);
  const log = Log.open({ syslog_name: 'postfix', myhostname: 'mx.example.test', maillog_file: logFile });
  const service = config.services.find((s) => s.name === 'qmgr')!;
  const factory = await DAEMONS.qmgr!();
  const daemon: Daemon = await factory({ config, service, log });
  const cleanup = new Cleanup({ queue_directory: q, params: config.params, log });
  const K = 3;
  const ids: string[] = [];
  try {
    for (let i = 0; i < K; i++) {
      for (const to of [`a${i}@example.test`, `x${i}@bounce.test`, `y${i}@defer.test`, `z${i}@drop.test`]) {
        const message = `From: alice@example.test\r\nTo: ${to}\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`;
        ids.push(await queueMessage(cleanup, 'alice@example.test', [to], message, { addMissingHeaders: true }));
      }
    }
    const newDir = path.join(mail, 'box', 'new');
    // K delivered to a*, K bounces to alice: 2K messages in the box.
    await waitUntil('Maildir deliveries', async () => (await fsp.readdir(newDir).catch(() => [])).length === 2 * K);
    await waitUntil('deferred files', async () => (await fsp.readdir(path.join(q, 'deferred'))).length === K);
    await waitUntil('empty active queue', async () => (await fsp.readdir(path.join(q, 'active'))).length === 0);
    // postqueue -f from the CLI side: the deferred mail is tried again now.
    const before = (await fsp.readFile(logFile, 'utf8')).split('\n').filter((l) => l.includes('status=deferred')).length;
    await triggerQmgr(q, 'flush');
    await waitUntil('second deferral round', async () => (await fsp.readFile(logFile, 'utf8')).split('\n').filter((l) => l.includes('status=deferred')).length === before + K);
  } finally {
    await daemon.drain(Date.now() + 2000);
    await log.close();
  }
  const lines = (await fsp.readFile(logFile, 'utf8')).split('\n').filter((l) => l !== '');
  const count = (re: RegExp): number => lines.filter((l) => re.test(l)).length;
  // The truth: 3K sent (K to a*, K discarded, K bounces delivered to alice), K bounced, 2K deferrals of K messages.
  assert.equal(count(/ postfix\/virtual\[\d+\]: \w+: to=<a\d@example\.test>, relay=virtual, delay=[\d.]+, delays=[\d./]+, dsn=2\.0\.0, status=sent \(delivered to maildir\)$/), K);
  assert.equal(count(/ postfix\/virtual\[\d+\]: \w+: to=<alice@example\.test>, relay=virtual, .*status=sent/), K);
  assert.equal(count(/ postfix\/discard\[\d+\]: \w+: to=<z\d@drop\.test>, relay=none, .*dsn=2\.0\.0, status=sent \(dropped it\)$/), K);
  assert.equal(count(/ postfix\/error\[\d+\]: \w+: to=<x\d@bounce\.test>, relay=none, .*dsn=5\.1\.1, status=bounced \(user unknown here\)$/), K);
  // The retry service runs error(8): Postfix 3.7 tags its lines postfix/error, not postfix/retry.
  assert.equal(count(/ postfix\/error\[\d+\]: \w+: to=<y\d@defer\.test>, relay=none, .*dsn=4\.4\.1, status=deferred \(try again later\)$/), 2 * K);
  assert.equal(count(/ postfix\/bounce\[\d+\]: \w+: sender non-delivery notification: \w+$/), K);
  assert.equal(count(/ postfix\/qmgr\[\d+\]: \w+: removed$/), 3 * K + K);
  for (const id of ids) assert.ok(lines.some((l) => l.includes(` postfix/qmgr[`) && l.endsWith(`${id}: from=<alice@example.test>, size=${l.match(/size=(\d+)/)?.[1]}, nrcpt=1 (queue active)`)), id);

  if (!(await hasPflogsumm())) {
    if (process.env.CI === 'true') assert.fail('pflogsumm is not installed (apt-get install pflogsumm)');
    t.skip('pflogsumm not installed');
    return;
  }
  const { stdout } = await run('pflogsumm', ['--smtpd-stats', logFile], { maxBuffer: 4 << 20 });
  const grand = (word: string): number => {
    const m = new RegExp(`^\\s*(\\d+)\\s+${word}\\b`, 'm').exec(stdout);
    assert.ok(m, `pflogsumm has a "${word}" line:\n${stdout}`);
    return Number(m[1]);
  };
  assert.equal(grand('delivered'), 3 * K);
  assert.equal(grand('deferred'), K);
  assert.equal(grand('bounced'), K);
});

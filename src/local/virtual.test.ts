import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { queueMessage } from '../../test/harness/queue.js';
import { mountTmpfs, unmount } from '../../test/harness/scratch.js';
import { Cleanup } from '../cleanup/index.js';
import { paramsFrom } from '../config/index.js';
import { Log } from '../log/index.js';
import { MailboxChanges } from '../mailbox/changes.js';
import type { DeliveryRequest } from '../queue/delivery.js';
import { queueFilePath } from '../queue/directories.js';
import { DiscardAgent } from './discard.js';
import { ErrorAgent } from './error.js';
import { VirtualAgent } from './virtual.js';

const isRoot = process.getuid?.() === 0;
let tmp: string;
let q: string;
let maps: string;

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-virtual-'));
  q = path.join(tmp, 'queue');
  maps = path.join(tmp, 'vmailbox');
  await fsp.writeFile(maps, ['bob@virt.example virt.example/bob/', 'carol@virt.example virt.example/carol', '@catch.example catch/all/', ''].join('\n'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

function mainCf(base: string, extra = ''): string {
  return `myhostname = mx.example.test
virtual_mailbox_domains = virt.example, catch.example
virtual_mailbox_base = ${base}
virtual_mailbox_maps = texthash:${maps}
virtual_uid_maps = static:5000
virtual_gid_maps = static:5000
recipient_delimiter = +
${extra}`;
}

async function queue(rcpts: string[], message = 'Subject: v\r\n\r\nbody\r\n'): Promise<DeliveryRequest> {
  const params = paramsFrom('myhostname = mx.example.test\n');
  const cleanup = new Cleanup({ queue_directory: q, params, log: Log.memory({ myhostname: 'mx.example.test' }) });
  const queueId = await queueMessage(cleanup, 'alice@example.org', rcpts, message);
  return {
    queueId,
    queueFile: queueFilePath(q, 'incoming', queueId),
    sender: 'alice@example.org',
    recipients: rcpts.map((address, index) => ({ index, address, origAddress: index === 0 ? null : `orig-${address}`, notify: null, orcpt: null })),
    transport: 'virtual',
    nexthop: 'virt.example',
    arrivalTime: Date.now(),
    activeTime: Date.now(),
  };
}

/** The administrator's virtual_mailbox_base, owned by the vmail uid (Postfix writes as that uid). */
async function vmailBase(name: string): Promise<string> {
  const base = path.join(tmp, name);
  await fsp.mkdir(base);
  if (isRoot) await fsp.chown(base, 5000, 5000);
  return base;
}

function agent(base: string, extra = ''): { agent: VirtualAgent; log: ReturnType<typeof Log.memory> } {
  const log = Log.memory({ myhostname: 'mx.example.test' });
  return { agent: new VirtualAgent({ params: paramsFrom(mainCf(base, extra)), log, changes: new MailboxChanges() }), log };
}

async function newFiles(dir: string): Promise<string[]> {
  const names = (await fsp.readdir(path.join(dir, 'new'))).sort();
  return Promise.all(names.map((n) => fsp.readFile(path.join(dir, 'new', n), 'utf8')));
}

describe('virtual agent', () => {
  test('virtual: Maildir and mbox mailboxes from virtual_mailbox_maps, owned by static: uid/gid, one status per recipient', async () => {
    const base = await vmailBase('vmail1');
    const { agent: a, log } = agent(base);
    const st = await a.deliver(await queue(['Bob@Virt.example', 'carol@virt.example', 'x@catch.example', 'bob+tag@virt.example']));
    assert.deepEqual(
      st.map((s) => [s.index, s.dsn, s.action, s.reason, s.relay]),
      [
        [0, '2.0.0', 'delivered', 'delivered to maildir', 'virtual'],
        [1, '2.0.0', 'delivered', 'delivered to mailbox', 'virtual'],
        [2, '2.0.0', 'delivered', 'delivered to maildir', 'virtual'],
        [3, '2.0.0', 'delivered', 'delivered to maildir', 'virtual'],
      ],
    );
    const bob = await newFiles(path.join(base, 'virt.example', 'bob'));
    assert.equal(bob.length, 2);
    assert.ok(bob.includes('Return-Path: <alice@example.org>\nX-Original-To: Bob@Virt.example\nDelivered-To: Bob@Virt.example\nSubject: v\n\nbody\n'));
    assert.ok(bob.some((m) => m.includes('\nX-Original-To: orig-bob+tag@virt.example\nDelivered-To: bob+tag@virt.example\n')));
    assert.match(await fsp.readFile(path.join(base, 'virt.example', 'carol'), 'utf8'), /^From alice@example\.org {2}.*\nReturn-Path: <alice@example\.org>\nX-Original-To: orig-carol@virt\.example\nDelivered-To: carol@virt\.example\n/);
    assert.equal((await newFiles(path.join(base, 'catch', 'all'))).length, 1);
    if (isRoot) {
      for (const p of [path.join(base, 'virt.example', 'bob', 'new'), path.join(base, 'virt.example', 'carol')]) {
        const s = await fsp.stat(p);
        assert.deepEqual([s.uid, s.gid], [5000, 5000], p);
      }
    }
    assert.deepEqual(log.lines, []);
  });

  test('virtual: an address not in virtual_mailbox_maps bounces 5.1.1 unknown user: "addr"', async () => {
    const { agent: a } = agent(await vmailBase('vmail2'));
    const [s] = await a.deliver(await queue(['nosuch@virt.example']));
    assert.deepEqual([s!.dsn, s!.action, s!.reason], ['5.1.1', 'failed', 'unknown user: "nosuch@virt.example"']);
  });

  test('virtual: a uid below virtual_minimum_uid defers 4.3.5 with Postfix\'s warning', async () => {
    const { agent: a, log } = agent(path.join(tmp, 'vmail3'), 'virtual_uid_maps = static:50\n');
    const [s] = await a.deliver(await queue(['bob@virt.example']));
    assert.deepEqual([s!.dsn, s!.action, s!.reason], ['4.3.5', 'deferred', 'mail system configuration error']);
    assert.match(log.lines.join('\n'), /postfix\/virtual\[\d+\]: warning: recipient bob@virt\.example: bad uid 50 in virtual_uid_maps$/);
    await assert.rejects(fsp.stat(path.join(tmp, 'vmail3')), { code: 'ENOENT' });
  });

  test('virtual: a recipient missing from virtual_gid_maps defers with "not found in virtual_gid_maps"', async () => {
    const gids = path.join(tmp, 'gids');
    await fsp.writeFile(gids, 'carol@virt.example 5000\n');
    const { agent: a, log } = agent(await vmailBase('vmail4'), `virtual_gid_maps = texthash:${gids}\n`);
    const [s] = await a.deliver(await queue(['bob@virt.example']));
    assert.equal(s!.dsn, '4.3.5');
    assert.match(log.lines.join('\n'), /warning: recipient bob@virt\.example: not found in virtual_gid_maps$/);
  });

  test('virtual: a relative virtual_mailbox_base defers instead of writing anywhere', async () => {
    const { agent: a, log } = agent('relative/base');
    const [s] = await a.deliver(await queue(['bob@virt.example']));
    assert.deepEqual([s!.dsn, s!.reason], ['4.3.5', 'mail system configuration error']);
    assert.match(log.lines.join('\n'), /warning: do not specify relative pathname: virtual_mailbox_base = relative\/base/);
  });

  test('virtual: disk full under virtual_mailbox_base defers 4.3.0 and leaves no message in new/', async (t) => {
    const mnt = path.join(tmp, 'tiny');
    if (!(await mountTmpfs(t, mnt, 'size=256k'))) return;
    try {
      const { agent: a } = agent(mnt);
      const big = `Subject: big\r\n\r\n${`${'z'.repeat(998)}\r\n`.repeat(400)}`;
      const [s] = await a.deliver(await queue(['bob@virt.example'], big));
      assert.deepEqual([s!.dsn, s!.action, s!.reason], ['4.3.0', 'deferred', 'maildir delivery failed: error writing message: No space left on device']);
      const md = path.join(mnt, 'virt.example', 'bob');
      assert.deepEqual(await fsp.readdir(path.join(md, 'new')), []);
      assert.deepEqual(await fsp.readdir(path.join(md, 'tmp')), []);
      const [ok] = await a.deliver(await queue(['bob@virt.example']));
      assert.equal(ok!.dsn, '2.0.0', 'a small message fits');
    } finally {
      unmount(mnt);
    }
  });
});

function request(transport: string, nexthop: string): DeliveryRequest {
  return {
    queueId: 'ABC',
    queueFile: '/nonexistent',
    sender: 'a@b',
    recipients: [
      { index: 0, address: 'x@y', origAddress: null, notify: null, orcpt: null },
      { index: 3, address: 'z@y', origAddress: null, notify: null, orcpt: null },
    ],
    transport,
    nexthop,
    arrivalTime: 0,
    activeTime: 0,
  };
}

test('discard: every recipient is sent with relay=none and the next-hop text or "discarded"', async () => {
  const log = Log.memory({ myhostname: 'mx.example.test' });
  const a = new DiscardAgent({ log });
  assert.deepEqual(
    (await a.deliver(request('discard', ''))).map((s) => [s.index, s.dsn, s.action, s.reason, s.relay]),
    [
      [0, '2.0.0', 'delivered', 'discarded', 'none'],
      [3, '2.0.0', 'delivered', 'discarded', 'none'],
    ],
  );
  assert.deepEqual(
    (await a.deliver(request('discard', '2.6.0 spam trap'))).map((s) => [s.dsn, s.reason]),
    [
      ['2.6.0', 'spam trap'],
      ['2.6.0', 'spam trap'],
    ],
  );
  const [w] = await a.deliver(request('discard', '5.0.0 nope'));
  assert.deepEqual([w!.dsn, w!.reason], ['2.0.0', 'nope']);
  assert.match(log.lines.join('\n'), /postfix\/discard\[\d+\]: warning: sent: ignoring dsn code "5\.0\.0"$/);
});

test('error: the error transport bounces with the next-hop text; retry defers', async () => {
  const log = Log.memory({ myhostname: 'mx.example.test' });
  const a = new ErrorAgent({ log });
  assert.deepEqual(
    (await a.deliver(request('error', '5.1.1 mailbox unavailable'))).map((s) => [s.index, s.dsn, s.action, s.reason, s.relay]),
    [
      [0, '5.1.1', 'failed', 'mailbox unavailable', 'none'],
      [3, '5.1.1', 'failed', 'mailbox unavailable', 'none'],
    ],
  );
  const [d] = await a.deliver(request('error', 'User unknown'));
  assert.deepEqual([d!.dsn, d!.reason], ['5.0.0', 'User unknown']);
  const [x] = await a.deliver(request('error', '4.7.1 later'));
  assert.deepEqual([x!.dsn, x!.action], ['5.0.0', 'failed']);
  assert.match(log.lines.join('\n'), /postfix\/error\[\d+\]: warning: bounce_append: ignoring dsn code "4\.7\.1"$/);
  const [r] = await a.deliver(request('retry', '4.3.2 try later'));
  assert.deepEqual([r!.dsn, r!.action, r!.reason], ['4.3.2', 'deferred', 'try later']);
  const [r2] = await new ErrorAgent({ log, mode: 'defer' }).deliver(request('error', 'no status'));
  assert.deepEqual([r2!.dsn, r2!.action], ['4.0.0', 'deferred']);
});

import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { mountTmpfs, unmount } from '../../test/harness/scratch.js';
import { paramsFrom } from '../config/index.js';
import type { Params } from '../config/types.js';
import { type DurableFs, nodeFs } from '../io/durable.js';
import { Log } from '../log/index.js';
import { ReplyError } from '../proto/smtp/reply.js';
import { removeStaleTemporaryFiles } from '../queue/directories.js';
import { readMessage, readQueueFile } from '../queue/file.js';
import { isQueueId } from '../queue/id.js';
import { queueKick } from '../queue/kick.js';
import { Cleanup, type CleanupInput } from './index.js';

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-cleanup-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

let seq = 0;
async function queueDir(): Promise<string> {
  seq += 1;
  return path.join(tmp, `q${seq}`);
}

const PARAMS = paramsFrom('myhostname = mx.example.test\n');

function setup(o: { params?: Params; fs?: DurableFs; clock?: () => number; q: string; statfs?: (d: string) => Promise<{ bsize: number; bavail: number }> }) {
  const log = Log.memory({ myhostname: 'mx.example.test' });
  const cleanup = new Cleanup({
    queue_directory: o.q,
    params: o.params ?? PARAMS,
    log,
    ...(o.fs ? { fs: o.fs } : {}),
    ...(o.clock ? { clock: o.clock } : {}),
    ...(o.statfs ? { statfs: o.statfs } : {}),
  });
  return { cleanup, log };
}

const RECEIVED = 'Received: from client.example.org (client.example.org [192.0.2.25])\r\n\tby mx.example.test (Postern) with ESMTP id QID\r\n\tfor <bob@example.test>; Wed, 25 Nov 2026 06:07:17 +0000 (UTC)';

function input(o: Partial<CleanupInput> = {}): CleanupInput {
  return {
    sender: 'alice@example.org',
    recipients: [{ address: 'bob@example.test', notify: ['FAILURE'], orcpt: 'rfc822;bob@example.test' }],
    ret: null,
    envid: null,
    smtputf8: false,
    body: '8BITMIME',
    client: {
      name: 'client.example.org',
      addr: '192.0.2.25',
      port: 40000,
      helo: 'client.example.org',
      protocol: 'ESMTP',
      tls: null,
      saslUsername: null,
      localAddr: '192.0.2.1',
    },
    receivedHeader: RECEIVED,
    addMissingHeaders: false,
    ...o,
  };
}

const MESSAGE = 'From: Alice <alice@example.org>\r\nTo: bob@example.test\r\nSubject: test\r\nDate: Wed, 25 Nov 2026 06:07:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\nHello Bob.\r\n';

async function incoming(q: string): Promise<string[]> {
  return (await fsp.readdir(path.join(q, 'incoming'))).sort();
}

/** A DurableFs that counts calls and can fail one kind of call. */
function countingFs(fail: { syncFile?: string; rename?: string; syncDir?: string } = {}) {
  const count = { syncFile: 0, syncDir: 0, rename: 0 };
  const err = (code: string) => Object.assign(new Error(`${code}: injected`), { code });
  const fs: DurableFs = {
    ...nodeFs,
    async syncFile(fh) {
      count.syncFile++;
      if (fail.syncFile) throw err(fail.syncFile);
      return nodeFs.syncFile(fh);
    },
    async rename(a, b) {
      count.rename++;
      if (fail.rename) throw err(fail.rename);
      return nodeFs.rename(a, b);
    },
    async syncDir(d) {
      count.syncDir++;
      if (fail.syncDir) throw err(fail.syncDir);
      return nodeFs.syncDir(d);
    },
  };
  return { fs, count };
}

function isReply(code: number, enhanced: string, text: string) {
  return (err: unknown) => {
    assert.ok(err instanceof ReplyError, String(err));
    assert.equal(err.reply.code, code);
    assert.equal(err.reply.enhanced, enhanced);
    assert.deepEqual(err.reply.lines, [text]);
    return true;
  };
}

describe('cleanup', () => {
  test('cleanup: a process killed (SIGKILL) right after commit resolves leaves a valid file; killed mid-DATA, nothing published', async () => {
    const q = await queueDir();
    const child = `
      const { Cleanup } = await import(${JSON.stringify(new URL('./index.js', import.meta.url).href)});
      const { paramsFrom } = await import(${JSON.stringify(new URL('../config/index.js', import.meta.url).href)});
      const { Log } = await import(${JSON.stringify(new URL('../log/index.js', import.meta.url).href)});
      const c = new Cleanup({ queue_directory: process.argv[1], params: paramsFrom('myhostname = mx.example.test\\n'), log: Log.memory() });
      const input = { sender: 'a@example.org', recipients: [{ address: 'b@example.test', notify: null, orcpt: null }], ret: null, envid: null,
        smtputf8: false, body: null, client: null, receivedHeader: null, addMissingHeaders: false };
      const done = await c.open();
      done.write(Buffer.from('Subject: kept\\r\\n\\r\\n' + 'k'.repeat(100000) + '\\r\\n'));
      const r = await done.commit(input);
      const half = await c.open();
      half.write(Buffer.from('Subject: lost\\r\\n\\r\\n' + 'l'.repeat(100000)));
      await half.drain();
      process.stdout.write(r.queueId + ' ' + half.queueId + '\\n', () => process.kill(process.pid, 'SIGKILL'));
    `;
    const proc = spawn(process.execPath, ['--input-type=module', '-e', child, q], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const signal = await new Promise((resolve) => proc.on('exit', (_code, sig) => resolve(sig)));
    assert.equal(signal, 'SIGKILL');
    const [kept, lost] = out.trim().split(' ');
    const names = await incoming(q);
    assert.ok(names.includes(kept!), names.join(' '));
    assert.ok(!names.includes(lost!));
    const qf = await readQueueFile(path.join(q, 'incoming', kept!));
    assert.match((await readMessage(qf)).toString(), /^Subject: kept\r\n\r\nk{100000}\r\n$/);
    // The half-written message is only a temporary file, removed at the next start.
    assert.equal(names.length, 2);
    await removeStaleTemporaryFiles(q);
    assert.deepEqual(await incoming(q), [kept]);
  });

  test('cleanup: a committed message is a valid queue file in incoming/ with Received: first', async () => {
    const q = await queueDir();
    const { cleanup, log } = setup({ q });
    const txn = await cleanup.open();
    assert.ok(isQueueId(txn.queueId));
    txn.write(Buffer.from(MESSAGE.slice(0, 40)));
    txn.write(Buffer.from(MESSAGE.slice(40)));
    const res = await txn.commit(input());
    assert.equal(res.queueId, txn.queueId);
    assert.deepEqual(await incoming(q), [txn.queueId]);
    const qf = await readQueueFile(path.join(q, 'incoming', txn.queueId));
    const msg = (await readMessage(qf)).toString();
    assert.equal(msg, `${RECEIVED}\r\n${MESSAGE}`);
    assert.equal(res.size, Buffer.byteLength(msg));
    assert.equal(qf.envelope.sender, 'alice@example.org');
    assert.deepEqual(qf.envelope.recipients, [{ address: 'bob@example.test', notify: ['FAILURE'], orcpt: 'rfc822;bob@example.test' }]);
    assert.equal(qf.envelope.messageId, '<m1@example.org>');
    assert.equal(qf.envelope.client?.addr, '192.0.2.25');
    // The existing Message-ID is logged as postfix/cleanup[pid] does.
    assert.deepEqual(
      log.lines.map((l) => l.replace(/^.* mx /, '')),
      [`postfix/cleanup[${process.pid}]: ${txn.queueId}: message-id=<m1@example.org>`],
    );
    assert.equal((await fsp.stat(path.join(q, 'incoming', txn.queueId))).mode & 0o777, 0o600);
  });

  test('cleanup: Message-Id:, Date: and From: are added when missing for local submissions', async () => {
    const q = await queueDir();
    const created = Date.UTC(2026, 10, 25, 6, 7, 17, 123) + 0.456;
    const { cleanup, log } = setup({ q, clock: () => created });
    const txn = await cleanup.open();
    assert.match(txn.queueId, /^1E240[0-9A-F]+$/); // 123456 µs = 0x1E240
    txn.write(Buffer.from('Subject: no ids\r\n\r\nbody\r\n'));
    await txn.commit(input({ addMissingHeaders: true, receivedHeader: null, client: null }));
    const qf = await readQueueFile(path.join(q, 'incoming', txn.queueId));
    const msg = (await readMessage(qf)).toString();
    const mid = `<20261125060717.${txn.queueId}@mx.example.test>`;
    const lines = msg.split('\r\n');
    assert.equal(lines[0], 'Subject: no ids');
    assert.equal(lines[1], `Message-Id: ${mid}`);
    assert.match(lines[2]!, /^Date: \w{3}, \d\d \w{3} 2026 \d\d:\d\d:\d\d [+-]\d{4} \(.+\)$/);
    assert.equal(lines[3], 'From: alice@example.org');
    assert.equal(lines[4], '');
    assert.equal(lines[5], 'body');
    assert.equal(qf.envelope.messageId, mid);
    assert.deepEqual(log.texts(), [`${txn.queueId}: message-id=${mid}`]);
  });

  test('cleanup: a message without Message-ID logs message-id=<> when nothing is added', async () => {
    const q = await queueDir();
    const { cleanup, log } = setup({ q });
    const txn = await cleanup.open();
    txn.write(Buffer.from('Subject: x\r\n\r\nbody\r\n'));
    await txn.commit(input());
    assert.deepEqual(log.texts(), [`${txn.queueId}: message-id=<>`]);
    const qf = await readQueueFile(path.join(q, 'incoming', txn.queueId));
    assert.equal(qf.envelope.messageId, null);
    assert.doesNotMatch((await readMessage(qf)).toString(), /Message-Id|Date:/);
  });

  test('cleanup: Resent- fields make cleanup add Resent-Message-Id:/Resent-Date:/Resent-From:', async () => {
    const q = await queueDir();
    const { cleanup, log } = setup({ q });
    const txn = await cleanup.open();
    txn.write(Buffer.from('Resent-To: carol@example.test\r\nMessage-ID: <orig@example.org>\r\nFrom: a@example.org\r\n\r\nx\r\n'));
    await txn.commit(input({ addMissingHeaders: true, receivedHeader: null }));
    const msg = (await readMessage(await readQueueFile(path.join(q, 'incoming', txn.queueId)))).toString();
    assert.match(msg, /\r\nResent-Message-Id: <\d{14}\.\w+@mx\.example\.test>\r\nResent-Date: .*\r\nResent-From: alice@example\.org\r\n\r\nx\r\n$/);
    assert.deepEqual(
      log.texts().map((t) => t.replace(/<\d{14}\.\w+@/, '<ID@')),
      [`${txn.queueId}: message-id=<orig@example.org>`, `${txn.queueId}: resent-message-id=<ID@mx.example.test>`],
    );
  });

  test('cleanup: Bcc: and Return-Path: are removed, over-long headers cut at header_size_limit', async () => {
    const q = await queueDir();
    const params = paramsFrom('myhostname = mx.example.test\nheader_size_limit = 200\n');
    const { cleanup } = setup({ q, params });
    const txn = await cleanup.open();
    txn.write(Buffer.from(`Return-Path: <x@y>\r\nBcc: hidden@example.org\r\nX-Big: ${'a'.repeat(500)}\r\nSubject: s\r\n\r\nb\r\n`));
    assert.ok(txn.headerBytes > 500);
    await txn.commit(input({ receivedHeader: null }));
    const msg = (await readMessage(await readQueueFile(path.join(q, 'incoming', txn.queueId)))).toString();
    assert.equal(msg, `X-Big: ${'a'.repeat(200 - 7)}\r\nSubject: s\r\n\r\nb\r\n`);
  });

  test('cleanup: stray CR and bare LF in content are stored as space and CRLF', async () => {
    const q = await queueDir();
    const { cleanup } = setup({ q });
    const txn = await cleanup.open();
    txn.write(Buffer.from('Subject: s\r\n\r\nline\rwith CR\nbare LF\r'));
    txn.write(Buffer.from('\nend\r'));
    await txn.commit(input({ receivedHeader: null }));
    const msg = (await readMessage(await readQueueFile(path.join(q, 'incoming', txn.queueId)))).toString();
    assert.equal(msg, 'Subject: s\r\n\r\nline with CR\r\nbare LF\r\nend \r\n');
  });

  test('cleanup: abort leaves nothing; abort after commit leaves the queue file', async () => {
    const q = await queueDir();
    const { cleanup } = setup({ q });
    const txn = await cleanup.open();
    txn.write(Buffer.from(MESSAGE));
    assert.equal((await incoming(q)).length, 1); // the temporary file
    await txn.abort();
    await txn.abort();
    assert.deepEqual(await incoming(q), []);
    assert.throws(() => txn.write(Buffer.from('x')), { code: 'cleanup' });
    const t2 = await cleanup.open();
    t2.write(Buffer.from(MESSAGE));
    await t2.commit(input());
    await t2.abort();
    assert.deepEqual(await incoming(q), [t2.queueId]);
  });

  test('cleanup: 100 parallel commits are all durable with distinct ids and share directory fsyncs', async () => {
    const q = await queueDir();
    const { fs, count } = countingFs();
    const { cleanup } = setup({ q, fs });
    const kicked: string[] = [];
    const off = queueKick(q).on((id) => kicked.push(id));
    const body = Buffer.from(`Subject: load\r\n\r\n${'x'.repeat(2000)}\r\n`);
    const results = await Promise.all(
      Array.from({ length: 100 }, async () => {
        const txn = await cleanup.open();
        txn.write(body);
        return txn.commit(input());
      }),
    );
    off();
    const ids = results.map((r) => r.queueId);
    assert.equal(new Set(ids).size, 100);
    assert.deepEqual(await incoming(q), [...ids].sort());
    for (const id of ids) await readQueueFile(path.join(q, 'incoming', id));
    assert.equal(count.syncFile, 100); // every file its own fdatasync
    assert.equal(count.rename, 100);
    assert.ok(count.syncDir >= 1 && count.syncDir < 100, `directory syncs: ${count.syncDir}`);
    assert.deepEqual([...kicked].sort(), [...ids].sort());
  });

  test('cleanup: the kick fires after the file is published and durable', async () => {
    const q = await queueDir();
    const { fs, count } = countingFs();
    const { cleanup } = setup({ q, fs });
    const seen: { id: string; exists: boolean; dirSyncs: number }[] = [];
    const off = cleanup.kick.on((id) => {
      seen.push({ id, exists: true, dirSyncs: count.syncDir });
    });
    const txn = await cleanup.open();
    txn.write(Buffer.from(MESSAGE));
    await txn.commit(input());
    off();
    assert.deepEqual(seen, [{ id: txn.queueId, exists: true, dirSyncs: 1 }]);
    await fsp.stat(path.join(q, 'incoming', txn.queueId));
  });

  for (const [what, fail] of [
    ['fsync of the file', { syncFile: 'EIO' }],
    ['rename', { rename: 'EIO' }],
    ['fsync of incoming/', { syncDir: 'EIO' }],
  ] as const) {
    test(`cleanup: a failed ${what} gives 451 4.3.0 and leaves no file`, async () => {
      const q = await queueDir();
      const { fs } = countingFs(fail);
      const { cleanup, log } = setup({ q, fs });
      const txn = await cleanup.open();
      txn.write(Buffer.from(MESSAGE));
      await assert.rejects(txn.commit(input()), isReply(451, '4.3.0', 'Error: queue file write error'));
      assert.deepEqual(await incoming(q), []);
      assert.ok(log.texts().includes(`warning: ${txn.queueId}: write queue file: Input/output error`), log.texts().join('\n'));
    });
  }

  test('cleanup: a queue file that cannot be created gives 451 4.3.0 at open', async () => {
    const q = await queueDir();
    const fs: DurableFs = { ...nodeFs, open: async () => Promise.reject(Object.assign(new Error('ENOSPC: injected'), { code: 'ENOSPC' })) };
    const { cleanup, log } = setup({ q, fs });
    await assert.rejects(cleanup.open(), isReply(451, '4.3.0', 'Error: queue file write error'));
    assert.match(log.texts().join('\n'), /^warning: mail_queue_enter: create file incoming\/\d+\.\d+\.\d+\.tmp: No space left on device$/);
    assert.deepEqual(await incoming(q), []);
  });

  test('cleanup: a full disk (small tmpfs) gives 451 4.3.0 and leaves no half file', async (t) => {
    const q = await queueDir();
    if (!(await mountTmpfs(t, q, 'size=256k,mode=0755'))) return;
    try {
      const { cleanup, log } = setup({ q });
      const txn = await cleanup.open();
      const chunk = Buffer.from(`${'y'.repeat(1022)}\r\n`.repeat(64));
      txn.write(Buffer.from('Subject: big\r\n\r\n'));
      for (let i = 0; i < 8; i++) {
        if (!txn.write(chunk)) await txn.drain();
      }
      await assert.rejects(txn.commit(input()), isReply(451, '4.3.0', 'Error: queue file write error'));
      assert.deepEqual(await incoming(q), []);
      assert.ok(log.texts().includes(`warning: ${txn.queueId}: write queue file: No space left on device`), log.texts().join('\n'));
      // Space is back once the file is gone: the next small message goes through.
      const t2 = await cleanup.open();
      t2.write(Buffer.from(MESSAGE));
      await t2.commit(input());
      assert.deepEqual(await incoming(q), [t2.queueId]);
    } finally {
      unmount(q);
    }
  });

  test('cleanup: checkSpace refuses with 452 4.3.1 when free space is under 1.5 x message_size_limit (tmpfs)', async (t) => {
    const q = await queueDir();
    if (!(await mountTmpfs(t, q, 'size=256k,mode=0755'))) return;
    try {
      const { cleanup, log } = setup({ q });
      await assert.rejects(cleanup.checkSpace(), isReply(452, '4.3.1', 'Insufficient system storage'));
      assert.match(log.lines.at(-1)!, /postfix\/smtpd\[\d+\]: warning: not enough free space in mail queue: \d+ bytes < 1\.5\*message size limit$/);
      const small = setup({ q, params: paramsFrom('myhostname = mx.example.test\nmessage_size_limit = 100000\n') });
      await small.cleanup.checkSpace();
    } finally {
      unmount(q);
    }
  });

  test('cleanup: checkSpace applies queue_minfree and message_size_limit as Postfix smtpd_check_queue', async () => {
    const q = await queueDir();
    const free = (bavail: number) => async () => ({ bsize: 4096, bavail });
    const p = (text: string) => paramsFrom(`myhostname = mx.example.test\n${text}`);
    // 10240000 / 4096 = 2500 blocks; needs bavail / 1.5 > 2500.
    await setup({ q, statfs: free(3751) }).cleanup.checkSpace();
    await assert.rejects(setup({ q, statfs: free(3750) }).cleanup.checkSpace(), isReply(452, '4.3.1', 'Insufficient system storage'));
    await setup({ q, statfs: free(1), params: p('message_size_limit = 0\n') }).cleanup.checkSpace();
    await assert.rejects(setup({ q, statfs: free(10_000), params: p('queue_minfree = 50000000\n') }).cleanup.checkSpace(), ReplyError);
  });

  test('cleanup: hopcount_limit Received: fields reject the message with 554 5.4.0', async () => {
    const q = await queueDir();
    const { cleanup, log } = setup({ q, params: paramsFrom('myhostname = mx.example.test\nhopcount_limit = 5\n') });
    const txn = await cleanup.open();
    txn.write(Buffer.from('Received: from a\r\n'.repeat(3)));
    assert.equal(txn.tooManyHeaders, false);
    txn.write(Buffer.from('Received: from a\r\n\r\nbody\r\n'));
    assert.equal(txn.tooManyHeaders, true);
    await assert.rejects(txn.commit(input()), isReply(554, '5.4.0', 'Error: too many hops'));
    assert.deepEqual(await incoming(q), []);
    assert.ok(log.texts().includes(`warning: ${txn.queueId}: message rejected: hopcount exceeded`));
  });

  test('cleanup: long queue ids when enable_long_queue_ids = yes', async () => {
    const q = await queueDir();
    const { cleanup } = setup({ q, params: paramsFrom('myhostname = mx.example.test\nenable_long_queue_ids = yes\n') });
    const txn = await cleanup.open();
    assert.match(txn.queueId, /^[0-9A-Za-z]{10,}z[0-9A-Za-y]+$/);
    txn.write(Buffer.from('Subject: x\r\n\r\ny\r\n'));
    await txn.commit(input({ addMissingHeaders: true }));
    const msg = (await readMessage(await readQueueFile(path.join(q, 'incoming', txn.queueId)))).toString();
    assert.ok(msg.includes(`Message-Id: <${txn.queueId}@mx.example.test>\r\n`));
  });

  test('cleanup: a 50 MB message streams to disk with bounded buffering', async () => {
    const q = await queueDir();
    const { cleanup } = setup({ q, params: paramsFrom('myhostname = mx.example.test\nmessage_size_limit = 0\n') });
    const txn = await cleanup.open();
    const line = Buffer.from(`${'m'.repeat(76)}\r\n`);
    const chunk = Buffer.concat(Array.from({ length: 820 }, () => line)); // 64 KiB-ish, like socket reads
    txn.write(Buffer.from('Subject: big\r\n\r\n'));
    let sent = 0;
    let maxPending = 0;
    while (sent < 50 * 1024 * 1024) {
      const more = txn.write(chunk);
      maxPending = Math.max(maxPending, txn.pendingBytes);
      if (!more) await txn.drain();
      sent += chunk.length;
    }
    const res = await txn.commit(input({ receivedHeader: null }));
    assert.equal(res.size, sent + 'Subject: big\r\n\r\n'.length);
    const qf = await readQueueFile(path.join(q, 'incoming', txn.queueId));
    assert.equal(qf.envelope.contentLength, res.size);
    // write() asks for a pause whenever more than 1 MiB waits for the disk, so a writer that
    // honours it never has more than 1 MiB + one chunk buffered, whatever the message size.
    assert.ok(maxPending <= 1024 * 1024 + chunk.length, `max pending ${maxPending}`);
  });
});

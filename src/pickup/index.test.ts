import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Cleanup } from '../cleanup/index.js';
import { paramsFrom } from '../config/index.js';
import type { Params } from '../config/types.js';
import { type DurableFs, nodeFs } from '../io/durable.js';
import { Log, type MemoryLog } from '../log/index.js';
import { createQueueDirectories } from '../queue/directories.js';
import { readMessage, readQueueFile } from '../queue/file.js';
import { loadConfig } from '../config/index.js';
import { canonicalAddress, createDaemon, MAILDROP_MODE, startPickup } from './index.js';
import { type SubmitOptions, submit } from './submit.js';

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-pickup-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

let seq = 0;
async function queue(extra = ''): Promise<{ q: string; params: Params }> {
  seq += 1;
  const q = path.join(tmp, `q${seq}`);
  const params = paramsFrom(`queue_directory = ${q}\nmyhostname = mx.example.test\nmyorigin = example.test\n${extra}`);
  await createQueueDirectories(q);
  return { q, params };
}

function opts(q: string, o: Partial<SubmitOptions> = {}): SubmitOptions {
  return {
    maildropDir: path.join(q, 'maildrop'),
    sender: 'alice',
    fullName: 'Alice Example',
    recipientArgs: ['bob'],
    extract: false,
    dotEnds: true,
    notify: null,
    ret: null,
    envid: null,
    body: null,
    smtputf8: false,
    line_length_limit: 2048,
    message_size_limit: 10240000,
    header_size_limit: 102400,
    uid: process.getuid?.() ?? 0,
    ...o,
  };
}

const text = (s: string): Readable => Readable.from([Buffer.from(s)]);

async function ls(q: string, dir: string): Promise<string[]> {
  return (await fsp.readdir(path.join(q, dir))).sort();
}

function run(params: Params, o: { fs?: DurableFs; watch?: boolean } = {}): { log: MemoryLog; cleanup: Cleanup; pickup: ReturnType<typeof startPickup> } {
  const log = Log.memory({ myhostname: 'mx.example.test' });
  const cleanup = new Cleanup({ queue_directory: params.queue_directory, params, log, ...(o.fs ? { fs: o.fs } : {}) });
  const pickup = startPickup({ config: { params }, log, cleanup, watch: o.watch ?? false });
  return { log, cleanup, pickup };
}

describe('pickup: maildrop → cleanup', () => {
  test('pickup: mail sent while the server was stopped is queued at start, logged uid=N from=<...>, with Received/Message-Id/Date/From added and Bcc removed', async () => {
    const { q, params } = await queue();
    const uid = process.getuid?.() ?? 0;
    const msg = 'To: bob@example.test\nBcc: secret@example.test\nSubject: stopped\n\nhello\n';
    const sub = await submit(text(msg), opts(q, { extract: true, recipientArgs: [] }));
    assert.deepEqual(await ls(q, 'maildrop'), [sub.name]);
    assert.deepEqual(await ls(q, 'incoming'), []);

    const { log, pickup } = run(params);
    await pickup.ready;
    await pickup.stop();
    assert.deepEqual(await ls(q, 'maildrop'), [], 'the maildrop file is gone once queued');
    const ids = await ls(q, 'incoming');
    assert.equal(ids.length, 1);
    const id = ids[0]!;

    const texts = log.texts();
    assert.equal(texts[0], `${id}: uid=${uid} from=<alice>`);
    assert.match(texts[1]!, new RegExp(`^${id}: message-id=<\\d{14}\\.${id}@mx\\.example\\.test>$`));
    assert.match(log.lines[0]!, new RegExp(`^\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d mx postfix/pickup\\[${process.pid}\\]: ${id}: uid=`));

    const qf = await readQueueFile(path.join(q, 'incoming', id));
    assert.equal(qf.envelope.sender, 'alice@example.test', 'append_at_myorigin');
    assert.deepEqual(
      qf.envelope.recipients.map((r) => r.address),
      ['bob@example.test', 'secret@example.test'],
    );
    assert.equal(qf.envelope.client, null);
    const m = (await readMessage(qf)).toString('utf8');
    const lines = m.split('\r\n');
    assert.equal(lines[0], `Received: by mx.example.test (Postfix, from userid ${uid})`);
    assert.match(lines[1]!, new RegExp(`^\\tid ${id}; \\w{3}, \\d\\d \\w{3} \\d{4} \\d\\d:\\d\\d:\\d\\d [+-]\\d{4} \\(\\w+\\)$`));
    assert.equal(lines[2], 'To: bob@example.test');
    assert.equal(lines[3], 'Subject: stopped');
    assert.match(lines[4]!, /^Message-Id: <\d{14}\.[0-9A-F]+@mx\.example\.test>$/);
    assert.match(lines[5]!, /^Date: /);
    assert.equal(lines[6], 'From: Alice Example <alice@example.test>');
    assert.equal(lines[7], '');
    assert.ok(!m.includes('Bcc'), 'message_drop_headers removes Bcc:');
    assert.ok(!m.includes('secret@'), 'nor its address');
  });

  test('pickup: the maildrop directory is made 1733 (world-writable, sticky, not listable)', async () => {
    const { q, params } = await queue();
    const { pickup } = run(params);
    await pickup.ready;
    await pickup.stop();
    assert.equal((await fsp.stat(path.join(q, 'maildrop'))).mode & 0o7777, MAILDROP_MODE);
  });

  test('pickup: files are taken oldest first; duplicates after canonicalisation are dropped; DSN fields kept', async () => {
    const { q, params } = await queue();
    const a = await submit(text('Subject: first\n\n'), opts(q, { recipientArgs: ['bob', 'bob@example.test', 'Carol <carol@example.test>'], notify: ['SUCCESS', 'DELAY'], ret: 'HDRS', envid: 'ENV1' }));
    const b = await submit(text('Subject: second\n\n'), opts(q, { sender: '' }));
    await fsp.utimes(path.join(q, 'maildrop', a.name), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    await fsp.utimes(path.join(q, 'maildrop', b.name), new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));
    const { log, pickup } = run(params);
    await pickup.ready;
    await pickup.stop();
    const picked = log.texts().filter((t) => t.includes(': uid='));
    assert.equal(picked.length, 2);
    assert.match(picked[0]!, / from=<>$/, 'the older file (null sender) first');
    assert.match(picked[1]!, / from=<alice>$/);
    const firstId = picked[1]!.split(':')[0]!;
    const qf = await readQueueFile(path.join(q, 'incoming', firstId));
    assert.deepEqual(qf.envelope.recipients, [
      { address: 'bob@example.test', notify: ['SUCCESS', 'DELAY'], orcpt: null },
      { address: 'carol@example.test', notify: ['SUCCESS', 'DELAY'], orcpt: null },
    ]);
    assert.equal(qf.envelope.ret, 'HDRS');
    assert.equal(qf.envelope.envid, 'ENV1');
  });

  test('pickup: a corrupt or truncated file goes to corrupt/ with a warning, the rest is queued', async () => {
    const { q, params } = await queue();
    const good = await submit(text('Subject: ok\n\n'), opts(q));
    const bad = await submit(text('Subject: bad\n\n'), opts(q));
    const badPath = path.join(q, 'maildrop', bad.name);
    const bytes = await fsp.readFile(badPath);
    await fsp.writeFile(badPath, bytes.subarray(0, bytes.length - 5));
    await fsp.writeFile(path.join(q, 'maildrop', 'not-a-maildrop-name'), 'junk');
    const { log, pickup } = run(params);
    await pickup.ready;
    await pickup.stop();
    assert.deepEqual(await ls(q, 'maildrop'), ['not-a-maildrop-name'], 'other names are left to the admin');
    assert.deepEqual(await ls(q, 'corrupt'), [bad.name]);
    assert.equal((await ls(q, 'incoming')).length, 1);
    const w = log.texts().find((t) => t.startsWith('warning:'));
    assert.equal(w, `warning: maildrop/${bad.name}: uid=${process.getuid?.() ?? 0}: missing or damaged end record (truncated?) -- moved to corrupt/${bad.name}`);
    assert.ok(good.name !== bad.name);
  });

  test('pickup: a temporary cleanup failure (451) keeps the file for the next scan; then it is queued once', async () => {
    const { q, params } = await queue();
    await submit(text('Subject: retry\n\n'), opts(q));
    let fail = true;
    const fs: DurableFs = {
      ...nodeFs,
      async rename(a, b) {
        if (fail) throw Object.assign(new Error('EIO: injected'), { code: 'EIO' });
        return nodeFs.rename(a, b);
      },
    };
    const { log, pickup } = run(params, { fs });
    await pickup.ready;
    assert.equal((await ls(q, 'maildrop')).length, 1, 'kept');
    assert.ok(log.texts().some((t) => /^warning: maildrop\/[0-9A-F]{21}: error writing [0-9A-F]+: 451 4\.3\.0 Error: queue file write error$/.test(t)));
    fail = false;
    await pickup.scan();
    await pickup.stop();
    assert.deepEqual(await ls(q, 'maildrop'), []);
    assert.equal((await ls(q, 'incoming')).filter((n) => !n.endsWith('.tmp')).length, 1);
  });

  test('pickup: a message cleanup refuses for good (too many hops) goes to corrupt/, not lost', async () => {
    const { q, params } = await queue('hopcount_limit = 3\n');
    const sub = await submit(text('Received: a\nReceived: b\nReceived: c\nSubject: loop\n\n'), opts(q));
    const { log, pickup } = run(params);
    await pickup.ready;
    await pickup.stop();
    assert.deepEqual(await ls(q, 'corrupt'), [sub.name]);
    assert.ok(log.texts().some((t) => t.includes(`maildrop/${sub.name}: uid=`) && t.includes('refused by cleanup: 554 5.4.0 Error: too many hops')));
  });

  test('pickup: with fs.watch a new maildrop file is queued at once, without waiting for the 60 s wakeup', async () => {
    const { q, params } = await queue();
    const { pickup } = run(params, { watch: true });
    await pickup.ready;
    try {
      await submit(text('Subject: watched\n\n'), opts(q));
      const deadline = Date.now() + 5000;
      // Queued (the file in incoming/), then removed from maildrop/ — in that order.
      while ((await ls(q, 'incoming')).filter((n) => !n.endsWith('.tmp')).length === 0 || (await ls(q, 'maildrop')).length > 0) {
        assert.ok(Date.now() < deadline, 'picked up within 5 s');
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await pickup.stop();
    }
  });

  test('pickup: stale sendmail temporary files are removed after a day, fresh ones kept', async () => {
    const { q, params } = await queue();
    const old = path.join(q, 'maildrop', 'ABCDEF0123456789ABCDE.tmp');
    const fresh = path.join(q, 'maildrop', 'ABCDEF0123456789ABCDF.tmp');
    await fsp.writeFile(old, 'x');
    await fsp.writeFile(fresh, 'x');
    const twoDays = new Date(Date.now() - 2 * 86400_000);
    await fsp.utimes(old, twoDays, twoDays);
    const { pickup } = run(params);
    await pickup.ready;
    await pickup.stop();
    assert.deepEqual(await ls(q, 'maildrop'), ['ABCDEF0123456789ABCDF.tmp']);
  });

  test('pickup: as the master\'s daemon for a master.cf pickup line it queues maildrop files and stops on drain', async () => {
    const { q } = await queue();
    const etc = path.join(q, '..', `etc-${path.basename(q)}`);
    await fsp.mkdir(etc);
    await fsp.writeFile(path.join(etc, 'main.cf'), `queue_directory = ${q}\nmyhostname = mx.example.test\nmail_owner = root\n`);
    await fsp.writeFile(path.join(etc, 'master.cf'), 'pickup    unix  n       -       n       60      1       pickup\n');
    const config = await loadConfig({ configDir: etc });
    const log = Log.memory({ myhostname: 'mx.example.test' });
    const daemon = await createDaemon({ config, service: config.services[0]!, log });
    try {
      await submit(text('Subject: via master\n\n'), opts(q));
      const deadline = Date.now() + 5000;
      while ((await ls(q, 'incoming')).filter((n) => !n.endsWith('.tmp')).length === 0) {
        assert.ok(Date.now() < deadline, 'picked up within 5 s');
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(log.lines.some((l) => / postfix\/pickup\[\d+\]: [0-9A-F]+: uid=\d+ from=<alice>$/.test(l)));
    } finally {
      await daemon.drain(Date.now() + 1000);
    }
  });

  test('pickup: canonical addresses (append_at_myorigin, append_dot_mydomain)', () => {
    const p = paramsFrom('myhostname = mx.example.test\nmyorigin = example.test\nmydomain = example.test\nappend_dot_mydomain = yes\n');
    assert.equal(canonicalAddress('root', p), 'root@example.test');
    assert.equal(canonicalAddress('', p), '');
    assert.equal(canonicalAddress('u@host', p), 'u@host.example.test');
    assert.equal(canonicalAddress('u@[192.0.2.1]', p), 'u@[192.0.2.1]');
    const off = paramsFrom('myhostname = mx.example.test\nappend_at_myorigin = no\n');
    assert.equal(canonicalAddress('root', off), 'root');
  });
});

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup, type CleanupInput } from '../cleanup/index.js';
import { paramsFrom } from '../config/index.js';
import { type DurableFs, nodeFs } from '../io/durable.js';
import { Log } from '../log/index.js';
import { createQueueDirectories, listQueueIds } from './directories.js';
import { readMessage, readQueueFile } from './file.js';
import { giveBack, published, SPARE_DIR, SPARE_MAX_BYTES, SpareKeeper, takeSpare } from './spare.js';

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-spare-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

let seq = 0;
async function queue(): Promise<string> {
  seq += 1;
  const q = path.join(tmp, `q${seq}`);
  await createQueueDirectories(q);
  return q;
}

const spares = (q: string): string[] => fs.readdirSync(path.join(q, SPARE_DIR)).sort();
const ino = (file: string): string => String(fs.statSync(file).ino);

/** A file in active/ as qmgr leaves it when its message is done. */
function doneFile(q: string, name: string, bytes: number): string {
  const f = path.join(q, 'active', name);
  fs.writeFileSync(f, 'x'.repeat(bytes), { mode: 0o600 });
  return f;
}

const INPUT: CleanupInput = {
  sender: 'alice@example.org',
  recipients: [{ address: 'bob@example.test', notify: null, orcpt: null }],
  ret: null,
  envid: null,
  smtputf8: false,
  body: null,
  client: null,
  receivedHeader: null,
  addMissingHeaders: false,
};

describe('queue/spare', () => {
  test('spare: qmgr renames a finished file into spare/ under its inode number; big files and files past the limit are unlinked', async () => {
    const q = await queue();
    let now = 1000;
    const keeper = new SpareKeeper(q, 2, () => now);
    const a = doneFile(q, 'A1', 10);
    const inoA = ino(a);
    await keeper.retire(a, 10);
    assert.deepEqual(spares(q), [inoA]);
    const big = doneFile(q, 'B2', 10);
    await keeper.retire(big, SPARE_MAX_BYTES + 1);
    assert.deepEqual(spares(q), [inoA], 'a big file is not kept');
    const c = doneFile(q, 'C3', 10);
    const inoC = ino(c);
    await keeper.retire(c, 10);
    const d = doneFile(q, 'D4', 10);
    await keeper.retire(d, 10);
    assert.deepEqual(spares(q), [inoA, inoC].sort(), 'the third one is past the limit of 2');
    assert.deepEqual([keeper.kept, keeper.unlinked], [2, 2]);
    assert.deepEqual(fs.readdirSync(path.join(q, 'active')), []);
    // Files taken from spare/ make room again, seen when qmgr counts again (at most every 100 ms).
    fs.unlinkSync(path.join(q, SPARE_DIR, inoA));
    const e = doneFile(q, 'E5', 10);
    await keeper.retire(e, 10);
    assert.equal(spares(q).length, 1, 'not counted again yet: unlinked');
    now += 200;
    const f = doneFile(q, 'F6', 10);
    const inoF = ino(f);
    await keeper.retire(f, 10);
    assert.deepEqual(spares(q), [inoC, inoF].sort());
    // A file someone else removed (postsuper -d) is ENOENT, as unlink(2) would say.
    await assert.rejects(keeper.retire(path.join(q, 'active', 'G7'), 10), { code: 'ENOENT' });
  });

  test('spare: a queue without spare/ (made by an older version) gets its files unlinked', async () => {
    const q = await queue();
    fs.rmdirSync(path.join(q, SPARE_DIR));
    const keeper = new SpareKeeper(q);
    await keeper.retire(doneFile(q, 'A1', 10), 10);
    assert.deepEqual(fs.readdirSync(path.join(q, 'active')), []);
    assert.deepEqual([keeper.kept, keeper.unlinked], [0, 1]);
    assert.equal(takeSpare(q, 1e12), null);
  });

  test('spare: each spare file is handed out once until given back; new ones are seen after a pause', async () => {
    const q = await queue();
    let now = 1e12;
    const later = (ms: number): number => {
      now += ms;
      return now;
    };
    assert.equal(takeSpare(q, now), null);
    const keeper = new SpareKeeper(q);
    await keeper.retire(doneFile(q, 'A1', 10), 10);
    assert.equal(takeSpare(q, later(10)), null, 'spare/ was empty 10 ms ago: not read again yet');
    const one = takeSpare(q, later(100));
    assert.ok(one !== null);
    assert.equal(takeSpare(q, later(100)), null, 'the only spare file is taken');
    giveBack(q, one);
    assert.equal(takeSpare(q, now), one);
    await keeper.retire(doneFile(q, 'B2', 10), 10);
    const two = takeSpare(q, later(100));
    assert.ok(two !== null && two !== one, String(two));
    published(q, one);
    published(q, two);
    fs.unlinkSync(one);
    fs.unlinkSync(two);
    assert.equal(takeSpare(q, later(100)), null);
  });

  test('spare: cleanup writes a new message into a spare file: same inode, none of the old bytes, published only at commit', async () => {
    const q = await queue();
    const log = Log.memory({ myhostname: 'mx.example.test' });
    const cleanup = new Cleanup({ queue_directory: q, params: paramsFrom('myhostname = mx.example.test\n'), log });
    const old = doneFile(q, 'A1', 50_000);
    const oldIno = ino(old);
    await new SpareKeeper(q).retire(old, 50_000);
    await new Promise((r) => setTimeout(r, 60));
    const txn = await cleanup.open();
    txn.write(Buffer.from('Subject: reused\r\n\r\nshort\r\n'));
    assert.deepEqual(await listQueueIds(q, 'incoming'), [], 'nothing in incoming/ before commit');
    assert.deepEqual(spares(q), [oldIno], 'the file being written is still a spare file');
    const r = await txn.commit(INPUT);
    assert.deepEqual(spares(q), []);
    const file = path.join(q, 'incoming', r.queueId);
    assert.equal(ino(file), oldIno);
    const qf = await readQueueFile(file);
    assert.equal((await readMessage(qf)).toString(), 'Subject: reused\r\n\r\nshort\r\n');
    assert.equal(fs.statSync(file).size, qf.fileSize, 'truncated: no old bytes after the new end record');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  });

  test('spare: a spare file with another mode or a second name is not reused (cleanup creates a new file)', async () => {
    const q = await queue();
    const cleanup = new Cleanup({ queue_directory: q, params: paramsFrom('myhostname = mx.example.test\n'), log: Log.memory() });
    const keeper = new SpareKeeper(q);
    await keeper.retire(doneFile(q, 'A1', 10), 10);
    const [name] = spares(q);
    fs.chmodSync(path.join(q, SPARE_DIR, name!), 0o644);
    const t = await cleanup.open();
    t.write(Buffer.from('Subject: x\r\n\r\nx\r\n'));
    const r = await t.commit(INPUT);
    // Reused, it would have kept 0644 (open(O_TRUNC) leaves the mode as it is).
    assert.equal(fs.statSync(path.join(q, 'incoming', r.queueId)).mode & 0o777, 0o600);
    assert.deepEqual(spares(q), [], 'the odd file is removed');
  });

  test('spare: an aborted transaction leaves its spare file in spare/ for the next one; a failed write removes it', async () => {
    const q = await queue();
    const log = Log.memory({ myhostname: 'mx.example.test' });
    const cleanup = new Cleanup({ queue_directory: q, params: paramsFrom('myhostname = mx.example.test\n'), log });
    await new SpareKeeper(q).retire(doneFile(q, 'A1', 100), 100);
    const sp = spares(q);
    await new Promise((r) => setTimeout(r, 60));
    const t1 = await cleanup.open();
    t1.write(Buffer.from('Subject: aborted\r\n\r\nx\r\n'));
    await t1.abort();
    assert.deepEqual(spares(q), sp);
    assert.deepEqual(await listQueueIds(q, 'incoming'), []);

    const failing = new Cleanup({
      queue_directory: q,
      params: paramsFrom('myhostname = mx.example.test\n'),
      log,
      fs: { ...nodeFs, syncFile: async () => Promise.reject(Object.assign(new Error('EIO: injected'), { code: 'EIO' })) } satisfies DurableFs,
    });
    const t2 = await failing.open();
    t2.write(Buffer.from('Subject: failed\r\n\r\nx\r\n'));
    await assert.rejects(t2.commit(INPUT), (err: Error) => /queue file write error/.test(String((err as { reply?: { lines: string[] } }).reply?.lines)));
    assert.deepEqual(spares(q), [], 'the file that failed is gone, not handed out again');
    assert.deepEqual(await listQueueIds(q, 'incoming'), []);
    const t3 = await cleanup.open();
    t3.write(Buffer.from('Subject: new\r\n\r\nx\r\n'));
    const r = await t3.commit(INPUT);
    assert.deepEqual(await listQueueIds(q, 'incoming'), [r.queueId], 'a new file when there is no spare one');
  });
});

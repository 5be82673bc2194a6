import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DirSync, type DurableFs, nodeFs, renameDurable, unlinkDurable, writeFileDurable, type FileRef } from './durable.js';

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-durable-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

/** A DurableFs over the real one that records calls and can hold or fail directory syncs. */
function recordingFs(o: { dirSyncDelayMs?: number; failSyncFile?: boolean; failDirSync?: () => boolean } = {}) {
  const events: string[] = [];
  const fs: DurableFs = {
    ...nodeFs,
    async syncFile(fh) {
      events.push('syncFile');
      if (o.failSyncFile) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      return nodeFs.syncFile(fh);
    },
    async rename(a, b) {
      events.push(`rename ${path.basename(b)}`);
      return nodeFs.rename(a, b);
    },
    async syncDir(dir) {
      events.push('syncDir:start');
      if (o.dirSyncDelayMs) await new Promise((r) => setTimeout(r, o.dirSyncDelayMs));
      if (o.failDirSync?.()) {
        events.push('syncDir:fail');
        throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      }
      await nodeFs.syncDir(dir);
      events.push('syncDir:end');
    },
  };
  return { fs, events };
}

describe('io/durable', () => {
  test('durable: concurrent directory syncs are batched: one running, one queued for all later callers', async () => {
    const { fs, events } = recordingFs({ dirSyncDelayMs: 20 });
    const ds = new DirSync(fs);
    const calls = Array.from({ length: 50 }, () => ds.sync(tmp));
    await Promise.all(calls);
    assert.equal(ds.requests, 50);
    // The first call starts a sync at once; the 49 that arrive while it runs share the next one.
    assert.equal(ds.syncs, 2);
    assert.deepEqual(events, ['syncDir:start', 'syncDir:end', 'syncDir:start', 'syncDir:end']);
  });

  test('durable: a caller is covered only by a sync that started after its call', async () => {
    const { fs, events } = recordingFs({ dirSyncDelayMs: 10 });
    const ds = new DirSync(fs);
    const order: string[] = [];
    const first = ds.sync(tmp).then(() => order.push('first'));
    await new Promise((r) => setTimeout(r, 2)); // the first sync is now running
    const second = ds.sync(tmp).then(() => order.push('second'));
    await first;
    // The first sync started before `second` was called, so its end must not resolve `second`.
    assert.deepEqual(order, ['first']);
    await second;
    assert.deepEqual(order, ['first', 'second']);
    assert.equal(events.filter((e) => e === 'syncDir:start').length, 2);
  });

  test('durable: a failed directory sync rejects every caller it covered, and the next sync is fresh', async () => {
    let fail = true;
    const { fs } = recordingFs({ dirSyncDelayMs: 5, failDirSync: () => fail });
    const ds = new DirSync(fs);
    const results = await Promise.allSettled([ds.sync(tmp), ds.sync(tmp), ds.sync(tmp)]);
    assert.ok(results.every((r) => r.status === 'rejected'));
    fail = false;
    await ds.sync(tmp);
  });

  test('durable: syncs of different directories are not batched together', async () => {
    const { fs } = recordingFs({ dirSyncDelayMs: 5 });
    const ds = new DirSync(fs);
    const other = await fsp.mkdtemp(path.join(tmp, 'd-'));
    await Promise.all([ds.sync(tmp), ds.sync(other), ds.sync(tmp), ds.sync(other)]);
    assert.equal(ds.syncs, 4);
  });

  test('durable: writeFileDurable writes, syncs the file, renames, then syncs the directory', async () => {
    const { fs, events } = recordingFs();
    const file = path.join(tmp, 'a.txt');
    await writeFileDurable(file, 'hello\n', { fs });
    assert.equal(await fsp.readFile(file, 'utf8'), 'hello\n');
    assert.deepEqual(events, ['syncFile', 'rename a.txt', 'syncDir:start', 'syncDir:end']);
    assert.equal((await fsp.stat(file)).mode & 0o777, 0o600);
    assert.deepEqual((await fsp.readdir(tmp)).filter((n) => n.includes('.tmp.')), []);
  });

  test('durable: writeFileDurable failing at fsync leaves the old file and no temporary', async () => {
    const file = path.join(tmp, 'b.txt');
    await writeFileDurable(file, 'old');
    const { fs } = recordingFs({ failSyncFile: true });
    await assert.rejects(writeFileDurable(file, 'new', { fs }), { code: 'EIO' });
    assert.equal(await fsp.readFile(file, 'utf8'), 'old');
    assert.deepEqual((await fsp.readdir(tmp)).filter((n) => n.includes('.tmp.')), []);
  });

  test('durable: renameDurable syncs both directories; unlinkDurable syncs the directory', async () => {
    const { fs, events } = recordingFs();
    const d1 = await fsp.mkdtemp(path.join(tmp, 'r1-'));
    const d2 = await fsp.mkdtemp(path.join(tmp, 'r2-'));
    await fsp.writeFile(path.join(d1, 'f'), 'x');
    await renameDurable(path.join(d1, 'f'), path.join(d2, 'f'), { fs });
    assert.equal(events.filter((e) => e === 'syncDir:end').length, 2);
    await unlinkDurable(path.join(d2, 'f'), { fs });
    assert.equal(events.filter((e) => e === 'syncDir:end').length, 3);
    await assert.rejects(fsp.stat(path.join(d2, 'f')), { code: 'ENOENT' });
  });

  test('durable: write() continues after a short write until every byte is out', async () => {
    const written: Buffer[] = [];
    let calls = 0;
    // A file handle whose writes take at most 3 bytes at a time.
    const fh = {
      async write(buf: Buffer, off: number, len: number) {
        calls++;
        const n = Math.min(3, len);
        written.push(Buffer.from(buf.subarray(off, off + n)));
        return { bytesWritten: n, buffer: buf };
      },
      async writev(bufs: Buffer[]) {
        calls++;
        const all = Buffer.concat(bufs);
        const n = Math.min(3, all.length);
        written.push(Buffer.from(all.subarray(0, n)));
        return { bytesWritten: n, buffers: bufs };
      },
    } as unknown as FileRef;
    await nodeFs.write(fh, [Buffer.from('hello '), Buffer.from('world')], null);
    assert.equal(Buffer.concat(written).toString(), 'hello world');
    assert.ok(calls >= 4);
  });
});

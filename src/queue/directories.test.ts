import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createQueueDirectories, listQueueIds, moveQueueFile, queueFilePath, removeQueueFile, removeStaleTemporaryFiles } from './directories.js';

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-qdirs-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

describe('queue/directories', () => {
  test('queue directories: created at start with Postfix modes, loose modes tightened', async () => {
    const q = path.join(tmp, 'spool');
    await fsp.mkdir(path.join(q, 'deferred'), { recursive: true });
    await fsp.chmod(path.join(q, 'deferred'), 0o777);
    await createQueueDirectories(q);
    const mode = async (d: string) => (await fsp.stat(path.join(q, d))).mode & 0o7777;
    for (const d of ['incoming', 'active', 'deferred', 'hold', 'corrupt', 'state']) assert.equal(await mode(d), 0o700, d);
    assert.equal(await mode('maildrop'), 0o1733);
  });

  test('queue directories: a file where a queue directory belongs is an error', async () => {
    const q = path.join(tmp, 'spool2');
    await fsp.mkdir(q);
    await fsp.writeFile(path.join(q, 'incoming'), '');
    await assert.rejects(createQueueDirectories(q), { code: 'queue', message: /not a directory/ });
  });

  test('queue directories: paths are never built from a malformed queue id', () => {
    assert.equal(queueFilePath('/q', 'active', '4516420F32'), '/q/active/4516420F32');
    assert.throws(() => queueFilePath('/q', 'active', '../../etc/passwd'), { code: 'queue' });
  });

  test('queue directories: stale cleanup temporaries are removed, fresh ones and queue files kept', async () => {
    const q = path.join(tmp, 'spool3');
    await createQueueDirectories(q);
    const inc = path.join(q, 'incoming');
    await fsp.writeFile(path.join(inc, '123.456.1.tmp'), 'old');
    await fsp.writeFile(path.join(inc, '124.456.2.tmp'), 'new');
    await fsp.writeFile(path.join(inc, '4516420F32'), 'queue file');
    const old = new Date(Date.now() - 3_600_000);
    await fsp.utimes(path.join(inc, '123.456.1.tmp'), old, old);
    assert.deepEqual(await removeStaleTemporaryFiles(q, 600_000), ['123.456.1.tmp']);
    assert.deepEqual((await fsp.readdir(inc)).sort(), ['124.456.2.tmp', '4516420F32']);
  });

  test('queue directories: files move between queues by rename, keeping the id; mtime sets the retry time', async () => {
    const q = path.join(tmp, 'spool4');
    await createQueueDirectories(q);
    await fsp.writeFile(path.join(q, 'incoming', '4516420F32'), 'x');
    await fsp.writeFile(path.join(q, 'incoming', '1.2.3.tmp'), 'tmp');
    assert.deepEqual(await listQueueIds(q, 'incoming'), ['4516420F32']);
    const ino = (await fsp.stat(path.join(q, 'incoming', '4516420F32'))).ino;
    const retry = new Date(Date.now() + 300_000);
    await moveQueueFile(q, '4516420F32', 'incoming', 'deferred', { mtime: retry });
    const st = await fsp.stat(path.join(q, 'deferred', '4516420F32'));
    assert.equal(st.ino, ino);
    assert.equal(Math.round(st.mtimeMs / 1000), Math.round(retry.getTime() / 1000));
    assert.deepEqual(await listQueueIds(q, 'incoming'), []);
    await removeQueueFile(q, '4516420F32', 'deferred');
    assert.deepEqual(await listQueueIds(q, 'deferred'), []);
  });
});

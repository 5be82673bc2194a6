import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createQueueDirectories } from './directories.js';
import { readStateLog, removeStateLog, StateLog, stateLogPath } from './state-log.js';

let q: string;
before(async () => {
  q = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-state-'));
  await createQueueDirectories(q);
});
after(async () => {
  await fsp.rm(q, { recursive: true, force: true });
});

const HASH_A = 'a'.repeat(64);
const HASH_B = 'b'.repeat(64);

describe('queue/state-log', () => {
  test('state log: done recipients survive close and reopen', async () => {
    const log = await StateLog.open(q, '4516420F32', HASH_A);
    assert.deepEqual(log.records, []);
    await log.append({ kind: 'done', rcpt: 0, action: 'delivered', status: '2.0.0', at: 1 });
    await log.append(
      { kind: 'deferred', rcpt: 1, status: '4.4.1', reason: 'connect to mx.example.test[2001:db8::25]:25: Connection refused', at: 2 },
      { kind: 'done', rcpt: 2, action: 'failed', status: '5.1.1', at: 3 },
    );
    await log.close();
    const again = await StateLog.open(q, '4516420F32', HASH_A);
    assert.deepEqual([...again.doneRecipients()].sort(), [0, 2]);
    assert.equal(again.records.length, 3);
    await again.close();
    assert.equal((await readStateLog(q, '4516420F32', HASH_A)).length, 3);
  });

  test('state log: a deferred record keeps the expanded address, Remote-MTA and diagnostic a force-expiry bounce reports; one with a non-string field is skipped', async () => {
    const id = '4516420F36';
    const log = await StateLog.open(q, id, HASH_A);
    const full = { kind: 'deferred', rcpt: 0, status: '4.2.2', reason: 'mailbox full', at: 1, address: 'b@far.example', remoteMta: 'mx.far.example', diagnostic: '452 4.2.2 mailbox full' } as const;
    await log.append(full, { kind: 'deferred', rcpt: 1, status: '4.0.0', reason: 'x', at: 2, address: 7 as unknown as string });
    await log.close();
    assert.deepEqual(await readStateLog(q, id, HASH_A), [full]);
  });

  test('state log: a torn last record is ignored and cut off before the next append', async () => {
    const id = '4516420F33';
    const log = await StateLog.open(q, id, HASH_A);
    await log.append({ kind: 'done', rcpt: 0, action: 'delivered', status: '2.0.0', at: 1 });
    await log.close();
    // A crash in the middle of the next append: half a record, no newline.
    await fsp.appendFile(stateLogPath(q, id), '{"kind":"done","rcpt":1,"act');
    const again = await StateLog.open(q, id, HASH_A);
    assert.deepEqual([...again.doneRecipients()], [0]);
    await again.append({ kind: 'done', rcpt: 3, action: 'relayed', status: '2.0.0', at: 2 });
    await again.close();
    assert.deepEqual((await readStateLog(q, id, HASH_A)).map((r) => (r.kind === 'done' ? r.rcpt : -1)), [0, 3]);
  });

  test('state log: a record with a bad checksum ends the log there', async () => {
    const id = '4516420F34';
    const log = await StateLog.open(q, id, HASH_A);
    await log.append({ kind: 'done', rcpt: 0, action: 'delivered', status: '2.0.0', at: 1 });
    await log.append({ kind: 'done', rcpt: 1, action: 'delivered', status: '2.0.0', at: 1 });
    await log.close();
    const file = stateLogPath(q, id);
    const text = await fsp.readFile(file, 'utf8');
    await fsp.writeFile(file, text.replace('"rcpt":1', '"rcpt":7'));
    assert.deepEqual((await readStateLog(q, id, HASH_A)).map((r) => (r.kind === 'done' ? r.rcpt : -1)), [0]);
  });

  test('state log: a log left over from another message with the same id is discarded', async () => {
    const id = '4516420F35';
    const log = await StateLog.open(q, id, HASH_A);
    await log.append({ kind: 'done', rcpt: 0, action: 'delivered', status: '2.0.0', at: 1 });
    await log.close();
    assert.deepEqual(await readStateLog(q, id, HASH_B), []);
    const fresh = await StateLog.open(q, id, HASH_B);
    assert.deepEqual(fresh.records, []);
    await fresh.append({ kind: 'notified', notice: 'bounce', queueId: '9260421CADA', rcpts: [0], at: 5 });
    await fresh.close();
    assert.equal((await readStateLog(q, id, HASH_B))[0]?.kind, 'notified');
    await removeStateLog(q, id);
    await removeStateLog(q, id); // absent is fine
    assert.deepEqual(await readStateLog(q, id, HASH_B), []);
  });
});

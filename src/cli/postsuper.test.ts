import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { cliContext } from '../../test/harness/cli.js';
import { queueConfig } from '../../test/harness/queue.js';
import { tempRoot } from '../../test/harness/scratch.js';
import { submit } from '../pickup/submit.js';
import type { QueueName } from '../queue/directories.js';
import type { QueueEnvelope } from '../queue/envelope.js';
import { QueueFileWriter } from '../queue/file.js';
import { readStateLog, StateLog, stateLogPath } from '../queue/state-log.js';
import { type PostsuperIo, postsuper } from './postsuper.js';

const tmp = tempRoot('postern-postsuper-');

const setup = () => queueConfig(tmp(), ({ q, maillog }) => `queue_directory = ${q}\nmyhostname = mx.example.test\nmaillog_file = ${maillog}\n`);

/** A queue file named `id` in `queue` with a state log marking recipient 0 done. Returns its hash. */
async function put(q: string, queue: QueueName, id: string): Promise<string> {
  const { writer } = await QueueFileWriter.create(path.join(q, queue, id));
  const content = Buffer.from('Subject: t\r\n\r\nbody\r\n');
  writer.write(content);
  const env: QueueEnvelope = {
    version: 1,
    queueId: id,
    arrivalTime: Date.now(),
    sender: 's@x.test',
    recipients: [
      { address: 'done@x.test', notify: null, orcpt: null },
      { address: 'todo@x.test', notify: null, orcpt: null },
    ],
    ret: null,
    envid: null,
    smtputf8: false,
    body: null,
    client: null,
    messageId: null,
    contentLength: content.length,
    headerEnd: 12,
    inserts: [],
    size: content.length,
  };
  const sha = await writer.finish(env);
  const log = await StateLog.open(q, id, sha);
  await log.append({ kind: 'done', rcpt: 0, action: 'relayed', status: '2.0.0', at: 0 });
  await log.close();
  return sha;
}

async function run(etc: string, args: string[], io: Partial<PostsuperIo> = {}) {
  const { ctx, err } = cliContext(etc);
  const kicks: string[] = [];
  const code = await postsuper(args, ctx, {
    kickQmgr: async (d) => {
      kicks.push(d);
    },
    ...io,
  });
  return { code, stderr: err.text(), kicks };
}

const ls = async (q: string, d: string): Promise<string[]> => (await fsp.readdir(path.join(q, d))).sort();
const exists = (p: string): Promise<boolean> =>
  fsp.access(p).then(
    () => true,
    () => false,
  );

describe('cli/postsuper', () => {
  test('postsuper -d ID: one message in each queue; Postfix\'s lines on stderr and in the log; state log removed', async () => {
    const { etc, q, maillog } = await setup();
    await put(q, 'incoming', '1A2B3C4D5E');
    await put(q, 'active', '2A2B3C4D5E');
    await put(q, 'deferred', '3A2B3C4D5E');
    await put(q, 'hold', '4A2B3C4D5E');
    const md = await submit(Readable.from([Buffer.from('x\n')]), {
      maildropDir: path.join(q, 'maildrop'),
      sender: 'u',
      fullName: null,
      recipientArgs: ['r@x.test'],
      extract: false,
      dotEnds: true,
      notify: null,
      ret: null,
      envid: null,
      body: null,
      smtputf8: false,
      line_length_limit: 2048,
      message_size_limit: 0,
      header_size_limit: 102400,
      uid: 0,
    });
    const ids = ['1A2B3C4D5E', '2A2B3C4D5E', '3A2B3C4D5E', '4A2B3C4D5E', md.name];
    const r = await run(etc, ids.flatMap((id) => ['-d', id]));
    assert.equal(r.code, 0);
    assert.equal(r.stderr, `${ids.map((id) => `postsuper: ${id}: removed\n`).join('')}postsuper: Deleted: 5 messages\n`);
    for (const d of ['incoming', 'active', 'deferred', 'hold', 'maildrop', 'state']) assert.deepEqual(await ls(q, d), [], d);
    const log = await fsp.readFile(maillog, 'utf8');
    assert.match(log, new RegExp(`mx postfix/postsuper\\[${process.pid}\\]: 1A2B3C4D5E: removed\\n`));
    assert.match(log, /postfix\/postsuper\[\d+\]: Deleted: 5 messages\n/);
  });

  test('postsuper -d ALL deferred: only that queue, a count and no per-message lines', async () => {
    const { etc, q } = await setup();
    await put(q, 'deferred', 'AAAAA11111');
    await put(q, 'deferred', 'AAAAA22222');
    await put(q, 'hold', 'AAAAA33333');
    const r = await run(etc, ['-d', 'ALL', 'deferred']);
    assert.equal(r.stderr, 'postsuper: Deleted: 2 messages\n');
    assert.deepEqual(await ls(q, 'deferred'), []);
    assert.deepEqual(await ls(q, 'hold'), ['AAAAA33333']);
  });

  test('postsuper -d -: queue ids from standard input, a bad line warned about; unknown ids count 0', async () => {
    const { etc, q } = await setup();
    await put(q, 'deferred', 'BBBBB11111');
    const stdin = Readable.from([Buffer.from('BBBBB11111\nA747F20E201 junk\nCCCCC99999\n')]);
    const r = await run(etc, ['-d', '-'], { stdin });
    assert.equal(r.stderr, 'postsuper: BBBBB11111: removed\npostsuper: warning: invalid mail queue id: A747F20E201 junk\npostsuper: Deleted: 1 message\n');
  });

  test('postsuper -h / -H: hold from incoming, active, deferred (never maildrop); release to deferred; the state log follows', async () => {
    const { etc, q } = await setup();
    const sha = await put(q, 'deferred', 'DDDDD11111');
    await put(q, 'active', 'DDDDD22222');
    await put(q, 'incoming', 'DDDDD33333');
    let r = await run(etc, ['-h', 'DDDDD11111']);
    assert.equal(r.stderr, 'postsuper: DDDDD11111: placed on hold\npostsuper: Placed on hold: 1 message\n');
    r = await run(etc, ['-h', 'ALL']);
    assert.equal(r.stderr, 'postsuper: Placed on hold: 2 messages\n');
    assert.deepEqual(await ls(q, 'hold'), ['DDDDD11111', 'DDDDD22222', 'DDDDD33333']);
    r = await run(etc, ['-H', 'DDDDD11111']);
    assert.equal(r.stderr, 'postsuper: DDDDD11111: released from hold\npostsuper: Released from hold: 1 message\n');
    assert.equal(r.kicks.length, 1, 'qmgr is asked to scan after a release');
    assert.deepEqual(await ls(q, 'deferred'), ['DDDDD11111']);
    const recs = await readStateLog(q, 'DDDDD11111', sha);
    assert.deepEqual(
      recs.map((x) => x.kind),
      ['done'],
      'done recipients stay done after hold and release',
    );
    r = await run(etc, ['-H', 'ALL']);
    assert.equal(r.stderr, 'postsuper: Released from hold: 2 messages\n');
    assert.deepEqual(await ls(q, 'hold'), []);
  });

  test('postsuper -r: requeue into incoming/ with a fresh time stamp; done recipients stay done; qmgr is kicked', async () => {
    const { etc, q } = await setup();
    const sha = await put(q, 'deferred', 'EEEEE11111');
    await put(q, 'hold', 'EEEEE22222');
    const old = new Date(Date.now() - 86400_000);
    await fsp.utimes(path.join(q, 'deferred', 'EEEEE11111'), old, old);
    const r = await run(etc, ['-r', 'EEEEE11111', '-r', 'ALL']);
    assert.equal(r.stderr, 'postsuper: EEEEE11111: requeued\npostsuper: Requeued: 2 messages\n');
    assert.deepEqual(await ls(q, 'incoming'), ['EEEEE11111', 'EEEEE22222']);
    assert.ok((await fsp.stat(path.join(q, 'incoming', 'EEEEE11111'))).mtimeMs > Date.now() - 60_000);
    assert.equal((await readStateLog(q, 'EEEEE11111', sha)).length, 1);
    assert.equal(r.kicks.length, 1);
  });

  test('postsuper -e / -f: force expiry sets the group-execute bit; -f also releases from hold', async () => {
    const { etc, q } = await setup();
    await put(q, 'deferred', 'FFFFF11111');
    await put(q, 'hold', 'FFFFF22222');
    let r = await run(etc, ['-e', 'FFFFF11111']);
    assert.equal(r.stderr, 'postsuper: FFFFF11111: expired\npostsuper: Force-expired: 1 message\n');
    assert.equal((await fsp.stat(path.join(q, 'deferred', 'FFFFF11111'))).mode & 0o010, 0o010);
    r = await run(etc, ['-f', 'FFFFF22222']);
    assert.equal(r.stderr, 'postsuper: FFFFF22222: expired\npostsuper: FFFFF22222: released from hold\npostsuper: Force-expired: 1 message\npostsuper: Released from hold: 1 message\n');
    assert.equal((await fsp.stat(path.join(q, 'deferred', 'FFFFF22222'))).mode & 0o010, 0o010);
  });

  test('postsuper: a move never replaces a message that already has the target name', async () => {
    const { etc, q } = await setup();
    await put(q, 'deferred', '9999911111');
    await put(q, 'hold', '9999911111');
    const r = await run(etc, ['-h', '9999911111', 'deferred']);
    assert.equal(r.stderr, 'postsuper: warning: 9999911111: hold/9999911111 exists; deferred/9999911111 left where it is\npostsuper: Placed on hold: 0 messages\n');
    assert.ok(await exists(path.join(q, 'deferred', '9999911111')));
    assert.ok(await exists(stateLogPath(q, '9999911111')));
  });

  test('postsuper -p: temporary files older than 7 days go; the default action is -s -p', async () => {
    const { etc, q } = await setup();
    const oldTmp = path.join(q, 'incoming', '123.456.1.tmp');
    const newTmp = path.join(q, 'incoming', '123.456.2.tmp');
    const oldDrop = path.join(q, 'maildrop', 'ABCDEF0123456789ABCDE.tmp');
    for (const f of [oldTmp, newTmp, oldDrop]) await fsp.writeFile(f, 'x');
    const old = new Date(Date.now() - 8 * 86400_000);
    await fsp.utimes(oldTmp, old, old);
    await fsp.utimes(oldDrop, old, old);
    const r = await run(etc, []);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    assert.deepEqual(await ls(q, 'incoming'), ['123.456.2.tmp']);
    assert.deepEqual(await ls(q, 'maildrop'), []);
  });

  test('postsuper: a bad queue name or option is fatal (exit 1) with Postfix\'s text', async () => {
    const { etc } = await setup();
    let r = await run(etc, ['-d', 'ALL', 'bogus']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'postsuper: fatal: invalid directory name: bogus\n');
    r = await run(etc, ['-x']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^postsuper: invalid option -- 'x'\npostsuper: fatal: usage: postsuper \[-c config_dir\] \[-d queue_id \(delete\)\]/);
    r = await run(etc, ['-c', 'relative', '-d', 'ALL']);
    assert.equal(r.stderr, 'postsuper: fatal: -c requires absolute pathname\n');
  });
});

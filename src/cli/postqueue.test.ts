import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { cliContext } from '../../test/harness/cli.js';
import { queueConfig } from '../../test/harness/queue.js';
import { tempRoot } from '../../test/harness/scratch.js';
import type { QueueName } from '../queue/directories.js';
import type { EnvelopeRecipient, QueueEnvelope } from '../queue/envelope.js';
import { QueueFileWriter } from '../queue/file.js';
import { StateLog, type StateRecord } from '../queue/state-log.js';
import { type FlushRequest, main as postqueue } from './postqueue.js';

// mailq prints local time (asctime(localtime())), as Postfix; the goldens are in UTC.
process.env.TZ = 'UTC';

const tmp = tempRoot('postern-postqueue-');

const setup = (extra = '') => queueConfig(tmp(), ({ q }) => `compatibility_level = 3.6\nqueue_directory = ${q}\nmyhostname = mx.example.test\n${extra}`);

interface Msg {
  readonly queue: QueueName;
  readonly id: string;
  readonly size: number;
  readonly arrival: number;
  readonly sender: string;
  readonly rcpts: readonly string[];
  /** Per recipient index: a deferral reason, or 'done'. */
  readonly state?: Readonly<Record<number, string>>;
  readonly mode?: number;
}

/** A queue file with a chosen id (as qmgr would have moved it into `queue`), and its state log. */
async function put(q: string, m: Msg): Promise<void> {
  const file = path.join(q, m.queue, m.id);
  const { writer } = await QueueFileWriter.create(file);
  const head = 'Subject: t\r\n\r\n';
  const content = Buffer.from(head + 'x'.repeat(m.size - head.length), 'latin1');
  writer.write(content);
  const recipients: EnvelopeRecipient[] = m.rcpts.map((address) => ({ address, notify: null, orcpt: null }));
  const env: QueueEnvelope = {
    version: 1,
    queueId: m.id,
    arrivalTime: m.arrival * 1000,
    sender: m.sender,
    recipients,
    ret: null,
    envid: null,
    smtputf8: false,
    body: null,
    client: null,
    messageId: null,
    contentLength: content.length,
    headerEnd: head.length - 2,
    inserts: [],
    size: content.length,
  };
  const sha = await writer.finish(env);
  if (m.mode !== undefined) await fsp.chmod(file, m.mode);
  if (m.state) {
    const log = await StateLog.open(q, m.id, sha);
    const recs: StateRecord[] = Object.entries(m.state).map(([i, s]) =>
      s === 'done' ? { kind: 'done', rcpt: Number(i), action: 'relayed', status: '2.0.0', at: 0 } : { kind: 'deferred', rcpt: Number(i), status: '4.4.1', reason: s, at: 0 },
    );
    await log.append(...recs);
    await log.close();
  }
}

async function run(etc: string, args: string[], flush?: (q: string, r: FlushRequest) => Promise<void>) {
  const { ctx, out, err } = cliContext(etc);
  const code = await postqueue(args, ctx, flush ? { flush } : {});
  return { code, stdout: out.text(), stderr: err.text() };
}

const REFUSED = 'connect to 127.0.0.1[127.0.0.1]:39998: Connection refused';

/** `postqueue -p` of Postfix 3.7.11 (postfix-ref, relayhost on a closed port), captured verbatim. */
const POSTFIX_P = `-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
B187320E228     346 Wed Nov 25 12:40:34  root@mx.example.test
                   (connect to 127.0.0.1[127.0.0.1]:39998: Connection refused)
                                         dave@remote.example
                                         eve@remote.example
                                         frank@remote.example

A747F20E201     268 Wed Nov 25 12:40:34  alice@example.org
                   (connect to 127.0.0.1[127.0.0.1]:39998: Connection refused)
                                         bob@remote.example
                                         carol@remote.example

-- 0 Kbytes in 2 Requests.
`;

/** `postqueue -j` of the same queue, verbatim. */
const POSTFIX_J = [
  '{"queue_name": "deferred", "queue_id": "B187320E228", "arrival_time": 1795610434, "message_size": 346, "forced_expire": false, "sender": "root@mx.example.test", "recipients": [{"address": "dave@remote.example", "delay_reason": "connect to 127.0.0.1[127.0.0.1]:39998: Connection refused"}, {"address": "eve@remote.example", "delay_reason": "connect to 127.0.0.1[127.0.0.1]:39998: Connection refused"}, {"address": "frank@remote.example", "delay_reason": "connect to 127.0.0.1[127.0.0.1]:39998: Connection refused"}]}',
  '{"queue_name": "deferred", "queue_id": "A747F20E201", "arrival_time": 1795610434, "message_size": 268, "forced_expire": false, "sender": "alice@example.org", "recipients": [{"address": "bob@remote.example", "delay_reason": "connect to 127.0.0.1[127.0.0.1]:39998: Connection refused"}, {"address": "carol@remote.example", "delay_reason": "connect to 127.0.0.1[127.0.0.1]:39998: Connection refused"}]}',
];

async function postfixQueue(q: string): Promise<void> {
  const t = 1795610434;
  await put(q, { queue: 'deferred', id: 'B187320E228', size: 346, arrival: t, sender: 'root@mx.example.test', rcpts: ['dave@remote.example', 'eve@remote.example', 'frank@remote.example'], state: { 0: REFUSED, 1: REFUSED, 2: REFUSED } });
  await put(q, { queue: 'deferred', id: 'A747F20E201', size: 268, arrival: t, sender: 'alice@example.org', rcpts: ['bob@remote.example', 'carol@remote.example'], state: { 0: REFUSED, 1: REFUSED } });
}

/** Header, message blocks (order free: Postfix lists in directory order), footer. */
function shape(listing: string): { head: string; blocks: string[]; foot: string } {
  const lines = listing.split('\n');
  const head = lines.shift()!;
  lines.pop();
  const foot = lines.pop()!;
  const blocks = lines
    .join('\n')
    .split('\n\n')
    .map((b) => b.trim())
    .filter((b) => b !== '');
  return { head, blocks: blocks.sort(), foot };
}

describe('cli/postqueue: listings in Postfix format', () => {
  test('postqueue -p: the same queue gives the same text as Postfix 3.7.11 (blocks, columns, reasons, footer)', async () => {
    const { etc, q } = await setup();
    await postfixQueue(q);
    const r = await run(etc, ['-p']);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    assert.deepEqual(shape(r.stdout), shape(POSTFIX_P));
  });

  test('postqueue -j: the same queue gives Postfix 3.7.11\'s JSON lines', async () => {
    const { etc, q } = await setup();
    await postfixQueue(q);
    const r = await run(etc, ['-j']);
    assert.equal(r.code, 0);
    assert.deepEqual(r.stdout.split('\n').filter((l) => l !== '').sort(), [...POSTFIX_J].sort());
    for (const line of r.stdout.trim().split('\n')) JSON.parse(line);
  });

  test('postqueue -p: golden — active *, hold !, forced expire #, mixed reasons, done recipients hidden, null sender, quoting', async () => {
    const { etc, q } = await setup();
    const t = 1795610434;
    await put(q, { queue: 'active', id: '4F0A1B2C3D', size: 1200, arrival: t - 2434, sender: 'active@example.org', rcpts: ['r1@remote.example'] });
    await put(q, { queue: 'hold', id: 'A747F20E201', size: 268, arrival: t, sender: 'alice@example.org', rcpts: ['bob@remote.example', 'carol@remote.example'], state: { 0: REFUSED, 1: REFUSED } });
    await put(q, {
      queue: 'deferred',
      id: 'C0FFEE12345',
      size: 5000,
      arrival: t + 86400 * 3,
      sender: '',
      rcpts: ['a@x.test', 'b@x.test', 'c@x.test', 'd@x.test', 'john doe@x.test'],
      state: { 0: 'host x.test said: 451 4.3.0 try later', 1: REFUSED, 3: 'done' },
      mode: 0o610,
    });
    await put(q, { queue: 'incoming', id: '12345ABCDE', size: 300, arrival: t, sender: 'in@example.org', rcpts: ['z@example.test'] });
    const r = await run(etc, ['-p']);
    assert.equal(r.code, 0);
    assert.equal(
      r.stdout,
      `-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
4F0A1B2C3D*    1200 Wed Nov 25 12:00:00  active@example.org
                                         r1@remote.example

12345ABCDE      300 Wed Nov 25 12:40:34  in@example.org
                                         z@example.test

C0FFEE12345#    5000 Sat Nov 28 12:40:34  MAILER-DAEMON
                                       (host x.test said: 451 4.3.0 try later)
                                         a@x.test
                   (connect to 127.0.0.1[127.0.0.1]:39998: Connection refused)
                                         b@x.test
                                                          (reason unavailable)
                                         c@x.test
                                         "john doe"@x.test

A747F20E201!     268 Wed Nov 25 12:40:34  alice@example.org
                   (connect to 127.0.0.1[127.0.0.1]:39998: Connection refused)
                                         bob@remote.example
                                         carol@remote.example

-- 6 Kbytes in 4 Requests.
`,
    );
  });

  test('postqueue -p / -j: an empty queue is "Mail queue is empty" / no output', async () => {
    const { etc } = await setup();
    assert.equal((await run(etc, ['-p'])).stdout, 'Mail queue is empty\n');
    assert.equal((await run(etc, ['-j'])).stdout, '');
  });

  test('postqueue -p: one message is "1 Request", long queue ids use the wide columns', async () => {
    const { etc, q } = await setup('enable_long_queue_ids = yes\n');
    await put(q, { queue: 'deferred', id: '4fJ9Qs0bdqz1v', size: 2048, arrival: 1795610434, sender: 's@x.test', rcpts: ['r@x.test'] });
    const r = await run(etc, ['-p']);
    assert.equal(
      r.stdout,
      `----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------
4fJ9Qs0bdqz1v         2048 Wed Nov 25 12:40:34 s@x.test
                                               r@x.test

-- 2 Kbytes in 1 Request.
`,
    );
  });

  test('postqueue -j: forced_expire, the queue name, JSON escapes', async () => {
    const { etc, q } = await setup();
    await put(q, { queue: 'hold', id: 'ABCDEF12345', size: 100, arrival: 1795610434, sender: 'q"uote@x.test', rcpts: ['r@x.test'], state: { 0: 'said: "no"' }, mode: 0o610 });
    const r = await run(etc, ['-j']);
    assert.equal(
      r.stdout,
      '{"queue_name": "hold", "queue_id": "ABCDEF12345", "arrival_time": 1795610434, "message_size": 100, "forced_expire": true, "sender": "\\"q\\\\\\"uote\\"@x.test", "recipients": [{"address": "r@x.test", "delay_reason": "said: \\"no\\""}]}\n',
    );
    assert.equal(JSON.parse(r.stdout).sender, '"q\\"uote"@x.test');
  });
});

describe('cli/postqueue: flush and usage', () => {
  test('postqueue -f / -s / -i send the trigger requests; -i makes the deferred file due now', async () => {
    const { etc, q } = await setup('relay_domains = example.test\n');
    await put(q, { queue: 'deferred', id: 'B187320E228', size: 346, arrival: 1795610434, sender: 's@x.test', rcpts: ['r@example.test'] });
    const later = new Date(Date.now() + 3600_000);
    await fsp.utimes(path.join(q, 'deferred', 'B187320E228'), later, later);
    const sent: FlushRequest[] = [];
    const flush = async (_q: string, r: FlushRequest): Promise<void> => {
      sent.push(r);
    };
    assert.equal((await run(etc, ['-f'], flush)).code, 0);
    assert.equal((await run(etc, ['-s', 'sub.example.test'], flush)).code, 0);
    assert.equal((await run(etc, ['-s', '[192.0.2.1]'], flush)).code, 69, 'not in fast_flush_domains');
    assert.equal((await run(etc, ['-i', 'B187320E228'], flush)).code, 0);
    assert.deepEqual(sent, ['flush', { site: 'sub.example.test' }, 'scan']);
    const st = await fsp.stat(path.join(q, 'deferred', 'B187320E228'));
    assert.ok(st.mtimeMs <= Date.now() + 1000, 'retry time moved to now');
  });

  test('postqueue: Postfix\'s errors and exit codes', async () => {
    const { etc } = await setup();
    const down = async (): Promise<void> => {
      throw new Error('ENOENT');
    };
    const usage = 'postqueue: fatal: usage: postqueue -f | postqueue -i queueid | postqueue -j | postqueue -p | postqueue -s site\n';
    const cases: [string[], number, string][] = [
      [[], 64, usage],
      [['-x'], 64, `postqueue: invalid option -- 'x'\n${usage}`],
      [['-p', '-j'], 64, usage],
      [['-p', 'extra'], 64, usage],
      [['-s', 'bad site!'], 64, 'postqueue: fatal: Cannot flush mail queue - invalid destination: "bad site!"\n'],
      [['-i', 'bad/id'], 64, 'postqueue: fatal: Cannot flush queue ID - invalid name: "bad/id"\n'],
      [['-s', 'example.com'], 69, 'postqueue: fatal: Flush service is not configured for destination "example.com"\n'],
      [['-f'], 69, 'postqueue: fatal: Cannot flush mail queue - mail system is down\n'],
    ];
    for (const [args, code, err] of cases) {
      const r = await run(etc, args, down);
      assert.equal(r.code, code, args.join(' '));
      assert.equal(r.stderr, err, args.join(' '));
    }
  });
});

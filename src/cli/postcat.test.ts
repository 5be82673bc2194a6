import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { cliContext } from '../../test/harness/cli.js';
import { queueConfig } from '../../test/harness/queue.js';
import { tempRoot } from '../../test/harness/scratch.js';
import { Cleanup } from '../cleanup/index.js';
import { paramsFrom } from '../config/index.js';
import { Log } from '../log/index.js';
import { submit } from '../pickup/submit.js';
import { readQueueFile } from '../queue/file.js';
import { StateLog } from '../queue/state-log.js';
import { main as postcat } from './postcat.js';

process.env.TZ = 'UTC';

const tmp = tempRoot('postern-postcat-');

const setup = () => queueConfig(tmp(), ({ q }) => `queue_directory = ${q}\nmyhostname = mx.example.test\n`);

const ARRIVAL = Date.UTC(2026, 10, 25, 12, 40, 34);

/** A message queued by cleanup as pickup would (local, headers added), moved to hold/; recipient 0 done. */
async function queued(q: string): Promise<string> {
  const params = paramsFrom(`queue_directory = ${q}\nmyhostname = mx.example.test\n`);
  const cleanup = new Cleanup({ queue_directory: q, params, log: Log.memory(), clock: () => ARRIVAL });
  const txn = await cleanup.open();
  txn.write(Buffer.from('Subject: t1\r\n\r\nhello\r\n'));
  const { queueId } = await txn.commit({
    sender: 'alice@example.org',
    recipients: [
      { address: 'bob@remote.example', notify: ['SUCCESS', 'DELAY'], orcpt: 'rfc822;bob@remote.example' },
      // As local(8) forwards an alias's expansion: the alias is the original recipient.
      { address: 'carol@remote.example', notify: null, orcpt: null, original: 'team@mx.example.test' },
    ],
    ret: 'HDRS',
    envid: 'ENV1',
    smtputf8: false,
    body: null,
    client: null,
    receivedHeader: `Received: by mx.example.test (Postfix, from userid 0)\r\n\tid QID; Wed, 25 Nov 2026 12:40:34 +0000 (UTC)`,
    addMissingHeaders: true,
    fullName: 'root',
    arrivalTime: ARRIVAL,
  });
  await fsp.rename(path.join(q, 'incoming', queueId), path.join(q, 'hold', queueId));
  const qf = await readQueueFile(path.join(q, 'hold', queueId));
  const log = await StateLog.open(q, queueId, qf.sha256);
  await log.append({ kind: 'done', rcpt: 0, action: 'relayed', status: '2.0.0', at: 0 });
  await log.close();
  return queueId;
}

async function run(etc: string, args: string[]) {
  const { ctx, out, err } = cliContext(etc);
  const code = await postcat(args, ctx);
  return { code, stdout: out.text(), stderr: err.text() };
}

describe('cli/postcat', () => {
  test('postcat -q ID: envelope records, contents with the added headers, markers, as Postfix lays them out', async () => {
    const { etc, q } = await setup();
    const id = await queued(q);
    const r = await run(etc, ['-q', id]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.equal(lines[0], `*** ENVELOPE RECORDS hold/${id} ***`);
    assert.match(lines[1]!, /^message_size: {2}( +\d+){6}$/);
    assert.equal(
      lines.slice(2).join('\n'),
      `message_arrival_time: Wed Nov 25 12:40:34 2026
named_attribute: envelope_id=ENV1
named_attribute: ret_flags=2
named_attribute: rewrite_context=local
sender: alice@example.org
named_attribute: notify_flags=10
named_attribute: dsn_orig_rcpt=rfc822;bob@remote.example
done_recipient: bob@remote.example
original_recipient: team@mx.example.test
recipient: carol@remote.example
*** MESSAGE CONTENTS hold/${id} ***
Received: by mx.example.test (Postfix, from userid 0)
\tid QID; Wed, 25 Nov 2026 12:40:34 +0000 (UTC)
Subject: t1
Message-Id: <20261125124034.${id}@mx.example.test>
Date: Wed, 25 Nov 2026 12:40:34 +0000 (UTC)
From: root <alice@example.org>

hello
*** HEADER EXTRACTED hold/${id} ***
*** MESSAGE FILE END hold/${id} ***
`,
    );
  });

  test('postcat -h, -b, -bh: text only, split where the header section ends (as Postfix 3.7.11 prints them)', async () => {
    const { etc, q } = await setup();
    const id = await queued(q);
    const h = await run(etc, ['-h', '-q', id]);
    assert.equal(
      h.stdout,
      `Received: by mx.example.test (Postfix, from userid 0)\n\tid QID; Wed, 25 Nov 2026 12:40:34 +0000 (UTC)\nSubject: t1\nMessage-Id: <20261125124034.${id}@mx.example.test>\nDate: Wed, 25 Nov 2026 12:40:34 +0000 (UTC)\nFrom: root <alice@example.org>\n`,
    );
    assert.equal((await run(etc, ['-b', '-q', id])).stdout, '\nhello\n');
    assert.equal((await run(etc, ['-bh', '-q', id])).stdout, `${h.stdout}\nhello\n`);
    assert.equal((await run(etc, ['-e', '-q', id])).stdout.split('\n').filter((l) => l.startsWith('***')).length, 4);
  });

  test('postcat -q NAME: a maildrop file waiting for pickup; a path works too', async () => {
    const { etc, q } = await setup();
    const md = await submit(Readable.from([Buffer.from('Subject: t3\n\nhello\n')]), {
      maildropDir: path.join(q, 'maildrop'),
      sender: '',
      fullName: 'root',
      recipientArgs: ['zed@remote.example'],
      extract: false,
      dotEnds: true,
      notify: ['SUCCESS', 'DELAY'],
      ret: 'HDRS',
      envid: 'envid123',
      body: null,
      smtputf8: false,
      line_length_limit: 2048,
      message_size_limit: 0,
      header_size_limit: 102400,
      uid: 0,
      now: ARRIVAL,
    });
    const r = await run(etc, ['-q', md.name]);
    assert.equal(
      r.stdout,
      `*** ENVELOPE RECORDS maildrop/${md.name} ***
message_arrival_time: Wed Nov 25 12:40:34 2026
named_attribute: envelope_id=envid123
named_attribute: ret_flags=2
named_attribute: rewrite_context=local
sender_fullname: root
sender: 
named_attribute: notify_flags=10
recipient: zed@remote.example
*** MESSAGE CONTENTS maildrop/${md.name} ***
Subject: t3

hello
*** HEADER EXTRACTED maildrop/${md.name} ***
*** MESSAGE FILE END maildrop/${md.name} ***
`,
    );
    const file = path.join(q, 'maildrop', md.name);
    assert.equal((await run(etc, ['-b', file])).stdout, '\nhello\n');
  });

  test('postcat: a bad or unknown id is fatal (exit 1) with Postfix\'s text; a non-queue file is warned about', async () => {
    const { etc, q } = await setup();
    let r = await run(etc, ['-q', 'bad/id']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'postcat: fatal: bad mail queue ID: bad/id\n');
    r = await run(etc, ['-q', 'ABCDEF12345']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'postcat: fatal: open queue file ABCDEF12345: No such file or directory\n');
    const junk = path.join(q, 'junk');
    await fsp.writeFile(junk, 'not a queue file\n');
    r = await run(etc, [junk]);
    assert.equal(r.code, 0);
    assert.equal(r.stderr, `postcat: warning: ${junk}: input is not a valid queue file\n`);
  });
});

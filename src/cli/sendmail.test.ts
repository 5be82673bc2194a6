import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cliContext, collector } from '../../test/harness/cli.js';
import { queueConfig } from '../../test/harness/queue.js';
import { tempRoot } from '../../test/harness/scratch.js';
import { openMaildropFile } from '../pickup/maildrop.js';
import { main } from './main.js';
import type { FlushRequest } from './postqueue.js';
import { gecosName, type SendmailIo, sendmail } from './sendmail.js';

const tmp = tempRoot('postern-sendmail-');

/** A configuration directory whose queue does not exist yet (sendmail creates it). */
const setup = (extra = '') =>
  queueConfig(tmp(), ({ q, maillog }) => `compatibility_level = 3.6\nqueue_directory = ${q}\nmyhostname = mx.example.test\nmaillog_file = ${maillog}\n${extra}`, { createQueue: false });

function ctx(etc: string) {
  const { ctx: c, out, err } = cliContext(etc);
  return { c, stdout: out.text, stderr: err.text };
}

function io(stdin: string, o: Partial<SendmailIo> = {}): Partial<SendmailIo> {
  return { stdin: Readable.from([Buffer.from(stdin)]), uid: 1234, user: 'tester', ...o };
}

async function maildrop(q: string) {
  const dir = path.join(q, 'maildrop');
  const names = (await fsp.readdir(dir)).filter((n) => !n.endsWith('.tmp'));
  return Promise.all(
    names.map(async (n) => {
      const md = await openMaildropFile(path.join(dir, n));
      await md.close();
      return md;
    }),
  );
}

describe('cli/sendmail', () => {
  test('sendmail: with the server stopped the message is left durable in maildrop/ (exit 0); the queue is created', async () => {
    const { etc, q } = await setup();
    const t = ctx(etc);
    const code = await sendmail(['-oi', '-f', 'Alice <alice@example.org>', '-F', 'Alice A', '-N', 'success,delay', '-R', 'hdrs', '-V', 'env-1', '-B', '8BITMIME', 'bob@example.test, carol'], t.c, 'sendmail', io('Subject: s\n\n.\nbody\n'));
    assert.equal(code, 0, t.stderr());
    assert.equal(t.stderr(), '');
    assert.equal((await fsp.stat(path.join(q, 'maildrop'))).mode & 0o7777, 0o1733);
    const [md, more] = await maildrop(q);
    assert.equal(more, undefined);
    assert.ok(md);
    assert.deepEqual(
      { ...md.envelope, time: 0 },
      {
        version: 1,
        time: 0,
        sender: 'alice@example.org',
        fullName: 'Alice A',
        recipients: [
          { address: 'bob@example.test', notify: ['SUCCESS', 'DELAY'], orcpt: null },
          { address: 'carol', notify: ['SUCCESS', 'DELAY'], orcpt: null },
        ],
        ret: 'HDRS',
        envid: 'env-1',
        smtputf8: false,
        body: '8BITMIME',
      },
    );
    assert.equal(md.contentLength, 'Subject: s\r\n\r\n.\r\nbody\r\n'.length, '-oi: the dot line is content');
  });

  test('sendmail: the default sender is the login name, the full name from $NAME', async () => {
    const { etc, q } = await setup();
    const t = ctx(etc);
    const c = { ...t.c, env: { NAME: 'From Env' } };
    assert.equal(await sendmail(['-t'], c, 'sendmail', io('To: x@example.test\n\n')), 0, t.stderr());
    const [md] = await maildrop(q);
    assert.equal(md!.envelope.sender, 'tester');
    assert.equal(md!.envelope.fullName, 'From Env');
    assert.deepEqual(
      md!.envelope.recipients.map((r) => r.address),
      ['x@example.test'],
    );
  });

  test('sendmail: no recipient is exit 64 with Postfix\'s message, on stderr and in the log', async () => {
    const { etc, q, maillog } = await setup();
    const t = ctx(etc);
    assert.equal(await sendmail([], t.c, 'sendmail', io('Subject: x\n\n')), 64);
    assert.equal(t.stderr(), 'sendmail: fatal: tester(1234): Recipient addresses must be specified on the command line or via the -t option\n');
    assert.match(await fsp.readFile(maillog, 'utf8'), /postfix\/sendmail\[\d+\]: fatal: tester\(1234\): Recipient addresses must be specified/);
    assert.deepEqual(await maildrop(q), []);
  });

  test('sendmail: bad options are exit 64 (EX_USAGE) with Postfix\'s texts', async () => {
    const { etc } = await setup();
    const cases: [string[], string][] = [
      [['-z'], "sendmail: invalid option -- 'z'\nsendmail: fatal: usage: sendmail [options]\n"],
      [['-f'], "sendmail: option requires an argument -- 'f'\nsendmail: fatal: usage: sendmail [options]\n"],
      [['-B', '9BIT', 'x'], 'sendmail: fatal: -B option needs 8BITMIME or 7BIT\n'],
      [['-t', '-bp'], 'sendmail: fatal: -t can be used only in delivery mode\n'],
      [['-n', 'x'], 'sendmail: fatal: -n option not supported\n'],
      [['-qX'], 'sendmail: fatal: -qX is not implemented\n'],
      [['-qR'], 'sendmail: fatal: specify: -qRsitename\n'],
      [['-bz'], 'sendmail: fatal: unsupported: -bz\n'],
      [['-bp', 'x@y'], 'sendmail: fatal: display queue mode requires no recipient\n'],
      [['-bd'], 'sendmail: fatal: daemon mode is not supported: start the server with "postern run"\n'],
    ];
    for (const [args, err] of cases) {
      const t = ctx(etc);
      assert.equal(await sendmail(args, t.c, 'sendmail', io('')), 64, args.join(' '));
      assert.equal(t.stderr(), err, args.join(' '));
    }
  });

  test('sendmail: ignored Sendmail options (-oem, -odb, -Oxx, -L, -h, -v) and a bad -N only warn', async () => {
    const { etc, q } = await setup();
    const t = ctx(etc);
    const code = await sendmail(['-oem', '-odb', '-OFoo=bar', '-L', 'tag', '-h', '5', '-v', '-N', 'sometimes', 'r@example.test'], t.c, 'sendmail', io('x\n'));
    assert.equal(code, 0);
    assert.equal(t.stderr(), "sendmail: warning: bad -N option value: 'sometimes' -- ignored\n");
    assert.equal((await maildrop(q)).length, 1);
  });

  test('sendmail: -bp, -q, -qR and -bi run the matching postqueue/newaliases action', async () => {
    const { etc } = await setup('fast_flush_domains = example.test\n');
    const sent: FlushRequest[] = [];
    const flush = async (_q: string, r: FlushRequest): Promise<void> => {
      sent.push(r);
    };
    let t = ctx(etc);
    assert.equal(await sendmail(['-bp'], t.c, 'sendmail', io('')), 0);
    assert.equal(t.stdout(), 'Mail queue is empty\n');
    t = ctx(etc);
    assert.equal(await sendmail(['-q'], t.c, 'sendmail', io('', { flush })), 0);
    assert.equal(await sendmail(['-qRexample.test'], t.c, 'sendmail', io('', { flush })), 0);
    assert.deepEqual(sent, ['flush', { site: 'example.test' }]);
    assert.equal(await sendmail(['-q30m'], t.c, 'sendmail', io('')), 0, '-q with a time: nothing to do');
    assert.equal(await sendmail(['-bi'], t.c, 'sendmail', io('')), 0);
    assert.equal(await sendmail([], t.c, 'newaliases', io('')), 0);
  });

  test('sendmail: -q with the server stopped is exit 69, "mail system is down"', async () => {
    const { etc } = await setup();
    const t = ctx(etc);
    const down = async (): Promise<void> => {
      throw new Error('connect ENOENT');
    };
    assert.equal(await sendmail(['-q'], t.c, 'sendmail', io('', { flush: down })), 69);
    assert.equal(t.stderr(), 'postqueue: fatal: Cannot flush mail queue - mail system is down\n');
  });

  test('sendmail: started as "mailq" (a symlink) it lists the queue, including a waiting maildrop message', async () => {
    const { etc } = await setup();
    const t = ctx(etc);
    assert.equal(await sendmail(['-f', '', 'zed@remote.example'], t.c, 'sendmail', io('Subject: t3\n\nhello\n')), 0);
    const out = collector();
    const code = await main([], { stdout: out.stream, stderr: collector().stream, env: { MAIL_CONFIG: etc } }, 'mailq');
    assert.equal(code, 0);
    const lines = out.text().split('\n');
    assert.equal(lines[0], '-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------');
    assert.match(lines[1]!, /^[0-9A-F]{21} +\d+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d {2}MAILER-DAEMON$/);
    assert.equal(lines[2], `${' '.repeat(41)}zed@remote.example`);
    assert.equal(lines[3], '');
    assert.match(lines[4]!, /^-- 0 Kbytes in 1 Request\.$/);
  });

  test('sendmail: -C names the configuration (main.cf or its directory)', async () => {
    const { etc, q } = await setup();
    const t = ctx(path.join(tmp(), 'nowhere'));
    assert.equal(await sendmail(['-C', path.join(etc, 'main.cf'), 'r@example.test'], t.c, 'sendmail', io('x\n')), 0, t.stderr());
    assert.equal((await maildrop(q)).length, 1);
  });

  test('sendmail: bin/postern.js started through a symlink named "sendmail" reads the message from standard input', async () => {
    const { etc, q } = await setup();
    const bin = fileURLToPath(new URL('../../../bin/postern.js', import.meta.url));
    const link = path.join(path.dirname(etc), 'sendmail');
    await fsp.symlink(bin, link);
    const r = spawnSync(process.execPath, [link, '-t', '-i'], { input: 'To: via-link@example.test\nSubject: s\n\n.\n', env: { ...process.env, MAIL_CONFIG: etc }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const [md] = await maildrop(q);
    assert.deepEqual(
      md!.envelope.recipients.map((x) => x.address),
      ['via-link@example.test'],
    );
    const mq = spawnSync(process.execPath, [bin, 'mailq'], { env: { ...process.env, MAIL_CONFIG: etc }, encoding: 'utf8' });
    assert.equal(mq.status, 0, mq.stderr);
    assert.match(mq.stdout, /via-link@example\.test\n\n-- 0 Kbytes in 1 Request\.\n$/);
  });

  test('sendmail: the GECOS full name as Postfix reads it (up to a comma, & = capitalised login)', async () => {
    const pw = path.join(tmp(), 'passwd');
    await fsp.writeFile(pw, 'root:x:0:0:root:/root:/bin/bash\njoe:x:1000:1000:& Smith,Room 1,,:/home/joe:/bin/sh\n');
    assert.equal(gecosName(1000, 'joe', pw), 'Joe Smith');
    assert.equal(gecosName(0, 'root', pw), 'root');
    assert.equal(gecosName(4242, null, pw), null);
  });
});

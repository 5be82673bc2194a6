/**
 * access(5) actions that act on the message (HOLD, DISCARD, REDIRECT, BCC, PREPEND) and HANGUP,
 * over real sockets. Log lines are the ones a private Postfix 3.7.11 wrote for the same
 * conversations (side-by-side.test.ts compares the replies).
 */
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { queueDirPath } from '../../src/queue/directories.js';
import { readMessage, readQueueFile } from '../../src/queue/file.js';
import { peerSkip } from '../harness/peers.js';
import { type StartedPostern, startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';

const run = promisify(execFile);

const MAIN_CF = [
  'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
  'smtpd_recipient_restrictions = check_recipient_access inline:{ hold@mx.example.test=HOLD, discard@mx.example.test=DISCARD, { redir@mx.example.test = REDIRECT bob@mx.example.test }, { copy@mx.example.test = BCC archive@mx.example.test }, { tag@mx.example.test = PREPEND X-Tag: yes }, hangup@mx.example.test=HANGUP, { quiet@mx.example.test = HOLD spam score 9 } }',
  'local_recipient_maps =',
].join('\n');

const tail = 'from=<a@client.example.test> to=<RCPT@mx.example.test> proto=ESMTP helo=<client.example.test>';

async function send(pt: StartedPostern, rcpts: string[]): Promise<string> {
  const c = await SmtpClient.connect(pt.port4);
  try {
    await c.read();
    await c.cmd('EHLO client.example.test');
    assert.match(await c.cmd('MAIL FROM:<a@client.example.test>'), /^250 /);
    for (const r of rcpts) assert.match(await c.cmd(`RCPT TO:<${r}>`), /^250 /);
    assert.match(await c.cmd('DATA'), /^354 /);
    const done = await c.cmd('From: a@client.example.test\r\nSubject: test\r\n\r\nbody\r\n.');
    const m = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(done);
    assert.ok(m, done);
    await c.cmd('QUIT');
    return m[1]!;
  } finally {
    c.close();
  }
}

describe('smtpd: access(5) actions', () => {
  let pt: StartedPostern;
  before(async () => {
    pt = await startPostern({ mainCf: MAIN_CF });
  });
  after(async () => {
    await pt.stop();
  });

  it('smtpd: HOLD puts the message in hold/ (not incoming/), logged as Postfix logs it', async () => {
    const id = await send(pt, ['hold@mx.example.test']);
    await pt.waitFor(new RegExp(`NOQUEUE: hold: RCPT from unknown\\[127\\.0\\.0\\.1\\]: <hold@mx\\.example\\.test>: Recipient address triggers HOLD action; ${tail.replace('RCPT', 'hold').replace(/[.[\]]/g, '\\$&')}$`));
    assert.ok(fs.existsSync(path.join(queueDirPath(pt.queueDir, 'hold'), id)), 'in hold/');
    assert.ok(!fs.existsSync(path.join(queueDirPath(pt.queueDir, 'incoming'), id)), 'not in incoming/');
  });

  it('smtpd: HOLD with text logs the text instead of the generic one; a second HOLD in a transaction is not logged', async () => {
    await send(pt, ['quiet@mx.example.test', 'hold@mx.example.test']);
    await pt.waitFor(/NOQUEUE: hold: RCPT from \S+: <quiet@mx\.example\.test>: Recipient address spam score 9; /);
    assert.equal(pt.lines().filter((l) => l.includes('hold: RCPT') && l.includes('to=<hold@') && l.includes('quiet')).length, 0);
  });

  it('smtpd: DISCARD answers 250 with a queue id, queues nothing and logs no message-id', async () => {
    const id = await send(pt, ['discard@mx.example.test', 'bob@elsewhere.example']);
    await pt.waitFor(/NOQUEUE: discard: RCPT from \S+: <discard@mx\.example\.test>: Recipient address triggers DISCARD action; /);
    await pt.waitFor(new RegExp(`${id}: client=unknown\\[127\\.0\\.0\\.1\\]`));
    for (const q of ['incoming', 'hold', 'active', 'deferred'] as const) assert.ok(!fs.existsSync(path.join(queueDirPath(pt.queueDir, q), id)), q);
    assert.equal(pt.lines().filter((l) => l.includes(`${id}: message-id=`)).length, 0);
  });

  it('smtpd: REDIRECT replaces the recipients (ORCPT keeps the original); BCC adds one with NOTIFY=NEVER', async () => {
    const r = await readQueueFile(path.join(queueDirPath(pt.queueDir, 'incoming'), await send(pt, ['redir@mx.example.test'])));
    assert.deepEqual(r.envelope.recipients, [{ address: 'bob@mx.example.test', notify: null, orcpt: 'rfc822;redir@mx.example.test' }]);
    await pt.waitFor(/NOQUEUE: redirect: RCPT from \S+: <redir@mx\.example\.test>: Recipient address triggers REDIRECT bob@mx\.example\.test; /);
    const b = await readQueueFile(path.join(queueDirPath(pt.queueDir, 'incoming'), await send(pt, ['copy@mx.example.test'])));
    assert.deepEqual(b.envelope.recipients, [
      { address: 'copy@mx.example.test', notify: null, orcpt: 'rfc822;copy@mx.example.test' },
      { address: 'archive@mx.example.test', notify: 'NEVER', orcpt: null },
    ]);
    await pt.waitFor(/NOQUEUE: bcc: RCPT from \S+: <copy@mx\.example\.test>: Recipient address triggers BCC archive@mx\.example\.test; /);
  });

  it('smtpd: PREPEND puts the header field first, above Received:', async () => {
    const qf = await readQueueFile(path.join(queueDirPath(pt.queueDir, 'incoming'), await send(pt, ['tag@mx.example.test'])));
    const text = (await readMessage(qf)).toString('latin1');
    assert.match(text, /^X-Tag: yes\r\nReceived: from client\.example\.test \(unknown \[127\.0\.0\.1\]\)\r\n/);
  });

  it('smtpd: HANGUP closes the connection without a reply; the disconnect line counts the RCPT as failed', async () => {
    const c = await SmtpClient.connect(pt.port4);
    await c.read();
    await c.cmd('EHLO client.example.test');
    await c.cmd('MAIL FROM:<a@client.example.test>');
    c.write('RCPT TO:<hangup@mx.example.test>\r\n');
    await c.waitClosed(3000);
    await pt.waitFor(/NOQUEUE: hangup: RCPT from unknown\[127\.0\.0\.1\]: ; from=<a@client\.example\.test> to=<hangup@mx\.example\.test> proto=ESMTP helo=<client\.example\.test>$/);
    await pt.waitFor(/disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=0\/1 commands=2\/3$/);
  });

  it('smtpd: swaks delivers into hold/ through a HOLD action (real peer)', { skip: peerSkip('swaks', 'swaks') }, async () => {
    const held = (): number => (fs.existsSync(queueDirPath(pt.queueDir, 'hold')) ? fs.readdirSync(queueDirPath(pt.queueDir, 'hold')).length : 0);
    const before = held();
    const { stdout } = await run('swaks', ['--server', '127.0.0.1', '--port', String(pt.port4), '--from', 'a@client.example.test', '--to', 'hold@mx.example.test', '--ehlo', 'client.example.test']);
    assert.match(stdout, /<- {2}250 2\.0\.0 Ok: queued as [0-9A-F]+/);
    assert.equal(held(), before + 1);
  });
});

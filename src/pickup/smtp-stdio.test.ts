import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { collector } from '../../test/harness/cli.js';
import { tempRoot } from '../../test/harness/scratch.js';
import { paramsFrom } from '../config/index.js';
import { Log } from '../log/index.js';
import { openMaildropFile } from './maildrop.js';
import { runStdioSmtp } from './smtp-stdio.js';

const tmp = tempRoot('postern-bs-');

const params = paramsFrom('compatibility_level = 3.6\nmyhostname = mx.example.test\nmessage_size_limit = 10240000\n');

/** Run a session with `lines` written up front (pipelined); returns the reply lines and the result. */
async function session(lines: string[], o: { keepOpen?: boolean; params?: typeof params } = {}) {
  const dir = await fsp.mkdtemp(path.join(tmp(), 'md-'));
  const input = new PassThrough();
  const output = collector();
  const log = Log.memory({ myhostname: 'mx.example.test' });
  input.write(lines.map((l) => `${l}\r\n`).join(''));
  if (!o.keepOpen) input.end();
  const result = await runStdioSmtp({ input, output: output.stream, params: o.params ?? params, maildropDir: dir, log: log.logger('smtpd', { id: 4242 }) });
  return { replies: output.text().split('\r\n').slice(0, -1), result, dir, log: log.texts() };
}

describe('pickup/smtp-stdio: sendmail -bs', () => {
  test('sendmail -bs: a conversation as Postfix 3.7 answers it (observed with smtpd -S)', async () => {
    const { replies, result, dir, log } = await session([
      'EHLO client.example',
      'MAIL FROM:<a@b.example> SIZE=100',
      'RCPT TO:<c@d.example> NOTIFY=SUCCESS ORCPT=rfc822;x@y',
      'RCPT TO:<bad address>',
      'DATA',
      'Subject: bs',
      '',
      '..dot',
      '.',
      'RSET',
      'NOOP',
      'VRFY x',
      'HELO x',
      'AUTH PLAIN',
      'ETRN x',
      'BDAT 1',
      'QUIT',
    ]);
    assert.equal(result.queued.length, 1);
    const id = result.queued[0]!;
    assert.deepEqual(replies, [
      '220 mx.example.test ESMTP Postfix',
      '250-mx.example.test',
      '250-PIPELINING',
      '250-SIZE 10240000',
      '250-VRFY',
      '250-ETRN',
      '250-ENHANCEDSTATUSCODES',
      '250-8BITMIME',
      '250-DSN',
      '250 SMTPUTF8',
      '250 2.1.0 Ok',
      '250 2.1.5 Ok',
      '501 5.1.3 Bad recipient address syntax',
      '354 End data with <CR><LF>.<CR><LF>',
      `250 2.0.0 Ok: queued as ${id}`,
      '250 2.0.0 Ok',
      '250 2.0.0 Ok',
      '252 2.0.0 x',
      '250 mx.example.test',
      '503 5.5.1 Error: authentication not enabled',
      '458 Unable to queue messages',
      // No CHUNKING in EHLO: Postfix's answer then, and it hangs up (the chunk would follow).
      '521 5.5.1 Error: command not implemented',
    ]);
    // smtpd -S's lines: the maildrop name with client= at the first accepted RCPT.
    assert.deepEqual(log, [
      'connect from localhost[127.0.0.1]',
      `${id}: client=localhost[127.0.0.1]`,
      'warning: Illegal address syntax from localhost[127.0.0.1] in RCPT command: <bad address>',
      'warning: do not use ETRN in "sendmail -bs" mode',
      'disconnect from localhost[127.0.0.1] helo=1 ehlo=1 auth=0/1 mail=1 rcpt=1/2 data=1 bdat=0/1 rset=1 noop=1 vrfy=1 etrn=0/1 commands=8/12',
    ]);
    const md = await openMaildropFile(path.join(dir, id));
    const parts: Buffer[] = [];
    for await (const c of md.content()) parts.push(c);
    await md.close();
    assert.deepEqual(md.envelope.recipients, [{ address: 'c@d.example', notify: ['SUCCESS'], orcpt: 'rfc822;x@y' }]);
    assert.equal(md.envelope.sender, 'a@b.example');
    // No full name for the From: pickup adds: smtpd -S gets none from Postfix's sendmail.
    assert.equal(md.envelope.fullName, null);
    const content = Buffer.concat(parts).toString('utf8');
    assert.match(content, new RegExp(`^Received: from client\\.example \\(localhost \\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby mx\\.example\\.test \\(Postfix\\) with ESMTP id ${id}\\r\\n\\tfor <c@d\\.example>; .+\\r\\nSubject: bs\\r\\n\\r\\n\\.dot\\r\\n$`));
  });

  test('sendmail -bs: sequence errors, syntax errors and an oversized SIZE get Postfix 3.7 replies (side by side: test/integration); nothing is queued', async () => {
    const { replies, result, dir } = await session([
      'EHLO',
      'RCPT TO:<x@y>',
      'DATA',
      'MAIL FROM:<a@b> SIZE=99999999999',
      'MAIL FROM:<a@b>',
      'MAIL FROM:<a@b>',
      'DATA',
      'DATA x',
      'FOO',
    ]);
    assert.deepEqual(replies, [
      '220 mx.example.test ESMTP Postfix',
      '501 Syntax: EHLO hostname',
      '503 5.5.1 Error: need MAIL command',
      '503 5.5.1 Error: need RCPT command',
      '552 5.3.4 Message size exceeds fixed limit',
      // Postfix 3.7 keeps the refused SIZE and refuses this MAIL too (msg_size is not reset); not copied.
      '250 2.1.0 Ok',
      '503 5.5.1 Error: nested MAIL command',
      // In a transaction without recipients, DATA is refused before its syntax is looked at.
      '554 5.5.1 Error: no valid recipients',
      '554 5.5.1 Error: no valid recipients',
      '500 5.5.2 Error: command not recognized',
    ]);
    assert.deepEqual(result.queued, []);
    assert.deepEqual(await fsp.readdir(dir), []);
  });

  test('sendmail -bs: disable_vrfy_command = yes takes VRFY out of EHLO and refuses it as Postfix does', async () => {
    const { replies } = await session(['EHLO c', 'VRFY x', 'QUIT'], { params: paramsFrom('compatibility_level = 3.6\nmyhostname = mx.example.test\ndisable_vrfy_command = yes\n') });
    assert.ok(!replies.includes('250-VRFY'), replies.join('\n'));
    assert.equal(replies.at(-2), '502 5.5.1 VRFY command is disabled');
  });

  test('sendmail -bs: input that ends inside DATA queues nothing, leaves no temporary file, and logs "lost connection after DATA (N bytes)"', async () => {
    const { replies, result, dir, log } = await session(['HELO c', 'MAIL FROM:<>', 'RCPT TO:<r@x>', 'DATA', 'Subject: cut']);
    assert.equal(replies.at(-1), '354 End data with <CR><LF>.<CR><LF>');
    assert.deepEqual(result.queued, []);
    assert.deepEqual(await fsp.readdir(dir), []);
    assert.deepEqual(log.slice(2), ['lost connection after DATA (14 bytes) from localhost[127.0.0.1]', 'disconnect from localhost[127.0.0.1] helo=1 mail=1 rcpt=1 data=0/1 commands=3/4']);
  });

  test('sendmail -bs: an abandoned transaction removes the maildrop file named at RCPT; lost connection after a command, none after a message', async () => {
    const a = await session(['HELO c', 'MAIL FROM:<>', 'RCPT TO:<r@x>', 'RSET', 'MAIL FROM:<>']);
    assert.deepEqual(a.result.queued, []);
    assert.deepEqual(await fsp.readdir(a.dir), []);
    assert.match(a.log[1]!, /^[0-9A-F]+: client=localhost\[127\.0\.0\.1\]$/);
    assert.deepEqual(a.log.slice(2), ['lost connection after MAIL from localhost[127.0.0.1]', 'disconnect from localhost[127.0.0.1] helo=1 mail=2 rcpt=1 rset=1 commands=5']);
    const b = await session(['HELO c', 'MAIL FROM:<>', 'RCPT TO:<r@x>', 'DATA', 'x', '.']);
    assert.equal(b.result.queued.length, 1);
    assert.deepEqual(b.log.slice(2), ['disconnect from localhost[127.0.0.1] helo=1 mail=1 rcpt=1 data=1 commands=4']);
  });

  test('sendmail -bs: smtpd_hard_error_limit ends the session with 421 and "too many errors after UNKNOWN"; a header as a command is a non-SMTP command', async () => {
    const limited = paramsFrom('compatibility_level = 3.6\nmyhostname = mx.example.test\nsmtpd_error_sleep_time = 0\nsmtpd_hard_error_limit = 3\n');
    const a = await session(['FOO', 'FOO', 'FOO', 'NOOP'], { params: limited });
    assert.equal(a.replies.at(-1), '421 4.7.0 mx.example.test Error: too many errors');
    assert.deepEqual(a.log.slice(1), ['too many errors after UNKNOWN from localhost[127.0.0.1]', 'disconnect from localhost[127.0.0.1] unknown=0/3 commands=0/3']);
    const b = await session(['Subject: hi', 'QUIT']);
    assert.equal(b.replies.at(-1), '221 2.7.0 Error: I can break rules, too. Goodbye.');
    assert.deepEqual(b.log.slice(1), ['warning: non-SMTP command from localhost[127.0.0.1]: Subject: hi', 'disconnect from localhost[127.0.0.1] unknown=0/1 commands=0/1']);
    // Postfix escape(): a backslash doubled, TAB by name, non-ASCII bytes in octal.
    const c = await session(['Subject: caf\u00e9 \\ x\ty', 'QUIT']);
    assert.equal(c.log[1], 'warning: non-SMTP command from localhost[127.0.0.1]: Subject: caf\\303\\251 \\\\ x\\ty');
  });

  test('sendmail -bs: two messages in one session, the second with two recipients (no "for" clause, the date on its own line)', async () => {
    const { result, dir } = await session([
      'HELO c',
      'MAIL FROM:<a@x>',
      'RCPT TO:<r1@x>',
      'DATA',
      'one',
      '.',
      'MAIL FROM:<a@x> BODY=8BITMIME RET=HDRS ENVID=abc',
      'RCPT TO:<r1@x>',
      'RCPT TO:<r2@x> NOTIFY=NEVER',
      'DATA',
      'two',
      '.',
      'QUIT',
    ]);
    assert.equal(result.queued.length, 2);
    const md = await openMaildropFile(path.join(dir, result.queued[1]!));
    const parts: Buffer[] = [];
    for await (const c of md.content()) parts.push(c);
    await md.close();
    assert.equal(md.envelope.body, '8BITMIME');
    assert.equal(md.envelope.ret, 'HDRS');
    assert.equal(md.envelope.envid, 'abc');
    assert.equal(md.envelope.recipients[1]!.notify, 'NEVER');
    assert.match(Buffer.concat(parts).toString('utf8'), /\r\n\tby mx\.example\.test \(Postfix\) with SMTP id [0-9A-F]{21};\r\n\t[A-Z][a-z]{2}, [^\r]+\r\ntwo\r\n$/);
  });
});

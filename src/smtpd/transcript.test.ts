import * as assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { composeTranscriptNotice, MAX_TRANSCRIPT_BYTES, printable, Transcript } from './transcript.js';

const ctx = { myhostname: 'mx.example.test', myorigin: 'example.test', mail_name: 'Postfix', error_notice_recipient: 'postmaster', smtputf8_enable: true, namaddr: 'client.example[192.0.2.1]' };

describe('smtpd transcript (smtpd_chat.c)', () => {
  test('transcript: reset() returns the lines only past the threshold and only with an error of a notify class', () => {
    const t = new Transcript(['Policy', 'protocol']);
    t.output('220 mx ESMTP');
    t.input('FOO');
    t.error('resource');
    assert.equal(t.reset(2, null), null, 'not past the threshold: kept');
    t.output('500 5.5.2 Error: command not recognized');
    assert.equal(t.reset(2, null), null, 'past it, but resource is not notified: reset, nothing sent');
    t.input('RCPT TO:<a@b>');
    t.error('policy');
    assert.equal(t.reset(2, null), null, 'a reset transcript starts over');
    t.output('554 5.7.1 rejected');
    const n = t.reset(0, 'lost connection');
    assert.deepEqual(n, { lines: ['In:  RCPT TO:<a@b>', 'Out: 554 5.7.1 rejected'], errors: new Set(['policy']), reason: 'lost connection' });
    assert.equal(t.reset(0, null), null);
  });

  test('transcript: forgive() (a message was accepted) drops the errors, not the lines', () => {
    const t = new Transcript(['protocol']);
    t.input('FOO');
    t.error('protocol');
    t.forgive();
    assert.equal(t.reset(0, null), null);
  });

  test('transcript: an empty notify_classes keeps nothing', () => {
    const t = new Transcript([]);
    t.input('FOO');
    t.error('protocol');
    assert.equal(t.reset(0, null), null);
  });

  test('transcript: full past MAX_TRANSCRIPT_BYTES', () => {
    const t = new Transcript(['protocol']);
    const line = 'x'.repeat(1000);
    while (!t.full) t.input(line);
    t.error('protocol');
    const n = t.reset(0, null)!;
    assert.ok(n.lines.length * 1005 > MAX_TRANSCRIPT_BYTES && (n.lines.length - 1) * 1005 <= MAX_TRANSCRIPT_BYTES);
    assert.equal(t.full, false);
  });

  test('transcript: printable() turns control characters into ?, and non-ASCII too unless smtputf8_enable', () => {
    assert.equal(printable('a\tb\x7fc\x00', true), 'a?b?c?');
    assert.equal(printable('grüße', true), 'grüße');
    assert.equal(printable('grüße', false), 'gr??e');
    assert.equal(printable('bad \ufffd byte', true), 'bad ? byte');
  });

  test('transcript: the notice: headers, one leading space per line, lines wrapped at 78 columns with 4 more for continuations', () => {
    const long = `RCPT TO:<${'x'.repeat(90)} y@example.test>`;
    const n = { lines: ['Out: 220 mx.example.test ESMTP Postfix', `In:  ${long}`, 'In:  \x01bad'], errors: new Set(['protocol' as const]), reason: 'timeout' };
    assert.equal(
      composeTranscriptNotice(n, ctx).toString('utf8'),
      [
        'From: Mail Delivery System <MAILER-DAEMON@mx.example.test>',
        'To: Postmaster <postmaster@example.test>',
        'Subject: Postfix SMTP server: errors from client.example[192.0.2.1]',
        '',
        'Transcript of session follows.',
        '',
        ' Out: 220 mx.example.test ESMTP Postfix',
        ' In:  RCPT',
        `     TO:<${'x'.repeat(90)}`,
        '     y@example.test>',
        ' In:  ?bad',
        '',
        'Session aborted, reason: timeout',
        '',
        'For other details, see the local mail logfile',
        '',
      ].join('\r\n'),
    );
  });
});

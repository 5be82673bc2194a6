import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { queueMessage } from '../../test/harness/queue.js';
import { mailDate } from '../cleanup/headers.js';
import { Cleanup, type CleanupInput } from '../cleanup/index.js';
import { paramsFrom } from '../config/index.js';
import { Log, type MemoryLog } from '../log/index.js';
import { queueFilePath } from '../queue/directories.js';
import { type QueueFile, readMessage, readQueueFile } from '../queue/file.js';
import { Bounce, expandTemplate, lineWrap, type ReportRecipient, TEMPLATES } from './index.js';

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-bounce-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

let seq = 0;
function setup(mainCf = ''): { q: string; cleanup: Cleanup; bounce: Bounce; log: MemoryLog } {
  seq += 1;
  const q = path.join(tmp, `q${seq}`);
  const params = paramsFrom(`myhostname = mx.example.test\nmydomain = example.test\n${mainCf}`);
  const log = Log.memory({ myhostname: 'mx.example.test' });
  const cleanup = new Cleanup({ queue_directory: q, params, log });
  return { q, cleanup, bounce: new Bounce({ params, log, cleanup, clock: () => Date.UTC(2026, 10, 25, 12, 37, 1) }), log };
}

async function queue(c: Cleanup, content: string, o: Partial<CleanupInput> = {}): Promise<QueueFile> {
  const queueId = await queueMessage(c, 'sender@example.org', ['bob@example.test'], content.replace(/\n/g, '\r\n'), o);
  return readQueueFile(queueFilePath(c.queue_directory, 'incoming', queueId));
}

const ORIGINAL = 'From: sender@example.org\nTo: bob@example.test\nSubject: hello\nMessage-ID: <m1@example.org>\n\nbody line\n';

function rcpt(o: Partial<ReportRecipient> = {}): ReportRecipient {
  return { address: 'bob@example.test', envelopeAddress: 'bob@example.test', orcpt: null, notify: null, status: '5.1.1', action: 'failed', reason: 'user unknown', ...o };
}

/** Split a multipart message: header fields (unfolded) and the body parts. */
function parseReport(text: string): { headers: Map<string, string>; parts: { headers: Map<string, string>; body: string }[] } {
  const [head, ...rest] = text.split('\r\n\r\n');
  const body = rest.join('\r\n\r\n');
  const headers = new Map<string, string>();
  const fields = head!.replace(/\r\n[ \t]/g, ' ').split('\r\n');
  for (const f of fields) {
    const i = f.indexOf(':');
    headers.set(f.slice(0, i).toLowerCase(), f.slice(i + 1).trim());
  }
  const m = /boundary="([^"]+)"/.exec(headers.get('content-type') ?? '');
  assert.ok(m, 'boundary');
  const b = m[1]!;
  assert.ok(body.includes(`\r\n--${b}--\r\n`), 'closing boundary');
  const pieces = body.split(`--${b}`).slice(1, -1);
  const parts = pieces.map((p) => {
    const s = p.replace(/^\r\n/, '');
    const i = s.indexOf('\r\n\r\n');
    const ph = new Map<string, string>();
    for (const f of s.slice(0, i).split('\r\n')) {
      const j = f.indexOf(':');
      ph.set(f.slice(0, j).toLowerCase(), f.slice(j + 1).trim());
    }
    return { headers: ph, body: s.slice(i + 4) };
  });
  return { headers, parts };
}

async function notice(q: string, queueId: string): Promise<{ qf: QueueFile; text: string }> {
  const qf = await readQueueFile(queueFilePath(q, 'incoming', queueId));
  return { qf, text: (await readMessage(qf)).toString('utf8') };
}

describe('bounce: non-delivery notification', () => {
  test('bounce: RFC 3464 multipart/report from MAILER-DAEMON with the null sender, parsed back', async () => {
    const { q, cleanup, bounce, log } = setup();
    const qf = await queue(cleanup, ORIGINAL, { envid: 'ENV1', recipients: [{ address: 'bob@example.test', notify: null, orcpt: 'rfc822;Bob@Example.test' }] });
    const posted = await bounce.notify('failure', qf, [rcpt({ orcpt: 'rfc822;Bob@Example.test' })]);
    assert.equal(posted.length, 1);
    const { qf: nqf, text } = await notice(q, posted[0]!.queueId);
    assert.equal(nqf.envelope.sender, '');
    assert.deepEqual(nqf.envelope.recipients.map((r) => r.address), ['sender@example.org']);
    const r = parseReport(text);
    assert.match(r.headers.get('received')!, new RegExp(`^by mx\\.example\\.test \\(Postfix\\) id ${posted[0]!.queueId}; `));
    assert.equal(r.headers.get('from'), 'Mail Delivery System <MAILER-DAEMON@mx.example.test>');
    assert.equal(r.headers.get('subject'), 'Undelivered Mail Returned to Sender');
    assert.equal(r.headers.get('to'), 'sender@example.org');
    assert.equal(r.headers.get('auto-submitted'), 'auto-replied');
    assert.equal(r.headers.get('mime-version'), '1.0');
    assert.match(r.headers.get('content-type')!, new RegExp(`^multipart/report; report-type=delivery-status; boundary="${qf.envelope.queueId}\\.\\d+/mx\\.example\\.test"$`));
    assert.ok(r.headers.has('message-id'), 'cleanup adds a Message-Id');
    assert.equal(r.parts.length, 3);
    const [human, report, original] = r.parts;
    assert.equal(human!.headers.get('content-description'), 'Notification');
    assert.match(human!.body, /^This is the mail system at host mx\.example\.test\.\r\n\r\nI'm sorry to have to inform you/);
    assert.match(human!.body, /\r\n {19}The mail system\r\n\r\n<bob@example\.test>: user unknown\r\n\r\n$/);
    assert.equal(report!.headers.get('content-type'), 'message/delivery-status');
    const fields = report!.body;
    assert.match(fields, /^Reporting-MTA: dns; mx\.example\.test\r\nOriginal-Envelope-Id: ENV1\r\nX-Postfix-Queue-ID: [0-9A-F]+\r\nX-Postfix-Sender: rfc822; sender@example\.org\r\nArrival-Date: .+\r\n\r\n/);
    assert.match(fields, /\r\n\r\nFinal-Recipient: rfc822; bob@example\.test\r\nOriginal-Recipient: rfc822;Bob@Example\.test\r\nAction: failed\r\nStatus: 5\.1\.1\r\nDiagnostic-Code: X-Postfix; user unknown\r\n/);
    assert.equal(original!.headers.get('content-description'), 'Undelivered Message');
    assert.equal(original!.headers.get('content-type'), 'message/rfc822');
    assert.match(original!.body, /^Return-Path: <sender@example\.org>\r\nFrom: sender@example\.org\r\n[\s\S]*\r\n\r\nbody line\r\n/);
    assert.ok(log.texts().includes(`${qf.envelope.queueId}: sender non-delivery notification: ${posted[0]!.queueId}`));
    assert.ok(log.lines.some((l) => /postfix\/bounce\[\d+\]: [0-9A-F]+: sender non-delivery notification: /.test(l)));
  });

  test('bounce: RET=HDRS and messages over bounce_size_limit return only the headers', async () => {
    const { q, cleanup, bounce } = setup('bounce_size_limit = 100\n');
    const hdrs = await queue(cleanup, ORIGINAL, { ret: 'HDRS' });
    const a = parseReport((await notice(q, (await bounce.notify('failure', hdrs, [rcpt()]))[0]!.queueId)).text);
    assert.equal(a.parts[2]!.headers.get('content-type'), 'text/rfc822-headers');
    assert.equal(a.parts[2]!.headers.get('content-description'), 'Undelivered Message Headers');
    assert.doesNotMatch(a.parts[2]!.body, /body line/);
    const big = await queue(cleanup, `${ORIGINAL}${'x'.repeat(200)}\n`, { ret: 'FULL' });
    const b = parseReport((await notice(q, (await bounce.notify('failure', big, [rcpt()]))[0]!.queueId)).text);
    assert.equal(b.parts[2]!.headers.get('content-type'), 'text/rfc822-headers');
  });

  test('bounce: expanded recipients say (expanded from <orig>); long lines wrap as Postfix line_wrap', async () => {
    const { q, cleanup, bounce } = setup();
    const qf = await queue(cleanup, ORIGINAL);
    const reason = 'host mx.far.example[192.0.2.1] said: 550 5.1.1 <x@far.example>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)';
    const posted = await bounce.notify('failure', qf, [rcpt({ address: 'x@far.example', envelopeAddress: 'alias@example.test', reason, diagnostic: '550 5.1.1 <x@far.example>: Recipient address rejected: User unknown', remoteMta: 'mx.far.example' })]);
    const r = parseReport((await notice(q, posted[0]!.queueId)).text);
    assert.match(r.parts[0]!.body, /<x@far\.example> \(expanded from <alias@example\.test>\): host\r\n {4}mx\.far\.example\[192\.0\.2\.1\] said: 550/);
    for (const line of r.parts[0]!.body.split('\r\n')) assert.ok(line.length <= 79, line);
    assert.match(r.parts[1]!.body, /Original-Recipient: rfc822; alias@example\.test\r\nAction: failed\r\nStatus: 5\.1\.1\r\nRemote-MTA: dns; mx\.far\.example\r\nDiagnostic-Code: smtp; 550 5\.1\.1 <x@far\.example>: Recipient address rejected:\r\n {4}User unknown\r\n/);
  });

  test('bounce: NOTIFY=NEVER and NOTIFY=SUCCESS recipients get no non-delivery notice', async () => {
    const { cleanup, bounce } = setup();
    const qf = await queue(cleanup, ORIGINAL);
    assert.deepEqual(await bounce.notify('failure', qf, [rcpt({ notify: 'NEVER' }), rcpt({ notify: ['SUCCESS'] })]), []);
  });

  test('bounce: notify_classes=bounce sends a postmaster copy (headers only, from double-bounce)', async () => {
    const { q, cleanup, bounce, log } = setup('notify_classes = bounce\n');
    const qf = await queue(cleanup, ORIGINAL);
    const posted = await bounce.notify('failure', qf, [rcpt()]);
    assert.equal(posted.length, 2);
    assert.equal(posted[1]!.postmaster, true);
    const { qf: pm, text } = await notice(q, posted[1]!.queueId);
    assert.equal(pm.envelope.sender, 'double-bounce@mx.example.test');
    assert.deepEqual(pm.envelope.recipients.map((r) => r.address), ['postmaster@mx.example.test']);
    // Postfix posts the bare bounce_notice_recipient: it stays the original recipient (X-Original-To: postmaster).
    assert.deepEqual(pm.envelope.recipients.map((r) => r.original), ['postmaster']);
    const r = parseReport(text);
    assert.equal(r.headers.get('subject'), 'Postmaster Copy: Undelivered Mail');
    assert.equal(r.headers.get('to'), 'postmaster@mx.example.test');
    assert.equal(r.headers.get('auto-submitted'), 'auto-generated');
    assert.match(r.parts[0]!.body, /^\r\n<bob@example\.test>: user unknown\r\n/, 'no template text in a postmaster copy');
    assert.equal(r.parts[2]!.headers.get('content-type'), 'text/rfc822-headers');
    assert.ok(log.texts().includes(`${qf.envelope.queueId}: postmaster non-delivery notification: ${posted[1]!.queueId}`));
  });

  test('bounce: no bounce for a bounce; double bounce to 2bounce_notice_recipient when notify_classes has 2bounce or bounce (Postfix ANY_BOUNCE), else none', async () => {
    // bounce_notify_service.c: a failed single bounce goes to the postmaster when notify_classes
    // has either class; with `bounce` it still goes to 2bounce_notice_recipient, not bounce_notice_recipient.
    const recipients = '2bounce_notice_recipient = admin@example.test\nbounce_notice_recipient = pm@example.test\n';
    const table: [string | null, boolean][] = [
      [null, false],
      ['delay, resource, software, policy, protocol', false],
      ['2bounce', true],
      ['bounce', true],
      ['bounce, 2bounce', true],
    ];
    for (const [classes, sent] of table) {
      const t = setup(`${recipients}${classes !== null ? `notify_classes = ${classes}\n` : ''}`);
      const name = `notify_classes=${classes ?? '(default)'}`;
      const b = await queue(t.cleanup, ORIGINAL, { sender: '' });
      const posted = await t.bounce.notify('failure', b, [rcpt()]);
      if (!sent) {
        assert.deepEqual(posted, [], name);
        assert.equal(t.log.texts().filter((x) => x.includes('notification')).length, 0, name);
        continue;
      }
      assert.equal(posted.length, 1, `${name}: one double bounce, no second postmaster copy`);
      assert.deepEqual({ to: posted[0]!.to, postmaster: posted[0]!.postmaster }, { to: 'admin@example.test', postmaster: true }, name);
      const { qf, text } = await notice(t.q, posted[0]!.queueId);
      assert.equal(qf.envelope.sender, 'double-bounce@mx.example.test', name);
      assert.deepEqual(qf.envelope.recipients.map((r) => r.address), ['admin@example.test'], name);
      assert.ok(t.log.texts().includes(`${b.envelope.queueId}: postmaster non-delivery notification: ${posted[0]!.queueId}`), name);
      const r = parseReport(text);
      assert.match(r.parts[1]!.body, /X-Postfix-Sender: rfc822; MAILER-DAEMON@mx\.example\.test\r\n/, name);
      assert.equal(r.parts[2]!.headers.get('content-type'), 'message/rfc822', `${name}: the full message (DSN_RET_FULL)`);
    }
    // A notice about mail from double-bounce is dropped with Postfix's warning.
    const loud = setup('notify_classes = 2bounce\n');
    const b3 = await queue(loud.cleanup, ORIGINAL, { sender: 'double-bounce@mx.example.test' });
    assert.deepEqual(await loud.bounce.notify('failure', b3, [rcpt()]), []);
    assert.ok(loud.log.texts().includes(`warning: ${b3.envelope.queueId}: undeliverable postmaster notification discarded`));
  });
});

describe('bounce: delay and success notices', () => {
  test('bounce: delay notice with Action: delayed, Will-Retry-Until and the delay template', async () => {
    const { q, cleanup, bounce, log } = setup('delay_warning_time = 4h\nmaximal_queue_lifetime = 5d\n');
    const qf = await queue(cleanup, ORIGINAL);
    const posted = await bounce.notify('delay', qf, [rcpt({ status: '4.4.1', action: 'delayed', reason: 'connect to x[192.0.2.1]:25: Connection refused' }), rcpt({ address: 'n@example.test', notify: ['FAILURE'] })]);
    assert.equal(posted.length, 1);
    const r = parseReport((await notice(q, posted[0]!.queueId)).text);
    assert.equal(r.headers.get('subject'), 'Delayed Mail (still being retried)');
    assert.match(r.parts[0]!.body, /Your message could not be delivered for more than 4 hour\(s\)\.\r\nIt will be retried until it is 5 day\(s\) old\./);
    assert.match(r.parts[1]!.body, /Action: delayed\r\nStatus: 4\.4\.1\r\n[\s\S]*Will-Retry-Until: /);
    assert.doesNotMatch(r.parts[1]!.body, /n@example\.test/, 'NOTIFY=FAILURE only: not in the delay notice');
    assert.equal(r.parts[2]!.headers.get('content-description'), 'Undelivered Message Headers');
    assert.ok(log.texts().includes(`${qf.envelope.queueId}: sender delay notification: ${posted[0]!.queueId}`));
  });

  test('bounce: success notice for NOTIFY=SUCCESS (Action: delivered)', async () => {
    const { q, cleanup, bounce, log } = setup();
    const qf = await queue(cleanup, ORIGINAL);
    const posted = await bounce.notify('success', qf, [rcpt({ notify: ['SUCCESS'], status: '2.0.0', action: 'delivered', reason: 'delivery via virtual: delivered to maildir' })]);
    const r = parseReport((await notice(q, posted[0]!.queueId)).text);
    assert.equal(r.headers.get('subject'), 'Successful Mail Delivery Report');
    assert.match(r.parts[1]!.body, /Action: delivered\r\nStatus: 2\.0\.0\r\nDiagnostic-Code: X-Postfix; delivery via virtual: delivered to maildir/);
    assert.equal(r.parts[2]!.headers.get('content-description'), 'Message Headers');
    assert.ok(log.texts().includes(`${qf.envelope.queueId}: sender delivery status notification: ${posted[0]!.queueId}`));
  });
});

describe('bounce: formatting helpers', () => {
  test('bounce: line_wrap keeps lines under 79 columns with a 4-space indent', () => {
    assert.deepEqual(lineWrap('Diagnostic-Code: X-Postfix; connect to 127.0.0.1[127.0.0.1]:39998: Connection refused'), [
      'Diagnostic-Code: X-Postfix; connect to 127.0.0.1[127.0.0.1]:39998: Connection',
      '    refused',
    ]);
    assert.deepEqual(lineWrap('short line'), ['short line']);
    assert.deepEqual(lineWrap(`a ${'x'.repeat(100)} b`), ['a', `    ${'x'.repeat(100)}`, '    b']);
  });

  test('bounce: template expansion of $myhostname and time units', () => {
    assert.deepEqual(expandTemplate(['$myhostname', `$${'{'}delay_warning_time_hours}h $maximal_queue_lifetime_days d`, '$$x $unknown'], { myhostname: 'h', mydomain: 'd', delay_warning_time: 7200, maximal_queue_lifetime: 432000 }), [
      'h',
      '2h 5 d',
      '$x $unknown',
    ]);
    assert.equal(TEMPLATES.failure.text[0], 'This is the mail system at host $myhostname.');
  });

  test('bounce: Date:, Arrival-Date: and Will-Retry-Until: use cleanup\'s mail_date (RFC 5322 date, local zone)', () => {
    assert.match(mailDate(Date.UTC(2026, 0, 5, 12, 0, 0)), /^[A-Z][a-z]{2}, {1,2}\d{1,2} Jan 2026 \d\d:\d\d:\d\d [+-]\d{4} \(.+\)$/);
    const d = mailDate(Date.UTC(2026, 0, 15, 12, 0, 0));
    assert.match(d, /, 1[45] Jan 2026 /);
  });
});

/**
 * Postmaster notices of SMTP sessions with errors (Postfix smtpd_chat_notify(), notify_classes,
 * error_notice_recipient), over real sockets: which errors send a transcript with which
 * notify_classes, what the transcript holds (and what it hides: AUTH payloads), when it is sent
 * (session end, smtpd_history_flush_threshold) and to whom. The notice is the queue file smtpd's
 * cleanup wrote; delivery and the comparison with Postfix's are in test/integration.
 */
import * as assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { hashPassword } from '../../src/auth/index.js';
import { queueDirPath, queueFilePath } from '../../src/queue/directories.js';
import { type QueueFile, readMessage, readQueueFile } from '../../src/queue/file.js';
import { smtpdCounters } from '../../src/smtpd/index.js';
import { type StartedPostern, startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

interface Notice {
  readonly file: QueueFile;
  readonly content: string;
}

/** The postmaster notices queued so far (queue files from double-bounce@), oldest first. */
async function notices(pt: StartedPostern): Promise<Notice[]> {
  const out: Notice[] = [];
  let names: string[];
  try {
    names = readdirSync(queueDirPath(pt.queueDir, 'incoming'));
  } catch {
    return out;
  }
  for (const id of names) {
    let file: QueueFile;
    try {
      file = await readQueueFile(queueFilePath(pt.queueDir, 'incoming', id));
    } catch {
      continue;
    }
    if (file.envelope.sender !== 'double-bounce@mx.example.test') continue;
    out.push({ file, content: (await readMessage(file)).toString('utf8') });
  }
  return out.sort((a, b) => a.file.envelope.arrivalTime - b.file.envelope.arrivalTime);
}

/** Run a conversation (each line's reply is awaited) and wait until smtpd logged its end: any notice is queued by then. */
async function session(pt: StartedPostern, lines: readonly string[], o: { quit?: boolean } = {}): Promise<string[]> {
  const before = pt.lines().filter((l) => l.includes('disconnect from')).length;
  const c = await SmtpClient.connect(pt.port4);
  const replies = [await c.read()];
  for (const l of lines) replies.push(await c.cmd(l));
  if (o.quit !== false) replies.push(await c.cmd('QUIT'));
  c.close();
  const end = Date.now() + 5000;
  while (pt.lines().filter((l) => l.includes('disconnect from')).length <= before) {
    if (Date.now() > end) throw new Error(`no disconnect line:\n${pt.lines().join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return replies;
}

async function withPostern(mainCf: readonly string[], fn: (pt: StartedPostern) => Promise<void>): Promise<void> {
  const pt = await startPostern({ mainCf: mainCf.join('\n') });
  try {
    await fn(pt);
  } finally {
    await pt.stop();
  }
}

/** Received:, Date: and Message-Id: carry the queue id and the time. */
function normalized(content: string): string {
  return content
    .replace(/^Received: by mx\.example\.test \(Postfix\)\r\n\tid [0-9A-F]+; .*\r\n/, 'Received: by mx.example.test (Postfix)\r\n\tid QID; DATE\r\n')
    .replace(/^(Received: .*\r\n.*\r\n)Date: .*\r\n/, '$1Date: DATE\r\n')
    .replace(/\r\nMessage-Id: <\d{14}\.[0-9A-F]+@mx\.example\.test>\r\n/, '\r\nMessage-Id: <MSGID>\r\n');
}

const REJECT_SPAM = 'smtpd_recipient_restrictions = check_recipient_access inline:{ { spam@example.test = REJECT no spam please } }, permit_mynetworks, reject_unauth_destination';

describe('smtpd: postmaster notices (notify_classes)', () => {
  it('smtpd: notify_classes = policy: a rejected recipient mails the session transcript from double-bounce@ to postmaster@$myorigin, laid out as Postfix 3.7', async () => {
    await withPostern(['notify_classes = policy', REJECT_SPAM], async (pt) => {
      const replies = await session(pt, ['EHLO client.example.test', 'MAIL FROM:<a@client.example.test>', 'RCPT TO:<spam@example.test>']);
      assert.equal(replies[3], '554 5.7.1 <spam@example.test>: Recipient address rejected: no spam please');
      const n = await notices(pt);
      assert.equal(n.length, 1);
      const env = n[0]!.file.envelope;
      assert.equal(env.sender, 'double-bounce@mx.example.test');
      assert.deepEqual(env.recipients, [{ address: 'postmaster@mx.example.test', notify: null, orcpt: null, original: 'postmaster' }]);
      assert.equal(env.client, null);
      assert.equal(
        normalized(n[0]!.content),
        [
          'Received: by mx.example.test (Postfix)',
          '\tid QID; DATE',
          'Date: DATE',
          'From: Mail Delivery System <MAILER-DAEMON@mx.example.test>',
          'To: Postmaster <postmaster@mx.example.test>',
          'Subject: Postfix SMTP server: errors from unknown[127.0.0.1]',
          'Message-Id: <MSGID>',
          '',
          'Transcript of session follows.',
          '',
          ' Out: 220 mx.example.test ESMTP Postfix',
          ' In:  EHLO client.example.test',
          ' Out: 250-mx.example.test',
          ' Out: 250-PIPELINING',
          ' Out: 250-SIZE 10240000',
          ' Out: 250-VRFY',
          ' Out: 250-ETRN',
          ' Out: 250-ENHANCEDSTATUSCODES',
          ' Out: 250-8BITMIME',
          ' Out: 250-DSN',
          ' Out: 250-SMTPUTF8',
          ' Out: 250 CHUNKING',
          ' In:  MAIL FROM:<a@client.example.test>',
          ' Out: 250 2.1.0 Ok',
          ' In:  RCPT TO:<spam@example.test>',
          ' Out: 554 5.7.1 <spam@example.test>: Recipient address rejected: no spam please',
          ' In:  QUIT',
          ' Out: 221 2.0.0 Bye',
          '',
          '',
          'For other details, see the local mail logfile',
          '',
        ].join('\r\n'),
      );
      assert.deepEqual(pt.lines().filter((l) => /warning:/.test(l)), []);
    });
  });

  it('smtpd: the default notify_classes (resource, software) send nothing for a policy rejection, but do for 451 4.3.5 Server configuration error', async () => {
    // An unknown restriction is a server configuration error (software) when ETRN evaluates it.
    await withPostern([REJECT_SPAM, 'smtpd_etrn_restrictions = no_such_restriction'], async (pt) => {
      await session(pt, ['EHLO client.example.test', 'MAIL FROM:<a@client.example.test>', 'RCPT TO:<spam@example.test>', 'RSET', 'FOO', 'MAIL FROM:<bad address>']);
      assert.deepEqual(await notices(pt), []);
      const replies = await session(pt, ['EHLO client.example.test', 'ETRN example.test']);
      assert.equal(replies[2], '451 4.3.5 Server configuration error');
      const n = await notices(pt);
      assert.equal(n.length, 1);
      assert.match(n[0]!.content, /\r\n In: {2}ETRN example\.test\r\n Out: 451 4\.3\.5 Server configuration error\r\n/);
    });
  });

  it('smtpd: 452 4.3.1 Insufficient system storage (queue_minfree) is a resource error: the default notify_classes mail the transcript', async () => {
    await withPostern(['queue_minfree = 1000000000000000'], async (pt) => {
      const replies = await session(pt, ['EHLO client.example.test', 'MAIL FROM:<a@client.example.test>']);
      assert.equal(replies[2], '452 4.3.1 Insufficient system storage');
      const n = await notices(pt);
      assert.equal(n.length, 1);
      assert.match(n[0]!.content, /\r\n In: {2}MAIL FROM:<a@client\.example\.test>\r\n Out: 452 4\.3\.1 Insufficient system storage\r\n In: {2}QUIT\r\n/);
    });
  });

  it('smtpd: notify_classes = protocol: syntax and sequence errors send one; a lost connection ends it with "Session aborted, reason: lost connection"', async () => {
    await withPostern(['notify_classes = protocol'], async (pt) => {
      await session(pt, ['EHLO client.example.test', 'RCPT TO:<b@example.test>'], { quit: false });
      const n = await notices(pt);
      assert.equal(n.length, 1);
      assert.ok(n[0]!.content.endsWith(' In:  RCPT TO:<b@example.test>\r\n Out: 503 5.5.1 Error: need MAIL command\r\n\r\nSession aborted, reason: lost connection\r\n\r\nFor other details, see the local mail logfile\r\n'), n[0]!.content);
    });
  });

  it('smtpd: a message accepted with 250 forgives the errors before it: no notice', async () => {
    await withPostern(['notify_classes = protocol'], async (pt) => {
      await session(pt, ['EHLO client.example.test', 'FOO', 'MAIL FROM:<a@client.example.test>', 'RCPT TO:<bob@mx.example.test>', 'DATA', 'Subject: x\r\n\r\nhello\r\n.']);
      assert.deepEqual(await notices(pt), []);
      // The same errors without the message do send one.
      await session(pt, ['EHLO client.example.test', 'FOO']);
      assert.equal((await notices(pt)).length, 1);
    });
  });

  it('smtpd: AUTH payloads never reach a transcript: the initial response and every answer to a 334 challenge are [hidden]', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-notify-auth-'));
    const users = path.join(dir, 'users');
    writeFileSync(users, `alice:${hashPassword('SHA512-CRYPT', 'secret')}::::::\nbob:{PLAIN}hunter2\n`);
    try {
      await withPostern(['notify_classes = protocol', 'smtpd_sasl_auth_enable = yes', `smtpd_sasl_path = ${users}`], async (pt) => {
        const replies = await session(pt, [
          'EHLO client.example.test',
          'AUTH LOGIN',
          b64('bob'),
          b64('wrong-password'),
          `AUTH PLAIN ${b64('\0alice\0secret')}`,
          `AUTH   plain   ${b64('\0alice\0secret')}`,
          'AUTH LOGIN',
          'FOO',
        ]);
        assert.deepEqual(replies.slice(2, 9), [
          '334 VXNlcm5hbWU6',
          '334 UGFzc3dvcmQ6',
          '535 5.7.8 Error: authentication failed: (reason unavailable)',
          '235 2.7.0 Authentication successful',
          '503 5.5.1 Error: already authenticated',
          '503 5.5.1 Error: already authenticated',
          '500 5.5.2 Error: command not recognized',
        ]);
        const n = await notices(pt);
        assert.equal(n.length, 1);
        const text = n[0]!.content;
        for (const secret of [b64('bob'), b64('wrong-password'), b64('\0alice\0secret'), 'secret', 'hunter2', 'wrong-password']) {
          assert.ok(!text.includes(secret), `${secret} in\n${text}`);
        }
        assert.match(text, /\r\n In: {2}AUTH LOGIN\r\n Out: 334 VXNlcm5hbWU6\r\n In: {2}\[hidden\]\r\n Out: 334 UGFzc3dvcmQ6\r\n In: {2}\[hidden\]\r\n Out: 535 /);
        assert.match(text, /\r\n In: {2}AUTH PLAIN \[hidden\]\r\n Out: 235 2\.7\.0 Authentication successful\r\n In: {2}AUTH {3}plain \[hidden\]\r\n/);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('smtpd: an AUTH LOGIN cancelled with * keeps the *; a SASL answer is hidden even when the session ends on it', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-notify-auth-'));
    const users = path.join(dir, 'users');
    writeFileSync(users, 'bob:{PLAIN}hunter2\n');
    try {
      await withPostern(['notify_classes = protocol', 'smtpd_sasl_auth_enable = yes', `smtpd_sasl_path = ${users}`], async (pt) => {
        await session(pt, ['EHLO client.example.test', 'AUTH LOGIN', '*', 'FOO', 'AUTH LOGIN', b64('bob')], { quit: false });
        const n = await notices(pt);
        assert.equal(n.length, 1);
        const text = n[0]!.content;
        assert.ok(!text.includes(b64('bob')), text);
        assert.match(text, /\r\n In: {2}\*\r\n Out: 501 5\.7\.0 Authentication aborted\r\n/);
        assert.match(text, /\r\n Out: 334 UGFzc3dvcmQ6\r\n\r\nSession aborted, reason: lost connection\r\n/);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('smtpd: smtpd_history_flush_threshold: RSET past the threshold mails the transcript so far and starts a new one', async () => {
    await withPostern(['notify_classes = protocol', 'smtpd_history_flush_threshold = 3'], async (pt) => {
      await session(pt, ['EHLO client.example.test', 'FOO', 'RSET', 'NOOP']);
      const n = await notices(pt);
      assert.equal(n.length, 1);
      // The flush comes before RSET's reply; what follows had no error and is not sent.
      assert.ok(n[0]!.content.endsWith(' Out: 500 5.5.2 Error: command not recognized\r\n In:  RSET\r\n\r\n\r\nFor other details, see the local mail logfile\r\n'), n[0]!.content);
    });
  });

  it('smtpd: a transcript past 256 KiB is mailed then and started over, so a long session cannot grow it without bound', async () => {
    await withPostern(['notify_classes = protocol', 'smtpd_junk_command_limit = 1000'], async (pt) => {
      const noop = `NOOP ${'x'.repeat(1990)}`;
      await session(pt, ['EHLO client.example.test', 'FOO', ...Array.from({ length: 140 }, () => noop)]);
      const n = await notices(pt);
      assert.equal(n.length, 1);
      const size = Buffer.byteLength(n[0]!.content);
      assert.ok(size > 256 * 1024 && size < 300 * 1024, String(size));
      // The rest of the session had no error: it was not sent.
      assert.ok(!n[0]!.content.includes('In:  QUIT'));
    });
  });

  it('smtpd: a `bounce` error (User unknown) goes to bounce_notice_recipient; To: still names error_notice_recipient', async () => {
    await withPostern(
      [
        'notify_classes = bounce',
        'bounce_notice_recipient = bounces',
        'error_notice_recipient = errors@example.test',
        'virtual_mailbox_domains = virt.example',
        'virtual_mailbox_maps = inline:{ { known@virt.example = known/ } }',
      ],
      async (pt) => {
        const replies = await session(pt, ['EHLO client.example.test', 'MAIL FROM:<a@client.example.test>', 'RCPT TO:<nobody@virt.example>']);
        assert.equal(replies[3], '550 5.1.1 <nobody@virt.example>: Recipient address rejected: User unknown in virtual mailbox table');
        const n = await notices(pt);
        assert.equal(n.length, 1);
        assert.deepEqual(n[0]!.file.envelope.recipients.map((r) => r.address), ['bounces@mx.example.test']);
        assert.match(n[0]!.content, /\r\nTo: Postmaster <errors@example\.test>\r\n/);
      },
    );
  });

  it('smtpd: notify_classes empty: nothing is kept or sent, even for a software error', async () => {
    await withPostern(['notify_classes =', 'smtpd_etrn_restrictions = no_such_restriction'], async (pt) => {
      await session(pt, ['EHLO client.example.test', 'ETRN example.test']);
      assert.deepEqual(await notices(pt), []);
    });
    assert.equal(smtpdCounters.exceptions, 0);
  });
});

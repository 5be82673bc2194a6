/**
 * The whole path through a real `postern run` child: SMTP in (IPv4 and IPv6) → cleanup → queue →
 * qmgr → virtual Maildir delivery, with Postfix's log lines for each step, and ETRN (RFC 1985)
 * reaching the running qmgr.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { maildirFiles, makeTestDir, Server, sleep, writeConfig } from '../crash/server.js';
import { sendMail } from '../crash/smtp-client.js';
import { SmtpClient } from '../harness/smtp-client.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('postern run: end to end', () => {
  test('e2e: mail over IPv4 and IPv6 lands in its Maildir, logged as Postfix logs each step', async () => {
    const dir = makeTestDir('postern-e2e-');
    dirs.push(dir);
    const c = await writeConfig(dir, { users: 2 });
    const server = new Server(c);
    try {
      await server.ready();
      for (const [i, host] of c.hosts.entries()) {
        const token = `e2e-token-${i}-${Date.now()}`;
        const message = `From: sender@example.test\r\nTo: u${i}@example.test\r\nSubject: e2e ${i}\r\nMessage-ID: <${token}@example.test>\r\n\r\n${token}\r\n`;
        const r = await sendMail({ host, port: c.port, helo: 'client.example.test', sender: 'sender@example.test', recipients: [`u${i}@example.test`], message });
        assert.equal(r.kind, 'queued', JSON.stringify(r));
        const qid: string = r.kind === 'queued' ? (r.queueId ?? '') : '';
        assert.ok(qid !== null && /^[0-9A-F]{10,}$/.test(qid), String(qid));
        const addr = host.includes(':') ? `unknown[${host}]` : `unknown[${host}]`;
        await server.waitForLog(new RegExp(`postfix/smtpd\\[\\d+\\]: ${qid}: client=${addr.replace(/[[\]]/g, '\\$&')}\\n`));
        await server.waitForLog(new RegExp(`postfix/cleanup\\[\\d+\\]: ${qid}: message-id=<${token}@example\\.test>\\n`));
        await server.waitForLog(new RegExp(`postfix/qmgr\\[\\d+\\]: ${qid}: from=<sender@example\\.test>, size=\\d+, nrcpt=1 \\(queue active\\)\\n`));
        await server.waitForLog(new RegExp(`postfix/virtual\\[\\d+\\]: ${qid}: to=<u${i}@example\\.test>, relay=virtual, delay=[0-9.]+, delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn=2\\.0\\.0, status=sent \\(delivered to maildir\\)\\n`));
        await server.waitForLog(new RegExp(`postfix/qmgr\\[\\d+\\]: ${qid}: removed\\n`));
        const files = maildirFiles(path.join(c.mailBase, `u${i}`));
        const mine = files.filter((f) => fs.readFileSync(f, 'utf8').includes(token));
        assert.equal(mine.length, 1, `one copy of ${token} in u${i}'s Maildir`);
        const text = fs.readFileSync(mine[0]!, 'utf8');
        assert.match(text, /^Return-Path: <sender@example\.test>\n/);
        assert.match(text, new RegExp(`\\nDelivered-To: u${i}@example\\.test\\n`));
        const literal = host.includes(':') ? `\\[IPv6:${host}\\]` : `\\[${host}\\]`;
        assert.match(text, new RegExp(`\\nReceived: from client\\.example\\.test \\(unknown ${literal}\\)\\n`));
      }
    } finally {
      await server.stop();
    }
  });

  test('e2e: ETRN asks the running qmgr to retry the deferred mail of that site now', async () => {
    const dir = makeTestDir('postern-e2e-etrn-');
    dirs.push(dir);
    // Deferred mail would wait 300 s for its retry: only ETRN can make it run again within the test.
    const c = await writeConfig(dir, {
      users: 1,
      mainCf: [
        'relay_domains = remote.test',
        'transport_maps = inline:{ { remote.test = retry:remote.test is down for maintenance } }',
        'queue_run_delay = 300s',
        'minimal_backoff_time = 300s',
        'maximal_backoff_time = 600s',
      ].join('\n'),
    });
    const server = new Server(c);
    try {
      await server.ready();
      const r = await sendMail({
        host: '127.0.0.1',
        port: c.port,
        helo: 'client.example.test',
        sender: 'sender@example.test',
        recipients: ['someone@remote.test'],
        message: 'Subject: for a site that is down\r\n\r\nbody\r\n',
      });
      assert.equal(r.kind, 'queued', JSON.stringify(r));
      const qid: string = r.kind === 'queued' ? (r.queueId ?? '') : '';
      const deferred = new RegExp(`${qid}: to=<someone@remote\\.test>, relay=none, [^\\n]*status=deferred \\(remote\\.test is down for maintenance\\)\\n`, 'g');
      await server.waitForLog(deferred);
      // The agent's line comes before qmgr moves the file to deferred/; ETRN flushes deferred/.
      const inDeferred = Date.now() + 10_000;
      while (!fs.readdirSync(path.join(c.queueDir, 'deferred'), { recursive: true }).some((n) => String(n).endsWith(qid))) {
        assert.ok(Date.now() < inDeferred, `${qid} never reached deferred/`);
        await sleep(20);
      }
      const client = await SmtpClient.connect(c.port, '127.0.0.1');
      try {
        await client.read();
        await client.cmd('EHLO client.example.test');
        assert.equal(await client.cmd('ETRN remote.test'), '250 Queuing started');
        await client.cmd('QUIT');
      } finally {
        client.close();
      }
      // A second delivery attempt, long before the 300 s backoff.
      const until = Date.now() + 15_000;
      let log = '';
      for (;;) {
        log += server.log();
        if ((log.match(deferred) ?? []).length >= 1 && (readAll(c.logFile).match(deferred) ?? []).length >= 2) break;
        assert.ok(Date.now() < until, `no second attempt after ETRN; log:\n${readAll(c.logFile)}`);
        await sleep(100);
      }
    } finally {
      await server.stop();
    }
  });

  test('e2e: local(8) through qmgr: a mydestination alias (alias_maps file) expanded to virtual addresses is forwarded and lands in their Maildirs, logged as Postfix 3.7 logs it', async () => {
    const dir = makeTestDir('postern-e2e-local-');
    dirs.push(dir);
    // aliases(5) syntax, a list continued on the next line, an alias naming another alias.
    fs.writeFileSync(path.join(dir, 'aliases'), '# the team lives in the virtual domain\nteam:\tu0@example.test,\n\tinner\ninner: u1@example.test\n');
    const c = await writeConfig(dir, {
      users: 2,
      mainCf: [`alias_maps = hash:${path.join(dir, 'aliases')}`, 'local_recipient_maps = proxy:unix:passwd.byname $alias_maps'].join('\n'),
    });
    const server = new Server(c);
    try {
      await server.ready();
      const send = (rcpt: string, token: string) =>
        sendMail({ host: '127.0.0.1', port: c.port, helo: 'client.example.test', sender: 'sender@example.test', recipients: [rcpt], message: `Subject: ${token}\r\n\r\n${token}\r\n` });
      // smtpd knows the alias from local_recipient_maps; a name in no table is refused at RCPT.
      const unknown = await send('nosuch@mx.example.test', 'never');
      assert.deepEqual(unknown.kind === 'rejected' ? [unknown.stage, unknown.reply.lines] : unknown, [
        'rcpt',
        ['550 5.1.1 <nosuch@mx.example.test>: Recipient address rejected: User unknown in local recipient table'],
      ]);
      const token = `local-alias-${Date.now()}`;
      const r = await send('team@mx.example.test', token);
      assert.equal(r.kind, 'queued', JSON.stringify(r));
      const qid = r.kind === 'queued' ? (r.queueId ?? '') : '';
      // local(8) resubmits the expansion as one new message (Postfix local/forward.c) ...
      const fwd = await server.waitForLog(
        new RegExp(`postfix/local\\[\\d+\\]: ${qid}: to=<team@mx\\.example\\.test>, relay=local, delay=[\\d.]+, delays=[\\d./]+, dsn=2\\.0\\.0, status=sent \\(forwarded as ([0-9A-F]+)\\)\\n`),
      );
      const newId = /forwarded as ([0-9A-F]+)/.exec(fwd)![1]!;
      await server.waitForLog(new RegExp(`postfix/qmgr\\[\\d+\\]: ${qid}: removed\\n`));
      await server.waitForLog(new RegExp(`postfix/qmgr\\[\\d+\\]: ${newId}: from=<sender@example\\.test>, size=\\d+, nrcpt=2 \\(queue active\\)\\n`));
      // ... whose recipients carry the alias as their original recipient: orig_to= and X-Original-To:.
      for (const [i, u] of ['u0', 'u1'].entries()) {
        await server.waitForLog(
          new RegExp(`postfix/virtual\\[\\d+\\]: ${newId}: to=<${u}@example\\.test>, orig_to=<team@mx\\.example\\.test>, relay=virtual, delay=[\\d.]+, delays=[\\d./]+, dsn=2\\.0\\.0, status=sent \\(delivered to maildir\\)\\n`));
        const mine = maildirFiles(path.join(c.mailBase, u)).filter((f) => fs.readFileSync(f, 'utf8').includes(token));
        assert.equal(mine.length, 1, `one copy for ${u}`);
        const text = fs.readFileSync(mine[0]!, 'utf8');
        assert.match(
          text,
          new RegExp(
            `^Return-Path: <sender@example\\.test>\\nX-Original-To: team@mx\\.example\\.test\\nDelivered-To: ${u}@example\\.test\\n` +
              `Received: by mx\\.example\\.test \\(Postfix\\)\\n\\tid ${newId}; [^\\n]+\\nDelivered-To: team@mx\\.example\\.test\\nReceived: from client\\.example\\.test `,
          ),
          `${u} (${i})`,
        );
      }
      await server.waitForLog(new RegExp(`postfix/qmgr\\[\\d+\\]: ${newId}: removed\\n`));
      // (writeConfig's own alias_maps and local_recipient_maps are overridden: those warnings are expected.)
      assert.deepEqual(server.log().split('\n').filter((l) => /warning:|fatal:|panic:/.test(l) && !l.includes('overriding earlier entry')), []);
    } finally {
      await server.stop();
    }
  });

  test('e2e: notify_classes = policy: a session with a rejected recipient brings the postmaster a transcript in its Maildir', async () => {
    const dir = makeTestDir('postern-e2e-notify-');
    dirs.push(dir);
    const c = await writeConfig(dir, {
      users: 2,
      mainCf: [
        'notify_classes = policy',
        // postmaster@$myorigin (error_notice_recipient's default, qualified) is the virtual user u1.
        'virtual_alias_maps = inline:{ { postmaster@mx.example.test = u1@example.test } }',
        'smtpd_recipient_restrictions = check_recipient_access inline:{ { spam@example.test = REJECT no spam please } }, permit_mynetworks, reject_unauth_destination',
      ].join('\n'),
    });
    const server = new Server(c);
    try {
      await server.ready();
      const s = await SmtpClient.connect(c.port);
      await s.read();
      await s.cmd('EHLO client.example.test');
      await s.cmd('MAIL FROM:<sender@example.test>');
      assert.equal(await s.cmd('RCPT TO:<spam@example.test>'), '554 5.7.1 <spam@example.test>: Recipient address rejected: no spam please');
      assert.equal(await s.cmd('QUIT'), '221 2.0.0 Bye');
      s.close();
      const line = await server.waitForLog(/postfix\/qmgr\[\d+\]: (\w+): from=<double-bounce@mx\.example\.test>, size=\d+, nrcpt=1 \(queue active\)\n/);
      const qid = /: (\w+): from=/.exec(line)![1]!;
      await server.waitForLog(new RegExp(`postfix/virtual\\[\\d+\\]: ${qid}: to=<u1@example\\.test>, orig_to=<postmaster>, relay=virtual, .*status=sent \\(delivered to maildir\\)\\n`));
      const files = maildirFiles(path.join(c.mailBase, 'u1'));
      assert.equal(files.length, 1);
      const text = fs.readFileSync(files[0]!, 'utf8');
      assert.match(text, /^Return-Path: <double-bounce@mx\.example\.test>\nX-Original-To: postmaster\nDelivered-To: u1@example\.test\nReceived: by mx\.example\.test \(Postfix\)\n/);
      assert.match(text, /\nFrom: Mail Delivery System <MAILER-DAEMON@mx\.example\.test>\nTo: Postmaster <postmaster@mx\.example\.test>\nSubject: Postfix SMTP server: errors from unknown\[127\.0\.0\.1\]\n/);
      assert.ok(
        text.endsWith(
          [
            ' In:  RCPT TO:<spam@example.test>',
            ' Out: 554 5.7.1 <spam@example.test>: Recipient address rejected: no spam please',
            ' In:  QUIT',
            ' Out: 221 2.0.0 Bye',
            '',
            '',
            'For other details, see the local mail logfile',
            '',
          ].join('\n'),
        ),
        text,
      );
      assert.deepEqual(server.log().split('\n').filter((l) => /warning:|fatal:|panic:/.test(l) && !l.includes('overriding earlier entry')), []);
    } finally {
      await server.stop();
    }
  });
});

function readAll(file: string): string {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
}

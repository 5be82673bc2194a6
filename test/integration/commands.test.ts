/**
 * The command-line tools as an admin or a user types them (`node bin/postern.js -c DIR ...`, each
 * its own process) against a real `postern run` child with its own qmgr, pickup and Maildirs:
 * sendmail -bs on stdin/stdout, sendmail -q and postqueue -i for deferred mail, the pickup log
 * line, and enable_long_queue_ids through SMTP, qmgr, mailq, postcat and postsuper. Postfix 3.7's
 * output is the reference (observed with /work/shared/tools/postfix-ref).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { type ConfigOptions, type CrashConfig, maildirFiles, makeTestDir, Server, writeConfig } from '../crash/server.js';
import { runPostern } from '../harness/run.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A started `postern run` over a fresh writeConfig() directory; `prepare` runs before the start. */
async function start(name: string, o: ConfigOptions, prepare?: (c: CrashConfig) => void): Promise<Server> {
  const dir = makeTestDir(`postern-cmd-${name}-`);
  dirs.push(dir);
  const c = await writeConfig(dir, o);
  prepare?.(c);
  const server = new Server(c);
  await server.ready();
  return server;
}

/** `postern -c DIR ARGS`; the exit status must be 0 (stderr in the message otherwise). */
function cli(c: CrashConfig, args: readonly string[], o: Parameters<typeof runPostern>[1] = {}): { stdout: string; stderr: string } {
  const r = runPostern(['-c', c.dir, ...args], o);
  assert.equal(r.status, 0, `postern ${args.join(' ')}: status ${r.status}\n${r.stderr}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** The one message in `user`'s Maildir holding `token`. */
function deliveredWith(c: CrashConfig, user: string, token: string): string {
  const mine = maildirFiles(path.join(c.mailBase, user))
    .map((f) => fs.readFileSync(f, 'utf8'))
    .filter((t) => t.includes(token));
  assert.equal(mine.length, 1, `one copy of ${token} for ${user}`);
  return mine[0]!;
}

describe('command-line tools against a running postern', () => {
  test('sendmail -bs: SMTP on stdin/stdout through bin/postern.js; pickup and qmgr deliver the message into both Maildirs', async () => {
    const server = await start('bs', { users: 2 });
    const c = server.config;
    const token = `bs-${Date.now()}`;
    const conversation = [
      'EHLO client.example.test',
      'MAIL FROM:<sender@example.test>',
      'RCPT TO:<u0@example.test>',
      'RCPT TO:<u1@example.test>',
      'DATA',
      `Subject: ${token}`,
      '',
      '..a line with a leading dot',
      '.',
      'QUIT',
      '',
    ].join('\r\n');
    try {
      // -F is not passed to Postfix's `smtpd -S`: the From: that pickup adds has no name.
      const r = cli(c, ['sendmail', '-bs', '-F', 'Ignored Name'], { input: conversation });
      assert.equal(r.stderr, '');
      const replies = r.stdout.split('\r\n');
      const name = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(replies.at(-3) ?? '')?.[1];
      assert.ok(name !== undefined, r.stdout);
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
        '250 2.1.5 Ok',
        '354 End data with <CR><LF>.<CR><LF>',
        `250 2.0.0 Ok: queued as ${name}`,
        '221 2.0.0 Bye',
        '',
      ]);
      const uid = process.getuid?.() ?? 0;
      const pickup = await server.waitForLog(new RegExp(`postfix/pickup\\[\\d+\\]: ([0-9A-F]+): uid=${uid} from=<sender@example\\.test>\\n`));
      const qid = /: ([0-9A-F]+): uid=/.exec(pickup)![1]!;
      await server.waitForLog(new RegExp(`postfix/qmgr\\[\\d+\\]: ${qid}: from=<sender@example\\.test>, size=\\d+, nrcpt=2 \\(queue active\\)\\n`));
      for (const u of ['u0', 'u1']) {
        await server.waitForLog(new RegExp(`postfix/virtual\\[\\d+\\]: ${qid}: to=<${u}@example\\.test>, relay=virtual, delay=[\\d.]+, delays=[\\d./]+, dsn=2\\.0\\.0, status=sent \\(delivered to maildir\\)\\n`));
      }
      await server.waitForLog(new RegExp(`postfix/qmgr\\[\\d+\\]: ${qid}: removed\\n`));
      const text = deliveredWith(c, 'u0', token);
      const date = '[A-Z][a-z]{2}, \\d\\d [A-Z][a-z]{2} \\d{4} \\d\\d:\\d\\d:\\d\\d [+-]\\d{4} \\([A-Z]+\\)';
      assert.match(
        text,
        new RegExp(
          '^Return-Path: <sender@example\\.test>\\nX-Original-To: u0@example\\.test\\nDelivered-To: u0@example\\.test\\n' +
            `Received: by mx\\.example\\.test \\(Postfix, from userid ${uid}\\)\\n\\tid ${qid}; ${date}\\n` +
            // Several recipients: no `for` clause, and the date on a line of its own (Postfix smtpd.c).
            `Received: from client\\.example\\.test \\(localhost \\[127\\.0\\.0\\.1\\]\\)\\n\\tby mx\\.example\\.test \\(Postfix\\) with ESMTP id ${name};\\n\\t${date}\\n` +
            `Subject: ${token}\\nMessage-Id: <\\d{14}\\.${qid}@mx\\.example\\.test>\\nDate: ${date}\\nFrom: sender@example\\.test\\n\\n` +
            '\\.a line with a leading dot\\n$',
        ),
      );
      deliveredWith(c, 'u1', token);
      assert.deepEqual(fs.readdirSync(path.join(c.queueDir, 'maildrop')), []);
    } finally {
      await server.stop();
    }
  });
});

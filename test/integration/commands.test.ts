/**
 * The command-line tools as an admin or a user types them (`node bin/postern.js -c DIR ...`, each
 * its own process) against a real `postern run` child with its own qmgr, pickup and Maildirs:
 * sendmail -bs on stdin/stdout, sendmail -q and postqueue -i for deferred mail, the pickup log
 * line, and enable_long_queue_ids through SMTP, qmgr, mailq, postcat and postsuper. Postfix 3.7's
 * output is the reference (observed with /work/shared/tools/postfix-ref).
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { BIN, type ConfigOptions, type CrashConfig, chownTree, IS_ROOT, maildirFiles, makeTestDir, queueContents, runAccount, Server, sleep, writeConfig } from '../crash/server.js';
import { sendMail } from '../crash/smtp-client.js';
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

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Deferred mail waits 300 s: only a command can make it run again within a test. */
const NO_RETRY = ['queue_run_delay = 300s', 'minimal_backoff_time = 300s', 'maximal_backoff_time = 600s'];

/** Waits until `id` is in deferred/ (the agent's status line comes before qmgr's rename). */
async function inDeferred(c: CrashConfig, id: string): Promise<void> {
  const until = Date.now() + 10_000;
  while (!queueContents(c.queueDir).deferred.includes(id)) {
    assert.ok(Date.now() < until, `${id} never reached deferred/`);
    await sleep(20);
  }
}

/** The one message in `user`'s Maildir holding `token`. */
function deliveredWith(c: CrashConfig, user: string, token: string): string {
  const mine = maildirFiles(path.join(c.mailBase, user))
    .map((f) => fs.readFileSync(f, 'utf8'))
    .filter((t) => t.includes(token));
  assert.equal(mine.length, 1, `one copy of ${token} for ${user}`);
  return mine[0]!;
}

/** A log line's time stamp and host, as maillog_file writes them. */
const STAMP = '[A-Z][a-z]{2} [ 0-9]\\d \\d\\d:\\d\\d:\\d\\d mx';

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

  test('sendmail -q and postqueue -i ID: deferred mail is retried at once by the running qmgr, -i only the one message', async () => {
    // u0 and u1 cannot be delivered until their Maildir directories become writable: a deferral
    // the test controls. The 300 s backoff means any second attempt comes from the commands.
    const server = await start('flush', { users: 2, mainCf: NO_RETRY.join('\n') }, (cfg) => {
      for (const u of ['u0', 'u1']) {
        const d = path.join(cfg.mailBase, u);
        fs.mkdirSync(d);
        chownTree(d);
        fs.chmodSync(d, 0o500);
      }
    });
    const c = server.config;
    try {
      const ids: Record<string, string> = {};
      for (const u of ['u0', 'u1']) {
        cli(c, ['sendmail', '-f', 'sender@example.test', `${u}@example.test`], { input: `Subject: flush-${u}\n\nfor ${u}\n` });
        const line = await server.waitForLog(
          new RegExp(`: ([0-9A-F]+): to=<${u}@example\\.test>, relay=virtual, [^\\n]*dsn=4\\.2\\.0, status=deferred \\(maildir delivery failed: create maildir file [^\\n]*: Permission denied\\)\\n`),
        );
        ids[u] = /: ([0-9A-F]+): to=/.exec(line)![1]!;
        await inDeferred(c, ids[u]!);
      }
      const attempts = (id: string): number => (server.log().match(new RegExp(`: ${id}: to=<`, 'g')) ?? []).length;
      for (const u of ['u0', 'u1']) fs.chmodSync(path.join(c.mailBase, u), 0o700);

      // postqueue -i: that message now; the other keeps its retry time.
      assert.deepEqual(cli(c, ['postqueue', '-i', ids.u0!]), { stdout: '', stderr: '' });
      await server.waitForLog(new RegExp(`postfix/virtual\\[\\d+\\]: ${ids.u0}: to=<u0@example\\.test>, relay=virtual, [^\\n]*status=sent \\(delivered to maildir\\)\\n`), 10_000);
      await server.waitForLog(new RegExp(`postfix/qmgr\\[\\d+\\]: ${ids.u0}: removed\\n`));
      deliveredWith(c, 'u0', 'for u0');
      assert.deepEqual(queueContents(c.queueDir).deferred, [ids.u1]);
      assert.equal(attempts(ids.u1!), 1, 'postqueue -i retried only its message');

      // sendmail -q (= postqueue -f): everything deferred, now.
      assert.deepEqual(cli(c, ['sendmail', '-q']), { stdout: '', stderr: '' });
      await server.waitForLog(new RegExp(`postfix/virtual\\[\\d+\\]: ${ids.u1}: to=<u1@example\\.test>, relay=virtual, [^\\n]*status=sent \\(delivered to maildir\\)\\n`), 10_000);
      await server.waitForLog(new RegExp(`postfix/qmgr\\[\\d+\\]: ${ids.u1}: removed\\n`));
      deliveredWith(c, 'u1', 'for u1');
      assert.equal(cli(c, ['mailq']).stdout, 'Mail queue is empty\n');
    } finally {
      await server.stop();
    }
  });

  test('pickup: logs "QID: uid=N from=<sender>" as Postfix, with the sender as submitted (before canonicalisation) and the file owner\'s uid', async () => {
    const server = await start('pickup', { users: 1 });
    const c = server.config;
    try {
      const me = process.getuid?.() ?? 0;
      // As a user with no -f: the login name, which qmgr then shows with @$myorigin.
      const user = IS_ROOT ? runAccount() : { uid: me, gid: process.getgid?.() ?? 0 };
      const login = spawnSync('id', ['-nu', String(user.uid)], { encoding: 'utf8' }).stdout.trim();
      const cases: { args: string[]; as?: { uid: number; gid: number }; uid: number; logged: string; qmgr: string }[] = [
        { args: ['-f', 'someone'], uid: me, logged: 'someone', qmgr: 'someone@mx.example.test' },
        { args: ['-f', 'Local Alice <alice@Example.TEST>'], uid: me, logged: 'alice@Example.TEST', qmgr: 'alice@Example.TEST' },
        { args: ['-f', '<>'], uid: me, logged: '', qmgr: '' },
        { args: [], as: user, uid: user.uid, logged: login, qmgr: `${login}@mx.example.test` },
      ];
      for (const k of cases) {
        const token = `pickup-${cases.indexOf(k)}-${Date.now()}`;
        cli(c, ['sendmail', ...k.args, 'u0@example.test'], { input: `Subject: ${token}\n\n${token}\n`, ...(k.as ?? {}) });
        const line = await server.waitForLog(new RegExp(`^${STAMP} postfix/pickup\\[\\d+\\]: ([0-9A-F]+): uid=${k.uid} from=<${esc(k.logged)}>$`, 'm'));
        const qid = /: ([0-9A-F]+): uid=/.exec(line)![1]!;
        await server.waitForLog(new RegExp(`postfix/cleanup\\[\\d+\\]: ${qid}: message-id=<`));
        await server.waitForLog(new RegExp(`postfix/qmgr\\[\\d+\\]: ${qid}: from=<${esc(k.qmgr)}>, size=\\d+, nrcpt=1 \\(queue active\\)\\n`));
        await server.waitForLog(new RegExp(`postfix/qmgr\\[\\d+\\]: ${qid}: removed\\n`));
        deliveredWith(c, 'u0', token);
      }
      // pickup's line is the first with the queue id, before cleanup's (pflogsumm counts it as received).
      const log = server.log().split('\n');
      for (const l of log.filter((x) => x.includes('postfix/pickup['))) {
        const qid = /: ([0-9A-F]+): uid=/.exec(l)![1]!;
        assert.equal(log.find((x) => x.includes(` ${qid}: `)), l);
      }
    } finally {
      await server.stop();
    }
  });

  test('enable_long_queue_ids = yes: SMTP → qmgr → Maildir with a long id in every log line; mailq, postqueue -j, postcat -q, postsuper -d take it', async () => {
    const server = await start('longid', {
      users: 2,
      mainCf: [
        'enable_long_queue_ids = yes',
        // u1 is kept in the queue: the retry transport defers it.
        'transport_maps = inline:{ { u1@example.test = retry:4.2.0 mailbox busy } }',
        'smtpd_reject_unlisted_recipient = no',
        ...NO_RETRY,
      ].join('\n'),
    });
    const c = server.config;
    try {
      const token = `longid-${Date.now()}`;
      const r = await sendMail({
        host: '127.0.0.1',
        port: c.port,
        helo: 'client.example.test',
        sender: 'sender@example.test',
        recipients: ['u0@example.test', 'u1@example.test'],
        message: `Subject: ${token}\r\nMessage-ID: <${token}@example.test>\r\n\r\n${token}\r\n`,
      });
      assert.equal(r.kind, 'queued', JSON.stringify(r));
      const id = r.kind === 'queued' ? (r.queueId ?? '') : '';
      // Postfix's long id: seconds (base 52), microseconds (4), 'z', inode (base 51), no vowels.
      assert.match(id, /^[0-9BCDFGHJ-NP-TV-Zbcdfghj-np-tv-z]{10,}z[0-9BCDFGHJ-NP-TV-Zbcdfghj-np-tv-y]+$/);
      const q = esc(id);
      await server.waitForLog(new RegExp(`^${STAMP} postfix/smtpd\\[\\d+\\]: ${q}: client=unknown\\[127\\.0\\.0\\.1\\]$`, 'm'));
      await server.waitForLog(new RegExp(`^${STAMP} postfix/cleanup\\[\\d+\\]: ${q}: message-id=<${token}@example\\.test>$`, 'm'));
      await server.waitForLog(new RegExp(`^${STAMP} postfix/qmgr\\[\\d+\\]: ${q}: from=<sender@example\\.test>, size=\\d+, nrcpt=2 \\(queue active\\)$`, 'm'));
      await server.waitForLog(new RegExp(`^${STAMP} postfix/virtual\\[\\d+\\]: ${q}: to=<u0@example\\.test>, relay=virtual, delay=[\\d.]+, delays=[\\d./]+, dsn=2\\.0\\.0, status=sent \\(delivered to maildir\\)$`, 'm'));
      // The retry service runs error(8), and Postfix tags its lines postfix/error.
      await server.waitForLog(new RegExp(`^${STAMP} postfix/error\\[\\d+\\]: ${q}: to=<u1@example\\.test>, relay=none, delay=[\\d.]+, delays=[\\d./]+, dsn=4\\.2\\.0, status=deferred \\(mailbox busy\\)$`, 'm'));
      await inDeferred(c, id);
      assert.match(deliveredWith(c, 'u0', token), new RegExp(`\\n\\tby mx\\.example\\.test \\(Postfix\\) with ESMTP id ${q};\\n`));

      // mailq in Postfix's long-id layout (showq_compat.c; the same text Postfix 3.7 prints).
      const listing = cli(c, ['mailq']).stdout.split('\n');
      assert.equal(listing[0], '----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------');
      // The id left-aligned in 17 columns, the size right-aligned in 8, then arrival time and sender.
      const first = listing[1]!;
      assert.equal(first.slice(0, 18), id.padEnd(18));
      assert.match(first.slice(18, 26), /^ *\d+$/);
      assert.match(first.slice(26), /^ [A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d sender@example\.test$/);
      assert.deepEqual(listing.slice(2), [`${' '.repeat(64)}(mailbox busy)`, `${' '.repeat(47)}u1@example.test`, '', '-- 0 Kbytes in 1 Request.', '']);
      const json = JSON.parse(cli(c, ['postqueue', '-j']).stdout) as { queue_id: string; queue_name: string; recipients: { address: string; delay_reason: string }[] };
      assert.deepEqual([json.queue_id, json.queue_name, json.recipients], [id, 'deferred', [{ address: 'u1@example.test', delay_reason: 'mailbox busy' }]]);

      const cat = cli(c, ['postcat', '-q', id]).stdout;
      assert.ok(cat.startsWith(`*** ENVELOPE RECORDS deferred/${id} ***\n`), cat);
      assert.match(cat, /\nsender: sender@example\.test\n/);
      assert.match(cat, /\nrecipient: u1@example\.test\n/);
      assert.match(cat, /\ndone_recipient: u0@example\.test\n/);
      assert.match(cat, new RegExp(`\\n\\*\\*\\* MESSAGE CONTENTS deferred/${q} \\*\\*\\*\\n[^]*\\nSubject: ${token}\\n[^]*\\n${token}\\n\\*\\*\\* HEADER EXTRACTED deferred/${q} \\*\\*\\*\\n\\*\\*\\* MESSAGE FILE END deferred/${q} \\*\\*\\*\\n$`));
      // `postcat -q ID | head`: the pipe closes early, and postcat goes quietly (Postfix: SIGPIPE).
      const head = spawnSync('sh', ['-c', `"$0" "$1" -c "$2" postcat -q "$3" | head -n 1`, process.execPath, BIN, c.dir, id], { encoding: 'utf8', env: { ...process.env, MAIL_CONFIG: '' } });
      assert.deepEqual([head.stdout, head.stderr], [`*** ENVELOPE RECORDS deferred/${id} ***\n`, '']);

      assert.deepEqual(cli(c, ['postsuper', '-d', id]), { stdout: '', stderr: `postsuper: ${id}: removed\npostsuper: Deleted: 1 message\n` });
      await server.waitForLog(new RegExp(`^${STAMP} postfix/postsuper\\[\\d+\\]: ${q}: removed$`, 'm'));
      assert.deepEqual(queueContents(c.queueDir).deferred, []);
      assert.equal(cli(c, ['mailq']).stdout, 'Mail queue is empty\n');
    } finally {
      await server.stop();
    }
  });
});

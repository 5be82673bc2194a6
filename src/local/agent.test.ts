import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cleanup } from '../cleanup/index.js';
import { paramsFrom } from '../config/index.js';
import { Log } from '../log/index.js';
import { MailboxChanges } from '../mailbox/changes.js';
import type { DeliveryRequest } from '../queue/delivery.js';
import { queueFilePath } from '../queue/directories.js';
import { readMessage, readQueueFile } from '../queue/file.js';
import { LocalAgent, splitAddr } from './agent.js';
import { cleanupResubmitter } from './forward.js';
import type { LocalDeliveryStatus } from './status.js';

const isRoot = process.getuid?.() === 0;
let tmp: string;
let q: string;
let passwd: string;
let aliases: string;

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-local-'));
  await fsp.chmod(tmp, 0o755); // commands run as default_privs must reach their output directory
  q = path.join(tmp, 'queue');
  for (const u of ['bob', 'carol']) {
    await fsp.mkdir(path.join(tmp, 'home', u), { recursive: true });
    if (isRoot) await fsp.chown(path.join(tmp, 'home', u), u === 'bob' ? 1000 : 1001, 1000);
  }
  await fsp.mkdir(path.join(tmp, 'out'), { mode: 0o777 });
  await fsp.chmod(path.join(tmp, 'out'), 0o777);
  await fsp.mkdir(path.join(tmp, 'spool'), { mode: 0o1777 });
  passwd = path.join(tmp, 'passwd');
  await fsp.writeFile(
    passwd,
    [
      'root:x:0:0:root:/root:/bin/bash',
      `bob:x:1000:1000:Bob:${tmp}/home/bob:/bin/sh`,
      `carol:x:1001:1000:Carol:${tmp}/home/carol:/bin/sh`,
      'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
      '',
    ].join('\n'),
  );
  aliases = path.join(tmp, 'aliases');
  await fsp.writeFile(
    aliases,
    [
      'staff: bob, carol',
      'bobby: bob',
      'remote: someone@elsewhere.example',
      'mixed: bob, someone@elsewhere.example',
      'partly: bob, nosuchuser',
      `list: :include:${tmp}/list.txt`,
      'owner-list: bob',
      'loopa: loopb',
      'loopb: loopa',
      'self: self, carol',
      `cmd: "|cat > ${tmp}/out/cmd.txt"`,
      'tempfail: "|exit 75"',
      'nouser: "|exit 67"',
      'slow: "|sleep 5"',
      `tofile: ${tmp}/out/file.mbox`,
      '',
    ].join('\n'),
  );
  await fsp.writeFile(path.join(tmp, 'list.txt'), '# members\nbob\nfar@elsewhere.example\n');
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

function mainCf(extra = ''): string {
  return `myhostname = mx.example.test
mydestination = $myhostname, localhost, example.test
alias_maps = hash:${aliases}
home_mailbox = Maildir/
recipient_delimiter = +
mail_spool_directory = ${tmp}/spool
${extra}`;
}

interface Setup {
  agent: LocalAgent;
  log: ReturnType<typeof Log.memory>;
  cleanup: Cleanup;
  queue(o: { sender?: string; rcpts: string[]; message?: string }): Promise<DeliveryRequest>;
}

function setup(extra = ''): Setup {
  const params = paramsFrom(mainCf(extra));
  const log = Log.memory({ myhostname: 'mx.example.test' });
  const cleanup = new Cleanup({ queue_directory: q, params, log });
  const agent = new LocalAgent({
    params,
    log,
    passwdFile: passwd,
    resubmit: cleanupResubmitter(cleanup, { myhostname: 'mx.example.test', mail_name: 'Postfix' }),
    changes: new MailboxChanges(),
  });
  const queue: Setup['queue'] = async (o) => {
    const txn = await cleanup.open();
    txn.write(Buffer.from(o.message ?? 'From: Alice <alice@example.org>\r\nSubject: test\r\n\r\nHello.\r\n'));
    const sender = o.sender ?? 'alice@example.org';
    const res = await txn.commit({
      sender,
      recipients: o.rcpts.map((address) => ({ address, notify: null, orcpt: null })),
      ret: null,
      envid: null,
      smtputf8: false,
      body: null,
      client: null,
      receivedHeader: 'Received: from client.example.org (client.example.org [192.0.2.25])\r\n\tby mx.example.test (Postern) with ESMTP id X',
      addMissingHeaders: false,
    });
    return {
      queueId: res.queueId,
      queueFile: queueFilePath(q, 'incoming', res.queueId),
      sender,
      recipients: o.rcpts.map((address, index) => ({ index, address, origAddress: null, notify: null, orcpt: null })),
      transport: 'local',
      nexthop: 'mx.example.test',
      arrivalTime: Date.now(),
      activeTime: Date.now(),
    };
  };
  return { agent, log, cleanup, queue };
}

async function maildirFiles(user: string): Promise<string[]> {
  const dir = path.join(tmp, 'home', user, 'Maildir', 'new');
  try {
    const names = (await fsp.readdir(dir)).sort();
    return Promise.all(names.map((n) => fsp.readFile(path.join(dir, n), 'utf8')));
  } catch {
    return [];
  }
}

async function clearMaildirs(): Promise<void> {
  for (const u of ['bob', 'carol']) await fsp.rm(path.join(tmp, 'home', u, 'Maildir'), { recursive: true, force: true });
}

function only(s: readonly LocalDeliveryStatus[]): LocalDeliveryStatus {
  assert.equal(s.length, 1);
  return s[0]!;
}

async function queued(qid: string): Promise<{ sender: string; rcpts: string[]; text: string }> {
  const qf = await readQueueFile(queueFilePath(q, 'incoming', qid));
  return { sender: qf.envelope.sender, rcpts: qf.envelope.recipients.map((r) => r.address), text: (await readMessage(qf)).toString('utf8') };
}

describe('local agent', { concurrency: false }, () => {
  test('local: a passwd user gets the message in ~/Maildir/new with Return-Path, X-Original-To and Delivered-To', async () => {
    await clearMaildirs();
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['bob@example.test'] })));
    assert.deepEqual({ ...st, xmitSeconds: 0 }, { index: 0, dsn: '2.0.0', action: 'delivered', reason: 'delivered to maildir', relay: 'local', connSeconds: 0, xmitSeconds: 0 });
    const [m] = await maildirFiles('bob');
    assert.match(m!, /^Return-Path: <alice@example\.org>\nX-Original-To: bob@example\.test\nDelivered-To: bob@example\.test\nReceived: from client/);
    assert.match(m!, /\nSubject: test\n\nHello\.\n$/);
    if (isRoot) {
      const dir = path.join(tmp, 'home', 'bob', 'Maildir', 'new');
      const [name] = await fsp.readdir(dir);
      assert.equal((await fsp.stat(path.join(dir, name!))).uid, 1000);
    }
    assert.deepEqual(s.log.lines.filter((l) => l.includes('/local[')), [], 'the agent logs no per-recipient line');
  });

  test('local: a user whose home cannot hold a Maildir bounces 5.2.0 with Postfix\'s maildir warnings', { skip: isRoot ? false : 'needs root' }, async () => {
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['nobody@example.test'] })));
    assert.equal(st.dsn, '5.2.0');
    assert.match(st.reason, /^maildir delivery failed: create maildir file \/nonexistent\/Maildir\/tmp\/\S+: Permission denied$/);
    const warnings = s.log.lines.filter((l) => l.includes('/local['));
    assert.match(warnings[0]!, /warning: maildir access problem for UID\/GID=65534\/65534: create maildir file /);
    assert.match(warnings[1]!, /warning: perhaps you need to create the maildirs in advance$/);
    await assert.rejects(fsp.stat('/nonexistent/Maildir'), { code: 'ENOENT' });
  });

  test('local: user+tag is delivered to user; Delivered-To keeps the full address', async () => {
    await clearMaildirs();
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['Bob+Tag@Example.test'] })));
    assert.equal(st.dsn, '2.0.0');
    const [m] = await maildirFiles('bob');
    assert.match(m!, /\nDelivered-To: Bob\+Tag@Example\.test\n/);
  });

  test('local: an unknown user bounces 5.1.1 unknown user: "name"', async () => {
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['nosuch@example.test'] })));
    assert.deepEqual([st.dsn, st.action, st.reason], ['5.1.1', 'failed', 'unknown user: "nosuch"']);
  });

  test('local: postmaster without an alias is discarded with Postfix\'s warning', async () => {
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['postmaster@example.test'] })));
    assert.deepEqual([st.dsn, st.reason], ['2.0.0', 'discarded']);
    assert.match(s.log.lines.join('\n'), /postfix\/local\[\d+\]: warning: required alias not found: postmaster$/);
  });

  test('local: a mail loop (Delivered-To: already names the recipient) bounces 5.4.6 and delivers nothing', async () => {
    await clearMaildirs();
    const s = setup();
    const msg = 'Delivered-To: bob@example.test\r\nSubject: looping\r\n\r\nx\r\n';
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['BOB@example.test'], message: msg })));
    assert.deepEqual([st.dsn, st.action, st.reason], ['5.4.6', 'failed', 'mail forwarding loop for BOB@example.test']);
    assert.deepEqual(await maildirFiles('bob'), []);
  });

  test('local: an alias list delivers to every member and reports each one', async () => {
    await clearMaildirs();
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['staff@example.test'] })));
    assert.equal(st.dsn, '2.0.0');
    assert.equal(st.action, 'expanded');
    assert.deepEqual(st.expanded, [
      { address: 'bob@mx.example.test', dsn: '2.0.0', action: 'delivered', reason: 'delivered to maildir' },
      { address: 'carol@mx.example.test', dsn: '2.0.0', action: 'delivered', reason: 'delivered to maildir' },
    ]);
    for (const u of ['bob', 'carol']) {
      const [m] = await maildirFiles(u);
      // Delivered-To: is the recipient that was expanded (frozen_delivered_to).
      assert.match(m!, /^Return-Path: <alice@example\.org>\nX-Original-To: staff@example\.test\nDelivered-To: staff@example\.test\n/, u);
    }
  });

  test('local: an alias with one member keeps that member\'s reason', async () => {
    await clearMaildirs();
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['bobby@example.test'] })));
    assert.deepEqual([st.dsn, st.action, st.reason], ['2.0.0', 'expanded', 'delivered to maildir']);
    assert.equal((await maildirFiles('bob')).length, 1);
  });

  test('local: an alias member that is unknown fails the recipient while the others are delivered', async () => {
    await clearMaildirs();
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['partly@example.test'] })));
    assert.deepEqual([st.dsn, st.reason], ['5.1.1', 'unknown user: "nosuchuser"']);
    assert.equal(st.expanded?.length, 2);
    assert.equal((await maildirFiles('bob')).length, 1);
  });

  test('local: an alias that names itself delivers to the user of that name', async () => {
    await fsp.writeFile(passwd, `${await fsp.readFile(passwd, 'utf8')}self:x:1002:1000::${tmp}/home/self:/bin/sh\n`);
    await fsp.mkdir(path.join(tmp, 'home', 'self'), { recursive: true });
    if (isRoot) await fsp.chown(path.join(tmp, 'home', 'self'), 1002, 1000);
    await new Promise((r) => setTimeout(r, 1100)); // the passwd file is re-read at most once a second
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['self@example.test'] })));
    assert.equal(st.dsn, '2.0.0');
    assert.deepEqual(
      st.expanded?.map((l) => l.address),
      ['self@mx.example.test', 'carol@mx.example.test'],
    );
    assert.equal((await fsp.readdir(path.join(tmp, 'home', 'self', 'Maildir', 'new'))).length, 1);
  });

  test('local: mutually recursive aliases bounce 5.4.6 alias database loop', async () => {
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['loopa@example.test'] })));
    assert.equal(st.dsn, '5.4.6');
    assert.match(st.reason, /^alias database loop for loop[ab]$/);
    assert.match(s.log.lines.join('\n'), /warning: alias database loop for loop[ab]/);
  });

  test('local: an alias to a remote address is resubmitted through cleanup: forwarded as NEWQID', async () => {
    const s = setup();
    const req = await s.queue({ rcpts: ['remote@example.test'] });
    const st = only(await s.agent.deliver(req));
    assert.equal(st.dsn, '2.0.0');
    assert.equal(st.action, 'relayed');
    assert.equal(st.expanded, undefined, 'one line for the recipient, as Postfix logs it');
    const m = /^forwarded as ([0-9A-Za-z]+)$/.exec(st.reason);
    assert.ok(m, st.reason);
    assert.notEqual(m[1], req.queueId);
    const fwd = await queued(m[1]!);
    assert.equal(fwd.sender, 'alice@example.org');
    assert.deepEqual(fwd.rcpts, ['someone@elsewhere.example']);
    assert.match(fwd.text, new RegExp(`^Received: by mx\\.example\\.test \\(Postfix\\)\\r\\n\\tid ${m[1]}; .*\\r\\nDelivered-To: remote@example\\.test\\r\\nReceived: from client`));
  });

  test('local: a list alias with a local and a remote member delivers one and forwards the other', async () => {
    await clearMaildirs();
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['mixed@example.test'] })));
    assert.equal(st.dsn, '2.0.0');
    assert.deepEqual(
      st.expanded?.map((l) => [l.action, l.reason.replace(/^forwarded as \S+$/, 'forwarded as ID')]),
      [
        ['delivered', 'delivered to maildir'],
        ['relayed', 'forwarded as ID'],
      ],
    );
    assert.equal((await maildirFiles('bob')).length, 1);
  });

  test('local: :include: members are always forwarded; an owner- alias becomes the sender', async () => {
    await clearMaildirs();
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['list@example.test'] })));
    assert.equal(st.dsn, '2.0.0');
    const m = /^forwarded as (\S+)$/.exec(st.reason)!;
    const fwd = await queued(m[1]!);
    assert.equal(fwd.sender, 'owner-list@mx.example.test');
    assert.deepEqual(fwd.rcpts, ['bob@mx.example.test', 'far@elsewhere.example']);
    assert.match(fwd.text, /\r\nDelivered-To: list@example\.test\r\n/);
    assert.deepEqual(await maildirFiles('bob'), [], 'not delivered directly');
  });

  test('local: a deferred member cancels the forwarding of the others (the recipient is retried whole)', async () => {
    await fsp.appendFile(aliases, 'fwdtemp: far@elsewhere.example, tempfail\n');
    await new Promise((r) => setTimeout(r, 1100));
    const before = (await fsp.readdir(path.join(q, 'incoming'))).length;
    const s2 = setup();
    const st = only(await s2.agent.deliver(await s2.queue({ rcpts: ['fwdtemp@example.test'] })));
    assert.equal(st.dsn, '4.3.0');
    assert.equal(st.action, 'deferred');
    assert.equal((await fsp.readdir(path.join(q, 'incoming'))).length, before + 1, 'only the message itself was queued');
  });

  test('local: |command members are refused 5.7.1 unless allow_mail_to_commands names alias', async () => {
    const s = setup('allow_mail_to_commands = forward\n');
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['cmd@example.test'] })));
    assert.deepEqual([st.dsn, st.action, st.reason], ['5.7.1', 'failed', 'mail to command is restricted']);
    const t = setup('allow_mail_to_files = include\n');
    const ft = only(await t.agent.deliver(await t.queue({ rcpts: ['tofile@example.test'] })));
    assert.deepEqual([ft.dsn, ft.reason], ['5.7.1', 'mail to file is restricted']);
  });

  test('local: a |command alias runs as default_privs with From_, Return-Path and Delivered-To before the message', async () => {
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['cmd@example.test'] })));
    assert.deepEqual([st.dsn, st.reason], ['2.0.0', `delivered to command: cat > ${tmp}/out/cmd.txt`]);
    const out = await fsp.readFile(path.join(tmp, 'out', 'cmd.txt'), 'utf8');
    assert.match(out, /^From alice@example\.org {2}\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\nReturn-Path: <alice@example\.org>\nX-Original-To: cmd@example\.test\nDelivered-To: cmd@example\.test\n/);
    assert.match(out, /\n\nHello\.\n$/);
    if (isRoot) assert.equal((await fsp.stat(path.join(tmp, 'out', 'cmd.txt'))).uid, 65534);
  });

  test('local: command exit status 75 defers 4.3.0, 67 bounces 5.1.1, the time limit bounces 5.3.0', async () => {
    const s = setup('command_time_limit = 1s\n');
    const r1 = only(await s.agent.deliver(await s.queue({ rcpts: ['tempfail@example.test'] })));
    assert.deepEqual([r1.dsn, r1.action, r1.reason], ['4.3.0', 'deferred', 'temporary failure']);
    const r2 = only(await s.agent.deliver(await s.queue({ rcpts: ['nouser@example.test'] })));
    assert.deepEqual([r2.dsn, r2.reason], ['5.1.1', 'user unknown']);
    const r3 = only(await s.agent.deliver(await s.queue({ rcpts: ['slow@example.test'] })));
    assert.deepEqual([r3.dsn, r3.reason], ['5.3.0', 'Command time limit exceeded: "sleep 5"']);
  });

  test('local: a /file alias appends in mbox format as default_privs', async () => {
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['tofile@example.test'] })));
    assert.deepEqual([st.dsn, st.reason], ['2.0.0', `delivered to file: ${tmp}/out/file.mbox`]);
    assert.match(await fsp.readFile(path.join(tmp, 'out', 'file.mbox'), 'utf8'), /^From alice@example\.org {2}.*\nReturn-Path: <alice@example\.org>\nX-Original-To: tofile@example\.test\nDelivered-To: tofile@example\.test\n[\s\S]*\nHello\.\n\n$/);
  });

  test('local: luser_relay takes mail for unknown users', async () => {
    await clearMaildirs();
    const s = setup('luser_relay = carol\n');
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['whoever@example.test'] })));
    assert.deepEqual([st.dsn, st.reason], ['2.0.0', 'delivered to maildir']);
    assert.deepEqual(st.expanded?.map((l) => l.address), ['carol@mx.example.test']);
    assert.equal((await maildirFiles('carol')).length, 1);
    const r = setup('luser_relay = $user@elsewhere.example\n');
    const fw = only(await r.agent.deliver(await r.queue({ rcpts: ['whoever@example.test'] })));
    const fwd = await queued(/^forwarded as (\S+)$/.exec(fw.reason)![1]!);
    assert.deepEqual(fwd.rcpts, ['whoever@elsewhere.example']);
  });

  test('local: with home_mailbox empty, mail goes to the mbox in mail_spool_directory', async () => {
    const s = setup('home_mailbox =\n');
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['carol@example.test'] })));
    assert.deepEqual([st.dsn, st.reason], ['2.0.0', 'delivered to mailbox']);
    const file = path.join(tmp, 'spool', 'carol');
    assert.match(await fsp.readFile(file, 'utf8'), /^From alice@example\.org {2}.*\nReturn-Path: <alice@example\.org>\n/);
    if (isRoot) assert.equal((await fsp.stat(file)).uid, 1001);
  });

  test('local: without a resubmission path a forward is deferred, never lost', async () => {
    const params = paramsFrom(mainCf());
    const log = Log.memory({ myhostname: 'mx.example.test' });
    const agent = new LocalAgent({ params, log, passwdFile: passwd });
    const s = setup();
    const st = only(await agent.deliver(await s.queue({ rcpts: ['remote@example.test'] })));
    assert.deepEqual([st.dsn, st.reason], ['4.3.0', 'unable to forward message']);
  });

  test('local: a damaged queue file defers every recipient', async () => {
    const s = setup();
    const req = await s.queue({ rcpts: ['bob@example.test', 'carol@example.test'] });
    const copy = path.join(tmp, 'damaged');
    const buf = await fsp.readFile(req.queueFile);
    buf[20] ^= 1;
    await fsp.writeFile(copy, buf);
    const st = await s.agent.deliver({ ...req, queueFile: copy });
    assert.deepEqual(
      st.map((x) => [x.index, x.dsn, x.reason]),
      [
        [0, '4.3.0', 'error reading message: queue file is damaged'],
        [1, '4.3.0', 'error reading message: queue file is damaged'],
      ],
    );
  });
});

describe('local agent: ~/.forward', { concurrency: false }, () => {
  const fwd = (user: string, name = '.forward'): string => path.join(tmp, 'home', user, name);
  async function writeForward(user: string, text: string, o: { name?: string; mode?: number; uid?: number } = {}): Promise<string> {
    const file = fwd(user, o.name);
    await fsp.writeFile(file, text);
    await fsp.chmod(file, o.mode ?? 0o644);
    if (isRoot) await fsp.chown(file, o.uid ?? (user === 'bob' ? 1000 : 1001), 1000);
    return file;
  }
  async function clearForwards(): Promise<void> {
    for (const u of ['bob', 'carol']) for (const n of ['.forward', '.forward+lists']) await fsp.rm(fwd(u, n), { force: true });
  }
  const reasons = (st: LocalDeliveryStatus): string[][] =>
    (st.expanded ?? [{ action: st.action, reason: st.reason, address: '', dsn: st.dsn }]).map((l) => [l.action, l.reason.replace(/^forwarded as \S+$/, 'forwarded as ID')]);

  test('local: ~/.forward to another local user and a remote address resubmits one copy to both, the mailbox gets nothing', async () => {
    await clearMaildirs();
    await clearForwards();
    await writeForward('bob', '# my forward\ncarol, someone@elsewhere.example\n');
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['bob@example.test'] })));
    assert.equal(st.dsn, '2.0.0');
    // One resubmitted copy for both (same Delivered-To and sender), as Postfix's forward_append().
    assert.deepEqual(reasons(st), [['relayed', 'forwarded as ID']]);
    const qid = /^forwarded as (\S+)$/.exec(st.reason)![1]!;
    const f = await queued(qid);
    assert.deepEqual(f.rcpts.sort(), ['carol@mx.example.test', 'someone@elsewhere.example'].sort());
    assert.match(f.text, /\r\nDelivered-To: bob@example\.test\r\n/, 'Delivered-To: names the .forward owner (prepend_delivered_header has forward)');
    assert.deepEqual(await maildirFiles('bob'), []);
    await clearForwards();
  });

  test('local: ~/.forward that keeps a copy with \\user (or plain user) delivers it to the mailbox', async () => {
    for (const self of ['\\bob', 'bob']) {
      await clearMaildirs();
      await clearForwards();
      await writeForward('bob', `${self}, someone@elsewhere.example\n`);
      const s = setup();
      const st = only(await s.agent.deliver(await s.queue({ rcpts: ['bob@example.test'] })));
      assert.deepEqual(reasons(st), [
        ['delivered', 'delivered to maildir'],
        ['relayed', 'forwarded as ID'],
      ], self);
      assert.equal((await maildirFiles('bob')).length, 1, self);
    }
    await clearForwards();
  });

  test('local: a |command in ~/.forward runs with the user\'s rights; allow_mail_to_commands without forward refuses it', async () => {
    await clearForwards();
    const out = path.join(tmp, 'out', 'fwd-cmd.txt');
    await fsp.rm(out, { force: true });
    await writeForward('bob', `"|cat > ${out}"\n`);
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['bob@example.test'] })));
    assert.deepEqual([st.dsn, st.reason], ['2.0.0', `delivered to command: cat > ${out}`]);
    assert.match(await fsp.readFile(out, 'utf8'), /\nDelivered-To: bob@example\.test\n[\s\S]*\n\nHello\.\n$/);
    if (isRoot) assert.equal((await fsp.stat(out)).uid, 1000, 'the command ran as bob, not default_privs');
    const s2 = setup('allow_mail_to_commands = alias');
    const st2 = only(await s2.agent.deliver(await s2.queue({ rcpts: ['bob@example.test'] })));
    assert.deepEqual([st2.dsn, st2.reason], ['5.7.1', 'mail to command is restricted']);
    await clearForwards();
  });

  test('local: a world-writable or foreign-owned ~/.forward is ignored with Postfix\'s warning; the mailbox gets the mail', async () => {
    await clearMaildirs();
    await clearForwards();
    const file = await writeForward('bob', 'someone@elsewhere.example\n', { mode: 0o666 });
    await fsp.chmod(file, 0o666);
    const s = setup();
    const st = only(await s.agent.deliver(await s.queue({ rcpts: ['bob@example.test'] })));
    assert.deepEqual([st.dsn, st.reason], ['2.0.0', 'delivered to maildir']);
    assert.ok(s.log.texts().includes(`warning: file ${file} is world writable`), s.log.texts().join('\n'));
    if (isRoot) {
      await writeForward('bob', 'someone@elsewhere.example\n', { uid: 1001 });
      const s2 = setup();
      const st2 = only(await s2.agent.deliver(await s2.queue({ rcpts: ['bob@example.test'] })));
      assert.deepEqual([st2.dsn, st2.reason], ['2.0.0', 'delivered to maildir']);
      assert.ok(s2.log.texts().includes(`warning: file ${file} has bad owner uid 1001`), s2.log.texts().join('\n'));
    }
    await clearForwards();
  });

  test('local: user+ext uses ~/.forward+ext first, ~/.forward otherwise; forward_path empty disables both', async () => {
    await clearMaildirs();
    await clearForwards();
    await writeForward('bob', 'lists@elsewhere.example\n', { name: '.forward+lists' });
    await writeForward('bob', 'plain@elsewhere.example\n');
    const s = setup();
    const a = only(await s.agent.deliver(await s.queue({ rcpts: ['bob+lists@example.test'] })));
    assert.deepEqual((await queued(/^forwarded as (\S+)$/.exec(a.reason)![1]!)).rcpts, ['lists@elsewhere.example']);
    const b = only(await s.agent.deliver(await s.queue({ rcpts: ['bob+other@example.test'] })));
    assert.deepEqual((await queued(/^forwarded as (\S+)$/.exec(b.reason)![1]!)).rcpts, ['plain@elsewhere.example']);
    const s2 = setup('forward_path =');
    const c = only(await s2.agent.deliver(await s2.queue({ rcpts: ['bob@example.test'] })));
    assert.deepEqual([c.dsn, c.reason], ['2.0.0', 'delivered to maildir']);
    await clearForwards();
  });
});

test('local: split_addr keeps postmaster, owner-x and x-request whole', () => {
  assert.deepEqual(splitAddr('bob+tag', '+'), { user: 'bob', extension: 'tag' });
  assert.deepEqual(splitAddr('bob-tag+x', '+-'), { user: 'bob', extension: 'tag+x' });
  assert.deepEqual(splitAddr('owner-list', '-'), { user: 'owner-list', extension: null });
  assert.deepEqual(splitAddr('list-request', '-'), { user: 'list-request', extension: null });
  assert.deepEqual(splitAddr('postmaster', 'p'), { user: 'postmaster', extension: null });
  assert.deepEqual(splitAddr('+x', '+'), { user: '+x', extension: null });
  assert.deepEqual(splitAddr('bob', ''), { user: 'bob', extension: null });
});

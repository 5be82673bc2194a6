/**
 * Virtual Maildir delivery side by side with a private Postfix 3.7 (its virtual(8) agent): the same
 * SMTP transaction into both, then the delivered files compared — the headers each agent and
 * cleanup add (Return-Path, Delivered-To, Received) in the same order and form, the body untouched,
 * and Maildir file names of Postfix's shape. Queue ids and dates are the only differences allowed.
 */
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { BIN, chownTree, makeTestDir, runAccount, SENDER, Server, sleep, writeConfig } from '../crash/server.js';
import { freePorts, postfixSkip, type StartedPostfix, startPostfix } from '../harness/postfix.js';
import { runPostern } from '../harness/run.js';
import { SmtpClient } from '../harness/smtp-client.js';

const skip = postfixSkip() || (process.getuid?.() !== 0 ? 'Postfix virtual(8) delivery needs root' : false);
const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const MESSAGE = [
  'From: Sender <sender@example.test>',
  'To: u0@example.test',
  'Subject: side by side',
  'Message-ID: <side-by-side@example.test>',
  'Date: Wed, 25 Nov 2026 12:00:00 +0000',
  '',
  'line one',
  '..leading dot',
  'last line',
  '',
].join('\r\n');

async function send(port: number, rcpts: readonly string[], mailParams = '', rcptParams = ''): Promise<void> {
  const c = await SmtpClient.connect(port);
  try {
    await c.read();
    await c.cmd('EHLO client.example.test');
    assert.equal(await c.cmd(`MAIL FROM:<${SENDER}>${mailParams}`), '250 2.1.0 Ok');
    for (const r of rcpts) assert.equal(await c.cmd(`RCPT TO:<${r}>${rcptParams}`), '250 2.1.5 Ok');
    assert.match(await c.cmd('DATA'), /^354 /);
    assert.match(await c.cmd(`${MESSAGE}.`), /^250 2\.0\.0 Ok: queued as /);
    await c.cmd('QUIT');
  } finally {
    c.close();
  }
}

async function delivered(dir: string, n: number): Promise<string[]> {
  const until = Date.now() + 20_000;
  for (;;) {
    const files = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
    if (files.length >= n) return files;
    if (Date.now() > until) throw new Error(`${dir}: ${files.length} of ${n} messages after 20 s`);
    await sleep(100);
  }
}

/** The log lines of a `postern run` child so far (the whole file: a test may start it anew). */
function logLines(server: Server): string[] {
  const file = server.config.logFile;
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n') : [];
}

/**
 * The final delivery lines of a log (sent or bounced), each as `to orig_to=o relay status`, sorted;
 * with `reasons`, also the program of the tag and the text in parentheses, queue ids as QID.
 * Waits up to 20 s for `n` of them.
 */
async function deliveries(lines: () => string[], n: number, o: { reasons?: boolean } = {}): Promise<string[]> {
  const until = Date.now() + 20_000;
  for (;;) {
    const d = lines()
      .filter((l) => / to=<[^>]*>, (orig_to=<[^>]*>, )?relay=/.test(l) && /status=(sent|bounced)/.test(l))
      .map((l) => {
        const m = /postfix\/(\w+)\[\d+\]: \w+: to=<([^>]*)>, (?:orig_to=<([^>]*)>, )?relay=([^,]*),.*status=(\w+) \((.*)\)$/.exec(l)!;
        const base = `${m[2]} orig_to=${m[3] ?? ''} ${m[4]} ${m[5]}`;
        return o.reasons ? `${m[1]}: ${base} (${m[6]!.replace(/\b[0-9A-F]{8,}\b/g, 'QID')})` : base;
      })
      .sort();
    if (d.length >= n || Date.now() > until) return d;
    await sleep(100);
  }
}

/**
 * Queue ids and dates differ between the two servers and runs. A date may stand on its own folded
 * line of Received:, and Postfix 3.7 pads days 1-9 with a space ("Sun,  6 Dec") where Postern, as
 * later Postfix releases (mail_date.c, TWO_DIGIT_DAY_IN_DATE_TIME), writes "06".
 */
const normalize = (text: string): string =>
  text
    .replace(/(\s)id [0-9A-F]{6,}\b/g, '$1id QID')
    .replace(/(;\s+)[A-Z][a-z]{2}, +\d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \([A-Z]+\)/g, '$1DATE');

/** Postfix's Maildir name: seconds.VdevIinodeMmicroseconds.host (maildir.c). */
const MAILDIR_NAME = /^\d+\.V[0-9a-f]+I[0-9a-f]+M\d+\.[^/]+$/;

/** Both servers, configured alike: Postfix with virtual(8) into its own tree, Postern through `postern run`. */
interface Pair {
  readonly pfPort: number;
  readonly ptPort: number;
  readonly pf: StartedPostfix;
  readonly server: Server;
  /** The Maildir new/ directory of `user` in each server's tree. */
  newDir(which: 'postfix' | 'postern', user: string): string;
  /** The one message `user` got from each server (waits for it). */
  both(user: string): Promise<{ postfix: string; postern: string; names: [string, string] }>;
  stop(): Promise<void>;
}

/** `mainCf`: settings for both (Postern's config from writeConfig has the same users and domains). */
async function startBoth(mainCf: readonly string[] = []): Promise<Pair> {
  const acct = runAccount();
  const pfBase = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-pfmail-'));
  dirs.push(pfBase);
  fs.chmodSync(pfBase, 0o755);
  chownTree(pfBase, acct);
  const [pfPort] = await freePorts(1);
  const pf = await startPostfix({
    services: [{ port: pfPort! }],
    mainCf: [
      'virtual_transport = virtual',
      'virtual_mailbox_domains = example.test',
      `virtual_mailbox_base = ${pfBase}`,
      'virtual_mailbox_maps = inline:{ u0@example.test=u0/, u1@example.test=u1/, sender@example.test=sender/ }',
      `virtual_uid_maps = static:${acct.uid}`,
      `virtual_gid_maps = static:${acct.gid}`,
      'virtual_minimum_uid = 1',
      ...mainCf,
    ].join('\n'),
  });
  const dir = makeTestDir('postern-sbs-');
  dirs.push(dir);
  const server = new Server(await writeConfig(dir, { users: 2, mainCf: mainCf.join('\n') }));
  try {
    await server.ready();
  } catch (e) {
    pf.stop();
    throw e;
  }
  const newDir = (which: 'postfix' | 'postern', user: string): string => path.join(which === 'postfix' ? pfBase : server.config.mailBase, user, 'new');
  return {
    pfPort: pfPort!,
    ptPort: server.config.port,
    pf,
    server,
    newDir,
    async both(user) {
      const [pfName] = await delivered(newDir('postfix', user), 1);
      const [ptName] = await delivered(newDir('postern', user), 1);
      return {
        postfix: fs.readFileSync(path.join(newDir('postfix', user), pfName!), 'utf8'),
        postern: fs.readFileSync(path.join(newDir('postern', user), ptName!), 'utf8'),
        names: [pfName!, ptName!],
      };
    },
    async stop() {
      pf.stop();
      await server.stop();
    },
  };
}

describe('virtual delivery side by side with Postfix 3.7', { skip }, () => {
  it('virtual: the delivered Maildir file has the same added headers and body as Postfix virtual(8) writes, one copy per recipient', async () => {
    const p = await startBoth();
    try {
      await Promise.all([send(p.pfPort, ['u0@example.test', 'u1@example.test']), send(p.ptPort, ['u0@example.test', 'u1@example.test'])]);
      for (const u of ['u0', 'u1']) {
        const m = await p.both(u);
        assert.match(m.names[0], MAILDIR_NAME);
        assert.match(m.names[1], MAILDIR_NAME);
        assert.equal(normalize(m.postern), normalize(m.postfix));
      }
      await sleep(500);
      assert.equal(fs.readdirSync(p.newDir('postern', 'u0')).length, 1, 'one copy');
    } finally {
      await p.stop();
    }
  });

  for (const [extra, mailParams] of [
    ['', ''],
    ['', ' SMTPUTF8 BODY=8BITMIME'],
    ['smtputf8_enable = no', ''],
  ] as const) {
    it(`bounce: the non-delivery notification for an error: transport is the RFC 3464 report Postfix sends${extra === '' && mailParams === '' ? '' : ` (${(extra + mailParams).trim()})`}`, async () => {
      // Accepted at RCPT (smtpd would reject an error: transport recipient as unlisted), bounced by qmgr.
      const p = await startBoth(['transport_maps = inline:{ { u1@example.test = error:5.1.1 mailbox is gone } }', 'smtpd_reject_unlisted_recipient = no', extra]);
      try {
        await Promise.all([send(p.pfPort, ['u1@example.test'], mailParams), send(p.ptPort, ['u1@example.test'], mailParams)]);
        const m = await p.both('sender');
        assert.equal(bounceNormalize(m.postern), bounceNormalize(m.postfix));
      } finally {
        await p.stop();
      }
    });
  }

  it('bounce: a success notification (NOTIFY=SUCCESS, ORCPT, ENVID, RET=HDRS) is the report Postfix sends', async () => {
    const p = await startBoth();
    try {
      const args = [' RET=HDRS ENVID=env+2Did-7', ' NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alias+40example.test'] as const;
      await Promise.all([send(p.pfPort, ['u0@example.test'], ...args), send(p.ptPort, ['u0@example.test'], ...args)]);
      await p.both('u0');
      const m = await p.both('sender');
      assert.match(m.postern, /\nAction: delivered\n/);
      assert.equal(bounceNormalize(m.postern), bounceNormalize(m.postfix));
    } finally {
      await p.stop();
    }
  });

  it('bounce: a delay notice (delay_warning_time) for deferred mail is the report Postfix sends', async () => {
    // u1 is deferred by the retry transport; the notice goes out at the first retry after 1 s.
    const p = await startBoth([
      'transport_maps = inline:{ { u1@example.test = retry:4.2.0 mailbox busy } }',
      'smtpd_reject_unlisted_recipient = no',
      'delay_warning_time = 1s',
      'queue_run_delay = 1s',
      'minimal_backoff_time = 1s',
      'maximal_backoff_time = 2s',
    ]);
    try {
      await Promise.all([send(p.pfPort, ['u1@example.test']), send(p.ptPort, ['u1@example.test'])]);
      const m = await p.both('sender');
      assert.match(m.postern, /\nAction: delayed\n/);
      assert.equal(bounceNormalize(m.postern), bounceNormalize(m.postfix));
    } finally {
      await p.stop();
    }
  });

  it('sendmail: a local submission without headers is delivered with the headers Postfix adds (Received from userid, Message-Id, Date, From, To)', async () => {
    const p = await startBoth();
    try {
      const body = 'Subject: from sendmail\n\nhello from the command line\n';
      const args = ['-f', SENDER, '-F', 'Local Sender', 'u0@example.test'];
      const pr = p.pf.run('sendmail', args, body);
      assert.equal(pr.status, 0, pr.stderr);
      const r = spawnSync(process.execPath, [BIN, 'sendmail', ...args], { input: body, encoding: 'utf8', env: { ...process.env, MAIL_CONFIG: p.server.config.dir } });
      assert.equal(r.status, 0, r.stderr);
      const m = await p.both('u0');
      assert.equal(bounceNormalize(m.postern), bounceNormalize(m.postfix));
    } finally {
      await p.stop();
    }
  });

  it('sendmail -bs: the replies, and the delivered message with the headers Postfix adds (Received: as smtpd -S writes it, From: without a full name)', async () => {
    const p = await startBoth();
    try {
      // Two recipients: Received: then has no `for` clause and the date on a line of its own.
      const conversation = ['EHLO client.example.test', `MAIL FROM:<${SENDER}>`, 'RCPT TO:<u0@example.test>', 'RCPT TO:<u1@example.test>', 'DATA', 'Subject: over stdin', '', 'hello', '.', 'QUIT', ''].join('\r\n');
      const args = ['-bs', '-F', 'Local Sender'];
      const pr = p.pf.run('sendmail', args, conversation);
      assert.equal(pr.status, 0, pr.stderr);
      const r = runPostern(['-c', p.server.config.dir, 'sendmail', ...args], { input: conversation });
      assert.equal(r.status, 0, r.stderr);
      // Postern's session has no BDAT, so its EHLO does not offer CHUNKING; the rest is the same.
      const replies = (text: string): string => text.replace(/queued as \w+/, 'queued as NAME').replace('250-SMTPUTF8\r\n250 CHUNKING\r\n', '250 SMTPUTF8\r\n');
      assert.equal(replies(r.stdout), replies(pr.stdout));
      for (const u of ['u0', 'u1']) {
        const m = await p.both(u);
        assert.match(m.postern, /\nFrom: sender@example\.test\n/);
        assert.equal(bounceNormalize(m.postern), bounceNormalize(m.postfix));
      }
    } finally {
      await p.stop();
    }
  });

  it('sendmail -bs: the mail log has the lines Postfix 3.7 smtpd -S logs (connect, client=, lost connection/timeout/too many errors after, rejects, warnings, disconnect with its command counts), then pickup\'s', async () => {
    // No tarpit delay after errors, and a short timeout for the conversation that stops talking.
    const p = await startBoth(['smtpd_error_sleep_time = 0', 'smtpd_timeout = 2s', 'message_size_limit = 4000']);
    try {
      const conversations: Record<string, readonly string[]> = {
        // Two messages, an abandoned transaction (its maildrop file named at RCPT, then dropped).
        messages: ['HELO client.example.test', `MAIL FROM:<${SENDER}>`, 'RCPT TO:<u0@example.test>', 'DATA', 'Subject: one', '', 'one', '.', 'MAIL FROM:<>', 'RCPT TO:<u1@example.test>', 'RSET', `MAIL FROM:<${SENDER}> BODY=8BITMIME`, 'RCPT TO:<u0@example.test>', 'RCPT TO:<u1@example.test>', 'DATA', 'two', '.', 'QUIT'],
        errors: [
          'FOO bar', 'RCPT TO:<u0@example.test>', 'DATA', 'HELO', 'EHLO', 'EHLO client.example.test', 'MAIL FROM:<bad address', 'MAIL FROM:<s@example.test> SIZE=abc',
          'MAIL FROM:<s@example.test> FOO=bar', 'MAIL FROM:<s@example.test>', 'MAIL FROM:<x@y>', 'RCPT TO:<>', 'RCPT TO:<u0@example.test> FOO=bar', 'RCPT TO:<bad address', 'DATA', 'ETRN x.example',
          'RCPT TO:<u0@example.test>', 'DATA x', 'RSET x', 'RSET', 'NOOP x', 'VRFY u0', 'VRFY', 'ETRN', 'ETRN x.example', 'AUTH PLAIN', 'STARTTLS', 'XCLIENT NAME=x', 'XFORWARD NAME=x', 'HELP', '', 'QUIT',
        ],
        // Last in its session: Postfix 3.7 keeps the refused SIZE and refuses every later MAIL too.
        sizeRefused: ['EHLO c', 'MAIL FROM:<s@example.test> SIZE=99999', 'QUIT'],
        tooBig: ['EHLO c', `MAIL FROM:<${SENDER}>`, 'RCPT TO:<u0@example.test>', 'DATA', ...Array<string>(60).fill('x'.repeat(98)), '.', 'QUIT'],
        header: ['EHLO c', 'Subject: not a command', 'QUIT'],
        forbidden: ['ehlo c', 'foo', 'get / HTTP/1.0', 'QUIT'],
        errorLimit: ['EHLO c', ...Array<string>(25).fill('FOO')],
        lostInData: ['EHLO c', `MAIL FROM:<${SENDER}>`, 'RCPT TO:<u0@example.test>', 'DATA', 'Subject: x', '', 'hello'],
        lostAfterMessage: ['HELO c', `MAIL FROM:<${SENDER}>`, 'RCPT TO:<u0@example.test>', 'DATA', 'x', '.'],
        nothing: [],
      };
      const ids = (t: string): string => t.replace(/queued as \w+/g, 'queued as NAME');
      // Postern's session has no BDAT, so its EHLO does not offer CHUNKING; the rest is the same.
      const replies = (t: string): string => ids(t).replace('250-SMTPUTF8\r\n250 CHUNKING\r\n', '250 SMTPUTF8\r\n');
      /** The smtpd lines of one session, without time, host and pid, maildrop names as NAME. */
      const smtpd = (lines: readonly string[]): { pids: Set<string>; text: string[] } => {
        // Not Postern's to log: Postfix's own plumbing (smtpd -S pipes the message to postdrop,
        // which a refused message makes fail).
        const plumbing = 'warning: mail_stream_cleanup: close error';
        const hits = lines.map((l) => /postfix\/smtpd\[(\d+)\]: (.*)$/.exec(l)).filter((m): m is RegExpExecArray => m !== null && !m[2]!.includes('unknown[') && m[2] !== plumbing);
        return { pids: new Set(hits.map((m) => m[1]!)), text: hits.map((m) => m[2]!.replace(/^\w+: (client=|queue file size limit)/, 'NAME: $1').replace(/warning: \w+: queue file/, 'warning: NAME: queue file')) };
      };
      const ptLog = (): string[] => logLines(p.server).filter((l) => l !== '');
      for (const [name, lines] of Object.entries(conversations)) {
        const input = lines.length === 0 ? '' : `${lines.join('\r\n')}\r\n`;
        const pfBefore = p.pf.log().length;
        const ptBefore = ptLog().length;
        const pr = p.pf.run('sendmail', ['-bs'], input);
        const r = spawnSync(process.execPath, [BIN, '-c', p.server.config.dir, 'sendmail', '-bs'], { input, encoding: 'utf8', env: { ...process.env, MAIL_CONFIG: '' } });
        assert.equal(r.status, pr.status, `${name}: ${r.stderr}`);
        assert.equal(replies(r.stdout), replies(pr.stdout), name);
        // postlogd may write Postfix's last lines a moment after the command ends.
        await untilOk(() => smtpd(p.pf.log().slice(pfBefore)).text.some((l) => l.startsWith('disconnect from')), `${name}: Postfix disconnect line`);
        const theirs = smtpd(p.pf.log().slice(pfBefore));
        const mine = smtpd(ptLog().slice(ptBefore));
        assert.deepEqual(mine.text, theirs.text, name);
        assert.deepEqual([...mine.pids], [String(r.pid)], `${name}: one [N], the sendmail process's id`);
        assert.equal(theirs.pids.size, 1);
      }
      // A session that stops talking: `timeout after EHLO`.
      const silent = async (cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<string> => {
        const c = spawn(cmd, args, { env: { ...process.env, ...env } });
        let out = '';
        c.stdout.setEncoding('utf8').on('data', (d: string) => {
          out += d;
        });
        c.stdin.write('EHLO c\r\n');
        await new Promise((resolve) => c.once('exit', resolve));
        c.stdin.destroy();
        return out;
      };
      const pfBefore = p.pf.log().length;
      const ptBefore = ptLog().length;
      const [pfOut, ptOut] = await Promise.all([silent('sendmail', ['-bs'], { MAIL_CONFIG: p.pf.configDir }), silent(process.execPath, [BIN, '-c', p.server.config.dir, 'sendmail', '-bs'], { MAIL_CONFIG: '' })]);
      assert.match(pfOut, /\r\n421 4\.4\.2 mx\.example\.test Error: timeout exceeded\r\n$/);
      assert.equal(replies(ptOut), replies(pfOut));
      await untilOk(() => smtpd(p.pf.log().slice(pfBefore)).text.some((l) => l.startsWith('disconnect from')), 'Postfix disconnect line after the timeout');
      assert.deepEqual(smtpd(ptLog().slice(ptBefore)).text, smtpd(p.pf.log().slice(pfBefore)).text);
      assert.deepEqual(smtpd(ptLog().slice(ptBefore)).text.slice(1), ['timeout after EHLO from localhost[127.0.0.1]', 'disconnect from localhost[127.0.0.1] ehlo=1 commands=1']);
      // pickup takes the three messages from the maildrop as Postfix's does.
      const pickups = async (lines: () => string[]): Promise<string[]> => {
        const picked = (): string[] => lines().filter((l) => /postfix\/pickup\[/.test(l));
        await untilOk(() => picked().length >= 3, 'three pickup lines');
        return picked().map((l) => l.replace(/^.*?postfix\/pickup\[\d+\]: \w+: /, '')).sort();
      };
      assert.deepEqual(await pickups(ptLog), await pickups(() => p.pf.log()));
      assert.deepEqual(await pickups(ptLog), [`uid=0 from=<${SENDER}>`, `uid=0 from=<${SENDER}>`, `uid=0 from=<${SENDER}>`]);
    } finally {
      await p.stop();
    }
  });

  for (const how of ['-e', '-f'] as const) {
    const what = how === '-e' ? 'a deferred message' : 'a held message never tried';
    it(`postsuper ${how}: ${what}, force-expired and flushed, is returned to the sender as Postfix 3.7 does: the same qmgr, error and bounce log lines, the same report`, async () => {
      // u1 is deferred by the retry transport, with a backoff long enough that only the flush
      // retries it. The -f case is held at RCPT, so there is no deferral to report: both say
      // "message is administratively expired" instead (postsuper(1)).
      const p = await startBoth([
        'transport_maps = inline:{ { u1@example.test = retry:4.2.0 mailbox busy } }',
        'smtpd_reject_unlisted_recipient = no',
        'queue_run_delay = 1h',
        'minimal_backoff_time = 1h',
        'maximal_backoff_time = 2h',
        ...(how === '-f' ? ['smtpd_recipient_restrictions = check_recipient_access inline:{ u1@example.test=HOLD }, permit_mynetworks, reject'] : []),
      ]);
      try {
        await Promise.all([send(p.pfPort, ['u1@example.test']), send(p.ptPort, ['u1@example.test'])]);
        const queue = how === '-e' ? 'deferred' : 'hold';
        const postsuper = (run: (args: string[]) => { stderr: string }) => () => /Force-expired: 1 message/.test(run([how, 'ALL', queue]).stderr);
        await untilOk(postsuper((a) => p.pf.run('postsuper', a)), `Postfix: postsuper ${how}`);
        await untilOk(postsuper((a) => runPostern(['-c', p.server.config.dir, 'postsuper', ...a])), `Postern: postsuper ${how}`);
        assert.equal(p.pf.run('postqueue', ['-f']).status, 0);
        assert.equal(runPostern(['-c', p.server.config.dir, 'postqueue', '-f']).status, 0);
        const m = await p.both('sender');
        assert.equal(bounceNormalize(m.postern), bounceNormalize(m.postfix));
        assert.match(m.postern, how === '-e' ? /\nStatus: 4\.2\.0\nDiagnostic-Code: X-Postfix; mailbox busy\n/ : /\nStatus: 4\.7\.0\nDiagnostic-Code: X-Postfix; message is administratively expired\n/);
        const theirs = await messageLog(() => p.pf.log());
        const mine = await messageLog(() => logLines(p.server));
        assert.ok(theirs.some((l) => l.includes('status=force-expired, returned to sender')), theirs.join('\n'));
        assert.deepEqual(mine, theirs);
      } finally {
        await p.stop();
      }
    });
  }

  it('virtual_alias_maps: recursive expansion, a catch-all and a self-reference give the same deliveries and bounces, with the same to=/orig_to=', async () => {
    const p = await startBoth([
      'virtual_alias_domains = alias.example',
      // list -> u0 and team; team -> u1 and itself (kept once, as virtual(5) says, then bounced as a
      // user unknown in the alias domain); @alias.example is the catch-all.
      'virtual_alias_maps = inline:{ { list@alias.example = u0@example.test, team@alias.example }, { team@alias.example = u1@example.test, team@alias.example }, { @alias.example = u0@example.test } }',
    ]);
    try {
      const rcpts = ['list@alias.example', 'other@alias.example'];
      await Promise.all([send(p.pfPort, rcpts), send(p.ptPort, rcpts)]);
      // Four deliveries of the aliases and the bounce of team@ delivered to the sender.
      const theirs = await deliveries(() => p.pf.log(), 5);
      const mine = await deliveries(() => logLines(p.server), 5);
      assert.ok(theirs.length >= 5, theirs.join('\n'));
      assert.deepEqual(mine, theirs);
    } finally {
      await p.stop();
    }
  });

  it('local: an alias_maps alias in mydestination expanded by local(8) to virtual addresses: the same forwarding, orig_to= and delivered files as Postfix', async () => {
    // team -> u0 and inner; inner -> u1: local(8) forwards both in one new message whose
    // recipients keep team@localhost as their original recipient.
    const p = await startBoth(['local_transport = local', 'alias_maps = inline:{ { team = u0@example.test, inner }, { inner = u1@example.test } }']);
    try {
      await Promise.all([send(p.pfPort, ['team@localhost']), send(p.ptPort, ['team@localhost'])]);
      for (const u of ['u0', 'u1']) {
        const m = await p.both(u);
        assert.match(m.postern, /^Return-Path: <sender@example\.test>\nX-Original-To: team@localhost\n/);
        assert.equal(normalize(m.postern), normalize(m.postfix));
      }
      const theirs = await deliveries(() => p.pf.log(), 3, { reasons: true });
      assert.deepEqual(theirs, [
        'local: team@localhost orig_to= local sent (forwarded as QID)',
        'virtual: u0@example.test orig_to=team@localhost virtual sent (delivered to maildir)',
        'virtual: u1@example.test orig_to=team@localhost virtual sent (delivered to maildir)',
      ]);
      assert.deepEqual(await deliveries(() => logLines(p.server), 3, { reasons: true }), theirs);
    } finally {
      await p.stop();
    }
  });
});

/**
 * One session with errors, the same bytes to both servers: a restriction rejects a recipient, an
 * address too long for one line of the transcript, an unknown command, and the client hangs up
 * without QUIT. Returns the replies.
 */
async function erroneousSession(port: number, o: { rcpt?: boolean } = {}): Promise<string[]> {
  const c = await SmtpClient.connect(port);
  const replies: string[] = [];
  try {
    replies.push(await c.read());
    for (const line of [
      'EHLO client.example.test',
      `MAIL FROM:<${SENDER}>`,
      ...(o.rcpt === false ? [] : ['RCPT TO:<spam@example.test>', `RCPT TO:<${'x'.repeat(90)} y z@example.test>`, 'XYZZY plugh']),
    ]) {
      replies.push(await c.cmd(line));
    }
  } finally {
    c.close();
  }
  return replies;
}

describe('smtpd postmaster notices side by side with Postfix 3.7', { skip }, () => {
  // postmaster@$myorigin is an alias of the virtual user u1 in both servers.
  const common = ['virtual_alias_maps = inline:{ { postmaster@mx.example.test = u1@example.test } }'];

  it('notify_classes = policy: a restriction\'s rejection mails the postmaster the transcript Postfix sends (envelope from double-bounce@, X-Original-To: postmaster, From, To, Subject, wrapped In:/Out: lines, Session aborted)', async () => {
    const p = await startBoth([
      ...common,
      'notify_classes = policy',
      'smtpd_recipient_restrictions = check_recipient_access inline:{ { spam@example.test = REJECT no spam please } }, permit_mynetworks, reject_unauth_destination',
    ]);
    try {
      const [theirs, mine] = await Promise.all([erroneousSession(p.pfPort), erroneousSession(p.ptPort)]);
      assert.deepEqual(mine, theirs);
      const m = await p.both('u1');
      assert.match(m.postern, /^Return-Path: <double-bounce@mx\.example\.test>\nX-Original-To: postmaster\nDelivered-To: u1@example\.test\n/);
      assert.match(m.postern, /\nSubject: Postfix SMTP server: errors from unknown\[127\.0\.0\.1\]\n/);
      assert.match(m.postern, /\n Out: 554 5\.7\.1 <spam@example\.test>: Recipient address rejected: no spam please\n/);
      assert.match(m.postern, /\nSession aborted, reason: lost connection\n/);
      assert.equal(bounceNormalize(m.postern), bounceNormalize(m.postfix));
    } finally {
      await p.stop();
    }
  });

  it('default notify_classes (resource, software): 452 4.3.1 Insufficient system storage at MAIL mails the postmaster the transcript Postfix sends', async () => {
    const p = await startBoth([...common, 'queue_minfree = 1000000000000000']);
    try {
      const [theirs, mine] = await Promise.all([erroneousSession(p.pfPort, { rcpt: false }), erroneousSession(p.ptPort, { rcpt: false })]);
      assert.equal(mine.at(-1), '452 4.3.1 Insufficient system storage');
      assert.deepEqual(mine, theirs);
      const m = await p.both('u1');
      assert.equal(bounceNormalize(m.postern), bounceNormalize(m.postfix));
    } finally {
      await p.stop();
    }
  });
});

/**
 * What qmgr, error(8) and bounce log about the message smtpd received, then every line about the
 * bounce it caused, each id's lines in order (the two ids' lines interleave differently in each
 * server); ids, delays and pids out. Waits up to 20 s for the bounce's `removed`.
 */
async function messageLog(lines: () => string[]): Promise<string[]> {
  const until = Date.now() + 20_000;
  for (;;) {
    const all = lines();
    const id = all.map((l) => / (\w+): client=/.exec(l)?.[1]).find((x) => x !== undefined);
    const bounceId = all.map((l) => /: sender non-delivery notification: (\w+)$/.exec(l)?.[1]).find((x) => x !== undefined);
    if ((id !== undefined && bounceId !== undefined && all.some((l) => l.endsWith(`: ${bounceId}: removed`))) || Date.now() > until) {
      const of = (qid: string | undefined, progs: RegExp): string[] =>
        all
          .map((l) => /postfix\/(\w+)\[\d+\]: (\w+): (.*)$/.exec(l))
          .filter((m): m is RegExpExecArray => m !== null && m[2] === qid && progs.test(m[1]!))
          .map((m) => `${m[1]}: ${m[3]}`.replace(/\b[0-9A-F]{8,}\b/g, 'QID').replace(/delay=[\d.]+, delays=[\d./]+/, 'delay=D, delays=D').replace(/<\d{14}\.QID@/, '<DATE.QID@'));
      return [...of(id, /^(qmgr|error|bounce)$/), '--', ...of(bounceId, /./)];
    }
    await sleep(100);
  }
}

async function untilOk(ok: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(200);
  }
}

/** What differs between two bounces of equal messages: queue ids, dates, boundaries, message ids. */
function bounceNormalize(text: string): string {
  return normalize(text)
    .replace(/[0-9A-F]{8,}\.\d+\/mx\.example\.test/g, 'BOUNDARY')
    .replace(/\b[0-9A-F]{8,}\b/g, 'QID')
    .replace(/<\d{14}\.[^@>]+@mx\.example\.test>/g, '<MSGID>')
    .replace(/(Date|Arrival-Date|Will-Retry-Until): [A-Z][a-z]{2}, +\d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \([A-Z]+\)/g, '$1: DATE');
}

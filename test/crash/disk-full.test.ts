/**
 * Crash safety, issues 3 and 4: a full disk. queue_directory (then virtual_mailbox_base) on a
 * small tmpfs that the test fills:
 *   - smtpd answers 452 4.3.1 Insufficient system storage at MAIL when free space is short
 *     (Postfix smtpd_check.c: below queue_minfree or 1.5 x message_size_limit), and 451 4.3.0 at
 *     the end of DATA when a write fails; never 250 for a message that is not on disk;
 *   - delivery into a full mailbox file system defers (status=deferred) and, once there is room
 *     again, everything that got a 250 is delivered, whole, once.
 * Mounting needs root (CAP_SYS_ADMIN): without it the tests skip with a message, except under
 * CI=true, where they fail.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type TestContext, test } from 'node:test';
import { buildMessage, rng, scanMaildirs } from './message.js';
import { type CrashConfig, fillDisk, makeTestDir, mountTmpfs, pendingCount, queueContents, SENDER, Server, sleep, umount, writeConfig } from './server.js';
import { type Outcome, sendMail } from './smtp-client.js';

/** Mounts a tmpfs on `dir`, or skips / fails the test when that is not permitted. */
function mountOrSkip(t: TestContext, dir: string): boolean {
  const m = mountTmpfs(dir, '2m');
  if (m.ok) return true;
  const why = `cannot mount a tmpfs (${m.why}); the disk-full tests need root`;
  if (process.env.CI === 'true') assert.fail(why);
  t.skip(why);
  return false;
}

async function waitFor(what: string, pred: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** Tokens of the whole messages in the Maildirs (count per token); throws on a damaged file. */
function delivered(c: CrashConfig): Map<string, number> {
  const { files } = scanMaildirs(c.mailBase);
  const broken = files.filter((f) => f.problem !== null).map((f) => `${f.file}: ${f.problem}`);
  assert.deepEqual(broken, [], 'half-written or damaged message delivered');
  const out = new Map<string, number>();
  for (const f of files) if (f.token !== null) out.set(f.token, (out.get(f.token) ?? 0) + 1);
  return out;
}

function outcomeText(o: Outcome): string {
  return o.kind === 'queued' ? `queued ${o.queueId}` : o.kind === 'rejected' ? `${o.stage}: ${o.reply.lines.join(' / ')}` : `${o.stage}: ${o.error}`;
}

test('crash: queue_directory on a full tmpfs: 452 4.3.1 at MAIL, 451 4.3.0 when a write fails, never 250 unless on disk; all acked delivered when space returns', { timeout: 180_000 }, async (t) => {
  const dir = makeTestDir('postern-crash-qfull-');
  const queueDir = path.join(dir, 'queue');
  fs.mkdirSync(queueDir);
  let mounted = false;
  let server: Server | null = null;
  let ok = false;
  try {
    mounted = mountOrSkip(t, queueDir);
    if (!mounted) return;
    // 1.5 x message_size_limit = 150 KiB must be free for MAIL to pass (Postfix smtpd_check_queue).
    const cfg = await writeConfig(dir, { users: 2, queueDir, mainCf: 'message_size_limit = 102400' });
    const filler = path.join(queueDir, 'filler');
    const random = rng(77);
    const send = (token: string, rcpt: string, lines: number, beforeContent?: () => Promise<void>): Promise<Outcome> =>
      sendMail({
        host: cfg.hosts[0]!,
        port: cfg.port,
        helo: 'client.example',
        sender: SENDER,
        recipients: [rcpt],
        message: buildMessage({ token, from: SENDER, to: [rcpt], fillerLines: lines, random }),
        ...(beforeContent ? { beforeContent } : {}),
      });
    server = new Server(cfg);
    await server.ready();
    const acked: string[] = [];
    const refused: string[] = [];

    // a. room: 250, delivered
    const o0 = await send('qfull-ok-0', cfg.users[0]!, 20);
    assert.equal(o0.kind, 'queued', outcomeText(o0));
    acked.push('qfull-ok-0');

    // b. full: 452 4.3.1 at MAIL
    fillDisk(filler);
    const o1 = await send('qfull-mail-452', cfg.users[1]!, 20);
    assert.ok(o1.kind === 'rejected' && o1.stage === 'mail', `expected a reply to MAIL, got ${outcomeText(o1)}`);
    assert.equal(o1.reply.code, 452, outcomeText(o1));
    assert.match(o1.reply.lines.at(-1)!, /^452 4\.3\.1 Insufficient system storage/);
    refused.push('qfull-mail-452');
    fs.rmSync(filler);

    // c. the disk fills between MAIL and the end of DATA: 451 4.3.0 at the end of DATA
    const o2 = await send('qfull-data-451', cfg.users[0]!, 1200, async () => {
      fillDisk(filler);
    });
    assert.ok(o2.kind === 'rejected' && o2.stage === 'end-of-data', `expected a reply to the end of DATA, got ${outcomeText(o2)}`);
    assert.equal(o2.reply.code, 451, outcomeText(o2));
    assert.match(o2.reply.lines.at(-1)!, /^451 4\.3\.0 /);
    refused.push('qfull-data-451');
    assert.deepEqual(queueContents(queueDir).temporaries, [], 'cleanup left its temporary file behind after a failed write');

    // d. a race for the last bytes: leave ~260 KiB; 8 clients send ~60 KiB each at once. Some get
    // 250, some 451/452: every 250 must be delivered later, nothing else.
    fs.rmSync(filler);
    fillDisk(filler);
    fs.truncateSync(filler, Math.max(0, fs.statSync(filler).size - 260 * 1024));
    const race = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const token = `qfull-race-${i}`;
        return { token, o: await send(token, cfg.users[i % 2]!, 800 + Math.floor(random() * 300)) };
      }),
    );
    for (const { token, o } of race) {
      if (o.kind === 'queued') acked.push(token);
      else refused.push(token);
    }
    console.log(`crash: queue full race: ${race.map(({ token, o }) => `${token}=${outcomeText(o)}`).join('; ')}`);
    for (const { o } of race) {
      if (o.kind === 'rejected') assert.ok([451, 452].includes(o.reply.code), `race: unexpected reply ${outcomeText(o)}`);
      assert.notEqual(o.kind, 'broken', `race: the server dropped a connection: ${outcomeText(o)}`);
    }

    // e. space returns: everything acked is delivered, nothing refused is
    fs.rmSync(filler);
    await waitFor(
      'the acked messages to be delivered',
      () => {
        const d = delivered(cfg);
        return acked.every((tok) => d.has(tok)) && pendingCount(queueDir) === 0;
      },
      40_000,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; queue: ${JSON.stringify(queueContents(queueDir))}\nlog:\n${server!.log().split('\n').slice(-40).join('\n')}`);
    });
    const d = delivered(cfg);
    for (const tok of acked) assert.equal(d.get(tok), 1, `${tok} delivered once`);
    for (const tok of refused) assert.equal(d.get(tok), undefined, `${tok} got a 4xx yet was delivered`);
    const log = server.log();
    assert.match(log, /NOQUEUE: reject: MAIL from [^:]+: 452 4\.3\.1 Insufficient system storage/, 'the 452 is logged as Postfix does');
    console.log(`crash: queue full summary: acked=${acked.length} refused=${refused.length} delivered=${d.size} corrupt=${queueContents(queueDir).corrupt.length}`);
    assert.deepEqual(queueContents(queueDir).corrupt, [], 'a file went to corrupt/');
    await server.stop();
    server = null;
    ok = true;
  } finally {
    if (server !== null) await server.kill();
    if (mounted) umount(queueDir);
    if (ok || !mounted) fs.rmSync(dir, { recursive: true, force: true });
    else console.log(`crash: test directory kept: ${dir}`);
  }
});

test('crash: virtual_mailbox_base on a full tmpfs: delivery defers, and all is delivered once space returns', { timeout: 180_000 }, async (t) => {
  const dir = makeTestDir('postern-crash-mfull-');
  const mailBase = path.join(dir, 'mail');
  fs.mkdirSync(mailBase);
  let mounted = false;
  let server: Server | null = null;
  let ok = false;
  try {
    mounted = mountOrSkip(t, mailBase);
    if (!mounted) return;
    const cfg = await writeConfig(dir, { users: 4, mailBase });
    const filler = path.join(mailBase, 'filler');
    const random = rng(78);
    const send = (token: string, rcpts: string[], lines: number): Promise<Outcome> =>
      sendMail({
        host: cfg.hosts[cfg.hosts.length - 1]!,
        port: cfg.port,
        helo: 'client.example',
        sender: SENDER,
        recipients: rcpts,
        message: buildMessage({ token, from: SENDER, to: rcpts, fillerLines: lines, random }),
      });
    server = new Server(cfg);
    await server.ready();

    // u0's Maildir exists before the disk fills; the others are made while it is full.
    const o0 = await send('mfull-first', [cfg.users[0]!], 10);
    assert.equal(o0.kind, 'queued', outcomeText(o0));
    await waitFor('the first delivery', () => delivered(cfg).has('mfull-first'), 20_000);

    fillDisk(filler);
    const tokens: string[] = [];
    for (let i = 0; i < 6; i++) {
      const token = `mfull-${i}`;
      const rcpts = i === 5 ? [...cfg.users] : [cfg.users[i % cfg.users.length]!];
      const o = await send(token, rcpts, 100 + i * 150);
      assert.equal(o.kind, 'queued', `${token}: ${outcomeText(o)}`);
      tokens.push(token);
    }
    await waitFor('status=deferred lines for the mail that does not fit', () => (server!.log().match(/status=deferred/g) ?? []).length >= 3, 30_000).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\nlog:\n${server!.log().split('\n').slice(-30).join('\n')}`);
    });
    const during = delivered(cfg);
    const deferredLines = server.log().split('\n').filter((l) => /status=deferred/.test(l));
    console.log(`crash: mailbox full: ${deferredLines.length} deferrals while full, e.g. ${deferredLines[0]?.replace(/^.*?: /, '')}`);
    for (const l of deferredLines) assert.match(l, /dsn=4\.\d+\.\d+, status=deferred/, 'a full disk is a temporary failure');
    assert.equal(server.log().match(/status=bounced/), null, 'a full mailbox disk must not bounce');
    const tmpWhileFull = scanMaildirs(mailBase).tmpLeftovers;

    fs.rmSync(filler);
    await waitFor(
      'every message to be delivered after space returned',
      () => {
        const d = delivered(cfg);
        return tokens.every((tok) => d.has(tok)) && pendingCount(cfg.queueDir) === 0;
      },
      40_000,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}; queue: ${JSON.stringify(queueContents(cfg.queueDir))}\nlog:\n${server!.log().split('\n').slice(-30).join('\n')}`);
    });
    const { files, tmpLeftovers, incomplete } = scanMaildirs(mailBase);
    const per = new Map<string, number>();
    for (const f of files) if (f.token !== null) per.set(`${f.token} ${f.mailbox}`, (per.get(`${f.token} ${f.mailbox}`) ?? 0) + 1);
    console.log(
      `crash: mailbox full summary: acked=${tokens.length + 1} delivered before space returned=${during.size} after=${delivered(cfg).size} files=${files.length} tmp/ leftovers while full=${tmpWhileFull} after=${tmpLeftovers}`,
    );
    for (const [k, n] of per) assert.equal(n, 1, `${k} delivered ${n} times`);
    assert.equal(files.length, 1 + 5 + cfg.users.length, 'one file per message and recipient');
    assert.deepEqual(incomplete, [], 'Maildirs without cur/ new/ tmp/');
    assert.equal(tmpLeftovers, 0, 'failed deliveries left files in tmp/');
    await server.stop();
    server = null;
    ok = true;
  } finally {
    if (server !== null) await server.kill();
    if (mounted) umount(mailBase);
    if (ok || !mounted) fs.rmSync(dir, { recursive: true, force: true });
    else console.log(`crash: test directory kept: ${dir}`);
  }
});

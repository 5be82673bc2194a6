/**
 * Crash safety, issue 4: "250 means on disk" (DESIGN invariant 1) and "a crash may repeat a
 * delivery; it never loses one" (invariant 2), tested on a real `postern run` process that is
 * killed with SIGKILL at random moments while several SMTP clients send, and restarted.
 *
 * Afterwards every message that got a 250 to its DATA must be in its Maildir (new/ or cur/) at
 * least once, every delivered file must be whole, and no bounce may appear. Duplicates (a delivery
 * repeated after a kill, or a client retry after a lost 250) are counted and printed, not failed.
 *
 * Environment (defaults are what `npm test` runs, ~20-40 s on 2 cores):
 *   CRASH_MESSAGES  messages to send (300)          CRASH_CLIENTS  concurrent clients (8)
 *   CRASH_KILLS     minimum SIGKILLs (5)            CRASH_SEED     PRNG seed (random; printed)
 *   CRASH_MIN_UP_MS / CRASH_MAX_UP_MS  uptime between kills (300 / 1500)
 *   CRASH_DRAIN_MS  bound on the final queue drain (60000)
 *   CRASH_KEEP=1    keep the test directory even when the test passes
 *   CRASH_UNPRIVILEGED=1  (as root) start postern as mail_owner instead of root (./server.ts)
 * Replay a failure with the printed seed: CRASH_SEED=N node --test dist/test/crash/kill-restart.test.js
 * (the kill moments then repeat; the interleaving with the clients may still differ).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { buildMessage, rng, scanMaildirs } from './message.js';
import { type CrashConfig, makeTestDir, pendingCount, queueContents, readLog, SENDER, Server, sleep, writeConfig } from './server.js';
import { type Outcome, sendMail } from './smtp-client.js';

const env = (name: string, dflt: number): number => {
  const v = process.env[name];
  return v !== undefined && v !== '' && Number.isFinite(Number(v)) ? Number(v) : dflt;
};

const MESSAGES = env('CRASH_MESSAGES', 300);
const CLIENTS = env('CRASH_CLIENTS', 8);
const MIN_KILLS = env('CRASH_KILLS', 5);
const SEED = env('CRASH_SEED', Math.floor(Math.random() * 2 ** 31));
const MIN_UP_MS = env('CRASH_MIN_UP_MS', 300);
const MAX_UP_MS = env('CRASH_MAX_UP_MS', 1500);
const DRAIN_MS = env('CRASH_DRAIN_MS', 60_000);
/** A client gives a message up after this many attempts (the test then fails: the server never took it). */
const MAX_ATTEMPTS = 200;

interface Attempt {
  readonly token: string;
  outcome: Outcome | null;
}

interface Msg {
  readonly index: number;
  readonly recipients: readonly string[];
  readonly attempts: Attempt[];
  acked: Attempt | null;
}

function describeOutcome(o: Outcome): string {
  if (o.kind === 'queued') return 'queued';
  if (o.kind === 'rejected') return `${o.stage}: ${o.reply.lines.join(' / ')}`;
  return `${o.stage}: ${o.error}`;
}

test('crash: SIGKILL at random moments during concurrent SMTP loses no message that got a 250', { timeout: 30 * 60_000 }, async () => {
  console.log(`crash: kill-restart seed=${SEED} messages=${MESSAGES} clients=${CLIENTS} min_kills=${MIN_KILLS} (replay: CRASH_SEED=${SEED})`);
  const random = rng(SEED);
  const dir = makeTestDir('postern-crash-kill-');
  let ok = false;
  let server: Server | null = null;
  let abort = false;
  try {
    const cfg: CrashConfig = await writeConfig(dir, { users: 4 });
    const msgs: Msg[] = [];
    for (let i = 0; i < MESSAGES; i++) {
      const a = Math.floor(random() * cfg.users.length);
      const recipients = random() < 0.2 ? [cfg.users[a]!, cfg.users[(a + 1) % cfg.users.length]!] : [cfg.users[a]!];
      msgs.push({ index: i, recipients, attempts: [], acked: null });
    }

    // --- the clients: each takes the next message; a message without a 250 goes back in line.
    const todo: Msg[] = [...msgs];
    const outcomes = new Map<string, number>();
    let inFlight = 0;
    let done = false;
    const client = async (w: number): Promise<void> => {
      const r = rng(SEED ^ ((w + 1) * 0x9e3779b9));
      for (;;) {
        if (abort) return;
        const m = todo.shift();
        if (m === undefined) {
          if (inFlight === 0) return;
          await sleep(20);
          continue;
        }
        inFlight++;
        const token = `s${SEED}m${m.index}a${m.attempts.length}`;
        const attempt: Attempt = { token, outcome: null };
        m.attempts.push(attempt);
        // Mostly small messages; some of 30-60 KiB so that kills land inside DATA too.
        const fillerLines = r() < 0.1 ? 400 + Math.floor(r() * 400) : 1 + Math.floor(r() * 60);
        const message = buildMessage({ token, from: SENDER, to: m.recipients, fillerLines, random: r });
        const host = cfg.hosts[Math.floor(r() * cfg.hosts.length)]!;
        const outcome = await sendMail({ host, port: cfg.port, helo: `client${w}.example`, sender: SENDER, recipients: m.recipients, message });
        attempt.outcome = outcome;
        const key = describeOutcome(outcome).replace(/[0-9A-F]{8,}/g, 'ID');
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        inFlight--;
        if (outcome.kind === 'queued') {
          m.acked = attempt;
        } else if (m.attempts.length >= MAX_ATTEMPTS) {
          // give up on it; reported below
        } else {
          todo.push(m);
          // The server is probably down: wait a little before the next connection.
          await sleep(outcome.kind === 'broken' && outcome.stage === 'connect' ? 50 + r() * 150 : 10 + r() * 40);
        }
      }
    };
    const clients = Promise.all(Array.from({ length: CLIENTS }, (_, w) => client(w))).then(() => {
      done = true;
    });

    // --- the killer: start, let it run a random while, SIGKILL, restart; at least MIN_KILLS
    // times and for as long as the clients are still sending.
    const started = Date.now();
    let kills = 0;
    const downtimes: number[] = [];
    server = new Server(cfg);
    await server.ready();
    while (!done || kills < MIN_KILLS) {
      const up = MIN_UP_MS + random() * (MAX_UP_MS - MIN_UP_MS);
      const until = Date.now() + up;
      while (Date.now() < until && (!done || kills < MIN_KILLS)) await sleep(10);
      if (done && kills >= MIN_KILLS) break;
      await server.kill();
      kills++;
      const t0 = Date.now();
      server = new Server(cfg);
      await server.ready();
      downtimes.push(Date.now() - t0);
    }
    await clients;
    const sendMs = Date.now() - started;

    // --- the final run: no more kills; wait until the queue is empty (or stalls, bounded).
    const drainStart = Date.now();
    let last = -1;
    let lastChange = Date.now();
    for (;;) {
      const pending = pendingCount(cfg.queueDir);
      if (pending === 0) break;
      if (pending !== last) {
        last = pending;
        lastChange = Date.now();
      }
      if (Date.now() - drainStart > DRAIN_MS || Date.now() - lastChange > 20_000) break;
      await sleep(100);
    }
    const drainMs = Date.now() - drainStart;
    await server.stop();
    const stderrTail = server.stderr.trim();
    server = null;

    // --- the verdict
    const { files, tmpLeftovers, incomplete } = scanMaildirs(cfg.mailBase);
    const byToken = new Map<string, Set<string>>();
    const copies = new Map<string, number>();
    const broken = files.filter((f) => f.problem !== null && f.mailbox !== 'sender/');
    const notices = files.filter((f) => f.mailbox === 'sender/');
    const wrongDeliveredTo: string[] = [];
    for (const f of files) {
      if (f.token === null || f.problem !== null) continue;
      const key = `${f.token} ${f.mailbox}`;
      copies.set(key, (copies.get(key) ?? 0) + 1);
      let s = byToken.get(f.token);
      if (!s) {
        s = new Set();
        byToken.set(f.token, s);
      }
      s.add(f.mailbox);
      const user = f.mailbox.replace(/\/$/, '');
      if (f.deliveredTo !== null && f.deliveredTo.toLowerCase() !== `${user}@example.test`) wrongDeliveredTo.push(`${f.file}: Delivered-To: ${f.deliveredTo}`);
    }
    const acked = msgs.filter((m) => m.acked !== null);
    const neverAcked = msgs.filter((m) => m.acked === null);
    const lost: string[] = [];
    for (const m of acked) {
      for (const rcpt of m.recipients) {
        const box = `${rcpt.split('@')[0]}/`;
        if (!byToken.get(m.acked!.token)?.has(box)) lost.push(`${m.acked!.token} → ${rcpt} (${m.acked!.outcome?.kind === 'queued' ? (m.acked!.outcome.queueId ?? '?') : '?'})`);
      }
    }
    const known = new Set(msgs.flatMap((m) => m.attempts.map((a) => a.token)));
    const unknown = [...byToken.keys()].filter((t) => !known.has(t));
    // Duplicates: the same attempt delivered more than once into one Maildir (a delivery repeated
    // after a kill), and one message delivered under more than one attempt (the client lost the
    // 250 and sent it again).
    const repeated = [...copies.entries()].filter(([, n]) => n > 1);
    const retried: string[] = [];
    for (const m of msgs) {
      for (const rcpt of m.recipients) {
        const box = `${rcpt.split('@')[0]}/`;
        const got = m.attempts.filter((a) => byToken.get(a.token)?.has(box));
        if (got.length > 1) retried.push(`m${m.index} → ${rcpt}: ${got.map((a) => a.token).join(', ')}`);
      }
    }
    const deliveredUnacked = msgs.flatMap((m) => m.attempts.filter((a) => a !== m.acked && byToken.has(a.token)));
    const q = queueContents(cfg.queueDir);
    const log = readLog(cfg);
    const panics = log.split('\n').filter((l) => /: (panic|fatal): /.test(l));
    const warnings = new Map<string, number>();
    for (const l of log.split('\n')) {
      const w = /: warning: (.*)$/.exec(l);
      if (w) {
        const k = w[1]!.replace(/[0-9A-F]{8,}|\d+/g, 'N').slice(0, 140);
        warnings.set(k, (warnings.get(k) ?? 0) + 1);
      }
    }
    const deferredLines = log.split('\n').filter((l) => /status=deferred/.test(l));
    const attempts = msgs.reduce((n, m) => n + m.attempts.length, 0);
    const deliveredCount = files.filter((f) => f.mailbox !== 'sender/').length;

    console.log(
      `crash: kill-restart summary: sent=${MESSAGES} attempts=${attempts} acked=${acked.length} delivered=${deliveredCount} ` +
        `duplicates=${repeated.reduce((n, [, c]) => n + c - 1, 0)} (repeated deliveries) + ${retried.length} (client retries after a lost 250) ` +
        `kills=${kills} lost=${lost.length} seed=${SEED}`,
    );
    console.log(
      `crash: kill-restart details: send phase ${sendMs} ms, restart-to-ready ${downtimes.length ? `${Math.min(...downtimes)}-${Math.max(...downtimes)}` : '-'} ms, ` +
        `drain ${drainMs} ms, delivered-but-never-acked attempts ${deliveredUnacked.length}, tmp/ leftovers ${tmpLeftovers}, ` +
        `cleanup temporaries left ${q.temporaries.length}, deferred log lines ${deferredLines.length}`,
    );
    console.log(`crash: client outcomes: ${[...outcomes.entries()].map(([k, n]) => `${n}× ${k}`).join('; ')}`);
    if (warnings.size > 0) console.log(`crash: warnings in the log: ${[...warnings.entries()].map(([k, n]) => `${n}× ${k}`).join('; ')}`);
    for (const [k, n] of repeated.slice(0, 20)) console.log(`crash: duplicate: ${k} delivered ${n} times`);
    for (const r of retried.slice(0, 20)) console.log(`crash: duplicate (retry): ${r}`);

    assert.deepEqual(lost, [], `acked messages not delivered (seed ${SEED}); queue: ${JSON.stringify(q)}; last deferrals:\n${deferredLines.slice(-10).join('\n')}`);
    assert.deepEqual(
      broken.map((f) => `${f.file}: ${f.problem}`),
      [],
      'half-written or damaged files delivered',
    );
    assert.deepEqual(unknown, [], 'delivered tokens that no client sent');
    assert.deepEqual(wrongDeliveredTo, [], 'a message in the wrong Maildir (Delivered-To names another user)');
    assert.deepEqual(
      notices.map((f) => f.file),
      [],
      'bounces or notices reached the sender (some delivery failed for good)',
    );
    assert.deepEqual(
      neverAcked.map((m) => `m${m.index}: ${m.attempts.map((a) => (a.outcome ? describeOutcome(a.outcome) : '?')).slice(-3).join(' | ')}`),
      [],
      `messages the server never accepted in ${MAX_ATTEMPTS} attempts`,
    );
    assert.deepEqual(q.corrupt, [], 'queue files went to corrupt/ (a published file was not complete)');
    assert.equal(q.incoming.length + q.active.length + q.deferred.length, 0, `queue not empty after the final run: ${JSON.stringify(q)}`);
    assert.deepEqual(panics, [], 'panic/fatal lines in the log');
    assert.deepEqual(incomplete, [], 'a kill left a Maildir without all of cur/ new/ tmp/, and later deliveries did not complete it');
    assert.ok(kills >= MIN_KILLS, `only ${kills} kills`);
    if (stderrTail !== '') console.log(`crash: final server stderr: ${stderrTail.slice(0, 2000)}`);
    ok = true;
  } finally {
    abort = true;
    if (server !== null) await server.kill();
    if (ok && process.env.CRASH_KEEP !== '1') fs.rmSync(dir, { recursive: true, force: true });
    else console.log(`crash: test directory kept: ${dir}`);
  }
});

/**
 * `npm run bench`: Postern and a private Postfix 3.7 side by side, in one run on one machine, under
 * the same load (Postfix's smtp-source), with the figures issues 3 and 4 ask for. Prints a markdown
 * table and writes it to bench/results/latest.md. Settings: ./options.ts (BENCH_* variables), method:
 * bench/README.md. Every server it starts is stopped by pid at the end, on error and on Ctrl-C.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { closeSessions, openIdleSessions, smtpSource } from './load.js';
import { type BenchOptions, benchOptions, type ProfilePhase, USAGE } from './options.js';
import { PostfixServer, postfixAvailable } from './postfix.js';
import { PosternServer, ROOT } from './postern.js';
import { MiB, openFilesLimit } from './procs.js';
import { hotSpots } from './profile.js';
import { unregisteredDaemons } from './serve.js';
import { median, type Row, sizeName, table } from './report.js';
import { maildirCount, type Profile, queueCount, running, type Server, sleep } from './server.js';

const notes: string[] = [];
const rows: Row[] = [];
let workDir = '';

function say(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}

/** A port in 30000-39999 that 127.0.0.1 can bind now. */
async function freePort(): Promise<number> {
  for (;;) {
    const port = 30000 + Math.floor(Math.random() * 10000);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen({ host: '127.0.0.1', port }, () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
}

let instances = 0;

async function makeServer(kind: 'postfix' | 'postern', profile: Profile, fallback: readonly string[]): Promise<PostfixServer | PosternServer> {
  const dir = path.join(workDir, `${kind}-${profile}-${++instances}`);
  const port = await freePort();
  const s = kind === 'postfix' ? new PostfixServer(dir, port, profile) : new PosternServer(dir, port, profile, { fallback });
  s.configure(profile);
  return s;
}

/** Profile texts for the report, one per profiled phase. */
const profiles: string[] = [];

/** Profile Postern's next start when `phase` is asked for; returns the directory, or null. */
function profileNext(o: BenchOptions, s: Server, phase: ProfilePhase): string | null {
  if (!(s instanceof PosternServer) || !o.profile.has(phase)) return null;
  const dir = path.join(workDir, `cpu-profile-${phase}-${profiles.length}`);
  s.cpuProfDir = dir;
  return dir;
}

/** After the profiled server stopped: the hot spots as a markdown table. */
function profileDone(s: Server, dir: string | null, what: string): void {
  if (dir === null || !(s instanceof PosternServer)) return;
  s.cpuProfDir = undefined;
  const { spots, totalMs, idleMs, files } = hotSpots(dir, ROOT, 20);
  if (files === 0) {
    profiles.push(`No CPU profile of ${what} was written in ${dir}.`);
    return;
  }
  profiles.push(
    [
      `CPU profile of Postern, ${what}: ${(totalMs / 1000).toFixed(1)} s sampled, ${(idleMs / 1000).toFixed(1)} s of it idle (event loop waiting). Self time; % of the busy samples:`,
      '',
      '| Self ms | % busy | Function | Where | Called from (own code) |',
      '|---:|---:|---|---|---|',
      ...spots.map((h) => `| ${h.selfMs.toFixed(0)} | ${h.percent.toFixed(1)} | ${h.name} | ${h.where} | ${h.caller} |`),
    ].join('\n'),
  );
}

/** Remove every queue file of one queue (between acceptance runs; no qmgr runs in that profile). */
function clearQueue(s: Server, queue: string): void {
  const dir = path.join(s.queueDir, queue);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
}

function logWarnings(s: Server): string[] {
  return s.log().filter((l) => / (warning|fatal|panic|error): /.test(l));
}

/** Warning lines already reported per log file (a server's log spans several phases). */
const reported = new Map<string, number>();

function noteWarnings(s: Server, what: string): void {
  const all = logWarnings(s);
  const w = all.slice(reported.get(s.dir) ?? 0);
  reported.set(s.dir, all.length);
  if (w.length > 0) notes.push(`${s.name} ${what}: ${w.length} warning/error log line(s), first: \`${w[0]!.slice(0, 200)}\``);
}

// ---------------------------------------------------------------------------------------------
// Warm-up

/**
 * `o.warmup` untimed messages (20 sessions × 2 KiB) into a freshly started server, so the timed runs
 * measure the steady state a mail server spends its life in rather than its first seconds: Node
 * compiles its hot functions only after they have run for a while (measured here: 3000 messages
 * after start, V8's compiler threads still took 0.7 ms of CPU per message; after 9000, 0.3 ms),
 * and Postfix's master forks its smtpd processes. With `deliver`, waits until the warm-up messages
 * are in the Maildir; otherwise removes them from incoming/.
 */
async function warmUp(o: BenchOptions, s: Server, deliver: boolean): Promise<void> {
  if (o.warmup === 0) return;
  const before = maildirCount(s);
  const t0 = process.hrtime.bigint();
  const r = await smtpSource(s.port, 20, o.warmup, 2048);
  if (r.exitCode !== 0 || r.stderr !== '') notes.push(`${s.name} warm-up: smtp-source exit ${r.exitCode}: \`${r.stderr.trim().split('\n')[0]?.slice(0, 200)}\``);
  if (deliver) await waitDelivered(s, before + o.warmup, o.stall, t0);
  else clearQueue(s, 'incoming');
  say(`${s.name} warm-up: ${o.warmup} messages${deliver ? ' delivered' : ''} in ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(2)} s (untimed)`);
}

/** Main-thread CPU per message, for the servers that report it (Postern). */
function mainCpu(s: Server): number | null {
  return s.mainThreadCpuSeconds === undefined ? null : s.mainThreadCpuSeconds();
}

// ---------------------------------------------------------------------------------------------
// Issue 3: durable acceptance rate

async function acceptance(o: BenchOptions, servers: readonly Server[]): Promise<void> {
  const cpuRows: Row[] = [];
  for (const s of servers) await s.start();
  try {
    for (const s of servers) await warmUp(o, s, false);
    for (const size of o.sizes) {
      for (const sessions of o.sessions) {
        const rates = new Map<string, number[]>(servers.map((s) => [s.name, []]));
        const cpu = new Map<string, number[]>(servers.map((s) => [s.name, []]));
        const mainThread: number[] = [];
        for (let rep = 0; rep < o.repeat; rep++) {
          // Alternate who goes first, so neither always runs on the warmer (or busier) machine.
          const order = rep % 2 === 0 ? servers : [...servers].reverse();
          for (const s of order) {
            clearQueue(s, 'incoming');
            const cpu0 = s.cpuSeconds();
            const main0 = mainCpu(s);
            const r = await smtpSource(s.port, sessions, o.messages, size);
            const cpuMs = ((s.cpuSeconds() - cpu0) * 1000) / o.messages;
            const main1 = mainCpu(s);
            const mainMs = main0 === null || main1 === null ? null : ((main1 - main0) * 1000) / o.messages;
            const queued = queueCount(s, 'incoming');
            const label = `acceptance ${sessions} × ${sizeName(size)}`;
            if (r.exitCode !== 0 || r.stderr !== '') {
              notes.push(`${s.name} ${label}: smtp-source exit ${r.exitCode}: \`${r.stderr.trim().split('\n')[0]?.slice(0, 200)}\``);
              continue;
            }
            if (queued !== o.messages) notes.push(`${s.name} ${label}: ${queued} of ${o.messages} messages in incoming/ after the run (something else moved them)`);
            rates.get(s.name)!.push(o.messages / r.seconds);
            cpu.get(s.name)!.push(cpuMs);
            if (mainMs !== null) mainThread.push(mainMs);
            say(`${s.name} ${label}: ${o.messages} in ${r.seconds.toFixed(2)} s = ${(o.messages / r.seconds).toFixed(1)} msg/s, CPU ${cpuMs.toFixed(2)} ms/msg${mainMs === null ? '' : ` (main thread ${mainMs.toFixed(2)})`}`);
          }
        }
        const pick = (name: string): number | null => median(rates.get(name) ?? []);
        cpuRows.push({
          figure: `CPU per message, ${sessions} × ${sizeName(size)} (user+system, all server processes)`,
          postfix: median(cpu.get('Postfix') ?? []),
          postern: median(cpu.get('Postern') ?? []),
          unit: 'ms/msg',
        });
        if (mainThread.length > 0) cpuRows.push({ figure: `… of it in Postern's main thread (event loop), ${sessions} × ${sizeName(size)}`, postfix: null, postern: median(mainThread), unit: 'ms/msg' });
        const row: Row = {
          figure: `Acceptance, ${sessions} session${sessions > 1 ? 's' : ''} × ${sizeName(size)} (${o.messages} msgs)`,
          postfix: pick('Postfix'),
          postern: pick('Postern'),
          unit: 'msg/s',
          ...(sessions === 20 && size === 2048 ? { target: { text: '≥ 1.5× Postfix', relative: true, met: (pn: number, pf: number | null) => pf !== null && pn >= 1.5 * pf } } : {}),
        };
        rows.push(row);
      }
    }
    rows.push(...cpuRows);
  } finally {
    for (const s of servers) {
      noteWarnings(s, 'acceptance');
      await s.stop();
      clearQueue(s, 'incoming');
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Issue 3: memory with idle sessions

interface IdleFigures {
  base: number;
  loaded: number;
  basePss: number;
  loadedPss: number;
  processes: number;
  openSeconds: number;
}

async function idleOne(o: BenchOptions, s: Server): Promise<IdleFigures | null> {
  await s.start();
  try {
    // One session first, so the base figure is a server that has served, not one that only started.
    await closeSessions(await openIdleSessions(s.port, 1));
    await sleep(2000);
    const base = s.memory();
    const t0 = Date.now();
    let sockets: net.Socket[];
    try {
      sockets = await openIdleSessions(s.port, o.idle);
    } catch (err) {
      notes.push(`${s.name} idle sessions: ${(err as Error).message}`);
      return null;
    }
    const openSeconds = (Date.now() - t0) / 1000;
    await sleep(3000);
    let loaded = s.memory();
    for (let i = 0; i < 4; i++) {
      await sleep(500);
      const m = s.memory();
      if (m.rss > loaded.rss) loaded = m;
    }
    const alive = sockets.filter((x) => !x.destroyed).length;
    if (alive !== o.idle) notes.push(`${s.name} idle sessions: only ${alive} of ${o.idle} still open when measured`);
    say(`${s.name} idle: ${o.idle} sessions opened in ${openSeconds.toFixed(1)} s; RSS ${(base.rss / MiB).toFixed(1)} → ${(loaded.rss / MiB).toFixed(1)} MiB in ${loaded.processes} processes`);
    await closeSessions(sockets);
    return { base: base.rss, loaded: loaded.rss, basePss: base.pss, loadedPss: loaded.pss, processes: loaded.processes, openSeconds };
  } finally {
    noteWarnings(s, 'idle');
    await s.stop();
  }
}

async function idle(o: BenchOptions, servers: readonly Server[]): Promise<void> {
  const f = new Map<string, IdleFigures | null>();
  for (const s of servers) f.set(s.name, await idleOne(o, s));
  const v = (name: string, get: (x: IdleFigures) => number): number | null => {
    const x = f.get(name);
    return x ? get(x) : null;
  };
  rows.push({ figure: 'Idle server RSS (after one session)', postfix: v('Postfix', (x) => x.base / MiB), postern: v('Postern', (x) => x.base / MiB), unit: 'MiB' });
  rows.push({
    figure: `RSS above idle, ${o.idle} idle sessions after EHLO`,
    postfix: v('Postfix', (x) => (x.loaded - x.base) / MiB),
    postern: v('Postern', (x) => (x.loaded - x.base) / MiB),
    unit: 'MiB',
    ...(o.idle === 1000 ? { target: { text: '≤ 64 MiB', met: (pn: number) => pn <= 64 } } : {}),
  });
  rows.push({ figure: `PSS above idle, ${o.idle} idle sessions (shared pages split)`, postfix: v('Postfix', (x) => (x.loadedPss - x.basePss) / MiB), postern: v('Postern', (x) => (x.loadedPss - x.basePss) / MiB), unit: 'MiB' });
  const pf = f.get('Postfix');
  if (pf) notes.push(`Postfix idle figure is the sum over all ${pf.processes} processes of the instance (one smtpd per session).`);
}

// ---------------------------------------------------------------------------------------------
// Issue 4: end to end, queue drain, deferred memory

/** Wait until the Maildir holds `target` messages; null when deliveries stop for `stall` seconds. */
async function waitDelivered(s: Server, target: number, stall: number, t0: bigint): Promise<number | null> {
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const n = maildirCount(s);
    if (n >= target) return Number(process.hrtime.bigint() - t0) / 1e9;
    if (n !== last) {
      last = n;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > stall * 1000) {
      notes.push(`${s.name}: ${n} of ${target} messages in the Maildir, none for ${stall} s; gave up (queue: incoming ${queueCount(s, 'incoming')}, active ${queueCount(s, 'active')}, deferred ${queueCount(s, 'deferred')})`);
      return null;
    }
    if (!s.running()) {
      notes.push(`${s.name} exited while delivering (${n} of ${target} delivered)`);
      return null;
    }
    await sleep(50);
  }
}

async function endToEnd(o: BenchOptions, servers: readonly Server[]): Promise<void> {
  const sizes = o.sizes;
  const key = (name: string, size: number): string => `${name} ${size}`;
  const rateRuns = new Map<string, number[]>();
  const cpuRuns = new Map<string, number[]>();
  const mainRuns = new Map<number, number[]>();
  const push = (m: Map<string, number[]>, k: string, v: number): void => {
    m.set(k, [...(m.get(k) ?? []), v]);
  };
  const failed = new Set<string>();
  // BENCH_REPEAT: each server runs that many times (a fresh start each), alternating who goes
  // first; the figures are the medians. One run on this shared 2-CPU machine moves by a third.
  for (let rep = 0; rep < o.repeat; rep++) {
    const order = rep % 2 === 0 ? servers : [...servers].reverse();
    for (const s of order) {
      const prof = rep === 0 ? profileNext(o, s, 'e2e') : null;
      await s.start();
      try {
        await warmUp(o, s, true);
        for (const size of sizes) {
          const before = maildirCount(s);
          const cpu0 = s.cpuSeconds();
          const main0 = mainCpu(s);
          const t0 = process.hrtime.bigint();
          const r = await smtpSource(s.port, o.e2eSessions, o.e2eMessages, size);
          if (r.exitCode !== 0 || r.stderr !== '') notes.push(`${s.name} end-to-end ${sizeName(size)}: smtp-source exit ${r.exitCode}: \`${r.stderr.trim().split('\n')[0]?.slice(0, 200)}\``);
          const secs = await waitDelivered(s, before + o.e2eMessages, o.stall, t0);
          say(`${s.name} end-to-end ${o.e2eSessions} × ${sizeName(size)}: ${secs === null ? 'incomplete' : `${secs.toFixed(2)} s = ${(o.e2eMessages / secs).toFixed(1)} msg/s`}`);
          if (secs === null) {
            // An incomplete run makes that figure unknown, not the median of the others.
            failed.add(key(s.name, size));
            break;
          }
          push(rateRuns, key(s.name, size), o.e2eMessages / secs);
          push(cpuRuns, key(s.name, size), ((s.cpuSeconds() - cpu0) * 1000) / o.e2eMessages);
          const main1 = mainCpu(s);
          if (main0 !== null && main1 !== null) mainRuns.set(size, [...(mainRuns.get(size) ?? []), ((main1 - main0) * 1000) / o.e2eMessages]);
        }
      } finally {
        noteWarnings(s, 'end-to-end');
        await s.stop();
        if (prof !== null) profileDone(s, prof, `end to end, ${o.e2eSessions} sessions × ${sizes.map(sizeName).join(', then ')} (${o.e2eMessages} msgs each)`);
      }
    }
  }
  const fig = (m: Map<string, number[]>, name: string, size: number): number | null => (failed.has(key(name, size)) ? null : median(m.get(key(name, size)) ?? []));
  const rates = new Map<string, Map<number, number | null>>(servers.map((s) => [s.name, new Map(sizes.map((z) => [z, fig(rateRuns, s.name, z)]))]));
  const cpu = new Map<string, Map<number, number | null>>(servers.map((s) => [s.name, new Map(sizes.map((z) => [z, fig(cpuRuns, s.name, z)]))]));
  const mainThread = new Map<number, number | null>([...mainRuns].map(([z, v]) => [z, median(v)]));
  for (const size of sizes) {
    rows.push({
      figure: `End to end (SMTP → Maildir), ${o.e2eSessions} sessions × ${sizeName(size)} (${o.e2eMessages} msgs)`,
      postfix: rates.get('Postfix')?.get(size) ?? null,
      postern: rates.get('Postern')?.get(size) ?? null,
      unit: 'msg/s',
      ...(size === 2048 ? { target: { text: '≥ 1.5× Postfix', relative: true, met: (pn: number, pf: number | null) => pf !== null && pn >= 1.5 * pf } } : {}),
    });
  }
  for (const size of sizes) {
    rows.push({
      figure: `CPU per message, end to end ${o.e2eSessions} × ${sizeName(size)} (user+system, all server processes)`,
      postfix: cpu.get('Postfix')?.get(size) ?? null,
      postern: cpu.get('Postern')?.get(size) ?? null,
      unit: 'ms/msg',
    });
    if (mainThread.has(size)) rows.push({ figure: `… of it in Postern's main thread (event loop), end to end ${o.e2eSessions} × ${sizeName(size)}`, postfix: null, postern: mainThread.get(size) ?? null, unit: 'ms/msg' });
  }
}

/** Where a queue file lives: Postfix hashes deferred/ one level deep by the id's first character (hash_queue_depth = 1). */
function queuePath(s: Server, queue: 'incoming' | 'deferred', id: string): string {
  if (s.name === 'Postfix' && queue === 'deferred') return path.join(s.queueDir, queue, id[0]!, id);
  return path.join(s.queueDir, queue, id);
}

function queueIds(s: Server, queue: 'incoming' | 'deferred'): string[] {
  const dir = path.join(s.queueDir, queue);
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.isFile() && !e.name.endsWith('.tmp')) out.push(e.name);
    }
  };
  walk(dir);
  return out;
}

/** Move every queued message between incoming/ and deferred/ (server stopped), setting its mtime (deferred: next retry). */
function moveAll(s: Server, from: 'incoming' | 'deferred', to: 'incoming' | 'deferred', mtime: Date): number {
  const ids = queueIds(s, from);
  for (const id of ids) {
    const src = queuePath(s, from, id);
    const dst = queuePath(s, to, id);
    fs.mkdirSync(path.dirname(dst), { recursive: true, mode: 0o700 });
    const st = fs.statSync(path.dirname(src));
    fs.chownSync(path.dirname(dst), st.uid, st.gid);
    fs.utimesSync(src, mtime, mtime);
    fs.renameSync(src, dst);
  }
  return ids.length;
}

interface QueueFigures {
  fillRate: number | null;
  deferredRss: number | null;
  deferredPss: number | null;
  drainRate: number | null;
  drainCpuMs: number | null;
}

async function queueOne(o: BenchOptions, s: PostfixServer | PosternServer): Promise<QueueFigures> {
  const f: QueueFigures = { fillRate: null, deferredRss: null, deferredPss: null, drainRate: null, drainCpuMs: null };
  // 1. Fill: accept-only, 20 sessions × 2 KiB.
  s.configure('accept');
  await s.start();
  try {
    const r = await smtpSource(s.port, 20, o.queue, 2048);
    if (r.exitCode !== 0 || r.stderr !== '') notes.push(`${s.name} queue fill: smtp-source exit ${r.exitCode}: \`${r.stderr.trim().split('\n')[0]?.slice(0, 200)}\``);
    else f.fillRate = o.queue / r.seconds;
    say(`${s.name} queue fill: ${o.queue} in ${r.seconds.toFixed(1)} s`);
  } finally {
    await s.stop();
  }
  const queued = queueCount(s, 'incoming');
  if (queued !== o.queue) notes.push(`${s.name} queue fill: ${queued} of ${o.queue} in incoming/`);

  // 2. Deferred: every message waits for a retry a day from now; watch memory with qmgr running.
  const moved = moveAll(s, 'incoming', 'deferred', new Date(Date.now() + 86_400_000));
  s.configure('deliver');
  await s.start();
  try {
    let max = s.memory();
    const until = Date.now() + o.deferredWatch * 1000;
    while (Date.now() < until) {
      await sleep(500);
      const m = s.memory();
      if (m.rss > max.rss) max = m;
    }
    f.deferredRss = max.rss;
    f.deferredPss = max.pss;
    const delivered = maildirCount(s);
    const still = queueCount(s, 'deferred');
    if (delivered > 0 || still !== moved) notes.push(`${s.name} deferred: ${still} of ${moved} still in deferred/, ${delivered} delivered while they should wait`);
    say(`${s.name} with ${moved} deferred: max RSS ${(max.rss / MiB).toFixed(1)} MiB in ${max.processes} processes`);
  } finally {
    noteWarnings(s, 'deferred');
    await s.stop();
  }

  // 3. Drain: the same messages back in incoming/, due now; time from start to the last in the Maildir.
  const before = maildirCount(s);
  const n = moveAll(s, 'deferred', 'incoming', new Date());
  const prof = profileNext(o, s, 'drain');
  const t0 = process.hrtime.bigint();
  await s.start();
  try {
    const secs = await waitDelivered(s, before + n, o.stall, t0);
    if (secs !== null) {
      f.drainRate = n / secs;
      // From the process start: the whole drain, start-up included.
      f.drainCpuMs = (s.cpuSeconds() * 1000) / n;
    }
    say(`${s.name} drain of ${n}: ${secs === null ? 'incomplete' : `${secs.toFixed(1)} s`}`);
  } finally {
    noteWarnings(s, 'drain');
    await s.stop();
    profileDone(s, prof, `queue drain of ${n} msgs`);
  }
  return f;
}

async function queueFigures(o: BenchOptions, servers: readonly (PostfixServer | PosternServer)[]): Promise<void> {
  const f = new Map<string, QueueFigures>();
  for (const s of servers) f.set(s.name, await queueOne(o, s));
  const v = (name: string, k: keyof QueueFigures, scale = 1): number | null => {
    const x = f.get(name)?.[k];
    return x === null || x === undefined ? null : x / scale;
  };
  rows.push({ figure: `Queue fill, accept only, 20 sessions × 2 KiB (${o.queue} msgs)`, postfix: v('Postfix', 'fillRate'), postern: v('Postern', 'fillRate'), unit: 'msg/s' });
  rows.push({ figure: `Queue drain, ${o.queue} queued msgs → Maildir`, postfix: v('Postfix', 'drainRate'), postern: v('Postern', 'drainRate'), unit: 'msg/s' });
  rows.push({ figure: 'CPU per message, queue drain (user+system, all server processes)', postfix: v('Postfix', 'drainCpuMs'), postern: v('Postern', 'drainCpuMs'), unit: 'ms/msg' });
  rows.push({
    figure: `RSS with ${o.queue} msgs in deferred (whole server)`,
    postfix: v('Postfix', 'deferredRss', MiB),
    postern: v('Postern', 'deferredRss', MiB),
    unit: 'MiB',
    ...(o.queue === 100000 ? { target: { text: '≤ 256 MiB', met: (pn: number) => pn <= 256 } } : {}),
  });
  rows.push({ figure: `PSS with ${o.queue} msgs in deferred`, postfix: v('Postfix', 'deferredPss', MiB), postern: v('Postern', 'deferredPss', MiB), unit: 'MiB' });
}

// ---------------------------------------------------------------------------------------------
// Profile

async function profileAcceptance(o: BenchOptions, fallback: readonly string[]): Promise<void> {
  const s = await makeServer('postern', 'accept', fallback);
  const dir = profileNext(o, s, 'accept');
  await s.start();
  try {
    await warmUp(o, s, false);
    const r = await smtpSource(s.port, 20, o.messages, 2048);
    say(`Postern (profiled) acceptance 20 × 2 KiB: ${(o.messages / r.seconds).toFixed(1)} msg/s`);
  } finally {
    await s.stop();
  }
  profileDone(s, dir, `acceptance 20 × 2 KiB (${o.messages} msgs)`);
}

// ---------------------------------------------------------------------------------------------

/**
 * CPU time of one file creation (open O_CREAT + close) in `dir`, median of 5 rounds of 100.
 * Both servers create two files per message there (queue file, Maildir file); on the VM this bench
 * was written on, ext4 inode allocation cost 22-50 µs in some directories and 400-640 µs in
 * others (/tmp among them), which moves every figure. Printed so runs can be compared.
 */
function fileCreateMicros(dir: string): number {
  const probe = fs.mkdtempSync(path.join(dir, 'create-probe-'));
  try {
    const rounds: number[] = [];
    for (let r = 0; r < 5; r++) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < 100; i++) fs.closeSync(fs.openSync(path.join(probe, `${r}-${i}`), 'w'));
      const c = process.cpuUsage(c0);
      rounds.push((c.user + c.system) / 100);
    }
    return rounds.sort((a, b) => a - b)[2]!;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

function machine(dir: string): string[] {
  const out: string[] = [];
  const git = spawnSync('git', ['-C', ROOT, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' });
  let postfixVersion = 'not installed';
  try {
    postfixVersion = execFileSync('postconf', ['-d', '-h', 'mail_version'], { encoding: 'utf8' }).trim();
  } catch {
    // missing
  }
  out.push(`- ${new Date().toISOString()}, ${os.cpus().length} CPU (${os.cpus()[0]?.model ?? '?'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  out.push(`- Node ${process.version}, Postfix ${postfixVersion}, Postern at \`${git.stdout.trim()}\``);
  out.push(`- work directory ${dir}: creating a file costs ${fileCreateMicros(dir).toFixed(0)} µs of CPU (both servers create two per message there)`);
  return out;
}

/** Re-run under a raised `ulimit -n` when 1,000 idle sessions (client and Postern sides) would not fit. */
function ensureOpenFiles(need: number): boolean {
  if (openFilesLimit() >= need || process.env.BENCH_ULIMIT_RAISED === '1') return false;
  say(`raising the open files limit to ${need} (ulimit -n) and running again`);
  const r = spawnSync('sh', ['-c', `ulimit -n ${need} && exec "$0" "$@"`, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, BENCH_ULIMIT_RAISED: '1' },
  });
  process.exitCode = r.status ?? 1;
  return true;
}

async function stopAll(): Promise<void> {
  await Promise.all([...running].map((s) => Promise.race([s.stop(), sleep(25_000)])));
  for (const s of [...running]) s.kill();
}

async function main(): Promise<number> {
  if (process.argv.includes('-h') || process.argv.includes('--help')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const o = benchOptions(process.env);
  if (ensureOpenFiles(Math.max(4096, o.idle * 2 + 1024))) return process.exitCode as number;
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench: must run as root (Postfix is started with its own queue; Postern binds and drops to nobody)\n');
    return 1;
  }
  const missing = postfixAvailable();
  if (missing !== null && o.servers.has('postfix')) {
    process.stderr.write(`bench: ${missing}\n`);
    return 1;
  }
  const fallback = await unregisteredDaemons();
  if (fallback.length > 0 && o.servers.has('postern')) {
    notes.push(
      `${fallback.join(' and ')} not registered in src/master/daemons.ts yet: Postern ran as \`node dist/bench/serve.js DIR\` (the same Master, config loader and log, with ${fallback.join(' and ')} registered by the bench) instead of \`bin/postern.js run -c DIR\`.`,
    );
  }
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-bench-'));
  fs.chmodSync(workDir, 0o755);
  const header = machine(workDir);
  say(`work directory ${workDir}`);

  const kinds = (['postfix', 'postern'] as const).filter((k) => o.servers.has(k));
  const make = (profile: Profile) => Promise.all(kinds.map((k) => makeServer(k, profile, fallback)));
  try {
    if (o.only.has('accept')) await acceptance(o, await make('accept'));
    if (o.only.has('idle')) await idle(o, await make('idle'));
    if (o.only.has('e2e')) await endToEnd(o, await make('deliver'));
    if (o.only.has('queue')) await queueFigures(o, await make('accept'));
    if (o.profile.has('accept') && o.servers.has('postern')) await profileAcceptance(o, fallback);
  } catch (err) {
    notes.push(`bench stopped early: ${(err as Error).stack ?? String(err)}`);
  } finally {
    await stopAll();
  }

  const settings = `messages ${o.messages}/run, sessions ${o.sessions.join(',')}, sizes ${o.sizes.map(sizeName).join(', ')}, idle ${o.idle}, end-to-end ${o.e2eMessages}, queue ${o.queue}, repeat ${o.repeat}${o.quick ? ' (BENCH_QUICK)' : ''}`;
  const doc = [
    '# Postern vs Postfix — `npm run bench`',
    '',
    ...header,
    `- ${settings}`,
    `- load at the end: ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}`,
    '',
    table(rows),
    '',
    ...(notes.length > 0 ? ['Notes:', '', ...notes.map((n) => `- ${n}`), ''] : []),
    ...profiles.flatMap((p) => [p, '']),
  ].join('\n');
  process.stdout.write(`${doc}\n`);
  const resultsDir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  fs.writeFileSync(path.join(resultsDir, 'latest.md'), `${doc}\n`);
  if (!o.keep) fs.rmSync(workDir, { recursive: true, force: true });
  else say(`kept ${workDir}`);
  return 0;
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    say(`${sig}: stopping the servers`);
    stopAll().finally(() => {
      if (workDir !== '' && process.env.BENCH_KEEP !== '1') fs.rmSync(workDir, { recursive: true, force: true });
      process.exit(130);
    });
  });
}
process.on('exit', () => {
  for (const s of [...running]) s.kill();
});

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    stopAll().finally(() => {
      process.exitCode = 1;
    });
  },
);

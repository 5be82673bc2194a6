/**
 * Crash safety, issue 4: "a corrupt queue file (truncated, garbage) goes to corrupt/ and does not
 * stop the rest". Real queue files are made by a running `postern run` whose master.cf has no
 * qmgr (so they stay in incoming/); some are then damaged (cut in half, cut by one byte, one byte
 * changed, bytes appended) and garbage files with queue-id names are added, in incoming/ and in
 * deferred/; then Postern starts with its qmgr. The damaged ones must move to corrupt/ with a
 * `warning:` naming them and never be delivered (not even in part); the good ones are delivered.
 */
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { buildMessage, rng, scanMaildirs } from './message.js';
import { chownTree, makeTestDir, pendingCount, queueContents, SENDER, Server, sleep, writeConfig } from './server.js';
import { sendMail } from './smtp-client.js';

/** A name of Postfix's short-id form (5 hex digits of microseconds + the inode in hex), for a file of ours. */
function shortIdFor(file: string): string {
  const ino = fs.statSync(file, { bigint: true }).ino;
  const usec = Math.floor(Math.random() * 1_000_000);
  return usec.toString(16).toUpperCase().padStart(5, '0') + ino.toString(16).toUpperCase();
}

/** A file of `bytes` under a queue-id name in `queueDir/queue`; returns the id. */
function plantGarbage(queueDir: string, queue: string, bytes: Buffer): string {
  const tmp = path.join(queueDir, queue, 'planting');
  fs.writeFileSync(tmp, bytes, { mode: 0o600 });
  const id = shortIdFor(tmp);
  fs.renameSync(tmp, path.join(queueDir, queue, id));
  return id;
}

test('crash: truncated, altered and garbage queue files in incoming/ and deferred/ go to corrupt/; the good ones are delivered', { timeout: 180_000 }, async () => {
  const dir = makeTestDir('postern-crash-corrupt-');
  let ok = false;
  let server: Server | null = null;
  try {
    // --- 1. real queue files, made by smtpd with no qmgr running
    const cfg = await writeConfig(dir, { users: 2, qmgr: false });
    server = new Server(cfg);
    await server.ready();
    const random = rng(4242);
    const names = ['goodA', 'goodB', 'goodC', 'half', 'cut1', 'flip', 'tail', 'halfDeferred'] as const;
    const ids = new Map<string, string>();
    const tokens = new Map<string, string>();
    for (const n of names) {
      const token = `corrupt-${n}-${Date.now()}`;
      tokens.set(n, token);
      const rcpt = cfg.users[ids.size % cfg.users.length]!;
      const message = buildMessage({ token, from: SENDER, to: [rcpt], fillerLines: 40, random });
      const o = await sendMail({ host: cfg.hosts[ids.size % cfg.hosts.length]!, port: cfg.port, helo: 'client.example', sender: SENDER, recipients: [rcpt], message });
      assert.equal(o.kind, 'queued', `message ${n} not queued: ${JSON.stringify(o)}`);
      assert.ok(o.kind === 'queued' && o.queueId !== null, `no queue id in ${JSON.stringify(o)}`);
      ids.set(n, o.queueId!);
    }
    await server.stop();
    server = null;
    const q0 = queueContents(cfg.queueDir);
    assert.deepEqual(q0.incoming, [...ids.values()].sort(), 'with no qmgr in master.cf the files stay in incoming/ (is a qmgr started anyway?)');

    // --- 2. damage some, move some to deferred/, add garbage
    const file = (queue: string, n: string): string => path.join(cfg.queueDir, queue, ids.get(n)!);
    const inc = (n: string): string => file('incoming', n);
    const size = (p: string): number => fs.statSync(p).size;
    fs.truncateSync(inc('half'), Math.floor(size(inc('half')) / 2));
    fs.truncateSync(inc('cut1'), size(inc('cut1')) - 1);
    {
      const b = fs.readFileSync(inc('flip'));
      const at = Math.floor(b.length / 2);
      b[at] = b[at]! ^ 0x20;
      fs.writeFileSync(inc('flip'), b);
    }
    fs.appendFileSync(inc('tail'), 'X-Appended: garbage\r\n');
    const past = new Date(Date.now() - 60_000);
    for (const n of ['goodC', 'halfDeferred']) {
      fs.renameSync(inc(n), file('deferred', n));
      fs.utimesSync(file('deferred', n), past, past);
    }
    fs.truncateSync(file('deferred', 'halfDeferred'), Math.floor(size(file('deferred', 'halfDeferred')) / 3));
    const garbage = [
      plantGarbage(cfg.queueDir, 'incoming', randomBytes(3000)),
      plantGarbage(cfg.queueDir, 'incoming', Buffer.from('POSTERN QUEUE 1\nFrom: nobody\r\n\r\nnot a queue file\r\n')),
      plantGarbage(cfg.queueDir, 'incoming', Buffer.alloc(0)),
      plantGarbage(cfg.queueDir, 'deferred', randomBytes(500)),
    ];
    for (const id of garbage.slice(3)) fs.utimesSync(path.join(cfg.queueDir, 'deferred', id), past, past);
    chownTree(cfg.queueDir);
    const bad = [...['half', 'cut1', 'flip', 'tail', 'halfDeferred'].map((n) => ids.get(n)!), ...garbage].sort();
    const good = ['goodA', 'goodB', 'goodC'];

    // --- 3. start with a qmgr and wait for the queue to settle
    const cfg2 = await writeConfig(dir, { users: 2 });
    server = new Server(cfg2);
    await server.ready();
    const until = Date.now() + 30_000;
    while (pendingCount(cfg.queueDir) > 0 && Date.now() < until) await sleep(100);
    await sleep(300);
    const log = server.log();
    await server.stop();
    server = null;

    // --- 4. verdict
    const q = queueContents(cfg.queueDir);
    const { files } = scanMaildirs(cfg.mailBase);
    const delivered = new Map<string, number>();
    for (const f of files) if (f.token !== null) delivered.set(f.token, (delivered.get(f.token) ?? 0) + 1);
    const warnings = log.split('\n').filter((l) => /: warning: /.test(l));
    console.log(`crash: corrupt: bad=${bad.length} moved to corrupt/=${q.corrupt.filter((id) => bad.includes(id)).length} good delivered=${good.filter((n) => delivered.has(tokens.get(n)!)).length}/${good.length}`);
    for (const w of warnings) console.log(`crash: corrupt: ${w.replace(/^.*?: warning: /, 'warning: ')}`);

    assert.deepEqual(q.corrupt, bad, `corrupt/ holds exactly the damaged files; queue now: ${JSON.stringify(q)}`);
    for (const id of bad) assert.ok(warnings.some((w) => w.includes(id)), `no warning: line names ${id}`);
    assert.deepEqual(
      files.filter((f) => f.problem !== null).map((f) => `${f.file}: ${f.problem}`),
      [],
      'a damaged message was delivered (in part)',
    );
    for (const n of ['half', 'cut1', 'flip', 'tail', 'halfDeferred']) assert.equal(delivered.get(tokens.get(n)!), undefined, `damaged queue file ${n} (${ids.get(n)}) was delivered`);
    for (const n of good) assert.equal(delivered.get(tokens.get(n)!), 1, `good message ${n} (${ids.get(n)}) delivered once`);
    assert.equal(q.incoming.length + q.active.length + q.deferred.length, 0, `queue not empty: ${JSON.stringify(q)}`);
    ok = true;
  } finally {
    if (server !== null) await server.kill();
    if (ok && process.env.CRASH_KEEP !== '1') fs.rmSync(dir, { recursive: true, force: true });
    else console.log(`crash: test directory kept: ${dir}`);
  }
});

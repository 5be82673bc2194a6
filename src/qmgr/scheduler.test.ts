import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { queueMessage } from '../../test/harness/queue.js';
import { Cleanup, type CleanupInput } from '../cleanup/index.js';
import { loadConfig } from '../config/index.js';
import type { Config } from '../config/types.js';
import { Log, type MemoryLog } from '../log/index.js';
import type { DeliveryAgent, DeliveryRequest, DeliveryStatus } from '../queue/delivery.js';
import { queueFilePath } from '../queue/directories.js';
import type { EnvelopeRecipient } from '../queue/envelope.js';
import { readMessage, readQueueFile } from '../queue/file.js';
import { readStateLog } from '../queue/state-log.js';
import { triggerQmgr } from '../queue/trigger.js';
import { FORCE_EXPIRE_MODE, Qmgr, type TransportAgent } from './scheduler.js';
import { parseTrigger, startTriggerServer } from './trigger.js';

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-qmgr-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

/**
 * A settable clock shared by cleanup and qmgr (ms). Each reading advances it by 1 µs, so queue
 * ids (microseconds + inode) stay unique while inodes are reused.
 */
class Clock {
  constructor(public t: number) {}
  readonly now = (): number => {
    this.t += 0.001;
    return this.t;
  };
}

type Answer = (r: DeliveryRequest['recipients'][number], req: DeliveryRequest) => Partial<DeliveryStatus> & { dsn: string } | Promise<Partial<DeliveryStatus> & { dsn: string }>;

/** A fake agent: answers per recipient, remembers requests, counts deliveries in flight per nexthop. */
class FakeAgent implements DeliveryAgent {
  readonly requests: DeliveryRequest[] = [];
  readonly inflight = new Map<string, number>();
  readonly maxInflight = new Map<string, number>();
  total = 0;
  maxTotal = 0;
  constructor(
    public answer: Answer,
    private readonly relay = 'local',
  ) {}
  async deliver(req: DeliveryRequest): Promise<readonly DeliveryStatus[]> {
    this.requests.push(req);
    const n = (this.inflight.get(req.nexthop) ?? 0) + 1;
    this.inflight.set(req.nexthop, n);
    this.maxInflight.set(req.nexthop, Math.max(n, this.maxInflight.get(req.nexthop) ?? 0));
    this.total++;
    this.maxTotal = Math.max(this.maxTotal, this.total);
    try {
      const out: DeliveryStatus[] = [];
      for (const r of req.recipients) {
        const a = await this.answer(r, req);
        out.push({ index: r.index, action: a.dsn.startsWith('2') ? 'delivered' : a.dsn.startsWith('4') ? 'deferred' : 'failed', reason: 'delivered to maildir', relay: this.relay, connSeconds: 0, xmitSeconds: 0, ...a });
      }
      return out;
    } finally {
      this.inflight.set(req.nexthop, (this.inflight.get(req.nexthop) ?? 1) - 1);
      this.total--;
    }
  }
}

interface Setup {
  q: string;
  config: Config;
  log: MemoryLog;
  cleanup: Cleanup;
  clock: Clock;
  start(agents: Record<string, DeliveryAgent | TransportAgent>): Promise<Qmgr>;
  submit(rcpts: readonly (string | EnvelopeRecipient)[], o?: Partial<CleanupInput>): Promise<string>;
  texts(): string[];
  waitFor(re: RegExp, ms?: number): Promise<string>;
}

let seq = 0;
const T0 = Date.UTC(2026, 10, 25, 12, 0, 0);

async function setup(mainCf = ''): Promise<Setup> {
  seq += 1;
  const dir = path.join(tmp, `t${seq}`);
  const q = path.join(dir, 'queue');
  await fsp.mkdir(path.join(dir, 'etc'), { recursive: true });
  await fsp.writeFile(
    path.join(dir, 'etc', 'main.cf'),
    `compatibility_level = 3.6\nmyhostname = mx.example.test\nmydomain = example.test\nqueue_directory = ${q}\ninet_interfaces = loopback-only\nqueue_run_delay = 3600s\nminimal_backoff_time = 300s\nmaximal_backoff_time = 4000s\n${mainCf}`,
  );
  await fsp.writeFile(path.join(dir, 'etc', 'master.cf'), '');
  const config = await loadConfig({ configDir: path.join(dir, 'etc') });
  const clock = new Clock(T0);
  const log = Log.memory({ myhostname: 'mx.example.test', clock: () => new Date(clock.t) });
  const cleanup = new Cleanup({ queue_directory: q, params: config.params, log, clock: clock.now });
  const started: Qmgr[] = [];
  const s: Setup = {
    q,
    config,
    log,
    cleanup,
    clock,
    async start(agents) {
      const table = new Map<string, TransportAgent>();
      for (const [k, v] of Object.entries(agents)) table.set(k, 'deliver' in v ? { agent: v } : v);
      const m = await Qmgr.start({ config, log, agents: table, cleanup, clock: clock.now, interfaceAddresses: ['127.0.0.1'] });
      started.push(m);
      return m;
    },
    submit: (rcpts, o = {}) => queueMessage(cleanup, 'alice@mx.example.test', rcpts, 'From: alice@mx.example.test\r\nSubject: test\r\n\r\nbody\r\n', o),
    texts: () => log.texts(),
    async waitFor(re, ms = 3000) {
      const end = Date.now() + ms;
      for (;;) {
        const hit = log.lines.find((l) => re.test(l));
        if (hit !== undefined) return hit;
        if (Date.now() > end) throw new Error(`no log line matches ${re}\n${log.lines.join('\n')}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
  return s;
}

const ok: Answer = () => ({ dsn: '2.0.0' });

async function exists(p: string): Promise<boolean> {
  return fsp.stat(p).then(
    () => true,
    () => false,
  );
}

/** Polls `cond` every 5 ms until it holds; fails after `ms`. */
async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Deliveries that wait until released: one at a time (`releaseOne`) or all from now on (`open`). */
class Gate {
  private readonly held: (() => void)[] = [];
  private opened = false;
  readonly answer: Answer = () => (this.opened ? { dsn: '2.0.0' } : new Promise((resolve) => this.held.push(() => resolve({ dsn: '2.0.0' }))));
  get waiting(): number {
    return this.held.length;
  }
  releaseOne(): void {
    this.held.shift()?.();
  }
  open(): void {
    this.opened = true;
    for (const f of this.held.splice(0)) f();
  }
}

const queueIds = async (q: string, queue: string): Promise<string[]> => (await fsp.readdir(path.join(q, queue))).sort();

describe('qmgr: delivery', () => {
  test('qmgr: picks up a committed message at once (no polling delay) and logs Postfix lines (golden)', async () => {
    const s = await setup();
    const agent = new FakeAgent(ok);
    const m = await s.start({ local: agent });
    try {
      const t0 = Date.now();
      s.clock.t = T0;
      const id = await s.submit(['bob@mx.example.test']);
      s.clock.t = T0 + 160;
      await s.waitFor(new RegExp(`${id}: removed`));
      assert.ok(Date.now() - t0 < 1000, 'delivered well before queue_run_delay');
      const mine = s.log.lines.filter((l) => l.includes(`${id}:`) && !l.includes('/cleanup['));
      const pid = process.pid;
      assert.deepEqual(mine, [
        `Nov 25 12:00:00 mx postfix/qmgr[${pid}]: ${id}: from=<alice@mx.example.test>, size=52, nrcpt=1 (queue active)`,
        `Nov 25 12:00:00 mx postfix/local[${pid}]: ${id}: to=<bob@mx.example.test>, relay=local, delay=0.16, delays=0.16/0/0/0, dsn=2.0.0, status=sent (delivered to maildir)`,
        `Nov 25 12:00:00 mx postfix/qmgr[${pid}]: ${id}: removed`,
      ]);
      assert.equal(agent.requests.length, 1);
      const req = agent.requests[0]!;
      assert.equal(req.transport, 'local');
      assert.equal(req.nexthop, 'mx.example.test');
      assert.equal(req.queueFile, queueFilePath(s.q, 'active', id));
      assert.deepEqual(req.recipients, [{ index: 0, address: 'bob@mx.example.test', origAddress: null, notify: null, orcpt: null }]);
      assert.equal(await exists(queueFilePath(s.q, 'active', id)), false);
      assert.equal(await exists(path.join(s.q, 'state', id)), false, 'state log removed with the file');
    } finally {
      await m.stop();
    }
  });

  test('qmgr: a message finished in one pass never creates a state log; one with a deferred recipient keeps both records', async () => {
    const s = await setup('local_destination_recipient_limit = 2\n');
    const m = await s.start({ local: new FakeAgent((r) => ({ dsn: r.address.startsWith('later') ? '4.2.0' : '2.0.0' })) });
    const stateDir = path.join(s.q, 'state');
    await fsp.mkdir(stateDir, { recursive: true });
    const seen: string[] = [];
    // inotify reports a file that was created and unlinked again, which a listing afterwards cannot see.
    const watcher = fs.watch(stateDir, (_event, name) => seen.push(String(name)));
    try {
      const id = await s.submit(['a@mx.example.test']);
      await s.waitFor(new RegExp(`${id}: removed`));
      await sleep(50);
      assert.deepEqual(seen, [], 'no state log file was ever made for a message delivered in one pass');
      const id2 = await s.submit(['c@mx.example.test', 'later@mx.example.test']);
      await s.waitFor(new RegExp(`${id2}: to=<later@mx\\.example\\.test>.*status=deferred`));
      await m.idle();
      const recs = await readStateLog(s.q, id2, (await readQueueFile(queueFilePath(s.q, 'deferred', id2))).sha256);
      assert.deepEqual(
        recs.map((r) => `${r.kind} ${'rcpt' in r ? r.rcpt : ''}`),
        ['done 0', 'deferred 1'],
      );
    } finally {
      watcher.close();
      await m.stop();
    }
  });

  test('qmgr: a temporary failure defers with backoff (mtime = next try) and a flush retries it', async () => {
    const s = await setup();
    let fail = true;
    const agent = new FakeAgent(() => (fail ? { dsn: '4.4.1', reason: 'connect to x[192.0.2.1]:25: Connection refused', relay: 'none' } : { dsn: '2.0.0' }));
    const m = await s.start({ local: agent });
    try {
      const id = await s.submit(['bob@mx.example.test']);
      await s.waitFor(/status=deferred/);
      await m.idle();
      const deferred = queueFilePath(s.q, 'deferred', id);
      const st = await fsp.stat(deferred);
      assert.equal(Math.round(st.mtimeMs / 1000), T0 / 1000 + 300, 'minimal_backoff_time while young');
      assert.match(s.texts().find((t) => t.includes('status=deferred'))!, new RegExp(`^${id}: to=<bob@mx\\.example\\.test>, relay=none, delay=0, delays=0/0/0/0, dsn=4\\.4\\.1, status=deferred \\(connect to x\\[192\\.0\\.2\\.1\\]:25: Connection refused\\)$`));
      const qf = await readQueueFile(deferred);
      const recs = await readStateLog(s.q, id, qf.sha256);
      assert.deepEqual(
        recs.map((r) => [r.kind, r.kind === 'deferred' ? r.reason : '']),
        [['deferred', 'connect to x[192.0.2.1]:25: Connection refused']],
      );
      // A periodic scan leaves it alone until its time comes.
      await m.scan(false);
      await m.idle();
      assert.equal(agent.requests.length, 1);
      // Older mail backs off longer: the time in queue, up to maximal_backoff_time.
      s.clock.t = T0 + 1000_000;
      await m.scan(false);
      await m.idle();
      assert.equal(agent.requests.length, 2);
      assert.equal(Math.round((await fsp.stat(deferred)).mtimeMs / 1000), (T0 + 1000_000) / 1000 + 1000);
      fail = false;
      await m.flush();
      await m.idle();
      assert.equal(agent.requests.length, 3);
      assert.ok(s.texts().includes(`${id}: removed`));
      assert.equal(await exists(deferred), false);
    } finally {
      await m.stop();
    }
  });

  test('qmgr: maximal_queue_lifetime returns the mail as expired with a bounce to the sender', async () => {
    const s = await setup('maximal_queue_lifetime = 1d\n');
    const agent = new FakeAgent((r) => (r.address.startsWith('alice') ? { dsn: '2.0.0' } : { dsn: '4.2.2', reason: 'mailbox full' }));
    const m = await s.start({ local: agent });
    try {
      s.clock.t = T0 - 2 * 86400_000;
      const id = await s.submit(['bob@mx.example.test']);
      s.clock.t = T0;
      await s.waitFor(new RegExp(`${id}: removed`));
      await m.idle();
      const t = s.texts();
      const i = t.indexOf(`${id}: from=<alice@mx.example.test>, status=expired, returned to sender`);
      assert.ok(i > 0, t.join('\n'));
      assert.match(t[i - 1]!, /status=deferred \(mailbox full\)$/);
      const notice = t.find((x) => x.startsWith(`${id}: sender non-delivery notification: `));
      assert.ok(notice);
      const nid = notice.split(': ').pop()!;
      assert.ok(t.includes(`${nid}: removed`), 'the bounce itself was delivered to alice');
      const bounceReq = agent.requests.find((r) => r.queueId === nid)!;
      assert.equal(bounceReq.sender, '');
      assert.equal(bounceReq.recipients[0]!.address, 'alice@mx.example.test');
    } finally {
      await m.stop();
    }
  });

  test('qmgr: a permanent failure is logged bounced and returned; other recipients still delivered', async () => {
    const s = await setup();
    const agent = new FakeAgent((r) => (r.address.startsWith('nobody') ? { dsn: '5.1.1', reason: 'unknown user: "nobody"' } : { dsn: '2.0.0' }));
    const m = await s.start({ local: agent });
    try {
      const id = await s.submit(['bob@mx.example.test', 'nobody@mx.example.test']);
      await s.waitFor(new RegExp(`${id}: removed`));
      await m.idle();
      const t = s.texts();
      assert.ok(t.some((x) => x.startsWith(`${id}: to=<nobody@mx.example.test>, relay=local,`) && x.endsWith('dsn=5.1.1, status=bounced (unknown user: "nobody")')));
      assert.ok(t.some((x) => x.startsWith(`${id}: sender non-delivery notification: `)));
    } finally {
      await m.stop();
    }
  });

  test('qmgr: per-recipient state survives a restart: finished recipients are not repeated', async () => {
    const s = await setup('local_destination_recipient_limit = 1\n');
    const release: (() => void)[] = [];
    const first = new FakeAgent((r) =>
      r.address.startsWith('slow') ? new Promise<{ dsn: string }>((resolve) => release.push(() => resolve({ dsn: '2.0.0' }))) : { dsn: '2.0.0' },
    );
    let m = await s.start({ local: first });
    const id = await s.submit(['a@mx.example.test', 'slow@mx.example.test', 'b@mx.example.test']);
    await s.waitFor(/to=<b@mx\.example\.test>.*status=sent/);
    await s.waitFor(/to=<a@mx\.example\.test>.*status=sent/);
    // Stop while `slow` is still being delivered: the file stays in active/.
    await m.stop(Date.now() + 50);
    assert.equal(await exists(queueFilePath(s.q, 'active', id)), true);
    const second = new FakeAgent(ok);
    m = await s.start({ local: second });
    try {
      await s.waitFor(new RegExp(`${id}: removed`));
      await m.idle();
      assert.deepEqual(
        second.requests.flatMap((r) => r.recipients.map((x) => x.address)),
        ['slow@mx.example.test'],
      );
    } finally {
      for (const f of release) f();
      await m.stop();
    }
  });

  test('qmgr: a corrupt queue file goes to corrupt/ with a warning, the rest is still delivered; hold/ is untouched', async () => {
    const s = await setup();
    const m0 = await s.start({});
    await m0.stop();
    await fsp.writeFile(path.join(s.q, 'incoming', 'ABCDE12345'), 'POSTERN QUEUE 1\ngarbage');
    await fsp.writeFile(path.join(s.q, 'hold', 'ABCDE12346'), 'held');
    const agent = new FakeAgent(ok);
    const m = await s.start({ local: agent });
    try {
      const id = await s.submit(['bob@mx.example.test']);
      await s.waitFor(new RegExp(`${id}: removed`));
      await m.idle();
      const t = s.texts();
      assert.ok(t.includes('warning: ABCDE12345: message rejected: file too short (23 bytes)'), t.join('\n'));
      assert.ok(t.includes('warning: saving corrupt file "ABCDE12345" from queue "active" to queue "corrupt"'));
      assert.equal(await exists(path.join(s.q, 'corrupt', 'ABCDE12345')), true);
      assert.equal(await fsp.readFile(path.join(s.q, 'hold', 'ABCDE12346'), 'utf8'), 'held');
    } finally {
      await m.stop();
    }
  });

  test('qmgr: destination concurrency and recipient limits are respected', async () => {
    const s = await setup('smtp_destination_concurrency_limit = 2\nsmtp_destination_recipient_limit = 3\n');
    const agent = new FakeAgent(async () => {
      await new Promise((r) => setTimeout(r, 50));
      return { dsn: '2.0.0', reason: '250 ok' };
    }, 'x[192.0.2.1]:25');
    const m = await s.start({ smtp: agent });
    try {
      const subs: Promise<string>[] = [];
      for (let i = 0; i < 8; i++) for (const d of ['one.example', 'two.example']) subs.push(s.submit([`u${i}@${d}`]));
      const ids = await Promise.all(subs);
      ids.push(await s.submit(['a@three.example', 'b@three.example', 'c@three.example', 'd@three.example', 'e@three.example', 'f@three.example', 'g@three.example']));
      for (const id of ids) await s.waitFor(new RegExp(`${id}: removed`), 5000);
      assert.equal(agent.maxInflight.get('one.example'), 2);
      assert.equal(agent.maxInflight.get('two.example'), 2);
      const three = agent.requests.filter((r) => r.nexthop === 'three.example').map((r) => r.recipients.length);
      assert.deepEqual(three, [3, 3, 1]);
      assert.ok(agent.maxTotal >= 3, 'different destinations run in parallel');
    } finally {
      await m.stop();
    }
  });

  test('qmgr: master.cf maxproc limits deliveries over a transport', async () => {
    const s = await setup();
    const agent = new FakeAgent(async () => {
      await new Promise((r) => setTimeout(r, 10));
      return { dsn: '2.0.0' };
    });
    const m = await s.start({ smtp: { agent, maxproc: 1 } });
    try {
      const ids = [await s.submit(['a@one.example']), await s.submit(['a@two.example']), await s.submit(['a@three.example'])];
      for (const id of ids) await s.waitFor(new RegExp(`${id}: removed`));
      assert.equal(agent.maxTotal, 1);
    } finally {
      await m.stop();
    }
  });

  test('qmgr: a transport without an agent defers with "mail transport unavailable"', async () => {
    const s = await setup();
    const m = await s.start({});
    try {
      const id = await s.submit(['bob@remote.example']);
      await s.waitFor(/status=deferred/);
      await m.idle();
      const t = s.texts();
      assert.ok(t.includes('warning: connect to transport private/smtp: no delivery agent for this transport in this Postern (smtp client not implemented yet); mail for it is deferred'));
      assert.ok(s.log.lines.some((l) => new RegExp(`postfix/qmgr\\[\\d+\\]: ${id}: to=<bob@remote\\.example>, relay=none, delay=0, delays=0/0/0/0, dsn=4\\.3\\.0, status=deferred \\(mail transport unavailable\\)$`).test(l)));
      assert.equal(await exists(queueFilePath(s.q, 'deferred', id)), true);
    } finally {
      await m.stop();
    }
  });

  test('qmgr: transport_maps error: bounces through the built-in error agent, logged as error', async () => {
    const s = await setup('transport_maps = inline:{ {bad.example = error:5.7.1 no mail for you} }\n');
    const m = await s.start({ local: new FakeAgent(ok) });
    try {
      const id = await s.submit(['x@bad.example']);
      await s.waitFor(new RegExp(`${id}: removed`));
      assert.ok(s.log.lines.some((l) => new RegExp(`postfix/error\\[\\d+\\]: ${id}: to=<x@bad\\.example>, relay=none, .*dsn=5\\.7\\.1, status=bounced \\(no mail for you\\)$`).test(l)));
    } finally {
      await m.stop();
    }
  });

  test('qmgr: mail to the local double-bounce address is discarded by qmgr', async () => {
    const s = await setup();
    const agent = new FakeAgent(ok);
    const m = await s.start({ local: agent });
    try {
      const id = await s.submit(['double-bounce@mx.example.test']);
      await s.waitFor(new RegExp(`${id}: removed`));
      assert.equal(agent.requests.length, 0);
      assert.ok(s.texts().some((t) => t.startsWith(`${id}: to=<double-bounce@mx.example.test>, relay=none,`) && t.endsWith('status=sent (undeliverable postmaster notification discarded)')));
    } finally {
      await m.stop();
    }
  });

  test('qmgr: virtual aliases expand at delivery; expanded addresses finished before a restart are not repeated', async () => {
    const s = await setup('virtual_alias_maps = inline:{ {team@alias.example = a@mx.example.test, b@far.example} }\nvirtual_alias_domains = alias.example\n');
    const local = new FakeAgent(ok);
    let m = await s.start({ local });
    const id = await s.submit(['team@alias.example']);
    await s.waitFor(/to=<a@mx\.example\.test>, orig_to=<team@alias\.example>, relay=local, .*status=sent/);
    await s.waitFor(/to=<b@far\.example>, orig_to=<team@alias\.example>, relay=none, .*status=deferred \(mail transport unavailable\)/);
    await m.idle();
    await m.stop();
    const smtp = new FakeAgent(() => ({ dsn: '2.0.0', reason: '250 ok' }), 'far[192.0.2.9]:25');
    m = await s.start({ local, smtp });
    try {
      await m.flush();
      await s.waitFor(new RegExp(`${id}: removed`));
      assert.equal(local.requests.length, 1, 'a@ is not delivered again');
      assert.deepEqual(smtp.requests[0]!.recipients, [{ index: 0, address: 'b@far.example', origAddress: 'team@alias.example', notify: null, orcpt: null }]);
    } finally {
      await m.stop();
    }
  });

  test('qmgr: delay_warning_time sends one delay notice; NOTIFY=SUCCESS gets a success notice', async () => {
    const s = await setup('delay_warning_time = 1h\n');
    let deferBob = true;
    const agent = new FakeAgent((r) => (r.address.startsWith('bob') && deferBob ? { dsn: '4.2.0', reason: 'try later' } : { dsn: '2.0.0' }));
    const m = await s.start({ local: agent });
    try {
      s.clock.t = T0 - 2 * 3600_000;
      const id = await s.submit(['bob@mx.example.test', { address: 'carol@mx.example.test', notify: ['SUCCESS'], orcpt: null }]);
      s.clock.t = T0;
      await s.waitFor(new RegExp(`${id}: sender delay notification: `));
      await s.waitFor(new RegExp(`${id}: sender delivery status notification: `));
      await m.idle();
      await m.flush();
      await m.idle();
      assert.equal(s.texts().filter((t) => t.startsWith(`${id}: sender delay notification:`)).length, 1, 'only once');
      deferBob = false;
      await m.flush();
      await s.waitFor(new RegExp(`${id}: removed`));
      assert.equal(agent.requests.filter((r) => r.queueId === id && r.recipients.some((x) => x.address.startsWith('carol'))).length, 1);
    } finally {
      await m.stop();
    }
  });

  test('qmgr: postsuper -e (group-execute bit) returns a deferred message with the reason of its last deferral, without another delivery attempt', async () => {
    const s = await setup();
    const bounces: string[] = [];
    let tries = 0;
    const agent = new FakeAgent(async (r, req) => {
      if (req.sender === '') {
        bounces.push((await readMessage(req.file!)).toString('utf8').replace(/\r\n/g, '\n'));
        return { dsn: '2.0.0' };
      }
      if (r.address.startsWith('carol')) return { dsn: '2.0.0' };
      tries++;
      return { dsn: '4.2.0', reason: tries === 1 ? 'mailbox locked' : 'mailbox busy' };
    });
    const m = await s.start({ local: agent });
    try {
      const id = await s.submit(['bob@mx.example.test', 'carol@mx.example.test']);
      await s.waitFor(/status=deferred \(mailbox locked\)/);
      await m.idle();
      await m.flush();
      await s.waitFor(/status=deferred \(mailbox busy\)/);
      await m.idle();
      const before = agent.requests.length;
      const lines = s.log.lines.length;
      await fsp.chmod(queueFilePath(s.q, 'deferred', id), 0o600 | FORCE_EXPIRE_MODE);
      await m.flush();
      await s.waitFor(new RegExp(`${id}: removed`));
      await until(() => bounces.length === 1, 'the bounce delivered');
      // Postfix 3.7 qmgr_active_done_25_generic(): no error(8) line, the bounce from the defer log.
      const mine = s.log.lines
        .slice(lines)
        .map((l) => /postfix\/(\w+)\[\d+\]: (.*)$/.exec(l)!)
        .filter((x) => x[2]!.startsWith(`${id}: `))
        .map((x) => `${x[1]}: ${x[2]!.replace(/size=\d+/, 'size=N').replace(/notification: \w+$/, 'notification: NEW')}`);
      assert.deepEqual(mine, [
        `qmgr: ${id}: from=<alice@mx.example.test>, size=N, nrcpt=1 (queue active)`,
        `qmgr: ${id}: from=<alice@mx.example.test>, status=force-expired, returned to sender`,
        `bounce: ${id}: sender non-delivery notification: NEW`,
        `qmgr: ${id}: removed`,
      ]);
      assert.equal(agent.requests.filter((r) => r.queueId === id).length, before, 'no delivery attempt');
      assert.match(bounces[0]!, /\n<bob@mx\.example\.test>: mailbox busy\n/);
      assert.match(bounces[0]!, /\nStatus: 4\.2\.0\nDiagnostic-Code: X-Postfix; mailbox busy\n/);
      assert.doesNotMatch(bounces[0]!, /carol@|mailbox locked|administratively/);
    } finally {
      await m.stop();
    }
  });

  test('qmgr: a force-expired message never deferred goes to the retry service, which logs and reports "message is administratively expired"', async () => {
    const s = await setup();
    const bounces: string[] = [];
    const agent = new FakeAgent(async (_r, req) => {
      if (req.sender === '') bounces.push((await readMessage(req.file!)).toString('utf8').replace(/\r\n/g, '\n'));
      return { dsn: '2.0.0' };
    });
    await (await s.start({})).stop();
    const id = await s.submit(['bob@mx.example.test']);
    await fsp.chmod(queueFilePath(s.q, 'incoming', id), 0o600 | FORCE_EXPIRE_MODE);
    const m = await s.start({ local: agent });
    try {
      await s.waitFor(new RegExp(`${id}: removed`));
      await until(() => bounces.length === 1, 'the bounce delivered');
      assert.equal(agent.requests.filter((r) => r.queueId === id).length, 0, 'never delivered');
      assert.ok(s.log.lines.some((l) => new RegExp(`postfix/error\\[\\d+\\]: ${id}: to=<bob@mx\\.example\\.test>, relay=none, .*dsn=4\\.7\\.0, status=deferred \\(message is administratively expired\\)$`).test(l)));
      assert.ok(s.texts().includes(`${id}: from=<alice@mx.example.test>, status=force-expired, returned to sender`));
      assert.match(bounces[0]!, /\nStatus: 4\.7\.0\nDiagnostic-Code: X-Postfix; message is administratively expired\n/);
    } finally {
      await m.stop();
    }
  });

  test('qmgr: a force-expired virtual alias returns each deferred address with its own reason, Remote-MTA and diagnostic; delivered ones are not reported', async () => {
    const s = await setup('virtual_alias_maps = inline:{ {team@alias.example = a@mx.example.test, b@far.example, c@far.example} }\nvirtual_alias_domains = alias.example\n');
    const bounces: string[] = [];
    const local = new FakeAgent(async (_r, req) => {
      if (req.sender === '') bounces.push((await readMessage(req.file!)).toString('utf8').replace(/\r\n/g, '\n'));
      return { dsn: '2.0.0' };
    });
    const smtp = new FakeAgent(
      (r) =>
        r.address.startsWith('b@')
          ? { dsn: '4.4.1', reason: 'Connection refused' }
          : { dsn: '4.2.2', reason: 'host far.example[192.0.2.9] said: 452 4.2.2 mailbox full (in reply to RCPT TO command)', remoteMta: 'far.example', diagnostic: '452 4.2.2 mailbox full' },
      'far.example[192.0.2.9]:25',
    );
    const m = await s.start({ local, smtp });
    try {
      const id = await s.submit(['team@alias.example']);
      await s.waitFor(/to=<c@far\.example>, orig_to=<team@alias\.example>, .*status=deferred/);
      await m.idle();
      const tries = smtp.requests.length;
      await fsp.chmod(queueFilePath(s.q, 'deferred', id), 0o600 | FORCE_EXPIRE_MODE);
      await m.flush();
      await s.waitFor(new RegExp(`${id}: removed`));
      await until(() => bounces.length === 1, 'the bounce delivered');
      assert.equal(smtp.requests.length, tries, 'no delivery attempt');
      const b = bounces[0]!;
      assert.match(b, /\n<b@far\.example> \(expanded from <team@alias\.example>\): Connection refused\n/);
      assert.match(b, /\nFinal-Recipient: rfc822; c@far\.example\nOriginal-Recipient: rfc822; team@alias\.example\nAction: failed\nStatus: 4\.2\.2\nRemote-MTA: dns; far\.example\nDiagnostic-Code: smtp; 452 4\.2\.2 mailbox full\n/);
      assert.doesNotMatch(b, /Final-Recipient: rfc822; a@/);
    } finally {
      await m.stop();
    }
  });
});

describe('qmgr: limits, backoff and lifetimes', () => {
  test('qmgr: qmgr_message_active_limit: of 7 messages queued before start exactly 3 are active while deliveries block; each finished one lets exactly one more in', async () => {
    const s = await setup('qmgr_message_active_limit = 3\n');
    await (await s.start({})).stop();
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push(await s.submit([`u${i}@mx.example.test`]));
    assert.equal((await queueIds(s.q, 'incoming')).length, 7);
    const gate = new Gate();
    let maxActive = 0;
    const agent = new FakeAgent((r, req) => {
      maxActive = Math.max(maxActive, fs.readdirSync(path.join(s.q, 'active')).length);
      return gate.answer(r, req);
    });
    const m = await s.start({ local: agent });
    try {
      await until(() => agent.requests.length === 3, '3 deliveries');
      await m.scan(false);
      await sleep(50);
      assert.equal(agent.requests.length, 3, 'no fourth message activated while 3 are active');
      assert.equal(m.activeCount, 3);
      assert.deepEqual(await queueIds(s.q, 'active'), agent.requests.map((r) => r.queueId).sort());
      assert.equal((await queueIds(s.q, 'incoming')).length, 4);
      for (let k = 1; k <= 4; k++) {
        gate.releaseOne();
        await until(() => agent.requests.length === 3 + k, `delivery ${3 + k}`);
        await sleep(20);
        assert.equal(agent.requests.length, 3 + k, 'one finished message lets one more in');
        assert.equal((await queueIds(s.q, 'active')).length, 3);
        assert.equal((await queueIds(s.q, 'incoming')).length, 4 - k);
      }
      gate.open();
      for (const id of ids) await s.waitFor(new RegExp(`${id}: removed`));
      await m.idle();
      assert.deepEqual(agent.requests.map((r) => r.queueId).sort(), [...ids].sort(), 'each message delivered once');
      assert.deepEqual(await queueIds(s.q, 'active'), []);
      assert.deepEqual(await queueIds(s.q, 'incoming'), []);
      assert.ok(maxActive <= 3, `active/ held ${maxActive}`);
    } finally {
      gate.open();
      await m.stop();
    }
  });

  test('qmgr: default_destination_recipient_limit splits a message to one destination into requests of at most that many recipients (no transport setting)', async () => {
    const s = await setup('default_destination_recipient_limit = 3\ntransport_maps = inline:{ {custom.example = custom:} }\n');
    const smtp = new FakeAgent(() => ({ dsn: '2.0.0', reason: '250 ok' }), 'x[192.0.2.1]:25');
    const custom = new FakeAgent(ok, 'custom');
    const m = await s.start({ smtp, custom });
    const rcpts = (d: string, n: number): string[] => Array.from({ length: n }, (_, i) => `r${i}@${d}`);
    try {
      const a = await s.submit(rcpts('far.example', 7));
      const b = await s.submit(rcpts('custom.example', 7));
      await s.waitFor(new RegExp(`${a}: removed`));
      await s.waitFor(new RegExp(`${b}: removed`));
      // smtp_destination_recipient_limit defaults to $default_destination_recipient_limit; a
      // transport without a parameter of its own (custom) takes the default directly.
      for (const [agent, d] of [[smtp, 'far.example'], [custom, 'custom.example']] as const) {
        const r = rcpts(d, 7);
        assert.deepEqual(
          agent.requests.map((x) => x.recipients.map((y) => y.address)),
          [r.slice(0, 3), r.slice(3, 6), r.slice(6)],
        );
      }
    } finally {
      await m.stop();
    }
    // Unset, the limit is Postfix's default 50.
    const d = await setup();
    const agent = new FakeAgent(() => ({ dsn: '2.0.0', reason: '250 ok' }), 'x[192.0.2.1]:25');
    const m2 = await d.start({ smtp: agent });
    try {
      const id = await d.submit(rcpts('far.example', 51));
      await d.waitFor(new RegExp(`${id}: removed`));
      assert.deepEqual(agent.requests.map((x) => x.recipients.length), [50, 1]);
    } finally {
      await m2.stop();
    }
  });

  test('qmgr: default_destination_concurrency_limit caps deliveries in flight to one destination when the transport has no limit of its own', async () => {
    const s = await setup('default_destination_concurrency_limit = 2\ntransport_maps = inline:{ {custom.example = custom:} }\n');
    const gate = new Gate();
    const smtp = new FakeAgent(gate.answer, 'x[192.0.2.1]:25');
    const custom = new FakeAgent(gate.answer, 'custom');
    const m = await s.start({ smtp, custom });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await s.submit([`u${i}@one.example`]));
      for (let i = 0; i < 5; i++) ids.push(await s.submit([`u${i}@custom.example`]));
      ids.push(await s.submit(['u@two.example']));
      await until(() => m.activeCount === ids.length, 'all messages active');
      await until(() => gate.waiting === 5, '5 deliveries waiting');
      await sleep(50);
      assert.equal(smtp.inflight.get('one.example'), 2, 'smtp: 2 of 5 in flight to one.example');
      assert.equal(smtp.inflight.get('two.example'), 1, 'another destination is not held back');
      assert.equal(custom.inflight.get('custom.example'), 2, 'custom: 2 of 5 in flight');
      assert.equal(gate.waiting, 5);
      gate.open();
      for (const id of ids) await s.waitFor(new RegExp(`${id}: removed`));
      assert.equal(smtp.requests.length, 6);
      assert.equal(custom.requests.length, 5);
      assert.equal(smtp.maxInflight.get('one.example'), 2);
      assert.equal(custom.maxInflight.get('custom.example'), 2);
    } finally {
      gate.open();
      await m.stop();
    }
  });

  test('qmgr: the next try (file mtime) is the time in queue, never below minimal_backoff_time nor beyond maximal_backoff_time', async () => {
    // setup(): minimal_backoff_time = 300s, maximal_backoff_time = 4000s.
    const s = await setup('maximal_queue_lifetime = 100d\n');
    const agent = new FakeAgent(() => ({ dsn: '4.4.1', reason: 'no route' }));
    const m = await s.start({ local: agent });
    try {
      const id = await s.submit(['bob@mx.example.test']);
      const deferred = queueFilePath(s.q, 'deferred', id);
      await s.waitFor(/status=deferred/);
      await m.idle();
      assert.ok(Math.abs((await fsp.stat(deferred)).mtimeMs - (T0 + 300_000)) < 50, 'first try: minimal_backoff_time');
      // [seconds in queue, expected backoff]: each retry is forced by a flush at that age.
      const table: [number, number][] = [
        [100, 300],
        [299, 300],
        [1000, 1000],
        [3999, 3999],
        [4000, 4000],
        [4001, 4000],
        [86_400, 4000],
        [50 * 86_400, 4000],
      ];
      for (const [age, want] of table) {
        const now = T0 + age * 1000 + 500;
        s.clock.t = now;
        await m.flush();
        await m.idle();
        const ahead = ((await fsp.stat(deferred)).mtimeMs - now) / 1000;
        assert.ok(Math.abs(ahead - want) < 0.05, `age ${age}s: next try ${ahead}s ahead, want ${want}s`);
      }
      assert.equal(agent.requests.length, table.length + 1);
    } finally {
      await m.stop();
    }
  });

  test('qmgr: maximal_backoff_time below minimal_backoff_time: minimal_backoff_time wins, as in Postfix', async () => {
    const s = await setup('minimal_backoff_time = 600s\nmaximal_backoff_time = 300s\n');
    const agent = new FakeAgent(() => ({ dsn: '4.4.1', reason: 'no route' }));
    const m = await s.start({ local: agent });
    try {
      const id = await s.submit(['bob@mx.example.test']);
      const deferred = queueFilePath(s.q, 'deferred', id);
      await s.waitFor(/status=deferred/);
      await m.idle();
      for (const age of [0, 1000, 86_400]) {
        const now = T0 + age * 1000 + 500;
        if (age > 0) {
          s.clock.t = now;
          await m.flush();
          await m.idle();
        }
        const ahead = ((await fsp.stat(deferred)).mtimeMs - (age > 0 ? now : T0)) / 1000;
        assert.ok(Math.abs(ahead - 600) < 1, `age ${age}s: next try ${ahead}s ahead, want 600s`);
      }
    } finally {
      await m.stop();
    }
  });

  test('qmgr: queue_run_delay: the periodic scan retries a deferred message once its time has come, without a kick or flush', async () => {
    const s = await setup('queue_run_delay = 1s\n');
    let fail = true;
    const agent = new FakeAgent(() => (fail ? { dsn: '4.4.1', reason: 'no route' } : { dsn: '2.0.0' }));
    const m = await s.start({ local: agent });
    try {
      const id = await s.submit(['bob@mx.example.test']);
      await s.waitFor(/status=deferred/);
      await m.idle();
      fail = false;
      // Scans before the retry time (T0 + 300 s) leave it alone.
      await sleep(1500);
      assert.equal(agent.requests.length, 1, 'not retried before its time');
      assert.equal(await exists(queueFilePath(s.q, 'deferred', id)), true);
      s.clock.t = T0 + 301_000;
      const t = Date.now();
      await s.waitFor(new RegExp(`${id}: removed`), 4000);
      const waited = Date.now() - t;
      assert.ok(waited < 2500, `retried ${waited} ms after its time; queue_run_delay is 1 s`);
      assert.equal(agent.requests.length, 2);
    } finally {
      await m.stop();
    }
  });

  test('qmgr: bounce_queue_lifetime expires a deferred bounce (null sender) with status=expired and no bounce of the bounce; other mail keeps maximal_queue_lifetime', async () => {
    for (const classes of [null, '2bounce']) {
      const s = await setup(`maximal_queue_lifetime = 5d\nbounce_queue_lifetime = 1d\n2bounce_notice_recipient = admin@mx.example.test\n${classes !== null ? `notify_classes = ${classes}\n` : ''}`);
      await (await s.start({})).stop();
      s.clock.t = T0 - 2 * 86400_000;
      const bounce = await s.submit(['bob@mx.example.test'], { sender: '' });
      const normal = await s.submit(['carol@mx.example.test']);
      s.clock.t = T0;
      const agent = new FakeAgent((r) => (r.address.startsWith('admin') ? { dsn: '2.0.0' } : { dsn: '4.2.2', reason: 'mailbox full' }));
      const m = await s.start({ local: agent });
      try {
        await s.waitFor(new RegExp(`${bounce}: removed`));
        await s.waitFor(new RegExp(`${normal}: to=.*status=deferred`));
        await m.idle();
        const t = s.texts();
        const i = t.indexOf(`${bounce}: from=<>, status=expired, returned to sender`);
        const d = t.findIndex((x) => new RegExp(`^${bounce}: to=<bob@mx\\.example\\.test>, .*status=deferred \\(mailbox full\\)$`).test(x));
        assert.ok(d >= 0 && i > d, `tried once more, then expired\n${t.join('\n')}`);
        assert.ok(!t.some((x) => x.startsWith(`${bounce}: sender non-delivery notification`)), 'never a bounce to <>');
        assert.ok(!t.some((x) => x.startsWith(`${normal}: from=<alice@mx.example.test>, status=`)), 'mail from a sender: 2 days < maximal_queue_lifetime');
        assert.equal(await exists(queueFilePath(s.q, 'deferred', normal)), true);
        const pm = t.filter((x) => x.startsWith(`${bounce}: postmaster non-delivery notification: `));
        if (classes === null) {
          assert.deepEqual(pm, [], 'default notify_classes: the expired bounce is dropped');
          assert.deepEqual(agent.requests.map((r) => r.queueId).sort(), [bounce, normal].sort(), 'no new message');
        } else {
          assert.equal(pm.length, 1, t.join('\n'));
          const nid = pm[0]!.split(': ').pop()!;
          await s.waitFor(new RegExp(`${nid}: removed`));
          const req = agent.requests.find((r) => r.queueId === nid)!;
          assert.equal(req.sender, 'double-bounce@mx.example.test');
          assert.deepEqual(req.recipients.map((r) => r.address), ['admin@mx.example.test']);
        }
      } finally {
        await m.stop();
      }
    }
  });

  test('qmgr: bounce_queue_lifetime above maximal_queue_lifetime is cut to it, with Postfix\'s warning', async () => {
    const s = await setup('maximal_queue_lifetime = 1d\nbounce_queue_lifetime = 5d\n');
    await (await s.start({})).stop();
    s.clock.t = T0 - 2 * 86400_000;
    const id = await s.submit(['bob@mx.example.test'], { sender: '' });
    s.clock.t = T0;
    const m = await s.start({ local: new FakeAgent(() => ({ dsn: '4.2.2', reason: 'mailbox full' })) });
    try {
      await s.waitFor(new RegExp(`${id}: removed`));
      const t = s.texts();
      assert.ok(t.includes('warning: bounce_queue_lifetime is larger than maximal_queue_lifetime - adjusting bounce_queue_lifetime'), t.join('\n'));
      assert.ok(t.includes(`${id}: from=<>, status=expired, returned to sender`));
    } finally {
      await m.stop();
    }
  });

  test('qmgr: a bounce that fails permanently goes to 2bounce_notice_recipient when notify_classes has 2bounce or bounce, else nowhere; a failed double bounce is discarded', async () => {
    const cases: { classes: string | null; notice: boolean; adminFails?: boolean }[] = [
      { classes: null, notice: false },
      { classes: 'delay, resource, software', notice: false },
      { classes: '2bounce', notice: true },
      { classes: 'bounce', notice: true },
      { classes: '2bounce', notice: true, adminFails: true },
    ];
    for (const c of cases) {
      const name = `notify_classes=${c.classes ?? '(default)'}${c.adminFails === true ? ', double bounce fails' : ''}`;
      const s = await setup(`2bounce_notice_recipient = admin@mx.example.test\nbounce_notice_recipient = pm@mx.example.test\n${c.classes !== null ? `notify_classes = ${c.classes}\n` : ''}`);
      const agent = new FakeAgent((r) => (r.address.startsWith('nobody') || (c.adminFails === true && r.address.startsWith('admin')) ? { dsn: '5.1.1', reason: `unknown user: "${r.address.split('@')[0]}"` } : { dsn: '2.0.0' }));
      const m = await s.start({ local: agent });
      try {
        const id = await s.submit(['nobody@mx.example.test'], { sender: '' });
        await s.waitFor(new RegExp(`${id}: removed`));
        await m.idle();
        let t = s.texts();
        assert.ok(t.some((x) => x.startsWith(`${id}: to=<nobody@mx.example.test>, `) && x.endsWith('status=bounced (unknown user: "nobody")')), name);
        assert.ok(!t.some((x) => x.startsWith(`${id}: sender non-delivery notification`)), `${name}: never a bounce to <>`);
        const pm = t.filter((x) => x.startsWith(`${id}: postmaster non-delivery notification: `));
        if (!c.notice) {
          assert.deepEqual(pm, [], name);
          assert.deepEqual(agent.requests.map((r) => r.queueId), [id], `${name}: no new message`);
          continue;
        }
        assert.equal(pm.length, 1, `${name}\n${t.join('\n')}`);
        const nid = pm[0]!.split(': ').pop()!;
        await s.waitFor(new RegExp(`${nid}: removed`));
        await m.idle();
        const reqs = agent.requests.filter((r) => r.queueId === nid);
        assert.equal(reqs.length, 1, name);
        assert.equal(reqs[0]!.sender, 'double-bounce@mx.example.test', name);
        assert.deepEqual(reqs[0]!.recipients.map((r) => r.address), ['admin@mx.example.test'], `${name}: to 2bounce_notice_recipient, not bounce_notice_recipient`);
        t = s.texts();
        if (c.adminFails === true) {
          assert.ok(t.includes(`warning: ${nid}: undeliverable postmaster notification discarded`), `${name}\n${t.join('\n')}`);
          assert.ok(!t.some((x) => x.startsWith(`${nid}: `) && x.includes('notification: ')), `${name}: no triple bounce`);
        }
        assert.equal(agent.requests.length, 2, `${name}: the bounce and the double bounce only`);
      } finally {
        await m.stop();
      }
    }
  });
});

describe('qmgr: trigger endpoint', () => {
  test('qmgr: trigger requests parse as Postfix letters and S site', () => {
    assert.deepEqual(parseTrigger('FAD'), { scanIncoming: true, scanDeferred: true, all: true, site: null });
    assert.deepEqual(parseTrigger('I'), { scanIncoming: true, scanDeferred: false, all: false, site: null });
    assert.deepEqual(parseTrigger('S example.com'), { scanIncoming: false, scanDeferred: false, all: false, site: 'example.com' });
    assert.ok('error' in parseTrigger('X'));
    assert.ok('error' in parseTrigger('S '));
  });

  test('qmgr: triggerQmgr reaches a running qmgr; without one it fails with "qmgr is not running"', async () => {
    const s = await setup();
    const calls: string[] = [];
    await assert.rejects(triggerQmgr(s.q, 'flush'), /qmgr is not running/);
    const server = await startTriggerServer(s.q, { scan: async (all) => void calls.push(`scan ${all}`), flushSite: async (site) => void calls.push(`site ${site}`) }, s.log.logger('qmgr'));
    try {
      assert.equal(((await fsp.stat(server.path)).mode & 0o777).toString(8), '666');
      await triggerQmgr(s.q, 'flush');
      await triggerQmgr(s.q, { site: 'example.org' });
      await triggerQmgr(s.q, 'scan');
      assert.deepEqual(calls, ['scan true', 'site example.org', 'scan false']);
    } finally {
      await server.close();
    }
  });

  test('qmgr: postqueue -s site delivers only that site\'s deferred mail', async () => {
    const s = await setup();
    let fail = true;
    const agent = new FakeAgent(() => (fail ? { dsn: '4.4.1', reason: 'no route' } : { dsn: '2.0.0', reason: '250 ok' }), 'x[192.0.2.1]:25');
    const m = await s.start({ smtp: agent });
    try {
      const a = await s.submit(['u@site.example']);
      const b = await s.submit(['u@other.example']);
      await s.waitFor(new RegExp(`${a}: to=.*status=deferred`));
      await s.waitFor(new RegExp(`${b}: to=.*status=deferred`));
      await m.idle();
      fail = false;
      await m.flushSite('SITE.example');
      await s.waitFor(new RegExp(`${a}: removed`));
      await m.idle();
      assert.equal(await exists(queueFilePath(s.q, 'deferred', b)), true);
    } finally {
      await m.stop();
    }
  });
});

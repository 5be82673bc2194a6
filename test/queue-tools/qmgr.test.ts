/**
 * The queue tools against a running qmgr (the real scheduler and its trigger endpoint): sendmail
 * with the server stopped, then pickup + qmgr; mailq showing qmgr's deferral reasons; postqueue -f
 * through the trigger; postsuper hold/release/requeue/delete while qmgr works on the queue.
 * Delivery goes to a fake `smtp` agent, so nothing leaves the host.
 */
import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { Cleanup } from '../../src/cleanup/index.js';
import { main as postqueue } from '../../src/cli/postqueue.js';
import { postsuper } from '../../src/cli/postsuper.js';
import { sendmail } from '../../src/cli/sendmail.js';
import { loadConfig } from '../../src/config/index.js';
import { Log, type MemoryLog } from '../../src/log/index.js';
import { startPickup } from '../../src/pickup/index.js';
import { Qmgr, startTriggerServer, type TransportAgent, type TriggerServer } from '../../src/qmgr/index.js';
import type { DeliveryAgent, DeliveryRequest, DeliveryStatus } from '../../src/queue/delivery.js';
import { cliContext } from '../harness/cli.js';
import { queueConfig } from '../harness/queue.js';
import { tempRoot } from '../harness/scratch.js';

const tmp = tempRoot('postern-qtools-');

const REFUSED = 'connect to 192.0.2.1[192.0.2.1]:25: Connection refused';

/** An smtp agent that defers everything (or waits for `gate` first), counting requests. */
class DeferringAgent implements DeliveryAgent {
  requests: DeliveryRequest[] = [];
  gate: Promise<void> | null = null;
  async deliver(req: DeliveryRequest): Promise<readonly DeliveryStatus[]> {
    this.requests.push(req);
    if (this.gate) await this.gate;
    return req.recipients.map((r) => ({ index: r.index, dsn: '4.4.1', action: 'deferred', reason: REFUSED, relay: 'none', connSeconds: 0, xmitSeconds: 0 }));
  }
}

interface Server {
  log: MemoryLog;
  agent: DeferringAgent;
  qmgr: Qmgr;
  stop(): Promise<void>;
}

async function setup() {
  const { etc, q } = await queueConfig(
    tmp(),
    ({ q, maillog }) =>
      `compatibility_level = 3.6\nmyhostname = mx.example.test\nmydomain = example.test\nqueue_directory = ${q}\ninet_interfaces = loopback-only\nqueue_run_delay = 3600s\nmaillog_file = ${maillog}\n`,
    { createQueue: false, masterCf: '' },
  );
  const { ctx, out, err } = cliContext(etc);
  const take = (): { out: string; err: string } => {
    const r = { out: out.text(), err: err.text() };
    out.clear();
    err.clear();
    return r;
  };
  /** The server's queue side: cleanup, pickup, qmgr with a deferring smtp agent, the trigger. */
  async function start(): Promise<Server> {
    const config = await loadConfig({ configDir: etc });
    const log = Log.memory({ myhostname: 'mx.example.test' });
    const cleanup = new Cleanup({ queue_directory: q, params: config.params, log });
    const agent = new DeferringAgent();
    const agents = new Map<string, TransportAgent>([['smtp', { agent }]]);
    const qmgr = await Qmgr.start({ config, log, agents, cleanup, interfaceAddresses: ['127.0.0.1'] });
    const trigger: TriggerServer = await startTriggerServer(q, qmgr, log.logger('qmgr'));
    const pickup = startPickup({ config, log, cleanup });
    await pickup.ready;
    return {
      log,
      agent,
      qmgr,
      async stop() {
        await pickup.stop();
        await trigger.close();
        await qmgr.stop();
      },
    };
  }
  return { q, ctx, take, start };
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const ls = async (q: string, d: string): Promise<string[]> => (await fsp.readdir(path.join(q, d))).filter((n) => !n.includes('.')).sort();

describe('queue tools with a running qmgr', () => {
  test('sendmail while stopped → pickup + qmgr at start → mailq shows qmgr\'s reason → postqueue -f retries through the trigger', async () => {
    const s = await setup();
    const stdin = Readable.from([Buffer.from('Subject: queued while down\n\nhello\n')]);
    assert.equal(await sendmail(['-f', 'alice@example.org', 'bob@remote.example'], s.ctx, 'sendmail', { stdin, uid: 1000, user: 'alice' }), 0);
    assert.equal((await ls(s.q, 'maildrop')).length, 1);
    // postqueue -f with the server stopped: Postfix's error and status.
    assert.equal(await postqueue(['-f'], s.ctx), 69);
    assert.equal(s.take().err, 'postqueue: fatal: Cannot flush mail queue - mail system is down\n');

    const srv = await s.start();
    try {
      await until('a deferral', async () => (await ls(s.q, 'deferred')).length === 1);
      await srv.qmgr.idle();
      const [id] = await ls(s.q, 'deferred');
      // uid= is the maildrop file's owner (this process), not what sendmail was told.
      assert.ok(srv.log.texts().includes(`${id}: uid=${process.getuid?.() ?? 0} from=<alice@example.org>`), srv.log.texts().join('\n'));
      assert.equal(await postqueue(['-p'], s.ctx), 0);
      const listing = s.take().out.split('\n');
      assert.match(listing[1]!, new RegExp(`^${id} +\\d+ \\w{3} \\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d {2}alice@example\\.org$`));
      assert.equal(listing[2], `${' '.repeat(76 - REFUSED.length)}(${REFUSED})`);
      assert.equal(listing[3], `${' '.repeat(41)}bob@remote.example`);

      const before = srv.agent.requests.length;
      assert.equal(await postqueue(['-f'], s.ctx), 0, s.take().err);
      await until('a retry after the flush', () => srv.agent.requests.length > before);
      await srv.qmgr.idle();
    } finally {
      await srv.stop();
    }
  });

  test('postsuper -h/-H/-r/-d with qmgr running: hold is left alone, release and requeue go back to qmgr, delete mid-delivery loses nothing else', async () => {
    const s = await setup();
    const srv = await s.start();
    try {
      for (const who of ['a', 'b']) {
        const stdin = Readable.from([Buffer.from(`Subject: ${who}\n\n`)]);
        assert.equal(await sendmail([`${who}@remote.example`], s.ctx, 'sendmail', { stdin, uid: 1000, user: 'u' }), 0);
      }
      await until('two deferrals', async () => (await ls(s.q, 'deferred')).length === 2);
      await srv.qmgr.idle();

      assert.equal(await postsuper(['-h', 'ALL'], s.ctx), 0);
      assert.equal(s.take().err, 'postsuper: Placed on hold: 2 messages\n');
      const held = await ls(s.q, 'hold');
      assert.equal(held.length, 2);
      const n = srv.agent.requests.length;
      assert.equal(await postqueue(['-f'], s.ctx), 0);
      await new Promise((r) => setTimeout(r, 100));
      await srv.qmgr.idle();
      assert.equal(srv.agent.requests.length, n, 'qmgr never touches hold/');
      assert.equal(await postqueue(['-p'], s.ctx), 0);
      assert.equal(s.take().out.split('\n').filter((l) => /^[0-9A-F]+! /.test(l)).length, 2);

      // Requeue one: back to incoming/, qmgr is kicked through the trigger and tries it now.
      assert.equal(await postsuper(['-r', held[0]!], s.ctx), 0);
      assert.equal(s.take().err, `postsuper: ${held[0]}: requeued\npostsuper: Requeued: 1 message\n`);
      await until('the requeued message is retried', () => srv.agent.requests.length > n);
      await until('it is deferred again', async () => (await ls(s.q, 'deferred')).includes(held[0]!));
      await srv.qmgr.idle();

      // Release the other; then delete everything while a delivery attempt is in flight.
      assert.equal(await postsuper(['-H', held[1]!], s.ctx), 0);
      assert.deepEqual(await ls(s.q, 'hold'), []);
      let open!: () => void;
      srv.agent.gate = new Promise((r) => {
        open = r;
      });
      const m = srv.agent.requests.length;
      assert.equal(await postqueue(['-f'], s.ctx), 0);
      await until('a delivery in flight', () => srv.agent.requests.length > m);
      assert.ok((await ls(s.q, 'active')).length >= 1);
      s.take();
      assert.equal(await postsuper(['-d', 'ALL'], s.ctx), 0);
      assert.equal(s.take().err, 'postsuper: Deleted: 2 messages\n');
      open();
      await srv.qmgr.idle();
      for (const d of ['incoming', 'active', 'deferred', 'hold', 'maildrop']) assert.deepEqual(await ls(s.q, d), [], d);
      const warnings = srv.log.texts().filter((t) => t.startsWith('warning:') || t.startsWith('panic:') || t.startsWith('fatal:'));
      assert.deepEqual(warnings, [], 'qmgr takes a vanished file in stride');
    } finally {
      await srv.stop();
    }
  });
});

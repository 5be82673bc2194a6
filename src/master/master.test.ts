import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../test/harness/net.js';
import { loadConfig } from '../config/index.js';
import type { Config, MasterService } from '../config/types.js';
import { Log, type MemoryLog } from '../log/index.js';
import type { Daemon, DaemonFactory, Listener } from './daemon.js';
import type { DaemonLoader } from './daemons.js';
import { Master, VERSION } from './index.js';

/** Connects and reads until the server closes. Rejects with the socket error (ECONNREFUSED ...). */
function fetchText(host: string, port: number, send = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      text += d;
    });
    s.on('connect', () => {
      if (send !== '') s.write(send);
    });
    s.on('error', reject);
    s.on('close', () => resolve(text));
  });
}

async function refused(host: string, port: number): Promise<boolean> {
  try {
    await fetchText(host, port);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  }
}

interface Events {
  created: string[];
  accepted: Listener[];
  reloaded: { service: string; myhostname: string }[];
  drained: string[];
}

/** `hello` daemon: greets with the listener it was reached on, then closes. `hold`: keeps the socket. */
function table(events: Events): Record<string, DaemonLoader> {
  const make =
    (mode: 'hello' | 'hold'): DaemonFactory =>
    async ({ service }) => {
      events.created.push(service.name);
      const open = new Set<net.Socket>();
      const d: Daemon = {
        accept(socket, listener) {
          events.accepted.push(listener);
          if (mode === 'hello') socket.end(`hello ${listener.service.name} ${listener.address} ${listener.port} stress=${listener.stress}\r\n`);
          else {
            open.add(socket);
            socket.once('close', () => open.delete(socket));
            socket.write(`held ${listener.service.name}\r\n`);
          }
        },
        async reload(config: Config, s: MasterService) {
          events.reloaded.push({ service: s.name, myhostname: config.params.myhostname });
        },
        async drain() {
          events.drained.push(service.name);
        },
      };
      return d;
    };
  return { hello: async () => make('hello'), hold: async () => make('hold') };
}

class Instance {
  dir = '';
  log: MemoryLog = Log.memory();
  events: Events = { created: [], accepted: [], reloaded: [], drained: [] };
  master: Master | null = null;

  async write(mainCf: string, masterCf: string): Promise<void> {
    if (this.dir === '') this.dir = await fs.mkdtemp(path.join(os.tmpdir(), 'postern-master-'));
    await fs.writeFile(path.join(this.dir, 'main.cf'), mainCf);
    await fs.writeFile(path.join(this.dir, 'master.cf'), masterCf);
  }

  async start(drainTimeoutMs = 2_000): Promise<Master> {
    const load = () => loadConfig({ configDir: this.dir, env: {} });
    this.master = await Master.start({ config: await load(), log: this.log, loadConfig: load, daemons: table(this.events), dropPrivileges: false, drainTimeoutMs });
    return this.master;
  }

  texts(): string[] {
    return this.log.texts();
  }

  async cleanup(): Promise<void> {
    await this.master?.stop();
    if (this.dir !== '') await fs.rm(this.dir, { recursive: true, force: true });
  }
}

const MAIN = 'myhostname = mx.example.test\ninet_interfaces = loopback-only\ninet_protocols = all\n';

describe('master: listeners', () => {
  test('master: a service binds 127.0.0.1 and ::1 on separate sockets (loopback-only × all), IPv6 with V6ONLY', async () => {
    const t = new Instance();
    try {
      const port = await freePort();
      await t.write(MAIN, `${port} inet n - n - - hello\n`);
      const m = await t.start();
      assert.deepEqual(
        m.listening().map((l) => `${l.address}/${l.family}:${l.port}`),
        [`127.0.0.1/4:${port}`, `::1/6:${port}`],
      );
      assert.equal(await fetchText('127.0.0.1', port), `hello ${port} 127.0.0.1 ${port} stress=false\r\n`);
      assert.equal(await fetchText('::1', port), `hello ${port} ::1 ${port} stress=false\r\n`);
      // ss -e shows IPV6_V6ONLY of a listening socket as v6only:1.
      const ss = execFileSync('ss', ['-ltnHe', `sport = :${port}`], { encoding: 'utf8' });
      const v6 = ss.split('\n').find((l) => l.includes(`[::1]:${port}`));
      assert.ok(v6 !== undefined, ss);
      assert.match(v6, /v6only:1/);
      assert.match(t.texts().at(-1) ?? '', new RegExp(`^daemon started -- version postern-\\S+, configuration ${t.dir}$`));
    } finally {
      await t.cleanup();
    }
  });

  test('master: a [::1]:PORT service binds IPv6 only and a 127.0.0.1:PORT service IPv4 only', async () => {
    const t = new Instance();
    try {
      const p6 = await freePort();
      const p4 = await freePort();
      await t.write(MAIN, `[::1]:${p6} inet n - n - - hello\n127.0.0.1:${p4} inet n - n - - hello\n`);
      const m = await t.start();
      assert.deepEqual(
        m.listening().map((l) => `${l.service} ${l.address}/${l.family}`),
        [`[::1]:${p6} ::1/6`, `127.0.0.1:${p4} 127.0.0.1/4`],
      );
      assert.match(await fetchText('::1', p6), /^hello/);
      assert.ok(await refused('127.0.0.1', p6));
      assert.match(await fetchText('127.0.0.1', p4), /^hello/);
      assert.ok(await refused('::1', p4));
    } finally {
      await t.cleanup();
    }
  });

  test('master: inet_protocols = ipv4 binds no IPv6 socket', async () => {
    const t = new Instance();
    try {
      const port = await freePort();
      await t.write('inet_interfaces = loopback-only\ninet_protocols = ipv4\n', `${port} inet n - n - - hello\n`);
      const m = await t.start();
      assert.deepEqual(
        m.listening().map((l) => l.address),
        ['127.0.0.1'],
      );
      assert.ok(await refused('::1', port));
    } finally {
      await t.cleanup();
    }
  });

  test('master: a port in use is fatal with Postfix\'s text, and nothing stays bound', async () => {
    const t = new Instance();
    const holder = net.createServer();
    try {
      const port = await freePort();
      const other = await freePort();
      await new Promise<void>((resolve) => holder.listen({ host: '::1', port, ipv6Only: true }, resolve));
      await t.write(MAIN, `${other} inet n - n - - hello\n${port} inet n - n - - hello\n`);
      await assert.rejects(t.start(), { message: `bind ::1 port ${port}: Address already in use` });
      assert.ok(await refused('127.0.0.1', other), 'the first service was unbound again');
      assert.ok(await refused('127.0.0.1', port));
    } finally {
      holder.close();
      await t.cleanup();
    }
  });

  test('master: a command without implementation is bound, warned about once, and closes connections', async () => {
    const t = new Instance();
    try {
      const port = await freePort();
      await t.write(MAIN, `${port} inet n - n - - imapd\n`);
      await t.start();
      assert.equal(await fetchText('127.0.0.1', port), '');
      assert.equal(await fetchText('::1', port), '');
      const warnings = t.texts().filter((l) => l.startsWith('warning:'));
      assert.deepEqual(warnings, [`warning: service "${port}" (command imapd) is not implemented yet; connections are closed`]);
    } finally {
      await t.cleanup();
    }
  });

  test('master: maxproc limits concurrent sessions; the next client waits unread, is served when a slot frees, and the limit is logged', async () => {
    const t = new Instance();
    const clients: net.Socket[] = [];
    try {
      const port = await freePort();
      await t.write(MAIN, `127.0.0.1:${port} inet n - n - 1 hold\n`);
      await t.start();
      const connect = () =>
        new Promise<{ socket: net.Socket; lines: string[] }>((resolve) => {
          const socket = net.connect({ host: '127.0.0.1', port }, () => resolve({ socket, lines }));
          const lines: string[] = [];
          socket.setEncoding('utf8');
          socket.on('data', (d: string) => lines.push(d));
          clients.push(socket);
        });
      const first = await connect();
      await waitFor(() => first.lines.length > 0);
      const second = await connect();
      await waitFor(() => t.texts().some((l) => l.includes('has reached its process limit')));
      assert.deepEqual(second.lines, []);
      assert.equal(t.events.accepted.length, 1);
      first.socket.destroy();
      await waitFor(() => second.lines.length > 0);
      assert.equal(t.events.accepted.length, 2);
      assert.ok(t.texts().includes(`warning: service "127.0.0.1:${port}" (127.0.0.1:${port}) has reached its process limit "1": new clients may experience noticeable delays`));
    } finally {
      for (const c of clients) c.destroy();
      await t.cleanup();
    }
  });
});

async function waitFor(cond: () => boolean, ms = 3_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('master: reload and stop', () => {
  let t: Instance;
  let p1: number;
  let p2: number;
  before(async () => {
    t = new Instance();
    p1 = await freePort();
    p2 = await freePort();
  });
  after(() => t.cleanup());

  test('master: SIGHUP reload gives daemons the new config, adds and removes services, rebinds moved listeners', async () => {
    await t.write(MAIN, `${p1} inet n - n - - hello\n`);
    const m = await t.start();
    await t.write(MAIN.replace('mx.example.test', 'mx2.example.test').replace('loopback-only', '127.0.0.1'), `${p1} inet n - n - - hello\n${p2} inet n - n - - hello\n`);
    assert.equal(await m.reload(), true);
    assert.deepEqual(t.events.reloaded, [{ service: String(p1), myhostname: 'mx2.example.test' }]);
    assert.equal(m.config.params.myhostname, 'mx2.example.test');
    assert.deepEqual(
      m.listening().map((l) => `${l.address}:${l.port}`),
      [`127.0.0.1:${p1}`, `127.0.0.1:${p2}`],
    );
    assert.ok(await refused('::1', p1), '::1 listener closed');
    assert.match(await fetchText('127.0.0.1', p2), /^hello/);
    const texts = t.texts();
    assert.ok(texts.includes(`reload -- version ${VERSION}, configuration ${t.dir}`));
    assert.ok(texts.includes(`service "${p1}": stopped listening on ::1 port ${p1}`));
    assert.ok(texts.includes(`service "${p2}": listening on 127.0.0.1 port ${p2}`));

    await t.write(MAIN, `${p2} inet n - n - - hello\n`);
    assert.equal(await m.reload(), true);
    assert.ok(await refused('127.0.0.1', p1), 'removed service unbound');
    await waitFor(() => t.events.drained.includes(String(p1)));
    assert.ok(t.texts().includes(`service "${p1}": removed from master.cf`));
  });

  test('master: a bad edit on reload is a warning and the old configuration stays in force', async () => {
    const m = t.master!;
    const before = m.config;
    await fs.writeFile(path.join(t.dir, 'main.cf'), `${MAIN}smtpd_tls_security_level = maybe\n`);
    assert.equal(await m.reload(), false);
    assert.equal(m.config, before);
    const w = t.texts().at(-1) ?? '';
    assert.match(w, /^warning: .*main\.cf, line 4: .*smtpd_tls_security_level.*; keeping the old configuration$/);
    assert.match(await fetchText('127.0.0.1', p2), /^hello/);
  });

  test('master: stop logs the signal, drains daemons, destroys what is still open at the deadline, and unbinds', async () => {
    const m = t.master!;
    await t.write(MAIN, `127.0.0.1:${p1} inet n - n - - hold\n`);
    assert.equal(await m.reload(), true);
    const held = net.connect({ host: '127.0.0.1', port: p1 });
    held.on('error', () => {});
    held.resume();
    const closed = new Promise<void>((resolve) => held.on('close', () => resolve()));
    await waitFor(() => t.events.accepted.some((l) => l.service.command === 'hold'));
    const started = Date.now();
    await m.stop('SIGTERM');
    await closed;
    assert.ok(Date.now() - started < 5_000);
    assert.ok(t.events.drained.includes(`127.0.0.1:${p1}`));
    assert.ok(t.texts().includes('terminating on signal 15'));
    assert.ok(await refused('127.0.0.1', p1));
    assert.equal(await m.reload(), false, 'no reload after stop');
  });
});

describe('master: start order', () => {
  test('master: a client that connects while the daemons start waits, and is served only once the master has started', async () => {
    const t = new Instance();
    try {
      const port = await freePort();
      await t.write(MAIN, `${port} inet n - n - - hello\nslow unix n - n - 1 slow\n`);
      let reply: Promise<string> | null = null;
      let acceptedDuringStart = -1;
      const slow: DaemonFactory = async () => {
        // The inet listener is bound by now: connect, give the master time to (wrongly) serve it.
        reply = fetchText('127.0.0.1', port);
        await new Promise((r) => setTimeout(r, 300));
        acceptedDuringStart = t.events.accepted.length;
        return { accept: (s) => s.destroy(), reload: async () => {}, drain: async () => {} };
      };
      const load = () => loadConfig({ configDir: t.dir, env: {} });
      t.master = await Master.start({
        config: await load(),
        log: t.log,
        loadConfig: load,
        daemons: { ...table(t.events), slow: async () => slow },
        dropPrivileges: false,
      });
      assert.equal(acceptedDuringStart, 0, 'no session before the master has started (privileges dropped)');
      assert.ok(reply !== null);
      assert.equal(await reply, `hello ${port} 127.0.0.1 ${port} stress=false\r\n`);
    } finally {
      await t.cleanup();
    }
  });
});

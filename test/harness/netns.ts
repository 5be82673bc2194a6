/**
 * Network namespaces for multi-host tests (DESIGN 8): a namespace of our own with lo up and
 * documentation addresses on it, commands run inside it (`ip netns exec`), and a relay through
 * which this process opens TCP connections from a chosen source address inside it.
 *
 * The relay is one `node` child inside the namespace listening on a Unix socket in a temp
 * directory (a path in the file system reaches across network namespaces): each connection
 * to it names {host, port, localAddress} in its first line, the relay connects from that
 * address, answers `ok` (or `error <why>`) and then passes bytes both ways.
 *
 * Making a namespace needs root (CAP_SYS_ADMIN) and iproute2. `netnsSkip()` says why a test
 * cannot run; under CI=true it throws instead, as test/harness/peers.ts does for a missing peer.
 * Everything is removed by name and pid in `remove()`, and on the way out should the test
 * process end first.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { peerSkip } from './peers.js';

const RELAY = `
const net = require('node:net');
const srv = net.createServer((u) => {
  let head = Buffer.alloc(0);
  const onData = (d) => {
    head = Buffer.concat([head, d]);
    const nl = head.indexOf(10);
    if (nl < 0) {
      if (head.length > 1000) u.destroy();
      return;
    }
    u.removeListener('data', onData);
    u.pause();
    const o = JSON.parse(head.subarray(0, nl).toString('utf8'));
    const rest = head.subarray(nl + 1);
    const t = net.connect({ host: o.host, port: o.port, localAddress: o.localAddress });
    t.once('connect', () => {
      u.write('ok\\n');
      if (rest.length > 0) t.write(rest);
      u.pipe(t);
      t.pipe(u);
      u.resume();
    });
    t.on('error', (e) => {
      if (u.writable) u.end('error ' + e.message + '\\n');
    });
    u.on('error', () => t.destroy());
    u.on('close', () => t.destroy());
  };
  u.on('data', onData);
});
srv.listen(process.argv[1], () => process.stdout.write('ready\\n'));
`;

const live = new Set<Netns>();
process.once('exit', () => {
  for (const n of live) n.removeSync();
});

let probed: string | false | null = null;

/** false when this host can make network namespaces; else why not (throws under CI=true). */
export function netnsSkip(): string | false {
  if (probed === null) probed = probe();
  if (probed !== false && process.env.CI === 'true') throw new Error(`network namespaces are required (CI=true): ${probed}`);
  return probed;
}

function probe(): string | false {
  let why: string | false;
  try {
    why = peerSkip('ip', 'iproute2');
  } catch (e) {
    return (e as Error).message;
  }
  if (why !== false) return why;
  if (process.getuid?.() !== 0) return 'network namespaces need root (ip netns add)';
  const name = `pt-probe-${process.pid}`;
  const add = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (add.status !== 0) return `cannot make a network namespace: ${(add.stderr || add.error?.message || '').trim()}`;
  spawnSync('ip', ['netns', 'del', name]);
  return false;
}

let seq = 0;

function ip(args: readonly string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
}

export class Netns {
  private relay: ChildProcess | null = null;
  private relayPath = '';
  private removed = false;

  private constructor(
    readonly name: string,
    private readonly dir: string,
  ) {}

  /**
   * A new namespace with lo up and `addrs` (`2001:db8:1:2::10/64`, `192.0.2.1/24`) on lo, usable
   * at once (nodad). Use documentation ranges only: nothing leaves the namespace, but a log
   * or a reply that shows an address should show one that is nobody's.
   */
  static async create(addrs: readonly string[]): Promise<Netns> {
    const name = `pt-${process.pid}-${++seq}`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-netns-'));
    const ns = new Netns(name, dir);
    ip(['netns', 'add', name]);
    live.add(ns);
    try {
      ip(['-n', name, 'link', 'set', 'lo', 'up']);
      for (const a of addrs) ip(['-n', name, 'addr', 'add', a, 'dev', 'lo', ...(a.includes(':') ? ['nodad'] : [])]);
      await ns.startRelay();
    } catch (e) {
      ns.removeSync();
      throw e;
    }
    return ns;
  }

  /** argv that runs `argv` inside the namespace (`ip netns exec` execs it: the pid is the command's). */
  exec(argv: readonly string[]): string[] {
    return ['ip', 'netns', 'exec', this.name, ...argv];
  }

  private async startRelay(): Promise<void> {
    this.relayPath = path.join(this.dir, 'relay.sock');
    const [cmd, ...args] = this.exec([process.execPath, '-e', RELAY, this.relayPath]);
    const child = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.relay = child;
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`netns relay not ready: ${err}`)), 10_000);
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        if (d.includes('ready')) {
          clearTimeout(t);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`netns relay exited (${code}): ${err}`));
      });
    });
  }

  /**
   * A TCP connection from `localAddress` to host:port, made inside the namespace. Rejects with
   * the relay's reason (ECONNREFUSED, EADDRNOTAVAIL) when it cannot be made.
   */
  connectFrom(localAddress: string, host: string, port: number): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect(this.relayPath);
      let head = Buffer.alloc(0);
      const onData = (d: Buffer): void => {
        head = Buffer.concat([head, d]);
        const nl = head.indexOf(10);
        if (nl < 0) return;
        s.removeListener('data', onData);
        s.pause();
        const line = head.subarray(0, nl).toString('utf8');
        const rest = head.subarray(nl + 1);
        if (line !== 'ok') {
          s.destroy();
          reject(new Error(`connect from ${localAddress} to [${host}]:${port} in ${this.name}: ${line}`));
          return;
        }
        if (rest.length > 0) s.unshift(rest);
        resolve(s);
      };
      s.on('data', onData);
      s.once('error', reject);
      s.once('connect', () => s.write(`${JSON.stringify({ host, port, localAddress })}\n`));
    });
  }

  /** Stops the relay (by its pid) and deletes the namespace. */
  async remove(): Promise<void> {
    const r = this.relay;
    if (r !== null && r.exitCode === null && r.signalCode === null) {
      const gone = new Promise<void>((resolve) => r.once('exit', () => resolve()));
      r.kill('SIGTERM');
      await gone;
    }
    this.removeSync();
  }

  /** The synchronous part of remove(), also run from process 'exit'. */
  removeSync(): void {
    if (this.removed) return;
    this.removed = true;
    live.delete(this);
    const r = this.relay;
    if (r !== null && r.exitCode === null && r.signalCode === null) r.kill('SIGKILL');
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    } catch {
      // already gone
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

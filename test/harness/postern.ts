/**
 * startPostern(): one smtpd service running in this process on ephemeral loopback ports
 * (127.0.0.1 and ::1), configured from main.cf text, with a temporary queue directory and an
 * in-memory log. For integration tests: talk to `port4`/`port6`, read `lines()`, `stop()`.
 *
 * The configuration goes through the real loader (main.cf + master.cf in a temp directory,
 * loadConfig), and sessions are handed to the daemon exactly as the master does
 * (Daemon.accept(socket, listener)). DNS goes to the given resolver (default: one that knows
 * nothing), never to the system resolver.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../../src/config/index.js';
import type { Config, MasterService } from '../../src/config/types.js';
import { Log, type MemoryLog } from '../../src/log/index.js';
import type { Listener } from '../../src/master/daemon.js';
import { queueFilePath } from '../../src/queue/directories.js';
import { type QueueFile, readMessage, readQueueFile } from '../../src/queue/file.js';
import { createSmtpd, nullResolver, type Resolver, type Smtpd, type SmtpdHooks, type SmtpdOptions } from '../../src/smtpd/index.js';

export interface StartOptions {
  /** main.cf lines; they come after the harness's own (myhostname, queue_directory, ...), so they win. */
  readonly mainCf?: string;
  /** master.cf `-o name=value` overrides of the smtp service. */
  readonly overrides?: Readonly<Record<string, string>>;
  /** master.cf maxproc of the service (default `-`). */
  readonly maxproc?: number;
  readonly resolver?: Resolver;
  /** How long the client name lookup (PTR, then the name's addresses) may take (default 2000 ms). */
  readonly peerLookupTimeoutMs?: number;
  readonly hooks?: SmtpdHooks;
  /** Listen on ::1 too (default true when the host has IPv6 loopback). */
  readonly ipv6?: boolean;
  /** Stress mode for every connection (Listener.stress). */
  readonly stress?: boolean;
  readonly cleanupOptions?: SmtpdOptions['cleanupOptions'];
  /** Parameter values the config loader would refuse (e.g. Postfix 3.9 values the registry lacks). */
  readonly params?: Readonly<Record<string, unknown>>;
}

export interface StartedPostern {
  readonly dir: string;
  readonly queueDir: string;
  readonly port4: number;
  /** 0 when ::1 is not available. */
  readonly port6: number;
  readonly config: Config;
  readonly service: MasterService;
  readonly smtpd: Smtpd;
  readonly log: MemoryLog;
  /** The log lines so far. */
  lines(): string[];
  /** A message smtpd queued (in incoming/): its envelope and content. */
  message(queueId: string): Promise<{ file: QueueFile; content: string }>;
  /** Wait until a log line matches (default 3 s). */
  waitFor(re: RegExp, ms?: number): Promise<string>;
  stop(): Promise<void>;
}

let ipv6Checked: boolean | null = null;

/** Can this host listen on ::1? */
export async function hasIPv6Loopback(): Promise<boolean> {
  if (ipv6Checked !== null) return ipv6Checked;
  ipv6Checked = await new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
  return ipv6Checked;
}

function listen(host: string, onConn: (s: net.Socket, addr: string, port: number) => void): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((sock) => {
      const a = srv.address() as net.AddressInfo;
      onConn(sock, a.address, a.port);
    });
    srv.once('error', reject);
    srv.listen(0, host, () => resolve(srv));
  });
}

export async function startPostern(o: StartOptions = {}): Promise<StartedPostern> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-smtpd-'));
  const queueDir = path.join(dir, 'queue');
  const main = [
    'compatibility_level = 3.6',
    'myhostname = mx.example.test',
    'mydomain = example.test',
    'mydestination = $myhostname, localhost',
    'mynetworks = 127.0.0.0/8 [::1]/128',
    'inet_interfaces = loopback-only',
    `queue_directory = ${queueDir}`,
    `data_directory = ${path.join(dir, 'data')}`,
    'alias_maps =',
    'local_recipient_maps =',
    o.mainCf ?? '',
    '',
  ].join('\n');
  writeFileSync(path.join(dir, 'main.cf'), main);
  const ov = Object.entries(o.overrides ?? {})
    .map(([k, v]) => ` -o ${k}=${v}`)
    .join('');
  writeFileSync(path.join(dir, 'master.cf'), `smtp inet n - n - ${o.maxproc ?? '-'} smtpd${ov}\n`);
  const config = await loadConfig({ configDir: dir });
  const loaded = config.services.find((s) => s.command === 'smtpd')!;
  const service: MasterService = o.params ? { ...loaded, params: Object.freeze({ ...loaded.params, ...o.params }) as MasterService['params'] } : loaded;
  const log = Log.memory({ myhostname: 'mx.example.test' });
  let smtpd: Smtpd;
  try {
    smtpd = await createSmtpd(
      { config, service, log },
      { resolver: o.resolver ?? nullResolver(), hooks: o.hooks ?? {}, peerLookupTimeoutMs: o.peerLookupTimeoutMs ?? 2000, ...(o.cleanupOptions ? { cleanupOptions: o.cleanupOptions } : {}) },
    );
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const sockets = new Set<net.Socket>();
  const onConn = (sock: net.Socket, address: string, port: number): void => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    const listener: Listener = { service, address, port, stress: o.stress ?? false };
    smtpd.accept(sock, listener);
  };
  const servers: net.Server[] = [await listen('127.0.0.1', onConn)];
  let port6 = 0;
  if ((o.ipv6 ?? true) && (await hasIPv6Loopback())) {
    const s6 = await listen('::1', onConn);
    servers.push(s6);
    port6 = (s6.address() as net.AddressInfo).port;
  }
  const port4 = (servers[0]!.address() as net.AddressInfo).port;
  let stopped = false;
  return {
    dir,
    queueDir,
    port4,
    port6,
    config,
    service,
    smtpd,
    log,
    lines: () => [...log.lines],
    async message(queueId: string) {
      const file = await readQueueFile(queueFilePath(queueDir, 'incoming', queueId));
      return { file, content: (await readMessage(file)).toString('latin1') };
    },
    async waitFor(re: RegExp, ms = 3000): Promise<string> {
      const end = Date.now() + ms;
      for (;;) {
        const hit = log.lines.find((l) => re.test(l));
        if (hit !== undefined) return hit;
        if (Date.now() > end) throw new Error(`no log line matches ${re}; log:\n${log.lines.join('\n')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      const closed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      await smtpd.drain(Date.now() + 2000);
      for (const s of sockets) s.destroy();
      await closed;
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

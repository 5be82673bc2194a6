/**
 * A real `postern run -c DIR` child process for the crash tests: its configuration (smtpd on
 * 127.0.0.1 and ::1, qmgr, virtual Maildir delivery under DIR), start, SIGKILL and SIGTERM by
 * the child's own pid, its log file, its queue directories, and tmpfs mounts for disk-full tests.
 *
 * Started as root, Postern binds and then runs as mail_owner (nobody): the test directory is
 * handed to that user, and virtual_uid_maps names it, so deliveries run as the process's uid.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = path.join(ROOT, 'bin', 'postern.js');
export const IS_ROOT = process.getuid?.() === 0;

/** Who the server runs as after start: mail_owner `nobody` when started as root, else us. */
export function runAccount(): { uid: number; gid: number } {
  if (!IS_ROOT) return { uid: process.getuid!(), gid: process.getgid!() };
  const uid = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

let v6: boolean | null = null;
export async function hasIPv6Loopback(): Promise<boolean> {
  if (v6 !== null) return v6;
  v6 = await new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: '::1', port: 0, ipv6Only: true }, () => s.close(() => resolve(true)));
  });
  return v6;
}

/** A port free on 127.0.0.1 and (when there is one) ::1. */
export async function freePort(): Promise<number> {
  const six = await hasIPv6Loopback();
  for (;;) {
    const a = net.createServer();
    await new Promise<void>((resolve) => a.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const port = (a.address() as net.AddressInfo).port;
    let ok = true;
    if (six) {
      const b = net.createServer();
      ok = await new Promise<boolean>((resolve) => {
        b.once('error', () => resolve(false));
        b.listen({ host: '::1', port, ipv6Only: true }, () => resolve(true));
      });
      if (ok) await new Promise<void>((resolve) => b.close(() => resolve()));
    }
    await new Promise<void>((resolve) => a.close(() => resolve()));
    if (ok) return port;
  }
}

/** A fresh test directory, owned by the account the server will run as. */
export function makeTestDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** Hands `p` and everything under it to the server's account (no-op unless root). */
export function chownTree(p: string, acct = runAccount()): void {
  if (!IS_ROOT) return;
  const st = fs.lstatSync(p);
  if (st.isSymbolicLink()) return;
  fs.chownSync(p, acct.uid, acct.gid);
  if (st.isDirectory()) for (const n of fs.readdirSync(p)) chownTree(path.join(p, n), acct);
}

/** The envelope sender of every test message; its Maildir (`sender/`) collects bounces. */
export const SENDER = 'sender@example.test';

export interface CrashConfig {
  readonly dir: string;
  readonly port: number;
  readonly queueDir: string;
  readonly mailBase: string;
  readonly logFile: string;
  /** Virtual users: `u0@example.test` → Maildir `u0/`. */
  readonly users: readonly string[];
  /** Addresses smtpd listens on: 127.0.0.1 and, when available, ::1. */
  readonly hosts: readonly string[];
}

export interface ConfigOptions {
  readonly users?: number;
  /** Extra main.cf lines (they come last, so they win). */
  readonly mainCf?: string;
  /** Include the qmgr (and delivery agent) services. Default true. */
  readonly qmgr?: boolean;
  /** Override where the queue / mailboxes live (tmpfs mounts). */
  readonly queueDir?: string;
  readonly mailBase?: string;
  /**
   * master.cf lines for the smtpd listeners, in place of the default `127.0.0.1:PORT` and
   * `[::1]:PORT` ones (`hosts` is then empty): other addresses, several ports, `-o` overrides.
   */
  readonly smtpdServices?: (port: number) => readonly string[];
}

/** Writes main.cf, master.cf and the virtual mailbox table into `dir`. */
export async function writeConfig(dir: string, o: ConfigOptions = {}): Promise<CrashConfig> {
  const port = await freePort();
  const six = await hasIPv6Loopback();
  const queueDir = o.queueDir ?? path.join(dir, 'queue');
  const mailBase = o.mailBase ?? path.join(dir, 'mail');
  const logFile = path.join(dir, 'maillog');
  const acct = runAccount();
  const users = Array.from({ length: o.users ?? 4 }, (_, i) => `u${i}@example.test`);
  // SENDER gets a Maildir too: a bounce or notice lands there, where a test can see it.
  fs.writeFileSync(path.join(dir, 'vmailbox'), [...users, SENDER].map((u) => `${u} ${u.split('@')[0]}/\n`).join(''));
  fs.mkdirSync(mailBase, { recursive: true });
  const main = [
    'compatibility_level = 3.6',
    'myhostname = mx.example.test',
    'mydomain = example.test',
    'mydestination = $myhostname, localhost',
    'inet_interfaces = loopback-only',
    'inet_protocols = all',
    'mynetworks = 127.0.0.0/8 [::1]/128',
    `queue_directory = ${queueDir}`,
    `data_directory = ${path.join(dir, 'data')}`,
    `maillog_file = ${logFile}`,
    'mail_owner = nobody',
    'smtpd_peername_lookup = no',
    'alias_maps =',
    'alias_database =',
    'local_recipient_maps =',
    'virtual_mailbox_domains = example.test',
    `virtual_mailbox_base = ${mailBase}`,
    `virtual_mailbox_maps = texthash:${path.join(dir, 'vmailbox')}`,
    `virtual_uid_maps = static:${acct.uid}`,
    `virtual_gid_maps = static:${acct.gid}`,
    'virtual_minimum_uid = 1',
    // Deferred mail is retried within the tests' time.
    'queue_run_delay = 1s',
    'minimal_backoff_time = 1s',
    'maximal_backoff_time = 2s',
    o.mainCf ?? '',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'main.cf'), main);
  const hosts = o.smtpdServices !== undefined ? [] : six ? ['127.0.0.1', '::1'] : ['127.0.0.1'];
  const master = [
    ...hosts.map((h) => `${h.includes(':') ? `[${h}]` : h}:${port} inet n - n - - smtpd`),
    ...(o.smtpdServices?.(port) ?? []),
    ...(o.qmgr === false
      ? []
      : [
          'pickup    unix n - n 60 1 pickup',
          'cleanup   unix n - n - 0 cleanup',
          'qmgr      unix n - n 300 1 qmgr',
          'bounce    unix - - n - 0 bounce',
          'defer     unix - - n - 0 bounce',
          'trace     unix - - n - 0 bounce',
          'error     unix - - n - - error',
          'retry     unix - - n - - error',
          'discard   unix - - n - - discard',
          'local     unix - n n - - local',
          'virtual   unix - n n - - virtual',
        ]),
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dir, 'master.cf'), master);
  chownTree(dir, acct);
  return { dir, port, queueDir, mailBase, logFile, users, hosts };
}

/** Reads a growing log file from a byte offset. */
export class LogTail {
  private offset = 0;
  text = '';
  constructor(readonly file: string) {
    try {
      this.offset = fs.statSync(file).size;
    } catch {
      this.offset = 0;
    }
  }
  poll(): string {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch {
      return this.text;
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size > this.offset) {
        const b = Buffer.alloc(size - this.offset);
        const n = fs.readSync(fd, b, 0, b.length, this.offset);
        this.offset += n;
        this.text += b.subarray(0, n).toString('utf8');
      }
    } finally {
      fs.closeSync(fd);
    }
    return this.text;
  }
}

export function readLog(c: CrashConfig): string {
  try {
    return fs.readFileSync(c.logFile, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Children still running. Should the test process end before a test's `finally` (a runner timeout,
 * Ctrl-C), they are killed by pid on the way out, never left serving a deleted directory.
 */
const live = new Set<ChildProcess>();
function killLive(): void {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.once('exit', killLive);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    killLive();
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}

/** One `postern -c DIR run` child. */
export class Server {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly tail: LogTail;

  /**
   * `o.wrap`: argv that runs a command elsewhere, e.g. Netns.exec() (`ip netns exec NS`); it must
   * exec the command, so the child's pid stays the server's.
   */
  constructor(
    readonly config: CrashConfig,
    o: { wrap?: (argv: readonly string[]) => string[] } = {},
  ) {
    this.tail = new LogTail(config.logFile);
    const argv = [process.execPath, BIN, '-c', config.dir, 'run'];
    const [cmd, ...args] = o.wrap ? o.wrap(argv) : argv;
    this.child = spawn(cmd!, args, {
      cwd: config.dir,
      // CRASH_UNPRIVILEGED=1: start the server as mail_owner directly instead of as root (a
      // diagnostic: it takes the master's privilege drop out of the picture).
      ...(IS_ROOT && process.env.CRASH_UNPRIVILEGED === '1' ? runAccount() : {}),
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, MAIL_CONFIG: '' },
    });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
    });
    live.add(this.child);
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code, signal) => {
        live.delete(this.child);
        resolve({ code, signal });
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** This process's log lines so far (from the point it was started). */
  log(): string {
    return this.tail.poll();
  }

  /** Waits until a line of this process's log matches `re`; returns the match. Throws with the log after `ms`. */
  async waitForLog(re: RegExp, ms = 20_000): Promise<string> {
    const once = new RegExp(re.source, re.flags.replace('g', ''));
    const until = Date.now() + ms;
    for (;;) {
      const m = once.exec(this.log());
      if (m !== null) return m[0];
      if (Date.now() > until) throw new Error(`no log line ${re} within ${ms} ms; log:\n${this.log()}`);
      await sleep(50);
    }
  }

  /** Waits for the master's `daemon started` line; throws (with stderr) if the process exits or `ms` pass. */
  async ready(ms = 20_000): Promise<void> {
    const until = Date.now() + ms;
    const re = new RegExp(`/master\\[${this.pid}\\]: daemon started`);
    while (!re.test(this.log())) {
      if (!this.running) throw new Error(`postern exited before it was ready (${this.child.exitCode ?? this.child.signalCode})\nstderr:\n${this.stderr}\nstdout:\n${this.stdout}\nlog:\n${this.log()}`);
      if (Date.now() > until) throw new Error(`postern not ready after ${ms} ms\nstderr:\n${this.stderr}\nlog:\n${this.log()}`);
      await sleep(20);
    }
  }

  /** SIGKILL (this child's pid only) and wait until it is gone. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then SIGKILL after `ms`. */
  async stop(ms = 15_000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), ms);
    await this.exited;
    clearTimeout(t);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The message files of a Maildir (new/ and cur/), as paths. */
export function maildirFiles(dir: string): string[] {
  const out: string[] = [];
  for (const sub of ['new', 'cur']) {
    const p = path.join(dir, sub);
    if (fs.existsSync(p)) for (const f of fs.readdirSync(p)) out.push(path.join(p, f));
  }
  return out;
}

/** The files in each queue directory (`*.tmp` are cleanup's temporaries, listed apart). */
export function queueContents(queueDir: string): Record<'incoming' | 'active' | 'deferred' | 'hold' | 'corrupt' | 'temporaries', string[]> {
  const list = (q: string): string[] => {
    try {
      return fs.readdirSync(path.join(queueDir, q)).sort();
    } catch {
      return [];
    }
  };
  const incoming = list('incoming');
  return {
    incoming: incoming.filter((n) => !n.endsWith('.tmp')),
    active: list('active'),
    deferred: list('deferred'),
    hold: list('hold'),
    corrupt: list('corrupt'),
    temporaries: incoming.filter((n) => n.endsWith('.tmp')),
  };
}

/** Messages still waiting for delivery (incoming + active + deferred). */
export function pendingCount(queueDir: string): number {
  const q = queueContents(queueDir);
  return q.incoming.length + q.active.length + q.deferred.length;
}

/** Mounts a tmpfs of `size` (e.g. `2m`) on `dir`, owned by the server's account. false when not permitted. */
export function mountTmpfs(dir: string, size: string): { ok: true } | { ok: false; why: string } {
  const acct = runAccount();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755,uid=${acct.uid},gid=${acct.gid}`, 'tmpfs', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    return { ok: true };
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    return { ok: false, why: (e.stderr?.toString() || e.message).trim().split('\n')[0]! };
  }
}

export function umount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'ignore' });
  } catch {
    // a busy mount: lazily detach so the test directory can go
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
    } catch {
      // not mounted
    }
  }
}

/** Writes a file until the file system is full (ENOSPC); returns its size. */
export function fillDisk(file: string): number {
  const fd = fs.openSync(file, 'a');
  const chunk = Buffer.alloc(64 * 1024, 0x78);
  let total = 0;
  try {
    for (let len = chunk.length; len >= 1; ) {
      try {
        total += fs.writeSync(fd, chunk, 0, len);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
        len = Math.floor(len / 2);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return total;
}

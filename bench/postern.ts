/**
 * Postern as a child process: `node bin/postern.js run -c DIR` with the same main.cf settings and
 * master.cf services as the Postfix instance (./server.ts), maillog_file in DIR. Started as root it
 * binds and then runs as mail_owner (nobody), so DIR's data directories belong to nobody first.
 * Stopped by pid: SIGTERM (Postern drains and exits 0, which also writes a --cpu-prof profile),
 * SIGKILL after a grace period.
 *
 * While smtpd or qmgr exists but is not yet registered in src/master/daemons.ts (`bin/postern.js
 * run` would close every SMTP connection, or deliver nothing), the child runs ./serve.ts instead
 * (the same Master with those daemons registered there) and the report says so.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAlive, type Memory, threadCpuSeconds, treeCpuSeconds, treeMemory } from './procs.js';
import { commonMainCf, MAILBOX_ID, masterCf, type Profile, RECIPIENT, running, type Server, sleep, waitForPort } from './server.js';

/** The checkout: dist/bench/postern.js → ../.. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin', 'postern.js');
const SERVE = path.join(ROOT, 'dist', 'bench', 'serve.js');

/** src/queue/directories.ts: names and modes (Postfix's postfix-files). */
const QUEUE_SUBDIRS: readonly [string, number][] = [
  ['incoming', 0o700],
  ['active', 0o700],
  ['deferred', 0o700],
  ['hold', 0o700],
  ['corrupt', 0o700],
  ['maildrop', 0o730],
  ['state', 0o700],
];

export interface PosternOptions {
  /** Daemons to register in dist/bench/serve.js, run instead of bin/postern.js; empty: bin/postern.js. */
  readonly fallback: readonly string[];
}

export class PosternServer implements Server {
  readonly name = 'Postern' as const;
  readonly queueDir: string;
  readonly maildir: string;
  #child: ChildProcess | null = null;
  #exited: Promise<void> | null = null;
  #output = '';
  /** Write a V8 CPU profile of the next start into this directory (node --cpu-prof); undefined: none. */
  cpuProfDir: string | undefined;

  constructor(
    readonly dir: string,
    readonly port: number,
    public profile: Profile,
    readonly opts: PosternOptions,
  ) {
    this.queueDir = path.join(dir, 'queue');
    this.maildir = path.join(dir, 'mail', RECIPIENT.split('@')[0]!);
  }

  configure(profile: Profile): void {
    this.profile = profile;
    const d = this.dir;
    fs.mkdirSync(d, { recursive: true });
    fs.chmodSync(d, 0o755);
    for (const sub of ['queue', 'data', 'mail']) {
      fs.mkdirSync(path.join(d, sub), { recursive: true });
      fs.chownSync(path.join(d, sub), MAILBOX_ID, MAILBOX_ID);
    }
    // The queue's directories belong to mail_owner, as Postfix's post-install makes them; created
    // here because a daemon that starts before the privilege drop (qmgr) would make them root's.
    for (const [sub, mode] of QUEUE_SUBDIRS) {
      const q = path.join(d, 'queue', sub);
      fs.mkdirSync(q, { recursive: true, mode });
      fs.chmodSync(q, mode);
      fs.chownSync(q, MAILBOX_ID, MAILBOX_ID);
    }
    const main = [...commonMainCf(d, profile), 'mail_owner = nobody'];
    fs.writeFileSync(path.join(d, 'main.cf'), `${main.join('\n')}\n`);
    fs.writeFileSync(path.join(d, 'master.cf'), masterCf(this.port, profile));
  }

  async start(): Promise<void> {
    if (!fs.existsSync(path.join(this.dir, 'main.cf'))) this.configure(this.profile);
    const nodeArgs: string[] = [];
    if (this.cpuProfDir !== undefined) {
      fs.mkdirSync(this.cpuProfDir, { recursive: true });
      fs.chownSync(this.cpuProfDir, MAILBOX_ID, MAILBOX_ID);
      nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${this.cpuProfDir}`);
    }
    const args = this.opts.fallback.length > 0 ? [...nodeArgs, SERVE, this.dir, this.opts.fallback.join(',')] : [...nodeArgs, BIN, 'run', '-c', this.dir];
    this.#output = '';
    const logStart = this.logSize();
    const child = spawn(process.execPath, args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MAIL_CONFIG: '' } });
    this.#child = child;
    running.add(this);
    const keep = (d: string): void => {
      if (this.#output.length < 64 * 1024) this.#output += d;
    };
    child.stdout!.setEncoding('utf8').on('data', keep);
    child.stderr!.setEncoding('utf8').on('data', keep);
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
    try {
      // The port may accept before the master has started every daemon and dropped privileges;
      // its `daemon started` line comes after both. Load before that would measure a half-started
      // server (and, running as root then, leave root-owned queue files behind).
      const until = Date.now() + 30_000;
      while (!this.logFrom(logStart).some((l) => l.includes('postfix/master[') && l.includes(': daemon started -- '))) {
        if (!this.running()) throw new Error('postern exited while starting');
        if (Date.now() > until) throw new Error('no "daemon started" log line after 30 s');
        await sleep(50);
      }
      await waitForPort(this.port, 20_000, () => this.running());
    } catch (err) {
      await this.stop();
      throw new Error(`${(err as Error).message}\n${this.#output}${this.log().slice(-20).join('\n')}`);
    }
  }

  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  running(): boolean {
    const pid = this.pid;
    return pid !== null && this.#child!.exitCode === null && this.#child!.signalCode === null && isAlive(pid);
  }

  memory(): Memory {
    const pid = this.pid;
    return pid === null || !this.running() ? { rss: 0, pss: 0, processes: 0 } : treeMemory(pid);
  }

  cpuSeconds(): number {
    const pid = this.pid;
    return pid === null || !this.running() ? 0 : treeCpuSeconds(pid);
  }

  /** CPU seconds of the main thread (the event loop): the part that cannot spread over cores. */
  mainThreadCpuSeconds(): number {
    const pid = this.pid;
    return pid === null || !this.running() ? 0 : threadCpuSeconds(pid);
  }

  /** What the child wrote on stdout/stderr (fatal errors before the log opens). */
  output(): string {
    return this.#output;
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (child === null) {
      running.delete(this);
      return;
    }
    if (this.running()) {
      child.kill('SIGTERM');
      const grace = sleep(20_000).then(() => 'timeout' as const);
      if ((await Promise.race([this.#exited!.then(() => 'exited' as const), grace])) === 'timeout') child.kill('SIGKILL');
    }
    await this.#exited;
    this.#child = null;
    running.delete(this);
  }

  kill(): void {
    const pid = this.pid;
    if (pid !== null) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.#child = null;
    running.delete(this);
  }

  log(): string[] {
    return this.logFrom(0);
  }

  private logSize(): number {
    try {
      return fs.statSync(path.join(this.dir, 'maillog')).size;
    } catch {
      return 0;
    }
  }

  /** Log lines written after byte `offset` of the log file. */
  private logFrom(offset: number): string[] {
    let fd: number;
    try {
      fd = fs.openSync(path.join(this.dir, 'maillog'), 'r');
    } catch {
      return [];
    }
    try {
      const size = fs.fstatSync(fd).size;
      const buf = Buffer.alloc(Math.max(0, size - offset));
      let got = 0;
      while (got < buf.length) {
        const n = fs.readSync(fd, buf, got, buf.length - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      return buf.subarray(0, got).toString('utf8').split('\n');
    } finally {
      fs.closeSync(fd);
    }
  }
}

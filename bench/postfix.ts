/**
 * A private Postfix 3.7 instance (Debian's package), set up the way /work/shared/tools/postfix-ref
 * does it: its own config directory, queue, data directory and log file under one temporary
 * directory, `postfix -c DIR start`, one smtpd on 127.0.0.1:PORT. Stopped by the master's pid
 * (read from queue/pid/master.pid): SIGTERM, which makes master(8) terminate its children, then
 * SIGKILL for anything of the instance still alive.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { isAlive, type Memory, processTree, treeCpuSeconds, treeMemory } from './procs.js';
import { commonMainCf, MAILBOX_ID, masterCf, type Profile, RECIPIENT, running, type Server, sleep, waitForPort } from './server.js';

const run = promisify(execFile);

export class PostfixServer implements Server {
  readonly name = 'Postfix' as const;
  readonly queueDir: string;
  readonly maildir: string;
  #master: number | null = null;
  /** Pids seen below the master, so kill() still finds children if the master died first. */
  #tree: number[] = [];
  /** Stand-in for qmgr's trigger socket in the profiles without qmgr (see start()). */
  #trigger: net.Server | null = null;

  constructor(
    readonly dir: string,
    readonly port: number,
    public profile: Profile,
  ) {
    this.queueDir = path.join(dir, 'queue');
    this.maildir = path.join(dir, 'mail', RECIPIENT.split('@')[0]!);
  }

  get etc(): string {
    return path.join(this.dir, 'etc');
  }

  /** Write main.cf/master.cf (again: a profile change on the same queue keeps the queue). */
  configure(profile: Profile): void {
    this.profile = profile;
    const d = this.dir;
    fs.mkdirSync(this.etc, { recursive: true });
    for (const sub of ['queue', 'data', 'mail']) fs.mkdirSync(path.join(d, sub), { recursive: true });
    fs.chmodSync(d, 0o755);
    fs.chownSync(path.join(d, 'data'), uidOf('postfix'), gidOf('postfix'));
    fs.chownSync(path.join(d, 'mail'), MAILBOX_ID, MAILBOX_ID);
    try {
      fs.copyFileSync('/etc/postfix/dynamicmaps.cf', path.join(this.etc, 'dynamicmaps.cf'));
    } catch {
      // no dynamic map plugins: static/inline tables still work
    }
    const main = [
      ...commonMainCf(d, profile),
      `config_directory = ${this.etc}`,
      'mail_owner = postfix',
      'setgid_group = postdrop',
      `maillog_file_prefixes = ${d}`,
      // Postfix only: Postern has no smtp client and no arrival flow control (it would warn).
      'smtp_dns_support_level = disabled',
      ...(profile !== 'deliver' ? ['in_flow_delay = 0'] : []),
    ];
    fs.writeFileSync(path.join(this.etc, 'main.cf'), `${main.join('\n')}\n`);
    fs.writeFileSync(path.join(this.etc, 'master.cf'), masterCf(this.port, profile));
  }

  async start(): Promise<void> {
    if (!fs.existsSync(path.join(this.etc, 'main.cf'))) this.configure(this.profile);
    running.add(this);
    try {
      await run('postfix', ['-c', this.etc, 'start'], { timeout: 60_000 });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`postfix -c ${this.etc} start failed: ${e.stderr || e.stdout || e.message}`);
    }
    const pidFile = path.join(this.queueDir, 'pid', 'master.pid');
    for (let i = 0; i < 100 && this.#master === null; i++) {
      try {
        const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
        if (pid > 0 && isAlive(pid)) this.#master = pid;
      } catch {
        // not written yet
      }
      if (this.#master === null) await sleep(50);
    }
    if (this.#master === null) throw new Error(`postfix started but ${pidFile} names no live master`);
    await waitForPort(this.port, 10_000, () => this.running());
    if (this.profile !== 'deliver') await this.#listenTrigger();
  }

  /**
   * Without a qmgr service, cleanup's wake-up call after each message (mail_trigger to
   * public/qmgr) finds no socket and logs `warning: unable to look up public/qmgr` per message. A
   * socket that accepts the trigger and ignores it is what an idle qmgr costs cleanup, and keeps
   * that warning out of the acceptance path.
   */
  async #listenTrigger(): Promise<void> {
    const sock = path.join(this.queueDir, 'public', 'qmgr');
    fs.rmSync(sock, { force: true });
    const srv = net.createServer((c) => {
      // qmgr reads the wake-up request and closes; so does this.
      c.on('error', () => {});
      c.on('data', () => c.end());
      c.on('end', () => c.end());
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(sock, () => resolve());
    });
    fs.chmodSync(sock, 0o666);
    this.#trigger = srv;
  }

  #closeTrigger(): void {
    this.#trigger?.close();
    this.#trigger = null;
  }

  running(): boolean {
    return this.#master !== null && isAlive(this.#master);
  }

  memory(): Memory {
    if (this.#master === null) return { rss: 0, pss: 0, processes: 0 };
    this.#tree = processTree(this.#master);
    return treeMemory(this.#master);
  }

  cpuSeconds(): number {
    return this.#master === null ? 0 : treeCpuSeconds(this.#master);
  }

  async stop(): Promise<void> {
    const master = this.#master;
    if (master === null) {
      running.delete(this);
      return;
    }
    const tree = processTree(master);
    try {
      process.kill(master, 'SIGTERM');
    } catch {
      // already gone
    }
    const until = Date.now() + 15_000;
    while (tree.some(isAlive) && Date.now() < until) await sleep(100);
    for (const pid of tree) if (isAlive(pid)) killQuietly(pid);
    this.#master = null;
    this.#closeTrigger();
    running.delete(this);
  }

  kill(): void {
    const pids = this.#master !== null ? [this.#master, ...processTree(this.#master), ...this.#tree] : this.#tree;
    for (const pid of pids) killQuietly(pid);
    this.#master = null;
    this.#closeTrigger();
    running.delete(this);
  }

  log(): string[] {
    try {
      return fs.readFileSync(path.join(this.dir, 'maillog'), 'utf8').split('\n');
    } catch {
      return [];
    }
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

function idField(name: string, field: 2 | 3): number {
  for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === name) return Number(f[field]);
  }
  throw new Error(`no user ${name} in /etc/passwd (install Debian's postfix package)`);
}

export function uidOf(name: string): number {
  return idField(name, 2);
}

export function gidOf(name: string): number {
  return idField(name, 3);
}

/** Is Debian's Postfix (with smtp-source) installed? */
export function postfixAvailable(): string | null {
  for (const bin of ['/usr/sbin/postfix', '/usr/sbin/smtp-source']) if (!fs.existsSync(bin)) return `${bin} is missing (apt-get install postfix)`;
  return null;
}

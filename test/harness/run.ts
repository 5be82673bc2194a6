/**
 * `postern` as a child process for tests: bin/postern.js with the given arguments, its output
 * kept, waits on that output, and a kill by pid for `finally`; and runPostern() for a command
 * that runs to its end (sendmail, mailq, postqueue, ...), as a user types it.
 */
import { type ChildProcess, type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = path.join(ROOT, 'bin', 'postern.js');

/**
 * Runs `postern ARGS` to its end with `input` on stdin (default none) and MAIL_CONFIG cleared,
 * as the user `uid`/`gid` when given (needs root).
 */
export function runPostern(args: readonly string[], o: { input?: string; uid?: number; gid?: number; cwd?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BIN, ...args], {
    input: o.input ?? '',
    encoding: 'utf8',
    env: { ...process.env, MAIL_CONFIG: '' },
    ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
    ...(o.uid !== undefined ? { uid: o.uid } : {}),
    ...(o.gid !== undefined ? { gid: o.gid } : {}),
    timeout: 60_000,
  });
}

export class PosternProcess {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  /** Starts `postern ARGS` in `cwd` with MAIL_CONFIG cleared. */
  constructor(args: readonly string[], cwd: string) {
    this.child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MAIL_CONFIG: '' } });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }
  get pid(): number {
    return this.child.pid!;
  }
  /** Master log lines (text after `postfix/master[PID]: `). */
  masterLines(): string[] {
    const tag = `postfix/master[${this.pid}]: `;
    return this.stdout
      .split('\n')
      .filter((l) => l.includes(tag))
      .map((l) => l.slice(l.indexOf(tag) + tag.length));
  }
  /** Polls `pred` every 20 ms; after `ms` throws with `what` and everything the process printed. */
  async waitFor(pred: () => boolean, what: string, ms = 10_000): Promise<void> {
    const until = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}\nstdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  waitLine(re: RegExp): Promise<void> {
    return this.waitFor(() => this.masterLines().some((l) => re.test(l)), String(re));
  }
  /** SIGKILL unless it has already exited. */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

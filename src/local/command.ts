/**
 * Delivery to a command (`|command` in aliases and :include: files, mailbox_command), as Postfix's
 * local/command.c + global/pipe_command.c: the message goes to the command's standard input with
 * a `From sender  date` line, Return-Path:, X-Original-To: and (prepend_delivered_header has
 * `command`) Delivered-To: in front; the command runs under `/bin/sh -c` (or local_command_shell)
 * as the delivery rights' user, in its own process group, with a sanitized environment, for at
 * most command_time_limit; its first 4 KiB of output explain a failure.
 *
 * Exit status, as Postfix: 0 = delivered; `D.S.N text` output = that status; a sysexits(3) code
 * (64-78) = its status and text (EX_TEMPFAIL 75 → 4.3.0, try again); another code = 5.3.0
 * `Command died with status N: "cmd"`; a signal = 4.3.0; the time limit = 5.3.0
 * `Command time limit exceeded: "cmd"`.
 */
import { spawn } from 'node:child_process';
import * as os from 'node:os';
import { LfCopier } from '../mailbox/copy.js';
import { errText } from '../mailbox/errors.js';

export interface CommandRequest {
  readonly command: string;
  /** local_command_shell: empty = `/bin/sh -c`; else the shell and its arguments, the command last. */
  readonly shell: string;
  /** Run as this user (only possible as root); null = as this process. */
  readonly uid: number | null;
  readonly gid: number | null;
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  /** Lines before the message (From_ line first), without line ends. */
  readonly prepend: readonly string[];
  readonly message: AsyncIterable<Buffer>;
  readonly timeLimitMs: number;
}

export interface CommandOutcome {
  readonly dsn: string;
  readonly reason: string;
}

const OUTPUT_LIMIT = 4096;

/** sysexits.h codes and Postfix's global/sys_exits.c table. */
const SYS_EXITS: Readonly<Record<number, readonly [string, string]>> = {
  64: ['5.3.0', 'command line usage error'],
  65: ['5.6.0', 'data format error'],
  66: ['5.3.0', 'cannot open input'],
  67: ['5.1.1', 'user unknown'],
  68: ['5.1.2', 'host name unknown'],
  69: ['5.3.0', 'service unavailable'],
  70: ['5.3.0', 'internal software error'],
  71: ['4.3.0', 'system resource problem'],
  72: ['5.3.0', 'critical OS file missing'],
  73: ['5.2.0', "can't create user output file"],
  74: ['5.3.0', 'input/output error'],
  75: ['4.3.0', 'temporary failure'],
  76: ['5.5.0', 'remote error in protocol'],
  77: ['5.7.0', 'permission denied'],
  78: ['5.3.5', 'local configuration error'],
};

/** Postfix dsn_valid(): a `D.S.N` status at the start of text, followed by space or the end. */
export function leadingDsn(text: string): string | null {
  const m = /^([245])\.(\d{1,3})\.(\d{1,3})(?=$|[ \t])/.exec(text);
  return m ? m[0] : null;
}

/** Run the command and feed it the message. Never throws: the outcome says what happened. */
export async function deliverToCommand(r: CommandRequest): Promise<CommandOutcome> {
  const argv = r.shell.trim() === '' ? ['/bin/sh', '-c', r.command] : [...r.shell.trim().split(/\s+/), r.command];
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(argv[0]!, argv.slice(1), {
      cwd: r.cwd,
      env: { ...r.env },
      detached: true, // own process group: the time limit kills its offspring too
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(r.uid !== null ? { uid: r.uid } : {}),
      ...(r.gid !== null ? { gid: r.gid } : {}),
    });
  } catch (err) {
    return { dsn: '4.3.0', reason: `Delivery failed: ${errText(err)}` };
  }
  const output: Buffer[] = [];
  let outputBytes = 0;
  const collect = (b: Buffer): void => {
    if (outputBytes >= OUTPUT_LIMIT) return;
    const piece = b.subarray(0, OUTPUT_LIMIT - outputBytes);
    output.push(piece);
    outputBytes += piece.length;
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let timedOut = false;
  const killGroup = (): void => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, r.timeLimitMs);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError: unknown }>((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, spawnError: err }));
    child.once('close', (code, signal) => resolve({ code, signal, spawnError: null }));
  });

  // Feed the message; a command that stops reading (EPIPE) is judged by its exit status alone.
  let writeError: unknown = null;
  const stdin = child.stdin;
  if (stdin) {
    stdin.on('error', (err) => {
      writeError ??= err;
    });
    try {
      const copier = new LfCopier(false);
      const write = (bufs: Buffer[]): Promise<void> | null => {
        if (bufs.length === 0 || stdin.destroyed) return null;
        const ok = stdin.write(Buffer.concat(bufs));
        return ok ? null : new Promise<void>((res) => {
          const done = (): void => {
            stdin.off('drain', done);
            stdin.off('close', done);
            res();
          };
          stdin.on('drain', done);
          stdin.on('close', done);
        });
      };
      await write(r.prepend.map((l) => Buffer.from(`${l}\n`, 'utf8')));
      for await (const chunk of r.message) {
        if (stdin.destroyed || timedOut) break;
        const out: Buffer[] = [];
        copier.push(chunk, out);
        await write(out);
      }
      const tail: Buffer[] = [];
      copier.end(tail);
      await write(tail);
    } catch (err) {
      writeError ??= err;
    } finally {
      stdin.end();
    }
  }
  const res = await exited;
  clearTimeout(timer);
  const log = Buffer.concat(output)
    .toString('utf8')
    .replace(/[\t\n]/g, ' ')
    .replace(/[^\x20-\x7e]/g, '_');
  const withOutput = log.length > 0 ? `. Command output: ${log}` : '';
  if (res.spawnError !== null) return { dsn: '4.3.0', reason: `Delivery failed: ${errText(res.spawnError)}` };
  if (timedOut) return { dsn: '5.3.0', reason: `Command time limit exceeded: "${r.command}"${withOutput}` };
  if (res.signal !== null) {
    const num = signalNumber(res.signal);
    return { dsn: '4.3.0', reason: `Command died with signal ${num}: "${r.command}"${withOutput}` };
  }
  const code = res.code ?? 0;
  if (code !== 0) {
    const dsn = leadingDsn(log);
    if (dsn !== null) {
      const text = log.slice(dsn.length + 1);
      return { dsn, reason: text };
    }
    const sx = SYS_EXITS[code];
    if (sx !== undefined) return { dsn: sx[0], reason: `${sx[1]}${withOutput}` };
    return { dsn: '5.3.0', reason: `Command died with status ${code}: "${r.command}"${withOutput}` };
  }
  if (writeError !== null && (writeError as NodeJS.ErrnoException).code !== 'EPIPE') {
    return { dsn: '5.3.0', reason: `Command failed: error writing message: ${errText(writeError)}: "${r.command}"` };
  }
  return { dsn: '2.0.0', reason: `delivered to command: ${r.command}` };
}

function signalNumber(sig: NodeJS.Signals): number {
  return os.constants.signals[sig] ?? 0;
}

/**
 * `postern pw [-s SCHEME] [-r ROUNDS] [-p PASSWORD]`: print a password hash as `{SCHEME}value`
 * for a Dovecot passwd-file (like `doveadm pw`). The password is read from standard input when it
 * is not a terminal (first line), else prompted twice without echo. Default scheme SHA512-CRYPT.
 */
import type { Readable } from 'node:stream';
import { DEFAULT_SCHEME, hashPassword, SCHEMES } from '../auth/index.js';
import type { CliContext } from './context.js';

const USAGE = 'usage: postern pw [-s scheme] [-r rounds] [-p password]';

export interface PasswordInput {
  readonly stdin: Readable & { isTTY?: boolean; setRawMode?: (on: boolean) => unknown };
}

/** Read one line from a stream (the password, without its line end). */
async function readLine(stdin: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stdin) {
    const b = typeof c === 'string' ? Buffer.from(c) : (c as Buffer);
    const nl = b.indexOf(10);
    if (nl >= 0) {
      chunks.push(b.subarray(0, nl));
      break;
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8').replace(/\r$/, '');
}

/** Prompt on the terminal with echo off; resolves at Enter, rejects at Ctrl-C/Ctrl-D. */
function prompt(io: PasswordInput, out: NodeJS.WritableStream, text: string): Promise<string> {
  const stdin = io.stdin;
  out.write(text);
  return new Promise((resolve, reject) => {
    let buf = '';
    stdin.setRawMode?.(true);
    stdin.resume();
    const done = (err: Error | null): void => {
      stdin.off('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      out.write('\n');
      if (err) reject(err);
      else resolve(buf);
    };
    const onData = (d: Buffer | string): void => {
      for (const ch of d.toString()) {
        if (ch === '\r' || ch === '\n') {
          done(null);
          return;
        }
        if (ch === '\u0003' || ch === '\u0004') {
          done(new Error('interrupted'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') buf = buf.slice(0, -1);
        else buf += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** The new password: stdin's first line, or typed twice on a terminal. Throws Error with a message. */
export async function readNewPassword(io: PasswordInput, out: NodeJS.WritableStream): Promise<string> {
  let pw: string;
  if (io.stdin.isTTY) {
    pw = await prompt(io, out, 'Enter new password: ');
    const again = await prompt(io, out, 'Retype new password: ');
    if (pw !== again) throw new Error("Passwords don't match!");
  } else {
    pw = await readLine(io.stdin);
  }
  if (pw === '') throw new Error('Empty password');
  return pw;
}

/** `-s SCHEME` / `-r N` options shared with `postern user`; returns the index of the first operand. */
export function parseHashOptions(args: readonly string[], extra: ReadonlySet<string> = new Set()): { scheme: string; rounds: number | undefined; values: Map<string, string>; rest: string[] } | string {
  let scheme = DEFAULT_SCHEME;
  let rounds: number | undefined;
  const values = new Map<string, string>();
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    const opt = a.slice(1, 2);
    let v = a.slice(2);
    if (v === '') v = args[++i] ?? '';
    if (v === '') return `option -${opt} needs a value`;
    if (opt === 's') {
      scheme = v.toUpperCase();
      if (!SCHEMES.includes(scheme)) return `unknown scheme ${v}; supported: ${SCHEMES.join(' ')}`;
    } else if (opt === 'r') {
      if (!/^\d+$/.test(v) || Number(v) < 1000 || Number(v) > 999999999) return `bad rounds ${v}: 1000..999999999`;
      rounds = Number(v);
    } else if (extra.has(opt)) values.set(opt, v);
    else return `unknown option ${a}`;
  }
  return { scheme, rounds, values, rest: args.slice(i) };
}

export async function run(args: string[], ctx: CliContext, io: PasswordInput): Promise<number> {
  const o = parseHashOptions(args, new Set(['p']));
  if (typeof o === 'string' || o.rest.length > 0) {
    ctx.stderr.write(`postern pw: ${typeof o === 'string' ? `${o}\n` : ''}${USAGE}\n`);
    return 1;
  }
  let pw = o.values.get('p');
  if (pw === undefined) {
    try {
      pw = await readNewPassword(io, ctx.stderr);
    } catch (e) {
      ctx.stderr.write(`postern pw: fatal: ${(e as Error).message}\n`);
      return 1;
    }
  }
  if (o.rounds !== undefined && !o.scheme.endsWith('CRYPT')) {
    ctx.stderr.write('postern pw: -r applies to SHA256-CRYPT, SHA512-CRYPT and CRYPT only\n');
    return 1;
  }
  ctx.stdout.write(`${hashPassword(o.scheme, pw, o.rounds !== undefined ? { rounds: o.rounds } : {})}\n`);
  return 0;
}

export function main(args: string[], ctx: CliContext): Promise<number> {
  return run(args, ctx, { stdin: process.stdin });
}

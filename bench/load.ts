/**
 * The load: Postfix's smtp-source for message streams (one message per connection, as MX traffic
 * arrives), and plain sockets for idle sessions (connect, read the greeting, EHLO, then wait).
 */
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import { RECIPIENT, SENDER } from './server.js';

export interface SourceResult {
  /** Wall clock from spawning smtp-source to its exit (its last QUIT follows the last 250). */
  readonly seconds: number;
  readonly exitCode: number | null;
  /** smtp-source's complaints (rejected commands, lost connections), at most a few KiB. */
  readonly stderr: string;
}

/** `smtp-source -s SESSIONS -m MESSAGES -l SIZE -f SENDER -t RECIPIENT 127.0.0.1:PORT`, timed. */
export function smtpSource(port: number, sessions: number, messages: number, size: number): Promise<SourceResult> {
  const args = ['-s', String(sessions), '-m', String(messages), '-l', String(size), '-f', SENDER, '-t', RECIPIENT, `127.0.0.1:${port}`];
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('smtp-source', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, exitCode: code, stderr });
    });
  });
}

/** Open, greet and EHLO one session; resolves with the socket once the last 250 line of EHLO arrived. */
function idleSession(port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    let state: 'greeting' | 'ehlo' = 'greeting';
    const timer = setTimeout(() => fail(new Error(`no ${state} reply within ${timeoutMs} ms`)), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      s.destroy();
      reject(err);
    };
    s.setEncoding('latin1');
    s.on('error', fail);
    s.on('close', () => fail(new Error(`connection closed during ${state}`)));
    s.on('data', (d: string) => {
      buf += d;
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (/^\d{3}-/.test(line)) continue;
        if (state === 'greeting') {
          if (!line.startsWith('220 ')) return fail(new Error(`greeting: ${line}`));
          state = 'ehlo';
          s.write('EHLO client.example.org\r\n');
        } else {
          if (!line.startsWith('250 ')) return fail(new Error(`EHLO: ${line}`));
          clearTimeout(timer);
          s.removeAllListeners('data');
          s.removeAllListeners('close');
          s.removeAllListeners('error');
          s.on('error', () => {});
          resolve(s);
          return;
        }
      }
    });
  });
}

/**
 * `n` sessions idle after EHLO, opened `parallel` at a time (so the listen queue does not
 * overflow while Postfix forks its smtpd processes).
 */
export async function openIdleSessions(port: number, n: number, parallel = 50, timeoutMs = 60_000): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  let next = 0;
  let failure: Error | null = null;
  const worker = async (): Promise<void> => {
    while (next < n && failure === null) {
      next++;
      try {
        sockets.push(await idleSession(port, timeoutMs));
      } catch (err) {
        failure = err as Error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
  if (failure !== null) {
    for (const s of sockets) s.destroy();
    throw new Error(`idle session ${sockets.length + 1} of ${n}: ${(failure as Error).message}`);
  }
  return sockets;
}

/** Close idle sessions politely (QUIT) and wait until they are closed. */
export async function closeSessions(sockets: net.Socket[]): Promise<void> {
  await Promise.all(
    sockets.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.destroyed) return resolve();
          s.once('close', () => resolve());
          s.end('QUIT\r\n');
          setTimeout(() => s.destroy(), 5_000).unref();
        }),
    ),
  );
}

/**
 * Password checks off the event loop: SHA512-CRYPT costs ~20 ms of CPU, which would stall every
 * SMTP session of the process (Dovecot runs them in auth worker processes for the same reason).
 * One worker thread, started at the first check, unref'd so it never keeps the process alive.
 * Where worker threads are unavailable, checks run inline.
 */
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { type VerifyResult, verifyPassword } from './schemes.js';

interface Request {
  readonly id: number;
  readonly stored: string;
  readonly password: string;
  readonly scheme: string;
}

interface Response {
  readonly id: number;
  readonly result: VerifyResult;
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  port.on('message', (m: Request) => {
    const r: Response = { id: m.id, result: verifyPassword(m.stored, m.password, m.scheme) };
    port.postMessage(r);
  });
}

let worker: Worker | null = null;
let broken = false;
let nextId = 0;
const pending = new Map<number, (r: VerifyResult) => void>();

function failAll(): void {
  for (const [id, resolve] of pending) {
    pending.delete(id);
    resolve({ kind: 'unsupported', detail: 'password check worker failed' });
  }
}

function start(): Worker | null {
  if (worker !== null || broken) return worker;
  try {
    const w = new Worker(new URL(import.meta.url));
    w.unref();
    w.on('message', (m: Response) => {
      const resolve = pending.get(m.id);
      pending.delete(m.id);
      resolve?.(m.result);
      if (pending.size === 0) w.unref();
    });
    w.on('error', () => {
      worker = null;
      failAll();
    });
    w.on('exit', () => {
      worker = null;
      failAll();
    });
    worker = w;
  } catch {
    broken = true;
  }
  return worker;
}

/** verifyPassword() in the worker thread. Never rejects. */
export function verifyPasswordAsync(stored: string, password: string, scheme: string): Promise<VerifyResult> {
  const w = start();
  if (w === null) return Promise.resolve(verifyPassword(stored, password, scheme));
  const id = ++nextId;
  return new Promise((resolve) => {
    pending.set(id, resolve);
    // Keep the process alive only while a check is outstanding.
    w.ref();
    const req: Request = { id, stored, password, scheme };
    w.postMessage(req);
  });
}

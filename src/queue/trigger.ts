/**
 * Asking a running qmgr to do something now: the client side of qmgr's trigger endpoint (the
 * protocol is documented with the server, ../qmgr/trigger.ts). For `postqueue -f`, `postqueue -s
 * site`, `sendmail -q` and smtpd's ETRN.
 *
 *   await triggerQmgr(params.queue_directory, 'flush');           // postqueue -f, sendmail -q
 *   await triggerQmgr(params.queue_directory, { site: 'example.com' }); // postqueue -s, ETRN
 *
 * Throws PosternError code 'trigger' when no qmgr listens (Postern is not running): callers say
 * what Postfix says then (`Cannot flush mail queue - mail system is down`).
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { PosternError } from '../errors.js';

/** The endpoint, as Postfix's public/qmgr. */
export const QMGR_TRIGGER_PATH = path.join('public', 'qmgr');

/** What to ask. `flush`: all deferred mail now; `scan`: look at incoming/ now (Postfix `W`/`I`). */
export type QmgrRequest = 'flush' | 'scan' | { readonly site: string };

/** The request line (without LF) for a QmgrRequest. */
export function requestLine(r: QmgrRequest): string {
  if (r === 'flush') return 'FAD';
  if (r === 'scan') return 'I';
  if (!/^[\x21-\x7e]{1,255}$/.test(r.site)) throw new PosternError('trigger', `bad site name: ${JSON.stringify(r.site)}`);
  return `S ${r.site}`;
}

/** Send one request; resolves when qmgr accepted it (the work itself continues in qmgr). */
export function triggerQmgr(queue_directory: string, request: QmgrRequest, o: { timeoutMs?: number } = {}): Promise<void> {
  const line = `${requestLine(request)}\n`;
  const socketPath = path.join(queue_directory, QMGR_TRIGGER_PATH);
  return new Promise((resolve, reject) => {
    let reply = '';
    let settled = false;
    const finish = (err: PosternError | null): void => {
      if (settled) return;
      settled = true;
      sock.destroy();
      if (err === null) resolve();
      else reject(err);
    };
    const sock = net.createConnection({ path: socketPath });
    sock.setTimeout(o.timeoutMs ?? 10_000, () => finish(new PosternError('trigger', `${socketPath}: timeout waiting for qmgr`)));
    sock.on('connect', () => sock.write(line));
    sock.on('data', (d: Buffer) => {
      reply += d.toString('latin1');
      if (reply.length > 1024) finish(new PosternError('trigger', `${socketPath}: reply too long`));
      const nl = reply.indexOf('\n');
      if (nl < 0) return;
      const first = reply.slice(0, nl);
      if (first === 'OK') finish(null);
      else finish(new PosternError('trigger', `qmgr: ${first.replace(/^ERR ?/, '')}`));
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'qmgr is not running' : err.message;
      finish(new PosternError('trigger', `connect to ${socketPath}: ${why}`, { cause: err }));
    });
    sock.on('close', () => finish(new PosternError('trigger', `${socketPath}: connection closed without a reply`)));
  });
}

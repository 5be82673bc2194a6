/**
 * qmgr's trigger endpoint: how `postqueue -f`, `postqueue -s site`, `sendmail -q` and smtpd's
 * ETRN ask a running qmgr to look at the queue now (Postfix: the public/qmgr FIFO).
 *
 * Endpoint: a UNIX-domain stream socket `$queue_directory/public/qmgr` (public/ mode 0755, the
 * socket 0666: like Postfix's public/ FIFOs anyone on the host may poke it; it only makes qmgr
 * look at the queue sooner). A stale socket from a crash is replaced at start.
 *
 * Protocol (one request per connection):
 *   client → server  one line, at most 512 bytes, ended by LF:
 *                      Postfix's qmgr trigger letters, one or more (mail_proto.h):
 *                        I  scan incoming/            W  wake up (same as I)
 *                        D  scan deferred/            A  ignore retry times (with D: every
 *                        F  flush dead transports        deferred message now = postqueue -f)
 *                           (accepted; Postern does not throttle transports)
 *                      or `S <site>`: deferred mail with a recipient in <site> now
 *                      (postqueue -s, ETRN; <site> a domain or [address])
 *   server → client  `OK` LF when the request is taken (the work goes on in qmgr), or
 *                    `ERR <text>` LF; then the server closes.
 * The client is ../queue/trigger.ts triggerQmgr().
 */
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Logger } from '../log/index.js';
import { QMGR_TRIGGER_PATH } from '../queue/trigger.js';

export interface TriggerHandler {
  scan(all: boolean): Promise<void>;
  flushSite(site: string): Promise<void>;
}

export interface TriggerServer {
  readonly path: string;
  close(): Promise<void>;
}

const MAX_REQUEST = 512;

/** Parse a request line. Returns what to do, or an error text. */
export function parseTrigger(line: string): { scanIncoming: boolean; scanDeferred: boolean; all: boolean; site: string | null } | { error: string } {
  if (line.startsWith('S ')) {
    const site = line.slice(2).trim();
    if (!/^[\x21-\x7e]{1,255}$/.test(site)) return { error: 'bad site name' };
    return { scanIncoming: false, scanDeferred: false, all: false, site };
  }
  if (!/^[IDAFW]+$/.test(line)) return { error: `unknown request: ${JSON.stringify(line.slice(0, 40))}` };
  return {
    scanIncoming: /[IWD]/.test(line) || line.includes('A'),
    scanDeferred: line.includes('D'),
    all: line.includes('A'),
    site: null,
  };
}

/** Listen on queue_directory/public/qmgr and hand requests to `handler`. */
export async function startTriggerServer(queue_directory: string, handler: TriggerHandler, logger: Logger): Promise<TriggerServer> {
  const socketPath = path.join(queue_directory, QMGR_TRIGGER_PATH);
  await fsp.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o755 });
  await fsp.rm(socketPath, { force: true });
  const server = net.createServer((sock) => {
    sock.on('error', () => {});
    sock.setTimeout(10_000, () => sock.destroy());
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > MAX_REQUEST) sock.end('ERR request too long\n');
        return;
      }
      sock.off('data', onData);
      const req = parseTrigger(buf.slice(0, nl).replace(/\r$/, ''));
      if ('error' in req) {
        sock.end(`ERR ${req.error}\n`);
        return;
      }
      const work = req.site !== null ? handler.flushSite(req.site) : req.scanDeferred || req.scanIncoming ? handler.scan(req.all) : Promise.resolve();
      work.catch((err: unknown) => logger.warning(`trigger: ${err instanceof Error ? err.message : String(err)}`));
      sock.end('OK\n');
    };
    sock.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.warning(`trigger ${socketPath}: ${err.message}`));
  await fsp.chmod(socketPath, 0o666);
  return {
    path: socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        void fsp.rm(socketPath, { force: true }).catch(() => undefined);
      }),
  };
}

/**
 * Client side of Postfix's policy delegation protocol (SMTPD_POLICY_README): `name=value` lines and
 * an empty line to the policy server, one `action=...` attribute (and an empty line) back. One
 * connection per query. Endpoints as check_policy_service names them: `inet:host:port`
 * (`inet:[::1]:port`), `unix:path` (relative to queue_directory, as Postfix's private/ sockets).
 *
 * Trusts: nothing from the server beyond one bounded reply (8 KiB); the action is then judged like
 * an access(5) table result by the caller.
 */
import * as net from 'node:net';
import * as path from 'node:path';

const MAX_REPLY = 8192;

export class PolicyError extends Error {}

function connectOptions(endpoint: string, queueDirectory: string): net.NetConnectOpts {
  if (endpoint.startsWith('unix:')) {
    const p = endpoint.slice(5);
    return { path: path.isAbsolute(p) ? p : path.join(queueDirectory, p) };
  }
  const hp = endpoint.startsWith('inet:') ? endpoint.slice(5) : endpoint;
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(hp);
  if (m === null) throw new PolicyError(`bad policy server name: ${endpoint}`);
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}

/** One policy query; resolves the action text. Throws PolicyError (connection, timeout, bad reply). */
export function queryPolicy(endpoint: string, attrs: ReadonlyArray<readonly [string, string]>, o: { queueDirectory: string; timeoutMs: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    let opts: net.NetConnectOpts;
    try {
      opts = connectOptions(endpoint, o.queueDirectory);
    } catch (e) {
      reject(e);
      return;
    }
    const sock = net.connect(opts);
    let buf = '';
    let done = false;
    const finish = (err: Error | null, action?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err !== null) reject(err);
      else resolve(action!);
    };
    const timer = setTimeout(() => finish(new PolicyError('timeout')), o.timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      // Values never carry a line end (they come from sanitized session state); strip any anyway.
      const body = attrs.map(([k, v]) => `${k}=${v.replace(/[\r\n]/g, ' ')}\n`).join('');
      sock.write(`${body}\n`);
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REPLY) return finish(new PolicyError('reply too long'));
      const end = buf.indexOf('\n\n');
      if (end < 0) return;
      const lines = buf.slice(0, end).split('\n');
      const action = lines.find((l) => l.startsWith('action='));
      if (action === undefined) return finish(new PolicyError('no action attribute in reply'));
      finish(null, action.slice('action='.length));
    });
    sock.on('error', (e: NodeJS.ErrnoException) => finish(new PolicyError(e.code === 'ECONNREFUSED' ? 'Connection refused' : e.message)));
    sock.on('close', () => finish(new PolicyError('Connection closed')));
  });
}

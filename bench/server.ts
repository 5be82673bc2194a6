/**
 * What the bench needs from a server under test (a private Postfix or a Postern child), and the
 * configuration both get: the same main.cf settings and the same master.cf services, so the only
 * difference is the program.
 *
 * Profiles:
 *   accept   smtpd and cleanup only: no qmgr line in master.cf, so accepted mail stays in incoming/
 *            and nothing competes with the acceptance path. Postfix also gets `in_flow_delay = 0`
 *            (bench/postfix.ts): its cleanup otherwise waits up to 1 s per message for a flow token
 *            that only a running qmgr hands out (postconf(5) in_flow_delay), which would measure that
 *            pause, not the disk. Postern has no flow control and would only warn about the setting.
 *   idle     accept + `default_process_limit = 1100` (1,000 idle sessions must all get a process
 *            in Postfix, and a session slot under maxproc in Postern).
 *   deliver  everything, qmgr included; recipients in example.test go to one virtual Maildir
 *            (virtual_mailbox_maps = static:box/) under DIR/mail, owned by uid/gid 65534.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Memory } from './procs.js';

export type Profile = 'accept' | 'idle' | 'deliver';
export type QueueDir = 'incoming' | 'active' | 'deferred' | 'hold' | 'corrupt';

export interface Server {
  readonly name: 'Postfix' | 'Postern';
  readonly dir: string;
  readonly port: number;
  readonly profile: Profile;
  readonly queueDir: string;
  /** The Maildir every example.test recipient is delivered to. */
  readonly maildir: string;
  start(): Promise<void>;
  /** Stop by pid (TERM, then KILL after a grace period); safe to call twice. */
  stop(): Promise<void>;
  /** Synchronous last-resort stop (SIGKILL by pid) for signal handlers. */
  kill(): void;
  running(): boolean;
  memory(): Memory;
  /** CPU seconds used so far by all of the server's processes (./procs.ts treeCpuSeconds). */
  cpuSeconds(): number;
  /** CPU seconds of the main thread alone, for a server that runs in one event loop (Postern). */
  mainThreadCpuSeconds?(): number;
  /** Lines of the server's log file. */
  log(): string[];
}

/** The uid/gid that owns the virtual Maildir (postfix-ref's virtual_uid_maps). */
export const MAILBOX_ID = 65534;

export const SENDER = 'bench@example.org';
export const RECIPIENT = 'box@example.test';

/** main.cf lines both servers get (paths under `dir`). */
export function commonMainCf(dir: string, profile: Profile): string[] {
  const lines = [
    'compatibility_level = 3.6',
    `queue_directory = ${path.join(dir, 'queue')}`,
    `data_directory = ${path.join(dir, 'data')}`,
    `maillog_file = ${path.join(dir, 'maillog')}`,
    'myhostname = mx.example.test',
    'mydestination = localhost',
    'mynetworks = 127.0.0.0/8 [::1]/128',
    'inet_interfaces = 127.0.0.1',
    'inet_protocols = ipv4',
    'smtpd_peername_lookup = no',
    'alias_maps =',
    'alias_database =',
    'biff = no',
    'virtual_mailbox_domains = example.test',
    `virtual_mailbox_base = ${path.join(dir, 'mail')}`,
    'virtual_mailbox_maps = static:box/',
    `virtual_uid_maps = static:${MAILBOX_ID}`,
    `virtual_gid_maps = static:${MAILBOX_ID}`,
  ];
  if (profile === 'idle') lines.push('default_process_limit = 1100');
  return lines;
}

/** master.cf as postfix-ref writes it, with one inet smtpd on 127.0.0.1:port; no qmgr unless delivering. */
export function masterCf(port: number, profile: Profile): string {
  const lines = [
    `127.0.0.1:${port} inet n - n - - smtpd`,
    'pickup    unix  n       -       n       60      1       pickup',
    'cleanup   unix  n       -       n       -       0       cleanup',
    'qmgr      unix  n       -       n       300     1       qmgr',
    'tlsmgr    unix  -       -       n       1000?   1       tlsmgr',
    'rewrite   unix  -       -       n       -       -       trivial-rewrite',
    'bounce    unix  -       -       n       -       0       bounce',
    'defer     unix  -       -       n       -       0       bounce',
    'trace     unix  -       -       n       -       0       bounce',
    'verify    unix  -       -       n       -       1       verify',
    'flush     unix  n       -       n       1000?   0       flush',
    'proxymap  unix  -       -       n       -       -       proxymap',
    'smtp      unix  -       -       n       -       -       smtp',
    'relay     unix  -       -       n       -       -       smtp',
    'showq     unix  n       -       n       -       -       showq',
    'error     unix  -       -       n       -       -       error',
    'retry     unix  -       -       n       -       -       error',
    'discard   unix  -       -       n       -       -       discard',
    'local     unix  -       n       n       -       -       local',
    'virtual   unix  -       n       n       -       -       virtual',
    'anvil     unix  -       -       n       -       1       anvil',
    'scache    unix  -       -       n       -       1       scache',
    'postlog   unix-dgram n  -       n       -       1       postlogd',
  ];
  return `${lines.filter((l) => profile === 'deliver' || !l.startsWith('qmgr ')).join('\n')}\n`;
}

/** Regular files below `dir` (recursively: Postfix hashes deferred/ into subdirectories), temp files excluded. */
export function countFiles(dir: string): number {
  let n = 0;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (e.isDirectory()) n += countFiles(path.join(dir, e.name));
    else if (e.isFile() && !e.name.endsWith('.tmp')) n++;
  }
  return n;
}

export function queueCount(server: Server, queue: QueueDir): number {
  return countFiles(path.join(server.queueDir, queue));
}

/** Messages delivered into the Maildir (new/ and cur/). */
export function maildirCount(server: Server): number {
  return countFiles(path.join(server.maildir, 'new')) + countFiles(path.join(server.maildir, 'cur'));
}

/** Every server started by this process, so a signal or an error can stop them all by pid. */
export const running = new Set<Server>();

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolve once something accepts a TCP connection on 127.0.0.1:port (or throw after `ms`). */
export async function waitForPort(port: number, ms: number, alive: () => boolean): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (!alive()) throw new Error(`server on port ${port} exited before listening`);
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms`);
    await sleep(100);
  }
}

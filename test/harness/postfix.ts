/**
 * startPostfix(): a private, real Postfix instance on loopback for side-by-side and interop tests
 * (what /work/shared/tools/postfix-ref does, in TypeScript): config, queue and log in a fresh
 * temp directory, smtpd listeners on 127.0.0.1 (and [::1]) ports given by the test, each with its
 * own `-o` overrides, so one start serves many differently configured conversations.
 *
 * Needs Debian's postfix package and root (postfix start). postfixSkip() says why a test skips;
 * with CI=true a missing Postfix is an error instead.
 */
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export interface PostfixService {
  readonly port: number;
  /** Also listen on [::1]:port. */
  readonly ipv6?: boolean;
  /** `-o name=value` overrides (values may contain spaces and braces). */
  readonly overrides?: Readonly<Record<string, string>>;
}

export interface StartedPostfix {
  readonly dir: string;
  readonly configDir: string;
  /** Postfix's own log lines. */
  log(): string[];
  waitFor(re: RegExp, ms?: number): Promise<string>;
  /** Run a Postfix command (sendmail, postqueue) against this instance. */
  run(cmd: string, args: readonly string[], input?: string): { status: number | null; stdout: string; stderr: string };
  stop(): void;
}

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

/** `false` when Postfix can run here; else the reason to skip (throws under CI=true). */
export function postfixSkip(): string | false {
  let why: string | null = null;
  if (!which('postfix') && !existsSync('/usr/sbin/postfix')) why = 'postfix not installed (apt-get install postfix; preseed "No configuration")';
  else if (process.getuid?.() !== 0) why = 'starting a private Postfix needs root';
  if (why === null) return false;
  if (process.env.CI === 'true') throw new Error(`side-by-side/interop tests need Postfix: ${why}`);
  return why;
}

/** Ports in 30000-39999 that are free on 127.0.0.1 and ::1 right now. */
export async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  const tryPort = (port: number, host: string): Promise<boolean> =>
    new Promise((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, host, () => s.close(() => resolve(true)));
    });
  let p = 30000 + Math.floor(Math.random() * 9000);
  while (out.length < n && p < 40000) {
    if ((await tryPort(p, '127.0.0.1')) && (await tryPort(p, '::1').catch(() => true))) out.push(p);
    p++;
  }
  if (out.length < n) throw new Error('no free ports in 30000-39999');
  return out;
}

/** `-o` arguments for master.cf, brace form when needed (Postfix 3.0+). */
function overrideArgs(o: Readonly<Record<string, string>>): string {
  return Object.entries(o)
    .map(([k, v]) => (/[\s{}]/.test(v) || v === '' ? ` -o { ${k} = ${v} }` : ` -o ${k}=${v}`))
    .join('');
}

/** Split main.cf text into name → value (logical lines). */
export function mainCfSettings(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let cur: string | null = null;
  for (const line of text.split('\n')) {
    if (/^\s*#/.test(line) || line.trim() === '') continue;
    if (/^\s/.test(line) && cur !== null) {
      out[cur] += ` ${line.trim()}`;
      continue;
    }
    const m = /^([A-Za-z0-9_]+)\s*=\s*(.*)$/.exec(line);
    if (m) {
      cur = m[1]!;
      out[cur] = m[2]!.trim();
    }
  }
  return out;
}

/**
 * `false` when Postfix can be started with a resolver of the test's own (root, unshare and mount:
 * startPostfix's `nameserver`); else why not (throws under CI=true).
 */
export function privateResolverSkip(): string | false {
  const why = postfixSkip();
  if (why !== false) return why;
  if (process.getuid?.() === 0 && which('unshare') && which('mount')) return false;
  if (process.env.CI === 'true') throw new Error('a private resolver for Postfix needs root and unshare/mount (util-linux, mount) (CI=true)');
  return 'a private resolver for Postfix needs root (a mount namespace with its own /etc/resolv.conf)';
}

export async function startPostfix(o: {
  mainCf?: string;
  services: readonly PostfixService[];
  /**
   * Postfix asks this IPv4 address (port 53) for DNS lookups instead of the host's resolver: it runs
   * in a mount namespace of its own whose /etc/resolv.conf names only this server. Needs root.
   */
  nameserver?: string;
}): Promise<StartedPostfix> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-pfref-'));
  chmodSync(dir, 0o755);
  const etc = path.join(dir, 'etc');
  for (const d of ['etc', 'queue', 'data', 'mail']) mkdirSync(path.join(dir, d));
  const pw = spawnSync('id', ['-u', 'postfix'], { encoding: 'utf8' });
  const gw = spawnSync('id', ['-g', 'postfix'], { encoding: 'utf8' });
  if (pw.status === 0 && gw.status === 0) chownSync(path.join(dir, 'data'), Number(pw.stdout), Number(gw.stdout));
  if (existsSync('/etc/postfix/dynamicmaps.cf')) copyFileSync('/etc/postfix/dynamicmaps.cf', path.join(etc, 'dynamicmaps.cf'));
  const main = [
    'compatibility_level = 3.6',
    `config_directory = ${etc}`,
    `queue_directory = ${path.join(dir, 'queue')}`,
    `data_directory = ${path.join(dir, 'data')}`,
    'mail_owner = postfix',
    'setgid_group = postdrop',
    `maillog_file_prefixes = ${dir}`,
    `maillog_file = ${path.join(dir, 'maillog')}`,
    'myhostname = mx.example.test',
    'mydomain = example.test',
    'mydestination = $myhostname, localhost',
    'mynetworks = 127.0.0.0/8 [::1]/128',
    'inet_interfaces = loopback-only',
    'smtpd_peername_lookup = no',
    'smtp_dns_support_level = disabled',
    'alias_maps =',
    'alias_database =',
    'local_recipient_maps =',
    'biff = no',
    'local_transport = discard:local',
    'default_transport = discard:remote',
    'virtual_transport = discard:virtual',
    'relay_transport = discard:relay',
    o.mainCf ?? '',
    '',
  ].join('\n');
  // One line per parameter: Postfix warns "overriding earlier entry" in every process, and with a
  // small net.unix.max_dgram_qlen those warnings can deadlock postlogd on its own socket.
  const merged = Object.entries(mainCfSettings(main))
    .map(([k, v]) => `${k} = ${v}`)
    .join('\n');
  writeFileSync(path.join(etc, 'main.cf'), `${merged}\n`);
  const listeners = o.services
    .flatMap((s) => {
      const ov = overrideArgs(s.overrides ?? {});
      const lines = [`127.0.0.1:${s.port} inet n - n - - smtpd${ov}`];
      if (s.ipv6) lines.push(`[::1]:${s.port} inet n - n - - smtpd${ov}`);
      return lines;
    })
    .join('\n');
  writeFileSync(
    path.join(etc, 'master.cf'),
    `${listeners}
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`,
  );
  let start: SpawnSyncReturns<string>;
  if (o.nameserver !== undefined) {
    // libc's resolver reads /etc/resolv.conf and knows no port: bind-mount one over it, in a private
    // mount namespace that master and every daemon it forks inherit. The host's file is untouched.
    const conf = path.join(dir, 'resolv.conf');
    writeFileSync(conf, `nameserver ${o.nameserver}\noptions timeout:2 attempts:1\n`);
    start = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" /etc/resolv.conf && exec postfix -c "$2" start', 'sh', conf, etc], { encoding: 'utf8' });
  } else {
    start = spawnSync('postfix', ['-c', etc, 'start'], { encoding: 'utf8' });
  }
  if (start.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`postfix did not start: ${start.stdout}${start.stderr}`);
  }
  const logFile = path.join(dir, 'maillog');
  const readLog = (): string[] => {
    try {
      return readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '');
    } catch {
      return [];
    }
  };
  // Wait until every listener accepts connections.
  for (const s of o.services) {
    const end = Date.now() + 10000;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const c = net.connect({ port: s.port, host: '127.0.0.1' }, () => {
          c.destroy();
          resolve(true);
        });
        c.once('error', () => resolve(false));
      });
      if (ok) break;
      if (Date.now() > end) throw new Error(`postfix does not listen on ${s.port}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  let stopped = false;
  return {
    dir,
    configDir: etc,
    log: readLog,
    async waitFor(re: RegExp, ms = 10000): Promise<string> {
      const end = Date.now() + ms;
      for (;;) {
        const hit = readLog().find((l) => re.test(l));
        if (hit !== undefined) return hit;
        if (Date.now() > end) throw new Error(`no Postfix log line matches ${re}:\n${readLog().slice(-30).join('\n')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    run(cmd, args, input) {
      const r = spawnSync(cmd, args, { encoding: 'utf8', input: input ?? '', env: { ...process.env, MAIL_CONFIG: etc } });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    stop(): void {
      if (stopped) return;
      stopped = true;
      spawnSync('postfix', ['-c', etc, 'stop'], { encoding: 'utf8' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

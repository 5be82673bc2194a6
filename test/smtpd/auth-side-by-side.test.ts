/**
 * SMTP AUTH side by side: a private Postfix 3.7 with `smtpd_sasl_type = dovecot` talking to a
 * private, auth-only Dovecot (own base_dir, `protocols =`, the auth-client socket in the test's
 * directory) and Postern with the same main.cf and the same passwd-file. The same conversations
 * go to both; the replies and smtpd's log lines (text after the `[pid]: ` prefix, queue ids
 * normalized) must be the same.
 *
 * Dovecot runs with auth_failure_delay = 0 and its auth penalty turned off (anvil-auth-penalty
 * unreachable) so the test is fast; Postern's failure delay is a test hook here.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashPassword } from '../../src/auth/index.js';
import { freePorts, postfixSkip, type StartedPostfix, startPostfix } from '../harness/postfix.js';
import { type StartedPostern, startPostern } from '../harness/postern.js';
import { peerSkip } from '../harness/peers.js';
import { SmtpClient } from '../harness/smtp-client.js';
import { makePki, type Pki } from '../tls/pki.js';

function dovecotSkip(): string | false {
  const pf = postfixSkip();
  if (pf) return pf;
  return peerSkip('dovecot', 'dovecot-core');
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** A step: a line to send, or STARTTLS (the handshake follows). */
type Step = string;

interface Conversation {
  readonly name: string;
  /** Which configuration: 0 = STARTTLS offered, AUTH always; 1 = smtpd_tls_auth_only + broken_sasl_auth_clients. */
  readonly config: 0 | 1;
  readonly steps: readonly Step[];
}

const PLAIN_OK = `AUTH PLAIN ${b64('\0alice\0secret')}`;

const CONVERSATIONS: readonly Conversation[] = [
  {
    name: 'success, AUTH= on MAIL, relay, message, AUTH twice, AUTH in a transaction',
    config: 0,
    steps: ['EHLO client.example.test', PLAIN_OK, PLAIN_OK, 'MAIL FROM:<alice@client.example.test> AUTH=<alice@client.example.test>', 'AUTH LOGIN', 'RCPT TO:<carol@far.example>', 'DATA', 'Subject: x\r\n\r\nhello\r\n.'],
  },
  {
    name: 'wrong password, unknown user, LOGIN with a wrong password, then success with LOGIN',
    config: 0,
    steps: ['EHLO client.example.test', `AUTH PLAIN ${b64('\0alice\0wrong')}`, `AUTH PLAIN ${b64('\0nobody\0x')}`, 'AUTH LOGIN', b64('alice'), b64('nope'), `AUTH LOGIN ${b64('alice')}`, b64('secret')],
  },
  {
    name: 'unknown mechanism, syntax, cancel with * in PLAIN and LOGIN',
    config: 0,
    steps: ['EHLO client.example.test', 'AUTH FOO', 'AUTH', 'AUTH PLAIN x y', 'AUTH PLAIN', '*', 'AUTH LOGIN', b64('alice'), '*'],
  },
  {
    name: 'bad base64 in initial and continued responses, = and empty responses, authzid of another user',
    config: 0,
    steps: ['EHLO client.example.test', 'AUTH PLAIN !!!', 'AUTH PLAIN abc', 'AUTH PLAIN', 'a b', 'AUTH LOGIN', '=', 'AUTH PLAIN =', `AUTH PLAIN ${b64('bob\0alice\0secret')}`],
  },
  {
    name: 'login names are compared in lower case; STARTTLS after AUTH forgets the login',
    config: 0,
    steps: ['EHLO client.example.test', `AUTH PLAIN ${b64('\0ALICE\0secret')}`, 'STARTTLS', 'EHLO client.example.test', 'MAIL FROM:<x@client.example.test>', 'RCPT TO:<carol@far.example>', 'RSET', `AUTH LOGIN ${b64('Alice')}`, b64('secret'), 'MAIL FROM:<x@client.example.test>', 'RCPT TO:<carol@far.example>'],
  },
  {
    name: 'relay refused without AUTH',
    config: 0,
    steps: ['EHLO client.example.test', 'MAIL FROM:<x@client.example.test>', 'RCPT TO:<carol@far.example>'],
  },
  {
    name: 'smtpd_tls_auth_only: AUTH before STARTTLS, then AUTH PLAIN and AUTH= after it',
    config: 1,
    steps: ['EHLO client.example.test', PLAIN_OK, 'STARTTLS', 'EHLO client.example.test', PLAIN_OK, 'MAIL FROM:<alice@client.example.test>', 'RCPT TO:<carol@far.example>'],
  },
];

/** Run one conversation; replies in order (QUIT added). */
async function converse(port: number, conv: Conversation): Promise<string[]> {
  const c = await SmtpClient.connect(port, '127.0.0.1', 15000);
  const out = [await c.read()];
  for (const s of conv.steps) {
    out.push(await c.cmd(s));
    if (s === 'STARTTLS') await c.startTls();
  }
  out.push(await c.cmd('QUIT'));
  c.close();
  return out.map((r) => r.replace(/queued as \w+/, 'queued as QID'));
}

/** smtpd's lines after `from`, prefix cut, queue ids normalized; noise of the test setup dropped. */
function smtpdLines(lines: readonly string[]): string[] {
  return lines
    .filter((l) => /\/smtpd\[\d+\]: /.test(l))
    .map((l) => l.slice(l.indexOf(']: ') + 3))
    .filter((t) => !/overriding earlier entry|^connect from /.test(t))
    .map((t) => t.replace(/^[0-9A-F]{6,}: /, 'QID: '));
}

async function waitForDisconnects(read: () => readonly string[], n: number): Promise<void> {
  const end = Date.now() + 15000;
  while (read().filter((l) => /smtpd\[\d+\]: disconnect from /.test(l)).length < n) {
    if (Date.now() > end) throw new Error(`no disconnect line:\n${read().slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('smtpd: AUTH side by side with Postfix 3.7 + Dovecot', { skip: dovecotSkip() }, () => {
  let dir: string;
  let pki: Pki;
  let pf: StartedPostfix;
  let ports: number[];
  const posterns: StartedPostern[] = [];
  let dovecotConf: string;
  /** `disconnect from` lines Postfix logged so far (its start-up probes make the first ones). */
  let pfDisconnects = 0;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'postern-dcsbs-'));
    chmodSync(dir, 0o755);
    pki = makePki();
    const users = path.join(dir, 'users');
    writeFileSync(users, `alice:${hashPassword('SHA512-CRYPT', 'secret')}\n`, { mode: 0o644 });
    dovecotConf = path.join(dir, 'dovecot.conf');
    const socket = path.join(dir, 'auth-client');
    writeFileSync(
      dovecotConf,
      `base_dir = ${path.join(dir, 'run')}
state_dir = ${path.join(dir, 'run')}
protocols =
log_path = ${path.join(dir, 'dovecot.log')}
ssl = no
auth_mechanisms = plain login
disable_plaintext_auth = no
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT ${users}
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}
service auth {
  unix_listener ${socket} {
    mode = 0666
  }
}
service anvil {
  chroot =
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`,
    );
    // Dovecot daemonizes; its output goes to log_path (a pipe here would keep spawnSync waiting).
    const dc = spawnSync('dovecot', ['-c', dovecotConf], { stdio: 'ignore' });
    assert.equal(dc.status, 0, 'dovecot did not start');
    for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
    const shared = [
      `smtpd_tls_cert_file = ${pki.file('fullchain.pem')}`,
      `smtpd_tls_key_file = ${pki.file('srv.key')}`,
      'smtpd_tls_security_level = may',
      'smtpd_sasl_auth_enable = yes',
      'smtpd_sasl_type = dovecot',
      'mynetworks = 127.0.0.2/32',
      'smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination',
      'smtpd_forbid_unauth_pipelining = no',
    ];
    const perConfig: Record<string, string>[] = [{}, { smtpd_tls_auth_only: 'yes', broken_sasl_auth_clients: 'yes' }];
    ports = await freePorts(2);
    pf = await startPostfix({ mainCf: [...shared, `smtpd_sasl_path = ${socket}`].join('\n'), services: perConfig.map((o, i) => ({ port: ports[i]!, overrides: o })) });
    // startPostfix probed each listener with a connection: wait until those are logged.
    pfDisconnects = ports.length;
    await waitForDisconnects(() => pf.log(), pfDisconnects);
    for (const o of perConfig) {
      const extra = Object.entries(o).map(([k, v]) => `${k} = ${v}`);
      posterns.push(await startPostern({ mainCf: [...shared, `smtpd_sasl_path = ${users}`, ...extra].join('\n'), ipv6: false, hooks: { authFailureDelay: async () => {} } }));
    }
  });
  after(async () => {
    pf?.stop();
    for (const p of posterns) await p.stop();
    if (dovecotConf) spawnSync('dovecot', ['-c', dovecotConf, 'stop'], { stdio: 'ignore' });
    pki?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const conv of CONVERSATIONS) {
    it(`smtpd: same AUTH replies and log lines as Postfix + Dovecot: ${conv.name}`, async () => {
      const pt = posterns[conv.config]!;
      const pfFrom = pf.log().length;
      const ptFrom = pt.lines().length;
      const ptDisconnects = pt.lines().filter((l) => /disconnect from /.test(l)).length;
      const postfix = await converse(ports[conv.config]!, conv);
      const postern = await converse(pt.port4, conv);
      assert.deepEqual(postern, postfix);
      pfDisconnects++;
      await waitForDisconnects(() => pf.log(), pfDisconnects);
      await waitForDisconnects(() => pt.lines(), ptDisconnects + 1);
      const ours = smtpdLines(pt.lines().slice(ptFrom));
      assert.ok(ours.some((l) => l.startsWith('disconnect from unknown[127.0.0.1]')), ours.join('\n'));
      assert.deepEqual(ours, smtpdLines(pf.log().slice(pfFrom)));
    });
  }
});

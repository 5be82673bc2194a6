/**
 * SMTP AUTH with real peers: swaks (PLAIN and LOGIN over STARTTLS and over implicit TLS), curl
 * (a full send with --user), Postfix's own smtp client with smtp_sasl_auth_enable relaying through
 * Postern, and fail2ban-regex with Debian's postfix filter in mode=auth on Postern's log.
 */
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashPassword } from '../../src/auth/index.js';
import { smtpdCounters } from '../../src/smtpd/index.js';
import { freePorts, postfixSkip, startPostfix } from '../harness/postfix.js';
import { peerSkip, runPeer } from '../harness/peers.js';
import { type StartedPostern, startPostern } from '../harness/postern.js';
import { makePki, type Pki } from '../tls/pki.js';

const noSwaks = peerSkip('swaks', 'swaks libio-socket-ssl-perl libnet-ssleay-perl libauthen-sasl-perl');
const noCurl = peerSkip('curl', 'curl');
const noFail2ban = peerSkip('fail2ban-regex', 'fail2ban');

const hooks = { authFailureDelay: (): Promise<void> => new Promise((r) => setTimeout(r, 50)) };

describe('smtpd: AUTH interop with real clients', () => {
  let pki: Pki;
  let dir: string;
  let submission: StartedPostern;
  let smtps: StartedPostern;
  before(async () => {
    pki = makePki();
    dir = mkdtempSync(path.join(os.tmpdir(), 'postern-authio-'));
    writeFileSync(path.join(dir, 'users'), `alice:${hashPassword('SHA512-CRYPT', 's3cret pass')}\n`);
    const common = [
      `smtpd_tls_cert_file = ${pki.file('fullchain.pem')}`,
      `smtpd_tls_key_file = ${pki.file('srv.key')}`,
      'smtpd_sasl_auth_enable = yes',
      'smtpd_sasl_type = dovecot',
      `smtpd_sasl_path = ${path.join(dir, 'users')}`,
      'mynetworks = 127.0.0.2/32',
      'smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination',
    ];
    // Submission (587 style): STARTTLS required, AUTH only after it. SMTPS (465 style): implicit TLS.
    submission = await startPostern({ mainCf: [...common, 'smtpd_tls_security_level = encrypt'].join('\n'), hooks });
    smtps = await startPostern({ mainCf: [...common, 'smtpd_tls_wrappermode = yes'].join('\n'), hooks });
  });
  after(async () => {
    await submission?.stop();
    await smtps?.stop();
    pki?.remove();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(smtpdCounters.exceptions, 0);
  });

  const swaks = (port: number, args: readonly string[]): Promise<{ status: number | null; out: string }> =>
    runPeer('swaks', ['--server', '127.0.0.1', '--port', String(port), '--from', 'alice@client.example.test', '--to', 'carol@far.example', '--helo', 'client.example.test', '--timeout', '15', ...args]);

  for (const mech of ['PLAIN', 'LOGIN']) {
    it(`smtpd: swaks --auth ${mech} over STARTTLS relays for the user; a wrong password is 535`, { skip: noSwaks }, async () => {
      const ok = await swaks(submission.port4, ['--tls', '--auth', mech, '--auth-user', 'alice', '--auth-password', 's3cret pass']);
      assert.equal(ok.status, 0, ok.out);
      assert.match(ok.out, / {2}235 2\.7\.0 Authentication successful/);
      assert.match(ok.out, /250 2\.0\.0 Ok: queued as \w+/);
      await submission.waitFor(new RegExp(`client=unknown\\[127\\.0\\.0\\.1\\], sasl_method=${mech}, sasl_username=alice`));
      const bad = await swaks(submission.port4, ['--tls', '--auth', mech, '--auth-user', 'alice', '--auth-password', 'wrong']);
      assert.notEqual(bad.status, 0);
      assert.match(bad.out, /<[-~]\* 535 5\.7\.8 Error: authentication failed: \(reason unavailable\)/);
      await submission.waitFor(new RegExp(`warning: unknown\\[127\\.0\\.0\\.1\\]: SASL ${mech} authentication failed: \\(reason unavailable\\), sasl_username=alice`));
    });

    it(`smtpd: swaks --auth ${mech} over implicit TLS (465 style)`, { skip: noSwaks }, async () => {
      const ok = await swaks(smtps.port4, ['--tlsc', '--auth', mech, '--auth-user', 'alice', '--auth-password', 's3cret pass']);
      assert.equal(ok.status, 0, ok.out);
      assert.match(ok.out, /250 2\.0\.0 Ok: queued as \w+/);
      const bad = await swaks(smtps.port4, ['--tlsc', '--auth', mech, '--auth-user', 'mallory', '--auth-password', 'x']);
      assert.match(bad.out, /<[-~]\* 535 5\.7\.8 Error: authentication failed/);
    });
  }

  it('smtpd: curl smtp:// --ssl-reqd --user sends a message through AUTH (ESMTPSA Received:)', { skip: noCurl }, async () => {
    const r = await runPeer(
      'curl',
      ['-sS', '--insecure', '--ssl-reqd', `smtp://127.0.0.1:${submission.port4}`, '--user', 'alice:s3cret pass', '--mail-from', 'alice@client.example.test', '--mail-rcpt', 'carol@far.example', '-T', '-', '-v'],
      'Subject: by curl\r\n\r\nhello\r\n',
    );
    assert.equal(r.status, 0, r.out);
    const q = /< 250 2\.0\.0 Ok: queued as (\w+)/.exec(r.out);
    assert.ok(q, r.out);
    const m = await submission.message(q[1]!);
    assert.match(m.content, /with ESMTPSA id \w+/);
    assert.match(m.content, /Subject: by curl/);
  });

  it('smtpd: fail2ban-regex with the postfix filter in mode=auth matches the SASL failure lines', { skip: noFail2ban }, async () => {
    await swaks(submission.port4, ['--tls', '--auth', 'LOGIN', '--auth-user', 'guess', '--auth-password', 'guess']).catch(() => undefined);
    await submission.waitFor(/SASL LOGIN authentication failed: .*sasl_username=guess/);
    const logDir = mkdtempSync(path.join(os.tmpdir(), 'postern-authf2b-'));
    try {
      const file = path.join(logDir, 'maillog');
      const lines = [...submission.lines(), ...smtps.lines()];
      writeFileSync(file, `${lines.join('\n')}\n`);
      const r = await runPeer('fail2ban-regex', [file, '/etc/fail2ban/filter.d/postfix.conf[mode=auth]']);
      const m = /Lines: \d+ lines, \d+ ignored, (\d+) matched/.exec(r.out);
      assert.ok(m, r.out);
      const failures = lines.filter((l) => /warning: .*\[127\.0\.0\.1\]: SASL (PLAIN|LOGIN) authentication failed: /.test(l)).length;
      assert.ok(failures >= 2, lines.join('\n'));
      assert.equal(Number(m[1]), failures, r.out);
    } finally {
      rmSync(logDir, { recursive: true, force: true });
    }
  });
});

describe('smtpd: Postfix relays into Postern with SMTP AUTH', { skip: postfixSkip() }, () => {
  it('smtpd: Postfix smtp client with smtp_sasl_auth_enable and smtp_sasl_password_maps: status=sent via Postern', async () => {
    const pki = makePki();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-authpf-'));
    writeFileSync(path.join(dir, 'users'), `relay:${hashPassword('SHA256-CRYPT', 'relaypw')}\n`);
    const pt = await startPostern({
      mainCf: [
        `smtpd_tls_cert_file = ${pki.file('fullchain.pem')}`,
        `smtpd_tls_key_file = ${pki.file('srv.key')}`,
        'smtpd_tls_security_level = may',
        'smtpd_tls_auth_only = yes',
        'smtpd_sasl_auth_enable = yes',
        `smtpd_sasl_path = ${path.join(dir, 'users')}`,
        'mynetworks = 127.0.0.2/32',
        'smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination',
      ].join('\n'),
      ipv6: false,
      hooks,
    });
    const [pfPort] = await freePorts(1);
    const nexthop = `[127.0.0.1]:${pt.port4}`;
    const pf = await startPostfix({
      services: [{ port: pfPort! }],
      mainCf: [
        'myhostname = sender.example.test',
        'mydestination =',
        `relayhost = ${nexthop}`,
        'default_transport = smtp',
        'relay_transport = smtp',
        'smtp_tls_security_level = encrypt',
        'smtp_sasl_auth_enable = yes',
        `smtp_sasl_password_maps = inline:{ ${nexthop}=relay:relaypw }`,
        'smtp_sasl_tls_security_options = noanonymous',
      ].join('\n'),
    });
    try {
      const r = pf.run('sendmail', ['-f', 'someone@sender.example.test', 'carol@far.example'], 'Subject: relayed with AUTH\n\nhello\n');
      assert.equal(r.status, 0, r.stderr);
      const sent = await pf.waitFor(/to=<carol@far\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=(sent|deferred|bounced)/, 20000);
      assert.match(sent, /status=sent \(250 2\.0\.0 Ok: queued as \w+\)/, `${sent}\n${pt.lines().join('\n')}`);
      await pt.waitFor(/: client=unknown\[127\.0\.0\.1\], sasl_method=PLAIN, sasl_username=relay$/);
      await pt.waitFor(/disconnect from unknown\[127\.0\.0\.1\] ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8$/);
    } finally {
      pf.stop();
      await pt.stop();
      pki.remove();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

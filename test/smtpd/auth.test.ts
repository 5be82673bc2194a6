/**
 * SMTP AUTH (RFC 4954) over real sockets: EHLO keywords, PLAIN and LOGIN, every refusal with the
 * reply and log line Postfix 3.7 + Dovecot 2.3 give (observed side by side, see
 * auth-side-by-side.test.ts), permit_sasl_authenticated, sender login maps, Received: and logs.
 */
import * as assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashPassword } from '../../src/auth/index.js';
import { loadConfig } from '../../src/config/index.js';
import { smtpdCounters } from '../../src/smtpd/index.js';
import { type StartedPostern, startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';
import { makePki, type Pki, skipWithoutOpenssl } from '../tls/pki.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const texts = (lines: readonly string[]): string[] => lines.map((l) => l.slice(l.indexOf(']: ') + 3));

/** A passwd-file with alice (SHA512-CRYPT) and bob (PLAIN), in a temp dir. */
function userFile(): { dir: string; file: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-auth-'));
  const file = path.join(dir, 'users');
  writeFileSync(file, `# test users\nalice:${hashPassword('SHA512-CRYPT', 'secret')}::::::\n\nbob:{PLAIN}hunter2\ncarol:{BLF-CRYPT}$2y$05$abc\n`);
  return { dir, file };
}

/** Failure delays observed by the test (each one is Dovecot's auth_failure_delay in production). */
let delays = 0;
const hooks = {
  authFailureDelay: async (): Promise<void> => {
    delays++;
  },
};

async function ehlo(c: SmtpClient): Promise<string> {
  await c.read();
  return c.cmd('EHLO client.example.test');
}

describe('smtpd: SMTP AUTH without TLS', () => {
  let pt: StartedPostern;
  let users: { dir: string; file: string };
  before(async () => {
    users = userFile();
    pt = await startPostern({
      mainCf: ['smtpd_sasl_auth_enable = yes', `smtpd_sasl_path = ${users.file}`, 'smtpd_soft_error_limit = 30', 'mynetworks = 127.0.0.2/32', 'smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination'].join('\n'),
      hooks,
    });
  });
  after(async () => {
    await pt?.stop();
    rmSync(users.dir, { recursive: true, force: true });
    assert.equal(smtpdCounters.exceptions, 0);
  });

  it('smtpd: EHLO offers AUTH PLAIN LOGIN after ETRN, and PLAIN with an initial response logs in', async () => {
    const c = await SmtpClient.connect(pt.port4);
    const r = await ehlo(c);
    assert.match(r, /\n250-ETRN\n250-AUTH PLAIN LOGIN\n250-ENHANCEDSTATUSCODES\n/);
    assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0alice\0secret')}`), '235 2.7.0 Authentication successful');
    assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0alice\0secret')}`), '503 5.5.1 Error: already authenticated');
    assert.equal(await c.cmd('MAIL FROM:<alice@client.example.test> AUTH=<alice@client.example.test>'), '250 2.1.0 Ok');
    assert.equal(await c.cmd('AUTH LOGIN'), '503 5.5.1 Error: MAIL transaction in progress');
    assert.equal(await c.cmd('RCPT TO:<carol@far.example>'), '250 2.1.5 Ok');
    assert.equal(await c.cmd('DATA'), '354 End data with <CR><LF>.<CR><LF>');
    const q = /queued as (\w+)/.exec(await c.cmd('Subject: hi\r\n\r\nhello\r\n.'));
    assert.ok(q);
    await c.cmd('QUIT');
    await pt.waitFor(/disconnect from unknown\[127\.0\.0\.1\] ehlo=1 auth=1\/3 mail=1 rcpt=1 data=1 quit=1 commands=6\/8/);
    assert.ok(texts(pt.lines()).includes(`${q[1]}: client=unknown[127.0.0.1], sasl_method=PLAIN, sasl_username=alice, sasl_sender=<alice@client.example.test>`));
    const m = await pt.message(q[1]!);
    assert.match(m.content, /^Received: from client\.example\.test \(unknown \[127\.0\.0\.1\]\)\r?\n\tby mx\.example\.test \(Postfix\) with ESMTPA id \w+\r?\n/);
    assert.doesNotMatch(m.content, /Authenticated sender/);
  });

  it('smtpd: relay to a foreign domain is refused without AUTH (554 5.7.1 Relay access denied)', async () => {
    const c = await SmtpClient.connect(pt.port4);
    await ehlo(c);
    assert.equal(await c.cmd('MAIL FROM:<x@client.example.test>'), '250 2.1.0 Ok');
    assert.equal(await c.cmd('RCPT TO:<carol@far.example>'), '554 5.7.1 <carol@far.example>: Relay access denied');
    await c.cmd('QUIT');
  });

  it('smtpd: LOGIN with challenges, lower-case mechanism name, user name case-insensitive', async () => {
    const c = await SmtpClient.connect(pt.port4);
    await ehlo(c);
    assert.equal(await c.cmd('AUTH login'), '334 VXNlcm5hbWU6');
    assert.equal(await c.cmd(b64('Bob')), '334 UGFzc3dvcmQ6');
    assert.equal(await c.cmd(b64('hunter2')), '235 2.7.0 Authentication successful');
    assert.equal(await c.cmd('MAIL FROM:<b@client.example.test>'), '250 2.1.0 Ok');
    assert.equal(await c.cmd('RCPT TO:<carol@far.example>'), '250 2.1.5 Ok');
    await c.cmd('QUIT');
    await pt.waitFor(/client=unknown\[127\.0\.0\.1\], sasl_method=login, sasl_username=bob$/);
  });

  it('smtpd: failures: wrong password, unknown user, bad mechanism, bad base64, cancel, authzid, counted as errors', async () => {
    const before = pt.lines().length;
    const d0 = delays;
    const c = await SmtpClient.connect(pt.port4);
    await ehlo(c);
    const fail = '535 5.7.8 Error: authentication failed: (reason unavailable)';
    assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0alice\0wrong')}`), fail);
    assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0nobody\0wrong')}`), fail);
    assert.equal(await c.cmd('AUTH FOO'), '535 5.7.8 Error: authentication failed: Invalid authentication mechanism');
    assert.equal(await c.cmd('AUTH'), '501 5.5.4 Syntax: AUTH mechanism');
    assert.equal(await c.cmd('AUTH PLAIN a b'), '501 5.5.4 Syntax: AUTH mechanism');
    assert.equal(await c.cmd('AUTH PLAIN'), '334 ');
    assert.equal(await c.cmd('*'), '501 5.7.0 Authentication aborted');
    assert.equal(await c.cmd('AUTH PLAIN'), '334 ');
    assert.equal(await c.cmd('!!!'), '535 5.7.8 Error: authentication failed: Invalid base64 data in continued response');
    assert.equal(await c.cmd('AUTH PLAIN !!!'), '535 5.7.8 Error: authentication failed: Invalid base64 data in initial response');
    assert.equal(await c.cmd('AUTH PLAIN abc'), '535 5.7.8 Error: authentication failed: Invalid base64 data in initial response');
    assert.equal(await c.cmd('AUTH PLAIN ='), fail);
    assert.equal(await c.cmd(`AUTH PLAIN ${b64('carol\0alice\0secret')}`), fail);
    assert.equal(await c.cmd('AUTH LOGIN ='), '334 VXNlcm5hbWU6');
    assert.equal(await c.cmd(''), fail);
    assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0carol\0x')}`), fail);
    assert.equal(await c.cmd(`AUTH PLAIN ${b64('alice\0alice\0secret')}`), '235 2.7.0 Authentication successful');
    await c.cmd('QUIT');
    await pt.waitFor(/ehlo=1 auth=1\/14 quit=1 commands=3\/16$/);
    // Only failed credential checks wait (Dovecot auth_failure_delay); protocol errors do not.
    assert.equal(delays - d0, 6);
    const log = texts(pt.lines().slice(before)).filter((l) => l.startsWith('warning:'));
    assert.deepEqual(log, [
      'warning: unknown[127.0.0.1]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=alice',
      'warning: unknown[127.0.0.1]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=nobody',
      'warning: unknown[127.0.0.1]: SASL FOO authentication failed: Invalid authentication mechanism, sasl_username=nobody',
      'warning: unknown[127.0.0.1]: SASL PLAIN authentication aborted',
      'warning: unknown[127.0.0.1]: SASL PLAIN authentication failed: Invalid base64 data in continued response, sasl_username=nobody',
      'warning: unknown[127.0.0.1]: SASL PLAIN authentication failed: Invalid base64 data in initial response, sasl_username=nobody',
      'warning: unknown[127.0.0.1]: SASL PLAIN authentication failed: Invalid base64 data in initial response, sasl_username=(unavailable)',
      'warning: unknown[127.0.0.1]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=(unavailable)',
      'warning: unknown[127.0.0.1]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=alice',
      'warning: unknown[127.0.0.1]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=',
      `warning: ${users.file}, line 5: user carol: password scheme BLF-CRYPT: unknown password scheme BLF-CRYPT; authentication fails`,
      'warning: unknown[127.0.0.1]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=carol',
    ]);
    assert.ok(!pt.lines().some((l) => /secret|hunter2|wrong/.test(l)), 'no password in the log');
  });

  it('smtpd: a SASL response longer than smtpd_sasl_response_limit', async () => {
    const c = await SmtpClient.connect(pt.port4);
    await ehlo(c);
    assert.equal(await c.cmd('AUTH LOGIN'), '334 VXNlcm5hbWU6');
    assert.equal(await c.cmd('QUFB'.repeat(3100)), '500 5.5.6 SASL response limit exceeded');
    assert.equal(await c.cmd('NOOP'), '250 2.0.0 Ok');
    await c.cmd('QUIT');
    await pt.waitFor(/warning: unknown\[127\.0\.0\.1\]: request longer than 12288: QUFBQUFBQUFBQUFBQUFBQUFBQUFBQU\.\.\./);
  });
});

describe('smtpd: SMTP AUTH with TLS', { skip: skipWithoutOpenssl() }, () => {
  let pki: Pki;
  let users: { dir: string; file: string };
  const tlsCf = (): string => [`smtpd_tls_cert_file = ${pki.file('fullchain.pem')}`, `smtpd_tls_key_file = ${pki.file('srv.key')}`, 'smtpd_sasl_auth_enable = yes', `smtpd_sasl_path = ${users.file}`].join('\n');
  before(() => {
    pki = makePki();
    users = userFile();
  });
  after(() => {
    pki?.remove();
    rmSync(users.dir, { recursive: true, force: true });
    assert.equal(smtpdCounters.exceptions, 0);
  });

  it('smtpd: smtpd_tls_auth_only: no AUTH before STARTTLS (503 authentication not enabled), AUTH and AUTH= after; ESMTPSA and Authenticated sender', async () => {
    const pt = await startPostern({
      mainCf: `${tlsCf()}\nsmtpd_tls_security_level = may\nsmtpd_tls_auth_only = yes\nbroken_sasl_auth_clients = yes\nsmtpd_sasl_authenticated_header = yes`,
      hooks,
    });
    try {
      const c = await SmtpClient.connect(pt.port4);
      const e1 = await ehlo(c);
      assert.doesNotMatch(e1, /AUTH/);
      assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0alice\0secret')}`), '503 5.5.1 Error: authentication not enabled');
      assert.equal(await c.cmd('STARTTLS'), '220 2.0.0 Ready to start TLS');
      await c.startTls();
      const e2 = await c.cmd('EHLO client.example.test');
      assert.match(e2, /\n250-ETRN\n250-AUTH PLAIN LOGIN\n250-AUTH=PLAIN LOGIN\n250-ENHANCEDSTATUSCODES\n/);
      assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0alice\0secret')}`), '235 2.7.0 Authentication successful');
      assert.equal(await c.cmd('MAIL FROM:<alice@client.example.test>'), '250 2.1.0 Ok');
      assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), '250 2.1.5 Ok');
      await c.cmd('DATA');
      const q = /queued as (\w+)/.exec(await c.cmd('Subject: tls\r\n\r\nhello\r\n.'));
      assert.ok(q);
      await c.cmd('QUIT');
      const m = await pt.message(q[1]!);
      assert.match(m.content, /^Received: from client\.example\.test \(unknown \[127\.0\.0\.1\]\)\r?\n\t\(Authenticated sender: alice\)\r?\n\tby mx\.example\.test \(Postfix\) with ESMTPSA id \w+\r?\n\tfor <bob@mx\.example\.test>; /);
      await pt.waitFor(/ehlo=2 starttls=1 auth=1\/2 mail=1 rcpt=1 data=1 quit=1 commands=8\/9$/);
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: smtpd_tls_security_level = encrypt: AUTH before STARTTLS is 530, after it works', async () => {
    const pt = await startPostern({ mainCf: `${tlsCf()}\nsmtpd_tls_security_level = encrypt`, hooks });
    try {
      const c = await SmtpClient.connect(pt.port4);
      assert.doesNotMatch(await ehlo(c), /AUTH/);
      assert.equal(await c.cmd('AUTH LOGIN'), '530 5.7.0 Must issue a STARTTLS command first');
      await c.cmd('STARTTLS');
      await c.startTls();
      assert.match(await c.cmd('EHLO client.example.test'), /\n250-AUTH PLAIN LOGIN\n/);
      assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0bob\0hunter2')}`), '235 2.7.0 Authentication successful');
      await c.cmd('QUIT');
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: wrappermode (465): AUTH right after the handshake', async () => {
    const pt = await startPostern({ mainCf: `${tlsCf()}\nsmtpd_tls_wrappermode = yes`, hooks });
    try {
      const c = await SmtpClient.connect(pt.port4);
      await c.startTls();
      assert.match(await ehlo(c), /\n250-AUTH PLAIN LOGIN\n/);
      assert.equal(await c.cmd('AUTH LOGIN YWxpY2U='), '334 UGFzc3dvcmQ6');
      assert.equal(await c.cmd(b64('secret')), '235 2.7.0 Authentication successful');
      await c.cmd('QUIT');
      await pt.waitFor(/disconnect from unknown\[127\.0\.0\.1\] ehlo=1 auth=1 quit=1 commands=3$/);
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: noplaintext before TLS removes PLAIN and LOGIN; smtpd_sasl_tls_security_options allows them after', async () => {
    const pt = await startPostern({
      mainCf: `${tlsCf()}\nsmtpd_tls_security_level = may\nsmtpd_sasl_security_options = noanonymous, noplaintext\nsmtpd_sasl_tls_security_options = noanonymous\nsmtpd_sasl_mechanism_filter = login`,
      hooks,
    });
    try {
      const c = await SmtpClient.connect(pt.port4);
      assert.doesNotMatch(await ehlo(c), /AUTH/);
      assert.equal(await c.cmd('AUTH LOGIN'), '503 5.5.1 Error: authentication not enabled');
      await c.cmd('STARTTLS');
      await c.startTls();
      assert.match(await c.cmd('EHLO client.example.test'), /\n250-AUTH LOGIN\n/);
      assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0bob\0hunter2')}`), '535 5.7.8 Error: authentication failed: Invalid authentication mechanism');
      await c.cmd('QUIT');
    } finally {
      await pt.stop();
    }
  });
});

describe('smtpd: SMTP AUTH policy', () => {
  let users: { dir: string; file: string };
  before(() => {
    users = userFile();
  });
  after(() => {
    rmSync(users.dir, { recursive: true, force: true });
  });

  it('smtpd: permit_sasl_authenticated relays for a client outside mynetworks (::1) only after AUTH; 127.0.0.1 is in mynetworks', async (t) => {
    const pt = await startPostern({
      mainCf: ['smtpd_sasl_auth_enable = yes', `smtpd_sasl_path = ${users.file}`, 'mynetworks = 127.0.0.1/32', 'smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination'].join('\n'),
      hooks,
    });
    try {
      if (pt.port6 === 0) {
        t.skip('no IPv6 loopback');
        return;
      }
      const v4 = await SmtpClient.connect(pt.port4);
      await ehlo(v4);
      await v4.cmd('MAIL FROM:<a@client.example.test>');
      assert.equal(await v4.cmd('RCPT TO:<carol@far.example>'), '250 2.1.5 Ok');
      await v4.cmd('QUIT');
      const v6 = await SmtpClient.connect(pt.port6, '::1');
      await ehlo(v6);
      await v6.cmd('MAIL FROM:<a@client.example.test>');
      assert.equal(await v6.cmd('RCPT TO:<carol@far.example>'), '554 5.7.1 <carol@far.example>: Relay access denied');
      await v6.cmd('RSET');
      assert.equal(await v6.cmd(`AUTH PLAIN ${b64('\0alice\0secret')}`), '235 2.7.0 Authentication successful');
      await v6.cmd('MAIL FROM:<a@client.example.test>');
      assert.equal(await v6.cmd('RCPT TO:<carol@far.example>'), '250 2.1.5 Ok');
      await v6.cmd('QUIT');
      await pt.waitFor(/NOQUEUE: reject: RCPT from unknown\[::1\]: 554 5\.7\.1 <carol@far\.example>: Relay access denied; from=<a@client\.example\.test> to=<carol@far\.example> proto=ESMTP helo=<client\.example\.test>/);
      await pt.waitFor(/: client=unknown\[::1\], sasl_method=PLAIN, sasl_username=alice$/);
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: reject_sender_login_mismatch with smtpd_sender_login_maps', async () => {
    const pt = await startPostern({
      mainCf: [
        'smtpd_sasl_auth_enable = yes',
        `smtpd_sasl_path = ${users.file}`,
        'smtpd_sender_login_maps = inline:{ alice@client.example.test=alice, { @shared.example.test = alice bob } }',
        'smtpd_sender_restrictions = reject_sender_login_mismatch',
      ].join('\n'),
      hooks,
    });
    try {
      const c = await SmtpClient.connect(pt.port4);
      await ehlo(c);
      await c.cmd('MAIL FROM:<alice@client.example.test>');
      assert.equal(await c.cmd('RCPT TO:<x@mx.example.test>'), '553 5.7.1 <alice@client.example.test>: Sender address rejected: not logged in');
      await c.cmd('RSET');
      assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0bob\0hunter2')}`), '235 2.7.0 Authentication successful');
      await c.cmd('MAIL FROM:<alice@client.example.test>');
      assert.equal(await c.cmd('RCPT TO:<x@mx.example.test>'), '553 5.7.1 <alice@client.example.test>: Sender address rejected: not owned by user bob');
      await c.cmd('RSET');
      await c.cmd('MAIL FROM:<bob@shared.example.test>');
      assert.equal(await c.cmd('RCPT TO:<x@mx.example.test>'), '250 2.1.5 Ok');
      await c.cmd('RSET');
      await c.cmd('MAIL FROM:<nobody@elsewhere.example>');
      assert.equal(await c.cmd('RCPT TO:<x@mx.example.test>'), '553 5.7.1 <nobody@elsewhere.example>: Sender address rejected: not owned by user bob');
      await c.cmd('QUIT');
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: smtpd_sasl_exceptions_networks hides AUTH from a client but AUTH still works (Postfix)', async () => {
    const pt = await startPostern({ mainCf: ['smtpd_sasl_auth_enable = yes', `smtpd_sasl_path = ${users.file}`, 'smtpd_sasl_exceptions_networks = 127.0.0.0/8'].join('\n'), hooks });
    try {
      const c = await SmtpClient.connect(pt.port4);
      assert.doesNotMatch(await ehlo(c), /AUTH/);
      assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0bob\0hunter2')}`), '235 2.7.0 Authentication successful');
      await c.cmd('QUIT');
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: the user database comes from dovecot.conf passdb passwd-file with smtpd_sasl_type = dovecot, and a change to the file is seen at once', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-authdc-'));
    writeFileSync(path.join(dir, 'dovecot.conf'), `service auth {\n  unix_listener x {\n    mode = 0600\n  }\n}\npassdb {\n  driver = passwd-file\n  args = scheme=PLAIN ${path.join(dir, 'users')}\n}\n`);
    writeFileSync(path.join(dir, 'users'), 'dave:plainpass\n');
    // config_directory (where dovecot.conf is looked for) points at the test's directory.
    const pt = await startPostern({ mainCf: 'smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth', params: { config_directory: dir }, hooks });
    try {
      const c = await SmtpClient.connect(pt.port4);
      await ehlo(c);
      assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0dave\0plainpass')}`), '235 2.7.0 Authentication successful');
      await c.cmd('QUIT');
      writeFileSync(path.join(dir, 'users'), 'dave:{PLAIN}newpass\n');
      const d = await SmtpClient.connect(pt.port4);
      await ehlo(d);
      assert.equal(await d.cmd(`AUTH PLAIN ${b64('\0dave\0plainpass')}`), '535 5.7.8 Error: authentication failed: (reason unavailable)');
      assert.equal(await d.cmd(`AUTH PLAIN ${b64('\0dave\0newpass')}`), '235 2.7.0 Authentication successful');
      await d.cmd('QUIT');
    } finally {
      await pt.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('smtpd: failed AUTH commands count toward smtpd_hard_error_limit; smtpd_client_auth_rate_limit', async () => {
    const pt = await startPostern({ mainCf: ['smtpd_sasl_auth_enable = yes', `smtpd_sasl_path = ${users.file}`, 'smtpd_hard_error_limit = 3', 'smtpd_client_auth_rate_limit = 4', 'mynetworks = 192.0.2.0/24'].join('\n'), hooks });
    try {
      const c = await SmtpClient.connect(pt.port4);
      await ehlo(c);
      for (let i = 0; i < 3; i++) assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0alice\0guess')}`), '535 5.7.8 Error: authentication failed: (reason unavailable)');
      assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0alice\0secret')}`), '421 4.7.0 mx.example.test Error: too many errors');
      await c.waitClosed();
      await pt.waitFor(/disconnect from unknown\[127\.0\.0\.1\] ehlo=1 auth=0\/3 commands=1\/4$/);
      // The fourth AUTH in this minute is still allowed, the fifth is not (anvil counts per client;
      // clients in mynetworks, smtpd_client_event_limit_exceptions, are not counted).
      const d = await SmtpClient.connect(pt.port4);
      await ehlo(d);
      assert.equal(await d.cmd(`AUTH PLAIN ${b64('\0alice\0secret')}`), '235 2.7.0 Authentication successful');
      const e = await SmtpClient.connect(pt.port4);
      await ehlo(e);
      assert.equal(await e.cmd(`AUTH PLAIN ${b64('\0alice\0secret')}`), '450 4.7.1 Error: too many AUTH commands from 127.0.0.1');
      await pt.waitFor(/warning: AUTH command rate limit exceeded: 5 from unknown\[127\.0\.0\.1\] for service smtp$/);
      await d.cmd('QUIT');
      await e.cmd('QUIT');
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: a reload (SIGHUP) opens the user database smtpd_sasl_path names now', async () => {
    const pt = await startPostern({ mainCf: ['smtpd_sasl_auth_enable = yes', `smtpd_sasl_path = ${users.file}`].join('\n'), hooks });
    try {
      const other = path.join(users.dir, 'other-users');
      writeFileSync(other, 'erin:{PLAIN}erinpw\n');
      appendFileSync(path.join(pt.dir, 'main.cf'), `smtpd_sasl_path = ${other}\n`);
      const config = await loadConfig({ configDir: pt.dir });
      await pt.smtpd.reload(config, config.services.find((s) => s.command === 'smtpd')!);
      const c = await SmtpClient.connect(pt.port4);
      await ehlo(c);
      assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0alice\0secret')}`), '535 5.7.8 Error: authentication failed: (reason unavailable)');
      assert.equal(await c.cmd(`AUTH PLAIN ${b64('\0erin\0erinpw')}`), '235 2.7.0 Authentication successful');
      await c.cmd('QUIT');
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: AUTH enabled without a user database: the service does not start, the message names smtpd_sasl_path', async () => {
    await assert.rejects(
      startPostern({ mainCf: 'smtpd_sasl_auth_enable = yes\nsmtpd_sasl_path = /nonexistent/users' }),
      /smtpd_sasl_auth_enable = yes, but the SASL user database cannot be read: smtpd_sasl_path = \/nonexistent\/users names \/nonexistent\/users: No such file or directory/,
    );
  });
});

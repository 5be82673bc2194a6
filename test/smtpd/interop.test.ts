/**
 * Interoperability with real peers from Debian (CI installs them; outside CI a missing tool skips
 * the test with a message saying what to install): swaks, openssl s_client, fail2ban-regex with
 * Debian's postfix filter, pflogsumm, and Postfix's own smtp client relaying into Postern.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { smtpdCounters } from '../../src/smtpd/index.js';
import { freePorts, postfixSkip, startPostfix } from '../harness/postfix.js';
import { hasIPv6Loopback, type StartedPostern, startPostern } from '../harness/postern.js';
import { peerSkip, runPeer } from '../harness/peers.js';
import { SmtpClient } from '../harness/smtp-client.js';
import { makePki, type Pki } from '../tls/pki.js';

const noSwaks = peerSkip('swaks', 'swaks libio-socket-ssl-perl libnet-ssleay-perl libauthen-sasl-perl libio-socket-inet6-perl');
const noOpenssl = peerSkip('openssl', 'openssl');
const noFail2ban = peerSkip('fail2ban-regex', 'fail2ban') || (spawnSync('test', ['-f', '/etc/fail2ban/filter.d/postfix.conf']).status === 0 ? false : 'fail2ban postfix filter missing (apt-get install fail2ban)');
const noPflogsumm = peerSkip('pflogsumm', 'pflogsumm');
const ipv6 = await hasIPv6Loopback();

/** Run a command asynchronously (the server runs in this process). */
describe('smtpd: interop with real peers', () => {
  let pki: Pki;
  let pt: StartedPostern;
  before(async () => {
    pki = makePki();
    pt = await startPostern({
      mainCf: [
        'smtpd_tls_security_level = may',
        `smtpd_tls_cert_file = ${pki.file('fullchain.pem')}`,
        `smtpd_tls_key_file = ${pki.file('srv.key')}`,
        `smtpd_tls_CAfile = ${pki.file('root.pem')}`,
        'smtpd_tls_ask_ccert = yes',
        'smtpd_tls_loglevel = 1',
        'smtpd_tls_protocols = >=TLSv1.2',
        'smtpd_forbid_unauth_pipelining = yes',
        'mynetworks = 192.0.2.0/24',
        'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
      ].join('\n'),
    });
  });
  after(async () => {
    await pt?.stop();
    pki?.remove();
    assert.equal(smtpdCounters.exceptions, 0);
  });

  const swaks = (args: readonly string[]): Promise<{ status: number | null; out: string }> =>
    runPeer('swaks', ['--server', '127.0.0.1', '--port', String(pt.port4), '--from', 'alice@client.example.test', '--to', 'bob@mx.example.test', '--helo', 'client.example.test', '--timeout', '10', ...args]);

  it('smtpd: swaks plain delivery', { skip: noSwaks }, async () => {
    const r = await swaks([]);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /<- {2}250 2\.0\.0 Ok: queued as \w+/);
  });

  it('smtpd: swaks with STARTTLS and a trusted client certificate', { skip: noSwaks }, async () => {
    const r = await swaks(['--tls', '--tls-cert', pki.file('cli.pem'), '--tls-key', pki.file('cli.key')]);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /<- {2}220 2\.0\.0 Ready to start TLS/);
    assert.match(r.out, /250 2\.0\.0 Ok: queued as/);
    await pt.waitFor(/Trusted TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1\.3/);
  });

  it('smtpd: swaks with an untrusted (self-signed) client certificate', { skip: noSwaks }, async () => {
    const r = await swaks(['--tls', '--tls-cert', pki.file('self.pem'), '--tls-key', pki.file('self.key')]);
    assert.equal(r.status, 0, r.out);
    await pt.waitFor(/Untrusted TLS connection established from unknown\[127\.0\.0\.1\]/);
  });

  it('smtpd: swaks with PIPELINING', { skip: noSwaks }, async () => {
    const r = await swaks(['--pipeline']);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /250 2\.0\.0 Ok: queued as/);
  });

  it('smtpd: swaks over IPv6 and a relay attempt that is refused', { skip: noSwaks || (!ipv6 && 'no IPv6 loopback') }, async () => {
    const r = await runPeer('swaks', ['--server', '::1', '--port', String(pt.port6), '-6', '--from', 'alice@client.example.test', '--to', 'carol@other.test', '--helo', 'client.example.test']);
    assert.notEqual(r.status, 0);
    assert.match(r.out, /<\*\* 554 5\.7\.1 <carol@other\.test>: Relay access denied/);
    await pt.waitFor(/NOQUEUE: reject: RCPT from unknown\[::1\]: 554 5\.7\.1 <carol@other\.test>: Relay access denied; from=<alice@client\.example\.test> to=<carol@other\.test> proto=ESMTP helo=<client\.example\.test>/);
  });

  it('smtpd: openssl s_client -starttls smtp: TLSv1.2 works, TLSv1.1 is refused (smtpd_tls_protocols = >=TLSv1.2)', { skip: noOpenssl }, async () => {
    const sClient = (port: number, args: readonly string[]): Promise<{ status: number | null; out: string }> =>
      runPeer('openssl', ['s_client', '-starttls', 'smtp', '-connect', `127.0.0.1:${port}`, '-servername', 'mx.example.test', ...args], 'QUIT\r\n');
    const tls11 = ['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0'];
    // Control: this openssl, with these arguments, can make a TLSv1.1 handshake with Postern when
    // the server allows it (the default smtpd_tls_protocols = >=TLSv1). So the refusal below is the
    // server's, not "no protocols available" on the client side.
    const open = await startPostern({
      mainCf: ['smtpd_tls_security_level = may', `smtpd_tls_cert_file = ${pki.file('fullchain.pem')}`, `smtpd_tls_key_file = ${pki.file('srv.key')}`, 'smtpd_tls_loglevel = 1'].join('\n'),
    });
    try {
      const ctl = await sClient(open.port4, tls11);
      assert.match(ctl.out, /Protocol *: TLSv1\.1/, ctl.out);
      assert.doesNotMatch(ctl.out, /Cipher is \(NONE\)|no protocols available/, ctl.out);
      await open.waitFor(/Anonymous TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1\.1 with cipher /);
    } finally {
      await open.stop();
    }
    const ok = await sClient(pt.port4, ['-tls1_2']);
    assert.match(ok.out, /Protocol *: TLSv1\.2/);
    const before = pt.lines().length;
    const bad = await sClient(pt.port4, tls11);
    assert.match(bad.out, /Cipher is \(NONE\)/, bad.out);
    assert.doesNotMatch(bad.out, /no protocols available/, bad.out);
    assert.match(bad.out, /alert protocol version|unsupported protocol/i, bad.out);
    // The server saw the attempt and failed it.
    for (let i = 0; i < 150 && !pt.lines().slice(before).some((l) => /: disconnect from /.test(l)); i++) await new Promise((r) => setTimeout(r, 20));
    const since = pt.lines().slice(before).join('\n');
    assert.match(since, /SSL_accept error from unknown\[127\.0\.0\.1\]/, since);
    assert.match(since, /lost connection after STARTTLS from unknown\[127\.0\.0\.1\]/, since);
  });

  it('smtpd: fail2ban-regex with the postfix filter matches the reject lines', { skip: noFail2ban }, async () => {
    // Two refused relay attempts.
    for (let i = 0; i < 2; i++) {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      await c.cmd('EHLO spammer.example');
      await c.cmd('MAIL FROM:<s@spammer.example>');
      assert.equal(await c.cmd(`RCPT TO:<victim${i}@other.test>`), `554 5.7.1 <victim${i}@other.test>: Relay access denied`);
      await c.cmd('QUIT');
    }
    await pt.waitFor(/victim1@other\.test.*helo=<spammer\.example>/);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-f2b-'));
    try {
      const file = path.join(dir, 'maillog');
      writeFileSync(file, `${pt.lines().join('\n')}\n`);
      const r = await runPeer('fail2ban-regex', ['--print-all-matched', file, '/etc/fail2ban/filter.d/postfix.conf']);
      const m = /Lines: \d+ lines, \d+ ignored, (\d+) matched/.exec(r.out);
      assert.ok(m, r.out);
      const rejects = pt.lines().filter((l) => /: reject: RCPT from .*Relay access denied/.test(l)).length;
      assert.ok(rejects >= 2);
      assert.equal(Number(m[1]), rejects, r.out);
      assert.match(r.out, /victim0@other\.test/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('smtpd: pflogsumm counts exactly the messages received and the recipients rejected', { skip: noPflogsumm }, async () => {
    // A Postern of its own, so the log holds only this test's sessions and the counts are known.
    const own = await startPostern({ mainCf: 'mynetworks = 192.0.2.0/24\nsmtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination' });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-pfls-'));
    try {
      const RECEIVED = 3;
      const REJECTED = 2;
      const c = await SmtpClient.connect(own.port4);
      await c.read();
      await c.cmd('EHLO client.example.test');
      const queued: string[] = [];
      for (let i = 0; i < RECEIVED; i++) {
        assert.equal(await c.cmd('MAIL FROM:<alice@client.example.test>'), '250 2.1.0 Ok');
        assert.equal(await c.cmd(`RCPT TO:<bob${i}@mx.example.test>`), '250 2.1.5 Ok');
        // The first rejection inside a transaction that has a queue id ("QID: reject: RCPT ...").
        if (i === 0) assert.equal(await c.cmd('RCPT TO:<carol@other.test>'), '554 5.7.1 <carol@other.test>: Relay access denied');
        assert.equal(await c.cmd('DATA'), '354 End data with <CR><LF>.<CR><LF>');
        const m = /^250 2\.0\.0 Ok: queued as (\w+)$/.exec(await c.cmd(`Subject: count me ${i}\r\n\r\nx\r\n.`));
        assert.ok(m);
        queued.push(m[1]!);
      }
      // The second one before any queue file ("NOQUEUE: reject: RCPT ...").
      assert.equal(await c.cmd('MAIL FROM:<alice@client.example.test>'), '250 2.1.0 Ok');
      assert.equal(await c.cmd('RCPT TO:<dave@other.test>'), '554 5.7.1 <dave@other.test>: Relay access denied');
      assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
      await c.waitClosed();
      await own.waitFor(/disconnect from /);
      const lines = own.lines();
      assert.ok(lines.some((l) => new RegExp(`: ${queued[0]}: reject: RCPT from unknown\\[127\\.0\\.0\\.1\\]: 554 5\\.7\\.1 <carol@other\\.test>`).test(l)), lines.join('\n'));
      assert.ok(lines.some((l) => /: NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 <dave@other\.test>/.test(l)), lines.join('\n'));
      const file = path.join(dir, 'maillog');
      writeFileSync(file, `${lines.join('\n')}\n`);
      // No "-d today": pflogsumm matches it as "Dec  6", but maillog_file lines (Postfix 3.7's as
      // Postern's) read "Dec 06" (msg_logger.c strftime "%b %d"); the file holds only this test's lines.
      const r = await runPeer('pflogsumm', ['--detail', '0', '--no_no_msg_size', file]);
      const count = (what: string): number => {
        const m = new RegExp(`^\\s*(\\d+)\\s+${what}\\b`, 'm').exec(r.out);
        assert.ok(m, `no "${what}" count:\n${r.out}`);
        return Number(m[1]);
      };
      assert.equal(count('received'), RECEIVED, r.out);
      assert.equal(count('rejected'), REJECTED, r.out);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await own.stop();
    }
  });
});

describe('smtpd: Postfix relays into Postern', { skip: postfixSkip() }, () => {
  it('smtpd: Postfix smtp client with smtp_tls_security_level = may delivers over TLS on IPv4 and IPv6', async () => {
    const pki = makePki();
    const pt = await startPostern({
      mainCf: [
        'smtpd_tls_security_level = may',
        `smtpd_tls_cert_file = ${pki.file('fullchain.pem')}`,
        `smtpd_tls_key_file = ${pki.file('srv.key')}`,
        'smtpd_tls_loglevel = 1',
        'mydestination = $myhostname, localhost, v4.test, v6.test',
      ].join('\n'),
    });
    const [pfPort] = await freePorts(1);
    const pf = await startPostfix({
      services: [{ port: pfPort! }],
      mainCf: [
        'myhostname = sender.example.test',
        'mydestination =',
        'smtp_tls_security_level = may',
        'smtp_tls_loglevel = 1',
        `smtp_tls_CAfile = ${pki.file('root.pem')}`,
        `transport_maps = inline:{ v4.test=smtp:[127.0.0.1]:${pt.port4}${pt.port6 ? `, v6.test=smtp:[::1]:${pt.port6}` : ''} }`,
        'default_transport = smtp',
        'relay_transport = smtp',
        'smtp_address_preference = any',
      ].join('\n'),
    });
    try {
      const targets = pt.port6 ? ['user@v4.test', 'user@v6.test'] : ['user@v4.test'];
      for (const rcpt of targets) {
        const r = pf.run('sendmail', ['-f', 'alice@sender.example.test', rcpt], `Subject: relayed to ${rcpt}\n\nhello\n`);
        assert.equal(r.status, 0, r.stderr);
      }
      await pf.waitFor(/status=sent \(250 2\.0\.0 Ok: queued as \w+\).*|to=<user@v4\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent \(250 2\.0\.0 Ok: queued as \w+\)/, 20000);
      await pf.waitFor(/TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: TLSv1\.3/, 20000);
      await pt.waitFor(/TLS connection established from unknown\[127\.0\.0\.1\]/);
      if (pt.port6) {
        await pf.waitFor(/to=<user@v6\.test>, relay=::1\[::1\]:\d+, .*status=sent \(250 2\.0\.0 Ok: queued as \w+\)/, 20000);
        await pf.waitFor(/TLS connection established to ::1\[::1\]:\d+/, 20000);
        await pt.waitFor(/disconnect from unknown\[::1\] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7/);
      }
      await pt.waitFor(/disconnect from unknown\[127\.0\.0\.1\] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7/);
    } finally {
      pf.stop();
      await pt.stop();
      pki.remove();
    }
  });
});

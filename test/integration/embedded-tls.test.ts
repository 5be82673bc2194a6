/**
 * `npm start` (`postern run --embedded`) serves TLS with the self-signed certificate it made on
 * first start: STARTTLS on the smtp and submission services, TLS from the first byte on smtps,
 * over IPv4 and IPv6, verified by `openssl s_client` trusting only ./var/etc/tls/cert.pem.
 * The test writes master.cf first (free ports instead of 2525/2587/2465) and main.cf from the
 * embedded text plus `smtpd_peername_lookup = no` (tests never ask the system resolver).
 */
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { EMBEDDED_MASTER_CF, EMBEDDED_PORTS, embeddedMainCf } from '../../src/config/embedded.js';
import { DAEMONS } from '../../src/master/daemons.js';
import { freePort } from '../harness/net.js';
import { PosternProcess } from '../harness/run.js';

const haveOpenssl = spawnSync('openssl', ['version']).status === 0;

/** openssl s_client; says quit once the handshake is reported; resolves with everything it printed. */
function sClient(args: readonly string[]): Promise<string> {
  return new Promise((resolve) => {
    // -ign_eof: a line starting with "Q" would otherwise be s_client's own quit command.
    const p = spawn('openssl', ['s_client', '-ign_eof', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let sent = false;
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (!sent && out.includes('Verify return code:')) {
        sent = true;
        p.stdin.write('QUIT\r\n');
      }
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.stdin.on('error', () => {});
    const killer = setTimeout(() => p.kill(), 15_000);
    p.on('close', () => {
      clearTimeout(killer);
      resolve(out);
    });
  });
}

const skip = !haveOpenssl ? 'openssl not installed' : !Object.hasOwn(DAEMONS, 'smtpd') ? 'smtpd is not in the master daemon table yet' : false;

describe('postern run --embedded: TLS with the self-signed certificate', { skip }, () => {
  test('embedded: STARTTLS on smtp and submission, TLS on connect on smtps, IPv4 and IPv6, verified against var/etc/tls/cert.pem', async () => {
    const cwd = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'postern-embedded-tls-'));
    await fs.promises.chmod(cwd, 0o755); // searchable by mail_owner after a privilege drop
    const ports = { smtp: await freePort(), submission: await freePort(), smtps: await freePort() };
    const varDir = path.join(cwd, 'var');
    const etc = path.join(varDir, 'etc');
    fs.mkdirSync(etc, { recursive: true });
    const master = EMBEDDED_MASTER_CF.split('\n')
      .filter((l) => !/\bimapd\b/.test(l))
      .join('\n')
      .replace(new RegExp(`^${EMBEDDED_PORTS.smtp} `, 'm'), `${ports.smtp} `)
      .replace(new RegExp(`^${EMBEDDED_PORTS.submission} `, 'm'), `${ports.submission} `)
      .replace(new RegExp(`^${EMBEDDED_PORTS.smtps} `, 'm'), `${ports.smtps} `);
    fs.writeFileSync(path.join(etc, 'master.cf'), master);
    fs.writeFileSync(path.join(etc, 'main.cf'), `${embeddedMainCf(varDir)}smtpd_peername_lookup = no\n`);

    const run = new PosternProcess(['run', '--embedded'], cwd);
    const waitFor = (done: () => boolean, what: string): Promise<void> => run.waitFor(done, what, 15_000);
    try {
      await waitFor(() => /postfix\/master\[\d+\]: daemon started/.test(run.stdout), 'daemon started');
      const certFile = path.join(etc, 'tls', 'cert.pem');
      const keyFile = path.join(etc, 'tls', 'key.pem');
      assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
      assert.equal(new crypto.X509Certificate(fs.readFileSync(certFile)).subject, 'CN=localhost');
      assert.doesNotMatch(run.stdout, /warning: .*TLS/);

      const verify = ['-CAfile', certFile, '-verify_hostname', 'localhost', '-verify_return_error', '-servername', 'localhost'];
      const cases: [string, string, string[]][] = [
        ['smtp', `127.0.0.1:${ports.smtp}`, ['-starttls', 'smtp']],
        ['submission', `[::1]:${ports.submission}`, ['-starttls', 'smtp']],
        ['smtps', `127.0.0.1:${ports.smtps}`, []],
        ['smtps', `[::1]:${ports.smtps}`, []],
      ];
      for (const [service, where, extra] of cases) {
        const out = await sClient(['-connect', where, ...extra, ...verify]);
        assert.match(out, /Verify return code: 0 \(ok\)/, `${service} ${where}: ${out}`);
        assert.match(out, /New, TLSv1\.3, Cipher is TLS_AES_256_GCM_SHA384/, `${service} ${where}`);
        assert.match(out, /^221 2\.0\.0 Bye/m, `${service} ${where}: the session goes on inside TLS`);
      }
      const summaries = (): string[] => run.stdout.split('\n').filter((l) => l.includes('TLS connection established'));
      await waitFor(() => summaries().length === 4, 'four TLS summary lines');
      const tail = 'TLSv1\\.3 with cipher TLS_AES_256_GCM_SHA384 \\(256/256 bits\\) key-exchange X25519 server-signature RSA-PSS \\(2048 bits\\) server-digest SHA256$';
      assert.match(summaries()[0]!, new RegExp(` postfix/smtpd\\[\\d+\\]: Anonymous TLS connection established from unknown\\[127\\.0\\.0\\.1\\]: ${tail}`));
      assert.match(summaries()[1]!, new RegExp(` postfix/submission/smtpd\\[\\d+\\]: Anonymous TLS connection established from unknown\\[::1\\]: ${tail}`));
      assert.match(summaries()[2]!, new RegExp(` postfix/smtps/smtpd\\[\\d+\\]: Anonymous TLS connection established from unknown\\[127\\.0\\.0\\.1\\]: ${tail}`));
      assert.match(summaries()[3]!, new RegExp(` postfix/smtps/smtpd\\[\\d+\\]: Anonymous TLS connection established from unknown\\[::1\\]: ${tail}`));
      run.child.kill('SIGTERM');
      assert.equal(await run.exited, 0);
    } finally {
      run.kill();
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });
});

/**
 * `npm start` (`postern run --embedded`) serves TLS with the self-signed certificate it made on
 * first start: STARTTLS on the smtp and submission services, TLS from the first byte on smtps,
 * over IPv4 and IPv6, verified by `openssl s_client` trusting only ./var/etc/tls/cert.pem.
 * The test writes master.cf first (free ports instead of 2525/2587/2465) and main.cf from the
 * embedded text plus `smtpd_peername_lookup = no` (tests never ask the system resolver).
 */
import * as assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EMBEDDED_MASTER_CF, EMBEDDED_PORTS, embeddedMainCf } from '../../src/config/embedded.js';
import { DAEMONS } from '../../src/master/daemons.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BIN = path.join(ROOT, 'bin', 'postern.js');
const haveOpenssl = spawnSync('openssl', ['version']).status === 0;

/** A port free on both 127.0.0.1 and ::1. */
async function freePort(): Promise<number> {
  for (;;) {
    const a = net.createServer();
    await new Promise<void>((resolve) => a.listen({ host: '::1', port: 0, ipv6Only: true }, resolve));
    const port = (a.address() as net.AddressInfo).port;
    const b = net.createServer();
    const ok = await new Promise<boolean>((resolve) => {
      b.once('error', () => resolve(false));
      b.listen({ host: '127.0.0.1', port }, () => resolve(true));
    });
    await new Promise<void>((resolve) => a.close(() => resolve()));
    if (ok) {
      await new Promise<void>((resolve) => b.close(() => resolve()));
      return port;
    }
  }
}

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

    let stdout = '';
    let stderr = '';
    const child: ChildProcess = spawn(process.execPath, [BIN, 'run', '--embedded'], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MAIL_CONFIG: '' } });
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const waitFor = async (done: () => boolean, what: string): Promise<void> => {
      const until = Date.now() + 15_000;
      while (!done()) {
        if (Date.now() > until) throw new Error(`timed out waiting for ${what}\nstdout:\n${stdout}\nstderr:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      await waitFor(() => /postfix\/master\[\d+\]: daemon started/.test(stdout), 'daemon started');
      const certFile = path.join(etc, 'tls', 'cert.pem');
      const keyFile = path.join(etc, 'tls', 'key.pem');
      assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
      assert.equal(new crypto.X509Certificate(fs.readFileSync(certFile)).subject, 'CN=localhost');
      assert.doesNotMatch(stdout, /warning: .*TLS/);

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
      const summaries = (): string[] => stdout.split('\n').filter((l) => l.includes('TLS connection established'));
      await waitFor(() => summaries().length === 4, 'four TLS summary lines');
      const tail = 'TLSv1\\.3 with cipher TLS_AES_256_GCM_SHA384 \\(256/256 bits\\) key-exchange X25519 server-signature RSA-PSS \\(2048 bits\\) server-digest SHA256$';
      assert.match(summaries()[0]!, new RegExp(` postfix/smtpd\\[\\d+\\]: Anonymous TLS connection established from unknown\\[127\\.0\\.0\\.1\\]: ${tail}`));
      assert.match(summaries()[1]!, new RegExp(` postfix/submission/smtpd\\[\\d+\\]: Anonymous TLS connection established from unknown\\[::1\\]: ${tail}`));
      assert.match(summaries()[2]!, new RegExp(` postfix/smtps/smtpd\\[\\d+\\]: Anonymous TLS connection established from unknown\\[127\\.0\\.0\\.1\\]: ${tail}`));
      assert.match(summaries()[3]!, new RegExp(` postfix/smtps/smtpd\\[\\d+\\]: Anonymous TLS connection established from unknown\\[::1\\]: ${tail}`));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });
});

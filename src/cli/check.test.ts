import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type * as os from 'node:os';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { type IssuedCert, TestPki } from '../tls/test-pki.js';
import { type Interfaces, runCheck } from './check.js';
import type { CliContext } from './context.js';
import { main as cliMain } from './main.js';

const DAY = 86_400_000;
let tmp = '';
let pki: TestPki;
let good: IssuedCert;
let dirCount = 0;

before(() => {
  tmp = fs.mkdtempSync(path.join(tmpdir(), 'postern-check-'));
  pki = TestPki.create(path.join(tmp, 'pki'), { intermediate: 'Postern Test R3' });
  good = pki.issue({ cn: 'mx.example.test' });
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

function configDir(mainCf: string, masterCf = 'smtp inet n - n - - smtpd\n'): string {
  const dir = path.join(tmp, `conf-${dirCount++}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'main.cf'), mainCf);
  fs.writeFileSync(path.join(dir, 'master.cf'), masterCf);
  return dir;
}

const v4: os.NetworkInterfaceInfo = { address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' };
const v6: os.NetworkInterfaceInfo = { address: '::1', netmask: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', family: 'IPv6', mac: '00:00:00:00:00:00', internal: true, cidr: '::1/128', scopeid: 0 };
const DUAL: Interfaces = { lo: [v4, v6] };

async function check(dir: string, o: { interfaces?: Interfaces; now?: Date } = {}): Promise<{ code: number; lines: string[] }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const ctx: CliContext = { configDir: dir, configDirExplicit: true, stdout, stderr, env: {} };
  const code = await runCheck([], ctx, { interfaces: o.interfaces ?? DUAL, ...(o.now ? { now: o.now } : {}) });
  assert.equal(stdout.text, '');
  return { code, lines: stderr.text.split('\n').filter((l) => l !== '') };
}

function tlsMainCf(cert: string, key: string, extra = ''): string {
  return `smtpd_tls_security_level = may\nsmtpd_tls_cert_file = ${cert}\nsmtpd_tls_key_file = ${key}\nsmtpd_tls_CAfile = ${pki.rootCert}\n${extra}`;
}

describe('postern check: certificates', () => {
  test('postern check: full chain with matching key passes with exit 0', async () => {
    const r = await check(configDir(tlsMainCf(good.fullchain, good.key)));
    assert.deepEqual(r, { code: 0, lines: ['postern check: 0 errors, 0 warnings'] });
  });

  test('postern check: cert.pem instead of fullchain.pem is the classic mistake, said in those words', async () => {
    const r = await check(configDir(tlsMainCf(good.cert, good.key)));
    assert.deepEqual(r, {
      code: 1,
      lines: [
        `postern: error: ${good.cert} contains only the server certificate, not its chain: its issuer "CN=Postern Test R3, O=Postern Test" is not a trusted root. Use the full chain (for Let's Encrypt: fullchain.pem, not cert.pem)`,
        'postern check: 1 error, 0 warnings',
      ],
    });
  });

  test('postern check: an expired (backdated) certificate is an error with its date', async () => {
    const old = pki.issue({ cn: 'old.example.test', notBefore: new Date('2024-01-01T00:00:00Z'), notAfter: new Date('2024-04-01T12:00:00Z') });
    const r = await check(configDir(tlsMainCf(old.fullchain, old.key)));
    assert.deepEqual(r, {
      code: 1,
      lines: [`postern: error: ${old.fullchain}: certificate "CN=old.example.test" expired on 2024-04-01 12:00:00 UTC`, 'postern check: 1 error, 0 warnings'],
    });
  });

  test('postern check: a certificate expiring in 5 days is a warning and exit 0', async () => {
    const notAfter = new Date(Math.floor(Date.now() / 1000) * 1000 + 5 * DAY + 3_600_000);
    const soon = pki.issue({ cn: 'soon.example.test', notAfter });
    const r = await check(configDir(tlsMainCf(soon.fullchain, soon.key)));
    assert.deepEqual(r, {
      code: 0,
      lines: [
        `postern: warning: ${soon.fullchain}: certificate "CN=soon.example.test" expires in 5 days, on ${notAfter.toISOString().slice(0, 19).replace('T', ' ')} UTC`,
        'postern check: 0 errors, 1 warning',
      ],
    });
  });

  test('postern check: a key that belongs to another certificate is an error', async () => {
    const other = pki.issue({ cn: 'other.example.test' });
    const r = await check(configDir(tlsMainCf(good.fullchain, other.key)));
    assert.deepEqual(r, {
      code: 1,
      lines: [`postern: error: the private key in ${other.key} does not match the certificate "CN=mx.example.test" in ${good.fullchain}`, 'postern check: 1 error, 0 warnings'],
    });
  });

  test('postern check: an encrypted key is an error saying so', async () => {
    const enc = pki.encryptKey(good.key, 'check-enc.key');
    const r = await check(configDir(tlsMainCf(good.fullchain, enc)));
    assert.equal(r.code, 1);
    assert.equal(r.lines.length, 2);
    assert.ok(r.lines[0]!.startsWith(`postern: error: smtpd_tls_key_file ${enc} holds an encrypted (passphrase-protected) private key`), r.lines[0]);
  });

  test('postern check: missing certificate and key files are errors with the errno text', async () => {
    const cert = path.join(tmp, 'letsencrypt', 'live', 'example.com', 'fullchain.pem');
    const key = path.join(tmp, 'letsencrypt', 'live', 'example.com', 'privkey.pem');
    const r = await check(configDir(tlsMainCf(cert, key)));
    assert.deepEqual(r, {
      code: 1,
      lines: [
        `postern: error: cannot open smtpd_tls_cert_file ${cert}: No such file or directory`,
        `postern: error: cannot open smtpd_tls_key_file ${key}: No such file or directory`,
        'postern check: 2 errors, 0 warnings',
      ],
    });
  });

  test('postern check: key_file defaults to cert_file: one file with key and chain passes', async () => {
    const both = pki.concat('check-both.pem', [good.key, good.fullchain]);
    const r = await check(configDir(`smtpd_tls_security_level = may\nsmtpd_tls_cert_file = ${both}\nsmtpd_tls_CAfile = ${pki.rootCert}\n`));
    assert.deepEqual(r, { code: 0, lines: ['postern check: 0 errors, 0 warnings'] });
  });

  test('postern check: certificate files are checked even when the TLS level is none', async () => {
    const r = await check(configDir(`smtpd_tls_cert_file = ${good.cert}\nsmtpd_tls_key_file = ${good.key}\nsmtpd_tls_CAfile = ${pki.rootCert}\n`));
    assert.equal(r.code, 1);
    assert.match(r.lines[0]!, /contains only the server certificate, not its chain/);
  });

  test('postern check: a service override (-o smtpd_tls_cert_file) is checked for that service; shared files are reported once', async () => {
    const master = [
      'smtp inet n - n - - smtpd',
      'submission inet n - n - - smtpd',
      '  -o syslog_name=postfix/submission',
      `  -o smtpd_tls_cert_file=${good.cert}`,
      'smtps inet n - n - - smtpd',
      '  -o smtpd_tls_wrappermode=yes',
      '',
    ].join('\n');
    const r = await check(configDir(tlsMainCf(good.fullchain, good.key), master));
    assert.deepEqual(r.lines, [
      `postern: error: ${good.cert} contains only the server certificate, not its chain: its issuer "CN=Postern Test R3, O=Postern Test" is not a trusted root. Use the full chain (for Let's Encrypt: fullchain.pem, not cert.pem)`,
      'postern check: 1 error, 0 warnings',
    ]);
  });

  test('postern check: TLS "may" without certificates is Postfix\'s warning; encrypt or wrappermode without them is an error naming the service', async () => {
    const master = ['smtp inet n - n - - smtpd', 'submission inet n - n - - smtpd', '  -o smtpd_tls_security_level=encrypt', 'smtps inet n - n - - smtpd', '  -o smtpd_tls_wrappermode=yes', ''].join('\n');
    const dir = configDir('smtpd_tls_security_level = may\n', master);
    const r = await check(dir);
    const mc = path.join(dir, 'master.cf');
    assert.deepEqual(r, {
      code: 1,
      lines: [
        `postern: warning: ${mc}, line 1: service smtp: smtpd_tls_security_level = may, but no server certificate (smtpd_tls_cert_file is empty): No server certs available. TLS won't be enabled`,
        `postern: error: ${mc}, line 2: service submission: smtpd_tls_security_level = encrypt, but no server certificate: set smtpd_tls_cert_file and smtpd_tls_key_file (or smtpd_tls_chain_files); every TLS handshake would fail`,
        `postern: error: ${mc}, line 4: service smtps: smtpd_tls_wrappermode = yes, but no server certificate: set smtpd_tls_cert_file and smtpd_tls_key_file (or smtpd_tls_chain_files); every TLS handshake would fail`,
        'postern check: 2 errors, 1 warning',
      ],
    });
  });

  test('postern check: smtpd_tls_chain_files is checked, and legacy cert files beside it draw Postfix\'s warning', async () => {
    const chain = pki.concat('check-chain.pem', [good.key, good.fullchain]);
    const dir = configDir(`smtpd_tls_security_level = may\nsmtpd_tls_chain_files = ${chain}\nsmtpd_tls_cert_file = ${good.cert}\nsmtpd_tls_CAfile = ${pki.rootCert}\n`);
    const r = await check(dir);
    assert.deepEqual(r, {
      code: 0,
      lines: [
        `postern: warning: ${path.join(dir, 'master.cf')}, line 1: service smtp: Both smtpd_tls_chain_files and one or more of the legacy smtpd_tls_cert_file, smtpd_tls_eccert_file or smtpd_tls_dcert_file are non-empty; the legacy parameters will be ignored`,
        'postern check: 0 errors, 1 warning',
      ],
    });
  });

  test('postern check: the issue\'s configuration on a host without those files reports CAfile, cert and key', async () => {
    const cfg = [
      'smtp_tls_security_level = may',
      'smtp_tls_CAfile = /nonexistent/pki/tls/certs/ca-bundle.crt',
      'smtpd_tls_ask_ccert = yes',
      'smtpd_tls_security_level = may',
      'smtpd_tls_loglevel = 1',
      'smtpd_tls_cert_file = /nonexistent/letsencrypt/live/example.com/fullchain.pem',
      'smtpd_tls_key_file = /nonexistent/letsencrypt/live/example.com/privkey.pem',
      'smtpd_tls_CAfile = /nonexistent/pki/tls/certs/ca-bundle.crt',
      'smtpd_tls_CApath = /nonexistent/pki/tls/certs',
      'inet_protocols = all',
      '',
    ].join('\n');
    const dir = configDir(cfg);
    const r = await check(dir);
    const smtp = '(the smtp client is not built yet: mail for remote destinations stays deferred)';
    assert.deepEqual(r, {
      code: 1,
      lines: [
        `postern: warning: ${dir}/main.cf, line 1: Postern ignores parameter: smtp_tls_security_level=may ${smtp}`,
        `postern: warning: ${dir}/main.cf, line 2: Postern ignores parameter: smtp_tls_CAfile=/nonexistent/pki/tls/certs/ca-bundle.crt ${smtp}`,
        'postern: error: cannot open smtpd_tls_CAfile /nonexistent/pki/tls/certs/ca-bundle.crt: No such file or directory; TLS would be disabled (Postfix: "cannot load Certification Authority data")',
        'postern: warning: cannot open smtpd_tls_CApath /nonexistent/pki/tls/certs: No such file or directory',
        'postern: error: cannot open smtpd_tls_cert_file /nonexistent/letsencrypt/live/example.com/fullchain.pem: No such file or directory',
        'postern: error: cannot open smtpd_tls_key_file /nonexistent/letsencrypt/live/example.com/privkey.pem: No such file or directory',
        'postern check: 3 errors, 3 warnings',
      ],
    });
  });

  test('postern check: without an smtpd service in master.cf, main.cf\'s certificate files are still checked', async () => {
    const dir = configDir(tlsMainCf(good.cert, good.key), 'pickup unix n - n 60 1 pickup\n');
    const r = await check(dir);
    assert.equal(r.code, 1);
    assert.match(r.lines[0]!, /contains only the server certificate, not its chain/);
  });
});

describe('postern check: configuration and host', () => {
  test('postern check: a bad value is postern: fatal: with file and line, exit 1', async () => {
    const dir = configDir('myhostname = mx.example.test\nsmtpd_tls_security_level = maybe\n');
    const r = await check(dir);
    assert.equal(r.code, 1);
    assert.equal(r.lines.length, 2);
    assert.ok(r.lines[0]!.startsWith(`postern: fatal: ${path.join(dir, 'main.cf')}, line 2: invalid smtpd_tls_security_level value "maybe"`), r.lines[0]);
    assert.equal(r.lines[1], 'postern check: 1 error, 0 warnings');
  });

  test('postern check: a missing main.cf is fatal', async () => {
    const dir = path.join(tmp, 'empty-conf');
    fs.mkdirSync(dir);
    const r = await check(dir);
    assert.equal(r.code, 1);
    assert.ok(r.lines[0]!.startsWith(`postern: fatal: ${path.join(dir, 'main.cf')}`), r.lines[0]);
  });

  test('postern check: an unknown parameter is a warning, exit 0', async () => {
    const dir = configDir('myhostname = mx.example.test\nno_such_parameter_here = 1\n');
    const r = await check(dir);
    assert.equal(r.code, 0);
    assert.equal(r.lines.length, 2);
    assert.match(r.lines[0]!, /^postern: warning: .*main\.cf, line 2: unused parameter: no_such_parameter_here=1$/);
    assert.equal(r.lines[1], 'postern check: 0 errors, 1 warning');
  });

  test('postern check: inet_protocols = ipv6 on a host without IPv6 addresses is an error; all is silent', async () => {
    const v4only: Interfaces = { lo: [v4], eth0: [{ ...v4, address: '192.0.2.10', internal: false, cidr: '192.0.2.10/24' }] };
    const dir = configDir('inet_protocols = ipv6\n');
    assert.deepEqual(await check(dir, { interfaces: v4only }), {
      code: 1,
      lines: [
        `postern: error: ${path.join(dir, 'main.cf')}, line 1: inet_protocols = ipv6 names ipv6, but this host has no IPv6 address: every IPv6 socket would fail to bind`,
        'postern check: 1 error, 0 warnings',
      ],
    });
    assert.deepEqual(await check(configDir('inet_protocols = all\n'), { interfaces: v4only }), { code: 0, lines: ['postern check: 0 errors, 0 warnings'] });
    assert.deepEqual(await check(dir, { interfaces: DUAL }), { code: 0, lines: ['postern check: 0 errors, 0 warnings'] });
  });

  test('postern check: inet_protocols = ipv4, ipv6 on an IPv6-only host names ipv4', async () => {
    const dir = configDir('inet_protocols = ipv4, ipv6\n');
    const r = await check(dir, { interfaces: { lo: [v6] } });
    assert.equal(r.code, 1);
    assert.deepEqual(r.lines, [
      `postern: error: ${path.join(dir, 'main.cf')}, line 1: inet_protocols = ipv4, ipv6 names ipv4, but this host has no IPv4 address: every IPv4 socket would fail to bind`,
      'postern check: 1 error, 0 warnings',
    ]);
  });

  test('postern check: an invalid inet_protocols value is an error', async () => {
    const r = await check(configDir('inet_protocols = ipx\n'));
    assert.equal(r.code, 1);
    assert.match(r.lines[0]!, /^postern: (?:fatal|error): .*main\.cf, line 1: invalid inet_protocols value "ipx": expected all, ipv4 or ipv6$/);
  });

  test('postern check: a maillog_file in a missing directory is an error; nothing is created', async () => {
    const log = path.join(tmp, 'no-such-dir', 'maillog');
    const r = await check(configDir(`maillog_file = ${log}\n`));
    assert.deepEqual(r, { code: 1, lines: [`postern: error: open maillog_file "${log}": No such file or directory`, 'postern check: 1 error, 0 warnings'] });
    const ok = path.join(tmp, 'maillog-ok');
    assert.deepEqual(await check(configDir(`maillog_file = ${ok}\n`)), { code: 0, lines: ['postern check: 0 errors, 0 warnings'] });
    assert.equal(fs.existsSync(ok), false);
  });

  test('postern check: runs through the command table (postern -c DIR check)', async () => {
    const dir = configDir(tlsMainCf(good.cert, good.key));
    const stdout = new Capture();
    const stderr = new Capture();
    const code = await cliMain(['-c', dir, 'check'], { stdout, stderr, env: {} });
    assert.equal(code, 1);
    assert.match(stderr.text, /contains only the server certificate, not its chain[^\n]*\npostern check: 1 error, 0 warnings\n$/);
  });
});

test('postern check: SMTP AUTH on with no user database is an error naming smtpd_sasl_path; with one it passes', async () => {
  const missing = configDir(`smtpd_sasl_auth_enable = yes\nsmtpd_sasl_path = ${path.join(tmp, 'no-such-users')}\n`);
  const bad = await check(missing);
  assert.equal(bad.code, 1);
  assert.ok(bad.lines.some((l) => /^postern: error: .*smtpd_sasl_path/.test(l)), bad.lines.join('\n'));
  const users = path.join(tmp, 'users');
  fs.writeFileSync(users, 'alice@example.test:{PLAIN}secret\n');
  const good = await check(configDir(`smtpd_sasl_auth_enable = yes\nsmtpd_sasl_path = ${users}\n`));
  assert.equal(good.lines.filter((l) => l.includes('smtpd_sasl_path')).length, 0, good.lines.join('\n'));
});

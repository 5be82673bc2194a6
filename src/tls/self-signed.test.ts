import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { describe, test } from 'node:test';
import { materializeEmbedded } from '../config/embedded.js';
import { loadConfig } from '../config/index.js';
import { Log } from '../log/index.js';
import { ensureSelfSigned, selfSignedCertificate } from './self-signed.js';
import { SmtpdTls } from './server.js';

const haveOpenssl = spawnSync('openssl', ['version']).status === 0;

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'postern-selfsigned-'));
}

/** `openssl <args>` with the PEM on stdin. */
function openssl(args: readonly string[], input: string): string {
  return execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

const NOW = new Date('2026-03-01T12:00:00Z');

/** A TLS server with the certificate; a client trusting only that certificate connects. */
async function handshake(c: { cert: string; key: string }, client: tls.ConnectionOptions): Promise<{ authorized: boolean; error: string | null }> {
  const server = tls.createServer({ key: c.key, cert: c.cert }, (s) => s.end());
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, client.host ?? '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise((resolve) => {
      const s = tls.connect({ port, host: '127.0.0.1', ca: c.cert, ...client }, () => {
        resolve({ authorized: s.authorized, error: null });
        s.destroy();
      });
      s.on('error', (err: NodeJS.ErrnoException) => resolve({ authorized: false, error: err.code ?? err.message }));
    });
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

describe('tls/self-signed: the certificate', () => {
  const rsa = selfSignedCertificate({ hostname: 'mx.example.test', now: NOW });
  const ec = selfSignedCertificate({ hostname: 'mx.example.test', keyType: 'ec', now: NOW });

  test('self-signed: an RSA certificate for myhostname, issued by itself, valid from 1 hour before now for 825 days', () => {
    const x = new crypto.X509Certificate(rsa.cert);
    assert.equal(x.subject, 'CN=mx.example.test');
    assert.equal(x.issuer, 'CN=mx.example.test');
    assert.equal(x.subjectAltName, 'DNS:mx.example.test, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.equal(x.ca, false);
    assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1']); // Node names extendedKeyUsage keyUsage
    assert.equal(new Date(x.validFrom).toISOString(), '2026-03-01T11:00:00.000Z');
    assert.equal(new Date(x.validTo).toISOString(), new Date(NOW.getTime() + 825 * 86_400_000).toISOString());
    assert.ok(x.verify(x.publicKey), 'signed with its own key');
    assert.ok(x.checkPrivateKey(crypto.createPrivateKey(rsa.key)));
    assert.equal(x.publicKey.asymmetricKeyType, 'rsa');
    assert.equal(x.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
    assert.match(x.serialNumber, /^[0-9A-F]{32}$/);
    assert.ok(Number.parseInt(x.serialNumber.slice(0, 2), 16) < 0x80, 'positive serial');
    assert.match(rsa.key, /^-----BEGIN PRIVATE KEY-----\n/);
  });

  test('self-signed: two certificates get different serial numbers and keys', () => {
    const a = new crypto.X509Certificate(rsa.cert);
    const b = new crypto.X509Certificate(ec.cert);
    assert.notEqual(a.serialNumber, b.serialNumber);
    assert.notEqual(a.fingerprint256, b.fingerprint256);
  });

  test('self-signed: openssl x509 reads the v3 fields and extensions; the DER is canonical', { skip: !haveOpenssl }, () => {
    const text = openssl(['x509', '-text', '-noout'], rsa.cert);
    assert.match(text, /Version: 3 \(0x2\)/);
    assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
    assert.match(text, /Issuer: CN = mx\.example\.test/);
    assert.match(text, /Not Before: Mar {2}1 11:00:00 2026 GMT/);
    assert.match(text, /Not After : Jun {2}3 12:00:00 2028 GMT/);
    assert.match(text, /X509v3 Basic Constraints: critical\n\s+CA:FALSE/);
    assert.match(text, /X509v3 Key Usage: critical\n\s+Digital Signature, Key Encipherment\n/);
    assert.match(text, /X509v3 Extended Key Usage: \n\s+TLS Web Server Authentication\n/);
    assert.match(text, /DNS:mx\.example\.test, DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1\n/);
    assert.match(text, /X509v3 Subject Key Identifier: \n\s+([0-9A-F]{2}:){19}[0-9A-F]{2}\n/);
    // Re-encoding by OpenSSL yields the same bytes: lengths, integers and bit strings are DER.
    const der = execFileSync('openssl', ['x509', '-outform', 'DER'], { input: rsa.cert });
    assert.ok(der.equals(new crypto.X509Certificate(rsa.cert).raw));
    // Usable as a server certificate, trusted as its own anchor, for its names.
    const dir = tmp();
    try {
      const file = path.join(dir, 'cert.pem');
      fs.writeFileSync(file, rsa.cert);
      assert.match(execFileSync('openssl', ['verify', '-purpose', 'sslserver', '-verify_hostname', 'mx.example.test', '-CAfile', file, file], { encoding: 'utf8' }), /: OK$/m);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('self-signed: an EC P-256 certificate is signed ecdsa-with-SHA256 with keyUsage digitalSignature only', { skip: !haveOpenssl }, () => {
    const x = new crypto.X509Certificate(ec.cert);
    assert.equal(x.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(x.verify(x.publicKey));
    assert.ok(x.checkPrivateKey(crypto.createPrivateKey(ec.key)));
    const text = openssl(['x509', '-text', '-noout'], ec.cert);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(text, /X509v3 Key Usage: critical\n\s+Digital Signature\n/);
  });

  test('self-signed: validity ending in 2050 or later is a GeneralizedTime (RFC 5280 4.1.2.5)', { skip: !haveOpenssl }, () => {
    const c = selfSignedCertificate({ hostname: 'mx.example.test', keyType: 'ec', now: new Date('2049-12-01T00:00:00Z') });
    const x = new crypto.X509Certificate(c.cert);
    assert.equal(new Date(x.validTo).getUTCFullYear(), 2052);
    assert.equal(new Date(x.validFrom).toISOString(), '2049-11-30T23:00:00.000Z');
    const asn1 = openssl(['asn1parse'], c.cert);
    assert.match(asn1, /UTCTIME\s+:491130230000Z/);
    assert.match(asn1, /GENERALIZEDTIME\s+:20520305000000Z/);
  });

  test('self-signed: an IP-literal or overlong myhostname still yields valid names', () => {
    const ip = new crypto.X509Certificate(selfSignedCertificate({ hostname: '2001:db8::25', keyType: 'ec' }).cert);
    assert.equal(ip.subjectAltName, 'DNS:localhost, IP Address:2001:DB8:0:0:0:0:0:25, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.equal(ip.subject, 'CN=2001:db8::25');
    const long = `${'a'.repeat(60)}.example.test.`;
    const x = new crypto.X509Certificate(selfSignedCertificate({ hostname: long, keyType: 'ec' }).cert);
    assert.equal(x.subject, 'CN=Postern self-signed'); // ub-common-name is 64
    assert.equal(x.subjectAltName, `DNS:${long.slice(0, -1)}, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1`);
  });

  test('self-signed: a TLS client trusting only this certificate verifies it for localhost, 127.0.0.1 and ::1, not for another name', async () => {
    assert.deepEqual(await handshake(rsa, { servername: 'localhost' }), { authorized: true, error: null });
    assert.deepEqual(await handshake(rsa, { servername: 'mx.example.test' }), { authorized: true, error: null });
    assert.deepEqual(await handshake(ec, { host: '127.0.0.1' }), { authorized: true, error: null });
    assert.deepEqual(await handshake(ec, { host: '::1' }), { authorized: true, error: null });
    assert.deepEqual(await handshake(rsa, { servername: 'other.example' }), { authorized: false, error: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    const stranger = selfSignedCertificate({ hostname: 'localhost', keyType: 'ec' });
    assert.deepEqual(await handshake({ cert: rsa.cert, key: rsa.key }, { servername: 'localhost', ca: stranger.cert }), { authorized: false, error: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
  });

  test('self-signed: refuses a key it cannot certify', () => {
    const { privateKey } = crypto.generateKeyPairSync('ed25519');
    assert.throws(() => selfSignedCertificate({ hostname: 'x', key: privateKey }), /cannot certify a ed25519 key/);
  });
});

describe('tls/self-signed: the files', () => {
  test('self-signed: ensureSelfSigned writes key.pem 0600 and cert.pem 0644 once and never overwrites them', () => {
    const dir = tmp();
    const old = process.umask(0o077);
    try {
      const tlsDir = path.join(dir, 'tls');
      const first = ensureSelfSigned(tlsDir, { hostname: 'mx.example.test', keyType: 'ec' });
      assert.deepEqual(first.created, [path.join(tlsDir, 'key.pem'), path.join(tlsDir, 'cert.pem')]);
      assert.equal(fs.statSync(first.keyFile).mode & 0o777, 0o600);
      assert.equal(fs.statSync(first.certFile).mode & 0o777, 0o644);
      assert.deepEqual(fs.readdirSync(tlsDir).sort(), ['cert.pem', 'key.pem'], 'no temporary files left');
      const cert = fs.readFileSync(first.certFile, 'utf8');
      const key = fs.readFileSync(first.keyFile, 'utf8');
      assert.ok(new crypto.X509Certificate(cert).checkPrivateKey(crypto.createPrivateKey(key)));
      const again = ensureSelfSigned(tlsDir, { hostname: 'other.example' });
      assert.deepEqual(again.created, []);
      assert.equal(fs.readFileSync(first.certFile, 'utf8'), cert);
      assert.equal(fs.readFileSync(first.keyFile, 'utf8'), key);
    } finally {
      process.umask(old);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('self-signed: a key without a certificate gets a certificate for that key; a certificate without a key is left alone', () => {
    const dir = tmp();
    try {
      const key = crypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      fs.writeFileSync(path.join(dir, 'key.pem'), key, { mode: 0o600 });
      const r = ensureSelfSigned(dir, { hostname: 'mx.example.test' });
      assert.deepEqual(r.created, [path.join(dir, 'cert.pem')]);
      assert.equal(fs.readFileSync(r.keyFile, 'utf8'), key);
      assert.ok(new crypto.X509Certificate(fs.readFileSync(r.certFile)).checkPrivateKey(crypto.createPrivateKey(key)));

      fs.rmSync(r.keyFile);
      assert.deepEqual(ensureSelfSigned(dir, { hostname: 'mx.example.test' }).created, []);
      assert.equal(fs.existsSync(r.keyFile), false);

      fs.rmSync(r.certFile);
      fs.writeFileSync(r.keyFile, 'not a key');
      assert.throws(() => ensureSelfSigned(dir, { hostname: 'mx.example.test' }), /key\.pem: cannot read the private key to certify it/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('embedded: first start makes var/etc/tls/cert.pem + key.pem for myhostname and main.cf serves them with smtpd_tls_security_level = may', async () => {
    const dir = tmp();
    try {
      const made = materializeEmbedded(path.join(dir, 'var'));
      const tlsDir = path.join(made.configDir, 'tls');
      assert.deepEqual(made.certificate, { certFile: path.join(tlsDir, 'cert.pem'), keyFile: path.join(tlsDir, 'key.pem'), created: [path.join(tlsDir, 'key.pem'), path.join(tlsDir, 'cert.pem')] });
      const config = await loadConfig({ configDir: made.configDir, env: {} });
      assert.deepEqual(config.warnings, []);
      const p = config.params;
      assert.equal(p.smtpd_tls_security_level, 'may');
      assert.equal(p.smtpd_tls_cert_file, path.join(tlsDir, 'cert.pem'));
      assert.equal(p.smtpd_tls_key_file, path.join(tlsDir, 'key.pem'));
      assert.equal(p.smtpd_tls_loglevel, '1');
      const x = new crypto.X509Certificate(fs.readFileSync(p.smtpd_tls_cert_file));
      assert.equal(x.subject, `CN=${p.myhostname}`);
      assert.equal(fs.statSync(p.smtpd_tls_key_file).mode & 0o777, 0o600);
      // Every embedded smtpd service gets a working TLS engine from it.
      for (const s of config.services.filter((sv) => sv.command === 'smtpd')) {
        const t = await SmtpdTls.create(s.params, Log.memory().logger('smtpd'), { watch: false });
        try {
          assert.equal(t.available, true, s.name);
          assert.equal(t.level, s.params.smtpd_tls_wrappermode ? 'encrypt' : 'may');
        } finally {
          t.close();
        }
      }
      // Second start: nothing is remade.
      const cert = fs.readFileSync(p.smtpd_tls_cert_file, 'utf8');
      assert.deepEqual(materializeEmbedded(path.join(dir, 'var')).certificate?.created, []);
      assert.equal(fs.readFileSync(p.smtpd_tls_cert_file, 'utf8'), cert);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('embedded: the certificate follows an edited myhostname; a main.cf with its own certificate gets none', () => {
    const dir = tmp();
    try {
      const etc = path.join(dir, 'var', 'etc');
      fs.mkdirSync(etc, { recursive: true });
      fs.writeFileSync(
        path.join(etc, 'main.cf'),
        `myhostname = mail.example.org\nsmtpd_tls_cert_file = ${path.join(etc, 'tls', 'cert.pem')}\nsmtpd_tls_key_file = ${path.join(etc, 'tls', 'key.pem')}\n`,
      );
      const made = materializeEmbedded(path.join(dir, 'var'));
      assert.equal(new crypto.X509Certificate(fs.readFileSync(made.certificate!.certFile)).subject, 'CN=mail.example.org');

      const other = path.join(dir, 'other');
      fs.mkdirSync(path.join(other, 'etc'), { recursive: true });
      fs.writeFileSync(path.join(other, 'etc', 'main.cf'), 'smtpd_tls_cert_file = /etc/letsencrypt/live/example.com/fullchain.pem\n');
      assert.equal(materializeEmbedded(other).certificate, null);
      assert.equal(fs.existsSync(path.join(other, 'etc', 'tls')), false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

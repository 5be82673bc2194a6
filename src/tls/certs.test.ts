import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PosternError } from '../errors.js';
import { checkCertificates, checkChainFiles, describeName, type Finding, parsePem, readCertChain, readPrivateKey } from './certs.js';
import { type IssuedCert, TestPki } from './test-pki.js';
import { selfSignedCertificate } from './self-signed.js';

const DAY = 86_400_000;
let tmp = '';
let pki: TestPki;
let good: IssuedCert;
let rootIssued: IssuedCert;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-certs-'));
  pki = TestPki.create(tmp);
  good = pki.issue({ cn: 'mx.example.test' });
  rootIssued = pki.issue({ cn: 'direct.example.test', issuer: 'root' });
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const errors = (f: Finding[]) => f.filter((x) => x.severity === 'error').map((x) => x.message);
const warnings = (f: Finding[]) => f.filter((x) => x.severity === 'warning').map((x) => x.message);

describe('tls/certs: reading files', () => {
  test('tls/certs: readCertChain returns leaf then intermediate from fullchain.pem', () => {
    const chain = readCertChain(good.fullchain);
    assert.deepEqual(
      chain.map((c) => describeName(c.subject)),
      ['CN=mx.example.test', 'CN=Postern Test Intermediate, O=Postern Test'],
    );
  });

  test('tls/certs: a file with key and certificates (key_file = cert_file) yields both', () => {
    const both = pki.concat('both.pem', [good.key, good.fullchain]);
    assert.equal(readCertChain(both).length, 2);
    assert.equal(readPrivateKey(both).asymmetricKeyType, 'ec');
    assert.deepEqual(checkCertificates({ certFile: both, caFile: pki.rootCert }), []);
  });

  test('tls/certs: parsePem finds blocks and legacy encryption headers', () => {
    const blocks = parsePem(
      'junk\n-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n',
    );
    assert.deepEqual(
      blocks.map((b) => [b.label, b.headers]),
      [
        ['RSA PRIVATE KEY', 'Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00'],
        ['CERTIFICATE', ''],
      ],
    );
  });

  test('tls/certs: a missing file is a PosternError with the errno text', () => {
    const missing = path.join(tmp, 'nope.pem');
    assert.throws(() => readCertChain(missing, 'smtpd_tls_cert_file'), (e: unknown) => e instanceof PosternError && e.code === 'tls-cert' && e.message === `cannot open smtpd_tls_cert_file ${missing}: No such file or directory`);
    assert.throws(() => readPrivateKey(missing), (e: unknown) => e instanceof PosternError && e.code === 'tls-key' && e.message === `cannot open private key file ${missing}: No such file or directory`);
  });

  test('tls/certs: an unreadable file says Permission denied', (t) => {
    if (process.getuid?.() === 0) {
      t.skip('running as root: file permissions do not apply');
      return;
    }
    const locked = pki.concat('locked.pem', [good.cert]);
    fs.chmodSync(locked, 0o000);
    assert.throws(() => readCertChain(locked), /Permission denied$/);
  });

  test('tls/certs: a directory instead of a file says Is a directory', () => {
    assert.throws(() => readCertChain(tmp), (e: unknown) => e instanceof PosternError && e.message === `cannot open certificate file ${tmp}: Is a directory`);
  });

  test('tls/certs: a DER certificate is named as such, with the conversion command', () => {
    const der = pki.toDer(good.cert, 'cert.der');
    assert.throws(() => readCertChain(der), (e: unknown) => e instanceof Error && e.message.startsWith(`certificate file ${der} is in DER (binary) format, not PEM; convert it: openssl x509 -inform der`));
  });

  test('tls/certs: a text file without PEM blocks is "not a PEM file"', () => {
    const txt = path.join(tmp, 'notes.txt');
    fs.writeFileSync(txt, 'hello\n');
    assert.throws(() => readCertChain(txt), (e: unknown) => e instanceof Error && e.message === `certificate file ${txt} is not a PEM file: no "-----BEGIN CERTIFICATE-----" line`);
  });

  test('tls/certs: a key file given as the certificate file hints at swapped files', () => {
    assert.throws(() => readCertChain(good.key, 'smtpd_tls_cert_file'), (e: unknown) => e instanceof Error && e.message === `smtpd_tls_cert_file ${good.key} holds no certificate (it holds a private key: are the certificate and key files swapped?)`);
    assert.throws(() => readPrivateKey(good.cert), (e: unknown) => e instanceof Error && e.message === `private key file ${good.cert} holds no private key (no "-----BEGIN PRIVATE KEY-----" block)`);
  });

  test('tls/certs: an encrypted key is reported as encrypted, not as unparsable', () => {
    const enc = pki.encryptKey(good.key, 'enc.key');
    assert.match(fs.readFileSync(enc, 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/);
    assert.throws(() => readPrivateKey(enc, 'smtpd_tls_key_file'), (e: unknown) => e instanceof PosternError && e.code === 'tls-key' && e.message.startsWith(`smtpd_tls_key_file ${enc} holds an encrypted (passphrase-protected) private key`));
  });
});

describe('tls/certs: checkCertificates', () => {
  test('tls/certs: full chain with its root in CAfile has no findings', () => {
    assert.deepEqual(checkCertificates({ certFile: good.fullchain, keyFile: good.key, caFile: pki.rootCert }), []);
  });

  test('tls/certs: full chain including the self-signed root has no findings', () => {
    const withRoot = pki.concat('with-root.pem', [good.fullchain, pki.rootCert]);
    assert.deepEqual(checkCertificates({ certFile: withRoot, keyFile: good.key }), []);
  });

  test('tls/certs: leaf-only cert.pem whose issuer is an intermediate is the classic fullchain mistake', () => {
    const f = checkCertificates({ certFile: good.cert, keyFile: good.key, caFile: pki.rootCert });
    assert.deepEqual(errors(f), [
      `${good.cert} contains only the server certificate, not its chain: its issuer "CN=Postern Test Intermediate, O=Postern Test" is not a trusted root. Use the full chain (for Let's Encrypt: fullchain.pem, not cert.pem)`,
    ]);
    assert.deepEqual(warnings(f), []);
  });

  test('tls/certs: leaf-only is fine when its issuer is a root in CAfile, and an error without it', () => {
    assert.deepEqual(checkCertificates({ certFile: rootIssued.cert, keyFile: rootIssued.key, caFile: pki.rootCert }), []);
    assert.deepEqual(errors(checkCertificates({ certFile: rootIssued.cert, keyFile: rootIssued.key })), [
      `${rootIssued.cert} contains only the server certificate, not its chain: its issuer "CN=Postern Test Root, O=Postern Test" is not a trusted root. Use the full chain (for Let's Encrypt: fullchain.pem, not cert.pem)`,
    ]);
  });

  test('tls/certs: a root found in CApath counts as trusted', () => {
    const dir = path.join(tmp, 'capath');
    fs.mkdirSync(dir);
    fs.copyFileSync(pki.rootCert, path.join(dir, 'postern-root.pem'));
    fs.writeFileSync(path.join(dir, 'README'), 'not a certificate\n');
    assert.deepEqual(checkCertificates({ certFile: rootIssued.cert, keyFile: rootIssued.key, caPath: dir }), []);
  });

  test('tls/certs: a full chain whose root is not trusted here is only a warning', () => {
    const f = checkCertificates({ certFile: good.fullchain, keyFile: good.key });
    assert.deepEqual(errors(f), []);
    assert.deepEqual(warnings(f), [
      `${good.fullchain}: the chain ends with "CN=Postern Test Intermediate, O=Postern Test", whose issuer "CN=Postern Test Root, O=Postern Test" is not a trusted root here (not in Node's root store nor the CAfile/CApath); only clients that trust it can verify this server`,
    ]);
  });

  test('tls/certs: a key that does not match the certificate is an error naming both files', () => {
    const other = pki.issue({ cn: 'other.example.test' });
    assert.deepEqual(errors(checkCertificates({ certFile: good.fullchain, keyFile: other.key, caFile: pki.rootCert })), [
      `the private key in ${other.key} does not match the certificate "CN=mx.example.test" in ${good.fullchain}`,
    ]);
  });

  test('tls/certs: intermediate before the leaf is out of order (with and without the key to tell)', () => {
    const reversed = pki.concat('reversed.pem', [pki.intermediateCert, good.cert]);
    assert.deepEqual(errors(checkCertificates({ certFile: reversed, keyFile: good.key, caFile: pki.rootCert })), [
      `${reversed}: the server certificate ("CN=mx.example.test", the one matching the key) is certificate 2 of 2; it must come first, followed by its issuers`,
    ]);
    const noKey = path.join(tmp, 'no-such-key.pem');
    assert.deepEqual(errors(checkCertificates({ certFile: reversed, keyFile: noKey, caFile: pki.rootCert })), [
      `cannot open private key file ${noKey}: No such file or directory`,
      `${reversed}: the chain is out of order: certificate 2 ("CN=mx.example.test") does not sign certificate 1 ("CN=Postern Test Intermediate, O=Postern Test"); put the server certificate first, then each certificate's issuer`,
    ]);
  });

  test('tls/certs: root before intermediate is out of order', () => {
    const shuffled = pki.concat('shuffled.pem', [good.cert, pki.rootCert, pki.intermediateCert]);
    assert.deepEqual(errors(checkCertificates({ certFile: shuffled, keyFile: good.key })), [
      `${shuffled}: the chain is out of order: certificate 2 ("CN=Postern Test Root, O=Postern Test") does not sign certificate 1 ("CN=mx.example.test"), certificate 3 does; put the server certificate first, then each certificate's issuer`,
    ]);
  });

  test('tls/certs: an intermediate that did not sign the leaf is a wrong intermediate', () => {
    const wrong = pki.concat('wrong-int.pem', [good.cert, pki.otherIntermediateCert]);
    assert.deepEqual(errors(checkCertificates({ certFile: wrong, keyFile: good.key, caFile: pki.rootCert })), [
      `${wrong}: wrong intermediate: certificate 2 ("CN=Postern Other Intermediate, O=Postern Test") is not the issuer of certificate 1 ("CN=mx.example.test"), which was issued by "CN=Postern Test Intermediate, O=Postern Test"`,
    ]);
  });

  test('tls/certs: an expired certificate is an error with its end date', () => {
    const old = pki.issue({ cn: 'old.example.test', notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2021-03-04T05:06:07Z') });
    assert.deepEqual(errors(checkCertificates({ certFile: old.fullchain, keyFile: old.key, caFile: pki.rootCert })), [
      `${old.fullchain}: certificate "CN=old.example.test" expired on 2021-03-04 05:06:07 UTC`,
    ]);
  });

  test('tls/certs: a certificate expiring within 14 days is a warning with the days left; 14 or more is silent', () => {
    const notAfter = new Date(Math.floor(Date.now() / 1000 + 30 * 86_400) * 1000);
    const soon = pki.issue({ cn: 'soon.example.test', notBefore: new Date(notAfter.getTime() - 60 * DAY), notAfter });
    const end = `${notAfter.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
    const at = (days: number) => checkCertificates({ certFile: soon.fullchain, keyFile: soon.key, caFile: pki.rootCert, now: new Date(notAfter.getTime() - days * DAY) });
    assert.deepEqual(at(5.5), [{ severity: 'warning', message: `${soon.fullchain}: certificate "CN=soon.example.test" expires in 5 days, on ${end}` }]);
    assert.deepEqual(warnings(at(1.2)), [`${soon.fullchain}: certificate "CN=soon.example.test" expires in 1 day, on ${end}`]);
    assert.deepEqual(warnings(at(0.5)), [`${soon.fullchain}: certificate "CN=soon.example.test" expires within a day, on ${end}`]);
    assert.deepEqual(at(14), []);
    assert.deepEqual(errors(at(-1)), [`${soon.fullchain}: certificate "CN=soon.example.test" expired on ${end}`]);
  });

  test('tls/certs: a certificate not yet valid is an error', () => {
    const future = pki.issue({ cn: 'future.example.test', notBefore: new Date(Date.now() + 10 * DAY), notAfter: new Date(Date.now() + 100 * DAY) });
    const f = errors(checkCertificates({ certFile: future.fullchain, keyFile: future.key, caFile: pki.rootCert }));
    assert.equal(f.length, 1);
    assert.match(f[0]!, /: certificate "CN=future\.example\.test" is not valid before \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  });

  test('tls/certs: missing certificate and key files are reported once each, with labels', () => {
    const cert = path.join(tmp, 'missing', 'fullchain.pem');
    const key = path.join(tmp, 'missing', 'privkey.pem');
    assert.deepEqual(errors(checkCertificates({ certFile: cert, keyFile: key, certLabel: 'smtpd_tls_cert_file', keyLabel: 'smtpd_tls_key_file' })), [
      `cannot open smtpd_tls_cert_file ${cert}: No such file or directory`,
      `cannot open smtpd_tls_key_file ${key}: No such file or directory`,
    ]);
    assert.deepEqual(errors(checkCertificates({ certFile: cert })), [`cannot open certificate file ${cert}: No such file or directory`]);
  });

  test('tls/certs: an encrypted key is an error of checkCertificates too', () => {
    const enc = pki.encryptKey(good.key, 'enc2.key');
    const f = errors(checkCertificates({ certFile: good.fullchain, keyFile: enc, caFile: pki.rootCert }));
    assert.equal(f.length, 1);
    assert.match(f[0]!, /holds an encrypted \(passphrase-protected\) private key/);
  });

  test('tls/certs: a CAfile that cannot be loaded is an error, as Postfix disables TLS then', () => {
    const ca = path.join(tmp, 'ca-bundle.crt');
    assert.deepEqual(errors(checkCertificates({ certFile: good.fullchain, keyFile: good.key, caFile: ca, caFileLabel: 'smtpd_tls_CAfile' })), [
      `cannot open smtpd_tls_CAfile ${ca}: No such file or directory; TLS would be disabled (Postfix: "cannot load Certification Authority data")`,
    ]);
  });

  test('tls/certs: a missing CApath is a warning', () => {
    const dir = path.join(tmp, 'no-capath');
    assert.deepEqual(checkCertificates({ certFile: rootIssued.cert, keyFile: rootIssued.key, caFile: pki.rootCert, caPath: dir, caPathLabel: 'smtpd_tls_CApath' }), [
      { severity: 'warning', message: `cannot open smtpd_tls_CApath ${dir}: No such file or directory` },
    ]);
  });
});

describe('tls/certs: smtpd_tls_chain_files', () => {
  test('tls/certs: key followed by its chain is good; a key after its certificate is reported', () => {
    const good1 = pki.concat('chain-good.pem', [good.key, good.fullchain]);
    assert.deepEqual(checkChainFiles({ files: [good1], caFile: pki.rootCert }), []);
    const bad = pki.concat('chain-bad.pem', [good.fullchain, good.key]);
    assert.deepEqual(errors(checkChainFiles({ files: [bad], label: 'smtpd_tls_chain_files' })), [
      `smtpd_tls_chain_files ${bad}: a certificate comes before any private key; each key must be followed by its certificate chain`,
    ]);
  });

  test('tls/certs: two key+chain groups in one file are checked each (mismatch in the second)', () => {
    const other = pki.issue({ cn: 'other2.example.test' });
    const two = pki.concat('chain-two.pem', [good.key, good.fullchain, other.key, good.fullchain]);
    assert.deepEqual(errors(checkChainFiles({ files: [two], caFile: pki.rootCert })), [
      `the private key in ${two} does not match the certificate "CN=mx.example.test" in ${two}`,
    ]);
  });

  test('tls/certs: a leaf-only chain file gets the fullchain message', () => {
    const leafOnly = pki.concat('chain-leaf.pem', [good.key, good.cert]);
    assert.deepEqual(errors(checkChainFiles({ files: [leafOnly], caFile: pki.rootCert })), [
      `${leafOnly} contains only the server certificate, not its chain: its issuer "CN=Postern Test Intermediate, O=Postern Test" is not a trusted root. Use the full chain (for Let's Encrypt: fullchain.pem, not cert.pem)`,
    ]);
  });
});

test('certs: a self-signed server certificate (the embedded default) is not reported as leaf-only', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-selfsigned-'));
  try {
    const { cert, key } = selfSignedCertificate({ hostname: 'localhost' });
    const certFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    fs.writeFileSync(certFile, cert);
    fs.writeFileSync(keyFile, key, { mode: 0o600 });
    const findings = checkCertificates({ certFile, keyFile });
    assert.deepEqual(
      findings.filter((f) => f.severity === 'error'),
      [],
    );
    assert.ok(!findings.some((f) => /only the server certificate/.test(f.message)));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

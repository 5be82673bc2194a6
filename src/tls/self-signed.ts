/**
 * A self-signed server certificate for the embedded default configuration only (`npm start`,
 * `postern run --embedded`), so STARTTLS and port-465-style TLS work on a fresh clone without the
 * openssl command line. A real server uses its own certificate chain instead, e.g. Let's Encrypt's:
 *   smtpd_tls_cert_file = /etc/letsencrypt/live/example.com/fullchain.pem
 *   smtpd_tls_key_file = /etc/letsencrypt/live/example.com/privkey.pem
 *
 * The certificate is an X.509 v3 certificate (RFC 5280) built here with a minimal DER encoder
 * (X.690) and signed with node:crypto: subject = issuer = CN=<myhostname>, valid from one hour ago
 * for 825 days, basicConstraints CA:FALSE, keyUsage digitalSignature (+ keyEncipherment for RSA),
 * extendedKeyUsage serverAuth, subjectAltName DNS:<myhostname>, DNS:localhost, IP:127.0.0.1, IP:::1.
 *
 * Touches on disk: ensureSelfSigned() creates <dir>/cert.pem (0644) and <dir>/key.pem (0600) when
 * they are missing; an existing file is never overwritten (a key without a certificate gets a new
 * certificate for that key).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PosternError } from '../errors.js';

export type SelfSignedKeyType = 'rsa' | 'ec';

export interface SelfSignedOptions {
  /** myhostname: the subject CN and the first DNS name. */
  readonly hostname: string;
  /** RSA 2048 (default, what most MTAs serve) or EC P-256. Ignored when `key` is given. */
  readonly keyType?: SelfSignedKeyType;
  /** Certify this private key instead of generating one (RSA or EC P-256/P-384/P-521). */
  readonly key?: crypto.KeyObject;
  /** Default: the current time. notBefore is one hour earlier (clock skew). */
  readonly now?: Date;
  /** Days of validity after `now` (default 825, the CA/Browser Forum limit of 2018-2020). */
  readonly days?: number;
}

export interface SelfSignedCertificate {
  /** PEM certificate. */
  readonly cert: string;
  /** PEM PKCS#8 private key. */
  readonly key: string;
}

const DEFAULT_DAYS = 825;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

// --- DER (ITU-T X.690 §8, §10) ---

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
/** [n] EXPLICIT (constructed, context-specific). */
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
const octetString = (b: Buffer): Buffer => tlv(0x04, b);
const derNull = (): Buffer => Buffer.from([0x05, 0x00]);
const derTrue = (): Buffer => Buffer.from([0x01, 0x01, 0xff]);

/** A non-negative INTEGER from big-endian bytes (minimal form, X.690 §8.3.2). */
function integer(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  let b = bytes.subarray(i);
  if (b.length === 0) b = Buffer.from([0]);
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}

/** BIT STRING with `unused` padding bits in the last byte. */
function bitString(b: Buffer, unused = 0): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([unused]), b]));
}

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; seconds, Zulu. */
function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-:T]/g, '');
  const year = d.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii'));
  return tlv(0x18, Buffer.from(`${digits}Z`, 'ascii'));
}

// --- X.509 (RFC 5280 §4.1) ---

const OID = {
  commonName: '2.5.4.3',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
} as const;

/** RFC 5280 A.1 ub-common-name. */
const UB_COMMON_NAME = 64;

function name(cn: string): Buffer {
  return seq(set(seq(oid(OID.commonName), tlv(0x0c, Buffer.from(cn, 'utf8')))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), derTrue(), octetString(value)) : seq(oid(id), octetString(value));
}

/** 4-byte IPv4 or 16-byte IPv6 address for an iPAddress GeneralName. */
function ipBytes(ip: string): Buffer {
  if (net.isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  // RFC 4291 2.2: an IPv4 tail is two groups; `::` stands for the missing zero groups.
  const text = ip.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a: string, b: string, c: string, d: string) => {
    const hex = (x: string, y: string): string => ((Number(x) << 8) | Number(y)).toString(16);
    return `${hex(a, b)}:${hex(c, d)}`;
  });
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  return out;
}

/** A name usable as a dNSName (IA5String, RFC 5280 4.2.1.6): LDH labels, ASCII. */
function dnsNameOk(host: string): boolean {
  return host.length <= 253 && /^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*$/.test(host);
}

function subjectAltNames(hostname: string): Buffer {
  const dns: string[] = [];
  const ips: string[] = [];
  const host = hostname.toLowerCase().replace(/\.$/, '');
  if (net.isIP(host)) ips.push(host);
  else if (dnsNameOk(host)) dns.push(host);
  if (!dns.includes('localhost')) dns.push('localhost');
  for (const ip of ['127.0.0.1', '::1']) if (!ips.includes(ip)) ips.push(ip);
  // GeneralName [2] dNSName IA5String, [7] iPAddress OCTET STRING (IMPLICIT tags).
  return seq(...dns.map((d) => tlv(0x82, Buffer.from(d, 'ascii'))), ...ips.map((ip) => tlv(0x87, ipBytes(ip))));
}

function signatureAlgorithm(key: crypto.KeyObject): { der: Buffer; rsa: boolean } {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      // RFC 4055 5: NULL parameters for sha256WithRSAEncryption.
      return { der: seq(oid(OID.sha256WithRSAEncryption), derNull()), rsa: true };
    case 'ec':
      // RFC 5758 3.2: no parameters.
      return { der: seq(oid(OID.ecdsaWithSHA256)), rsa: false };
    default:
      throw new PosternError('self-signed', `cannot certify a ${key.asymmetricKeyType ?? 'secret'} key: RSA or EC expected`);
  }
}

/**
 * Builds and signs a self-signed server certificate for `hostname` (a new key unless `key` is
 * given). Pure apart from the randomness of the key and the 128-bit serial number.
 */
export function selfSignedCertificate(o: SelfSignedOptions): SelfSignedCertificate {
  const privateKey =
    o.key ??
    ((o.keyType ?? 'rsa') === 'ec'
      ? crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey
      : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
  if (privateKey.type !== 'private') throw new PosternError('self-signed', 'a private key is needed to sign the certificate');
  const alg = signatureAlgorithm(privateKey);
  const spki = crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const now = o.now ?? new Date();
  const notBefore = new Date(Math.floor((now.getTime() - HOUR_MS) / 1000) * 1000);
  const notAfter = new Date(Math.floor((now.getTime() + (o.days ?? DEFAULT_DAYS) * DAY_MS) / 1000) * 1000);

  // RFC 5280 4.1.2.2: positive, at most 20 octets; 16 random bytes with the top bit clear.
  const serial = crypto.randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;

  const host = o.hostname.replace(/\.$/, '');
  const cn = host !== '' && host.length <= UB_COMMON_NAME ? host : 'Postern self-signed';
  const subject = name(cn);

  // RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING value.
  const publicKeyBits = subjectPublicKeyBits(spki);
  const ski = crypto.createHash('sha1').update(publicKeyBits).digest();
  // keyUsage bits (4.2.1.3): digitalSignature(0), keyEncipherment(2) for RSA key transport
  // (TLS 1.0-1.2 RSA suites); DER drops trailing zero bits (X.690 11.2.2).
  const keyUsage = alg.rsa ? bitString(Buffer.from([0xa0]), 5) : bitString(Buffer.from([0x80]), 7);
  const extensions = seq(
    extension(OID.basicConstraints, true, seq()),
    extension(OID.keyUsage, true, keyUsage),
    extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
    extension(OID.subjectAltName, false, subjectAltNames(host)),
    extension(OID.subjectKeyIdentifier, false, octetString(ski)),
  );
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))), // v3
    integer(serial),
    alg.der,
    subject,
    seq(time(notBefore), time(notAfter)),
    subject,
    spki,
    explicit(3, extensions),
  );
  // ECDSA signatures come DER-encoded (Ecdsa-Sig-Value), as X.509 wants; RSA is PKCS#1 v1.5.
  const signature = crypto.sign('sha256', tbs, privateKey);
  const der = seq(tbs, alg.der, bitString(signature));
  return { cert: pem('CERTIFICATE', der), key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/** The contents of the subjectPublicKey BIT STRING inside a SubjectPublicKeyInfo. */
function subjectPublicKeyBits(spki: Buffer): Buffer {
  // SEQUENCE { AlgorithmIdentifier, BIT STRING }
  const [, seqBody] = readTlv(spki, 0);
  const [algEnd] = readTlv(seqBody, 0);
  const [, bits] = readTlv(seqBody, algEnd);
  return bits.subarray(1); // skip the unused-bits octet
}

/** [end offset, content] of the TLV at `at`. */
function readTlv(buf: Buffer, at: number): [number, Buffer] {
  let i = at + 1;
  let len = buf[i++]!;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let k = 0; k < n; k++) len = len * 256 + buf[i++]!;
  }
  return [i + len, buf.subarray(i, i + len)];
}

function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

export interface SelfSignedFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** The files this call wrote (empty when both existed). */
  readonly created: readonly string[];
}

/** Writes `text` to `file` only if it does not exist, atomically (never a half-written file). */
function createExclusive(file: string, text: string, mode: number): boolean {
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.writeSync(fd, text);
    fs.fchmodSync(fd, mode); // the umask may have narrowed or not; be exact
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.linkSync(tmp, file); // fails with EEXIST if another process won the race
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * The embedded instance's certificate: `<dir>/cert.pem` and `<dir>/key.pem` (mode 0600), made on
 * first use and never overwritten. A key file without a certificate gets a certificate for that
 * key; a certificate without its key is left alone (postern check / the TLS engine report it).
 */
export function ensureSelfSigned(dir: string, o: { hostname: string; keyType?: SelfSignedKeyType; now?: Date }): SelfSignedFiles {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  const created: string[] = [];
  const haveCert = fs.existsSync(certFile);
  if (haveCert) return { certFile, keyFile, created };
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  let key: crypto.KeyObject | undefined;
  if (fs.existsSync(keyFile)) {
    try {
      key = crypto.createPrivateKey(fs.readFileSync(keyFile));
    } catch (err) {
      throw new PosternError('self-signed', `${keyFile}: cannot read the private key to certify it: ${(err as Error).message}`);
    }
  }
  const made = selfSignedCertificate({ hostname: o.hostname, ...(o.keyType ? { keyType: o.keyType } : {}), ...(key ? { key } : {}), ...(o.now ? { now: o.now } : {}) });
  if (key === undefined) {
    if (createExclusive(keyFile, made.key, 0o600)) created.push(keyFile);
    else return ensureSelfSigned(dir, o); // another process made the key meanwhile: certify that one
  }
  if (createExclusive(certFile, made.cert, 0o644)) created.push(certFile);
  return { certFile, keyFile, created };
}

/**
 * Certificate and key files: reading them (PEM, as Postfix's smtpd_tls_cert_file, _key_file,
 * _chain_files and _CAfile) and finding what would stop TLS from working, for `postern check`
 * and for the TLS code that loads them.
 *
 * What a server certificate file must be (postconf(5) smtpd_tls_cert_file): PEM, the server
 * certificate first, then the intermediate certificates, each followed by its issuer (RFC 8446
 * 4.4.2 "certificate_list": each following certificate SHOULD directly certify the one preceding
 * it). A root may be included or not. Clients cannot fetch a missing intermediate themselves, so a
 * file with only the leaf works only when its issuer is a root the client already trusts: the
 * classic mistake of pointing at Let's Encrypt's cert.pem instead of fullchain.pem.
 *
 * Postfix refuses an encrypted key at start-up (it has no passphrase to give), and disables TLS
 * when the CAfile cannot be loaded ("cannot load Certification Authority data ... disabling TLS
 * support", tls/tls_certkey.c); both are errors here.
 *
 * Touches: reads the named files and, only to decide whether a leaf's issuer is trusted, the files
 * of CApath. Never logs key material.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { PosternError } from '../errors.js';
import { strerror } from '../log/strerror.js';

export interface Finding {
  readonly severity: 'error' | 'warning';
  readonly message: string;
}

/** A certificate expiring within this many days is a warning. */
export const EXPIRY_WARNING_DAYS = 14;

/** Certificate and key files are small; a CAfile bundle is a few hundred KiB. */
const MAX_PEM_FILE_BYTES = 16 * 1024 * 1024;
/** CApath directories are read only up to this many entries. */
const MAX_CAPATH_ENTRIES = 10000;
const DAY_MS = 86_400_000;

export interface PemBlock {
  /** `CERTIFICATE`, `PRIVATE KEY`, `RSA PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`, ... */
  readonly label: string;
  /** RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`) of legacy OpenSSL keys, else ''. */
  readonly headers: string;
  /** The whole block, BEGIN to END line. */
  readonly pem: string;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/g;

/** The PEM blocks of a text, in order (RFC 7468). Text between blocks is ignored, as OpenSSL does. */
export function parsePem(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    const body = m[2]!;
    const blank = body.search(/\r?\n\r?\n/);
    const headers = /^[A-Za-z-]+:/.test(body) && blank >= 0 ? body.slice(0, blank) : '';
    blocks.push({ label: m[1]!, headers, pem: `${m[0]}\n` });
  }
  return blocks;
}

function isCertLabel(label: string): boolean {
  return label === 'CERTIFICATE' || label === 'X509 CERTIFICATE' || label === 'TRUSTED CERTIFICATE';
}

function isKeyLabel(label: string): boolean {
  return label.endsWith('PRIVATE KEY');
}

function isEncryptedKey(b: PemBlock): boolean {
  return b.label === 'ENCRYPTED PRIVATE KEY' || /^Proc-Type:\s*4,\s*ENCRYPTED/im.test(b.headers);
}

/** Read a PEM file; errors say `cannot open LABEL FILE: strerror`. */
function readPemText(file: string, label: string, code: string): Buffer {
  let data: Buffer;
  try {
    const st = fs.statSync(file);
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    if (st.size > MAX_PEM_FILE_BYTES) throw new PosternError(code, `${label} ${file} is too large for a PEM file (${st.size} bytes)`);
    data = fs.readFileSync(file);
  } catch (err) {
    if (err instanceof PosternError) throw err;
    throw new PosternError(code, `cannot open ${label} ${file}: ${strerror(err)}`, { cause: err });
  }
  return data;
}

/** DER starts with a SEQUENCE (0x30) and a long-form length; PEM is text. */
function looksLikeDer(data: Buffer): boolean {
  return data.length > 4 && data[0] === 0x30 && (data[1] === 0x82 || data[1] === 0x83);
}

/**
 * The certificates of a PEM file, in file order (leaf first, if the file is right). Private key
 * blocks in the same file are skipped (key_file defaults to the cert file). Throws PosternError
 * (code `tls-cert`) with a message fit for the admin: missing/unreadable file, DER instead of PEM,
 * no certificate, a certificate that does not parse.
 */
export function readCertChain(file: string, label = 'certificate file'): crypto.X509Certificate[] {
  const data = readPemText(file, label, 'tls-cert');
  const blocks = parsePem(data.toString('latin1'));
  if (blocks.length === 0) {
    if (looksLikeDer(data)) {
      throw new PosternError('tls-cert', `${label} ${file} is in DER (binary) format, not PEM; convert it: openssl x509 -inform der -in ${file} -out ${file}.pem`);
    }
    throw new PosternError('tls-cert', `${label} ${file} is not a PEM file: no "-----BEGIN CERTIFICATE-----" line`);
  }
  const certs: crypto.X509Certificate[] = [];
  for (const b of blocks) {
    if (!isCertLabel(b.label)) continue;
    try {
      certs.push(new crypto.X509Certificate(b.pem.replace(/TRUSTED CERTIFICATE/g, 'CERTIFICATE')));
    } catch (err) {
      throw new PosternError('tls-cert', `${label} ${file}: certificate ${certs.length + 1} cannot be parsed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
  if (certs.length === 0) {
    const hint = blocks.some((b) => isKeyLabel(b.label)) ? ' (it holds a private key: are the certificate and key files swapped?)' : '';
    throw new PosternError('tls-cert', `${label} ${file} holds no certificate${hint}`);
  }
  return certs;
}

/**
 * The first private key of a PEM file (which may also hold certificates). Throws PosternError
 * (code `tls-key`): missing/unreadable, no key, an encrypted key (Postern, like Postfix, has no
 * passphrase to give), a key that does not parse.
 */
export function readPrivateKey(file: string, label = 'private key file'): crypto.KeyObject {
  const data = readPemText(file, label, 'tls-key');
  const block = parsePem(data.toString('latin1')).find((b) => isKeyLabel(b.label));
  if (block === undefined) throw new PosternError('tls-key', `${label} ${file} holds no private key (no "-----BEGIN PRIVATE KEY-----" block)`);
  if (isEncryptedKey(block)) {
    throw new PosternError(
      'tls-key',
      `${label} ${file} holds an encrypted (passphrase-protected) private key; the server cannot ask for a passphrase: decrypt it with openssl pkey -in ${file} -out NEWFILE and keep NEWFILE readable by root only`,
    );
  }
  try {
    return crypto.createPrivateKey(block.pem);
  } catch (err) {
    throw new PosternError('tls-key', `${label} ${file}: the private key cannot be parsed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** `C=US\nO=Let's Encrypt\nCN=R3` (Node's form) → `CN=R3, O=Let's Encrypt, C=US` (RFC 4514 order). */
export function describeName(name: string): string {
  return name.split('\n').filter((s) => s !== '').reverse().join(', ');
}

function subjectOf(c: crypto.X509Certificate): string {
  return describeName(c.subject);
}

/** True if `parent` issued `child`: names/key identifiers agree and the signature verifies. */
export function isIssuedBy(child: crypto.X509Certificate, parent: crypto.X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    return false;
  }
}

/**
 * Signed by its own key under its own name. Not checkIssued(): OpenSSL's issuer check also wants
 * keyCertSign in a CA's keyUsage, which a self-signed server (leaf) certificate rightly lacks.
 */
export function isSelfSigned(c: crypto.X509Certificate): boolean {
  try {
    return c.subject === c.issuer && c.verify(c.publicKey);
  } catch {
    return false;
  }
}

let nodeRoots: crypto.X509Certificate[] | null = null;

/** Node's bundled Mozilla root store (tls.rootCertificates), parsed once. */
function bundledRoots(): crypto.X509Certificate[] {
  if (nodeRoots === null) {
    nodeRoots = [];
    for (const pem of tls.rootCertificates) {
      try {
        nodeRoots.push(new crypto.X509Certificate(pem));
      } catch {
        // a root Node ships but cannot parse is not ours to report
      }
    }
  }
  return nodeRoots;
}

/** Certificates of every readable PEM file in a CApath directory (hashed names or not). */
function capathCerts(dir: string): crypto.X509Certificate[] {
  const out: crypto.X509Certificate[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir).slice(0, MAX_CAPATH_ENTRIES);
  } catch {
    return out;
  }
  for (const name of names) {
    try {
      const file = path.join(dir, name);
      if (!fs.statSync(file).isFile()) continue;
      out.push(...readCertChain(file));
    } catch {
      // not a certificate file: OpenSSL ignores it too
    }
  }
  return out;
}

function formatDate(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

export interface CertCheckOptions {
  /** The certificate (chain) file: smtpd_tls_cert_file. */
  readonly certFile: string;
  /** The private key file: smtpd_tls_key_file (Postfix's default is the cert file itself). */
  readonly keyFile?: string;
  /** Trust anchors besides Node's root store: smtpd_tls_CAfile / smtpd_tls_CApath. */
  readonly caFile?: string;
  readonly caPath?: string;
  readonly now?: Date;
  /** Names used in messages, e.g. `smtpd_tls_cert_file`. Defaults: `certificate file`, `private key file`. */
  readonly certLabel?: string;
  readonly keyLabel?: string;
  readonly caFileLabel?: string;
  readonly caPathLabel?: string;
}

/**
 * Everything wrong with a certificate/key pair: file problems, a key that does not match, a chain
 * out of order or with a wrong intermediate, a leaf-only file whose issuer is not a trusted root,
 * expired or not yet valid certificates (errors), certificates expiring within 14 days (warnings),
 * and a CAfile that cannot be loaded. An empty array means the files are good.
 */
export function checkCertificates(o: CertCheckOptions): Finding[] {
  const findings: Finding[] = [];
  const error = (message: string) => findings.push({ severity: 'error', message });
  const certLabel = o.certLabel ?? 'certificate file';
  const keyLabel = o.keyLabel ?? 'private key file';
  const keyFile = o.keyFile !== undefined && o.keyFile !== '' ? o.keyFile : o.certFile;
  const now = o.now ?? new Date();

  const anchors = loadAnchors(o, findings);

  let certs: crypto.X509Certificate[] | null = null;
  try {
    certs = readCertChain(o.certFile, certLabel);
  } catch (err) {
    if (!(err instanceof PosternError)) throw err;
    error(err.message);
  }
  let key: crypto.KeyObject | null = null;
  try {
    key = readPrivateKey(keyFile, keyLabel);
  } catch (err) {
    if (!(err instanceof PosternError)) throw err;
    // One message when both names are the same missing file.
    if (!(keyFile === o.certFile && certs === null && err.message.startsWith('cannot open'))) error(err.message);
  }
  if (certs === null) return findings;

  const leafFirst = key === null || checkKeyMatch(certs, key, o.certFile, keyFile, error);
  if (leafFirst) checkChain(certs, o.certFile, anchors, findings);
  checkValidity(certs, o.certFile, now, findings);
  return findings;
}

/**
 * smtpd_tls_chain_files: each file holds a private key followed by its certificate chain (several
 * key+chain groups for RSA and ECDSA are allowed). Checks each group as checkCertificates does.
 */
export function checkChainFiles(o: { readonly files: readonly string[]; readonly caFile?: string; readonly caPath?: string; readonly now?: Date; readonly label?: string; readonly caFileLabel?: string; readonly caPathLabel?: string }): Finding[] {
  const findings: Finding[] = [];
  const error = (message: string) => findings.push({ severity: 'error', message });
  const label = o.label ?? 'chain file';
  const now = o.now ?? new Date();
  const anchors = loadAnchors(o, findings);
  for (const file of o.files) {
    let blocks: PemBlock[];
    try {
      blocks = parsePem(readPemText(file, label, 'tls-cert').toString('latin1'));
    } catch (err) {
      if (!(err instanceof PosternError)) throw err;
      error(err.message);
      continue;
    }
    // Group: a key, then the certificates after it (postconf(5) smtpd_tls_chain_files).
    const groups: { key: PemBlock; certs: crypto.X509Certificate[] }[] = [];
    let bad = false;
    for (const b of blocks) {
      if (isKeyLabel(b.label)) groups.push({ key: b, certs: [] });
      else if (isCertLabel(b.label)) {
        const g = groups.at(-1);
        if (g === undefined) {
          error(`${label} ${file}: a certificate comes before any private key; each key must be followed by its certificate chain`);
          bad = true;
          break;
        }
        try {
          g.certs.push(new crypto.X509Certificate(b.pem.replace(/TRUSTED CERTIFICATE/g, 'CERTIFICATE')));
        } catch (err) {
          error(`${label} ${file}: a certificate cannot be parsed: ${err instanceof Error ? err.message : String(err)}`);
          bad = true;
          break;
        }
      }
    }
    if (bad) continue;
    if (groups.length === 0) {
      error(`${label} ${file} holds no private key; each key must be followed by its certificate chain`);
      continue;
    }
    for (const g of groups) {
      if (g.certs.length === 0) {
        error(`${label} ${file}: a private key is not followed by any certificate`);
        continue;
      }
      if (isEncryptedKey(g.key)) {
        error(`${label} ${file} holds an encrypted (passphrase-protected) private key; the server cannot ask for a passphrase`);
        continue;
      }
      let key: crypto.KeyObject;
      try {
        key = crypto.createPrivateKey(g.key.pem);
      } catch (err) {
        error(`${label} ${file}: the private key cannot be parsed: ${err instanceof Error ? err.message : String(err)}`);
        continue;
      }
      if (checkKeyMatch(g.certs, key, file, file, error)) checkChain(g.certs, file, anchors, findings);
      checkValidity(g.certs, file, now, findings);
    }
  }
  return findings;
}

interface Anchors {
  readonly caFile: readonly crypto.X509Certificate[];
  readonly caPath: string | undefined;
}

function loadAnchors(o: { readonly caFile?: string; readonly caPath?: string; readonly caFileLabel?: string; readonly caPathLabel?: string }, findings: Finding[]): Anchors {
  let caFile: crypto.X509Certificate[] = [];
  if (o.caFile !== undefined && o.caFile !== '') {
    try {
      caFile = readCertChain(o.caFile, o.caFileLabel ?? 'CAfile');
    } catch (err) {
      if (!(err instanceof PosternError)) throw err;
      // Postfix: "cannot load Certification Authority data, CAfile=...: disabling TLS support".
      findings.push({ severity: 'error', message: `${err.message}; TLS would be disabled (Postfix: "cannot load Certification Authority data")` });
    }
  }
  const caPath = o.caPath !== undefined && o.caPath !== '' ? o.caPath : undefined;
  if (caPath !== undefined) {
    // OpenSSL does not look at CApath until it needs a certificate from it: not fatal for Postfix.
    const label = o.caPathLabel ?? 'CApath';
    try {
      if (!fs.statSync(caPath).isDirectory()) findings.push({ severity: 'warning', message: `${label} ${caPath} is not a directory` });
    } catch (err) {
      findings.push({ severity: 'warning', message: `cannot open ${label} ${caPath}: ${strerror(err)}` });
    }
  }
  return { caFile, caPath };
}

/** Reports a key that matches no certificate or not the first; returns false if the chain order is already reported. */
function checkKeyMatch(certs: crypto.X509Certificate[], key: crypto.KeyObject, certFile: string, keyFile: string, error: (m: string) => void): boolean {
  const leaf = certs[0]!;
  if (safeCheckKey(leaf, key)) return true;
  const at = certs.findIndex((c) => safeCheckKey(c, key));
  if (at > 0) {
    error(`${certFile}: the server certificate ("${subjectOf(certs[at]!)}", the one matching the key) is certificate ${at + 1} of ${certs.length}; it must come first, followed by its issuers`);
    return false;
  }
  error(`the private key in ${keyFile} does not match the certificate "${subjectOf(leaf)}" in ${certFile}`);
  return true;
}

function safeCheckKey(c: crypto.X509Certificate, key: crypto.KeyObject): boolean {
  try {
    return c.checkPrivateKey(key);
  } catch {
    return false;
  }
}

/** Is `c`'s issuer a trust anchor (Node's root store, CAfile, CApath)? */
function issuerTrusted(c: crypto.X509Certificate, anchors: Anchors): boolean {
  if (anchors.caFile.some((r) => isIssuedBy(c, r))) return true;
  if (bundledRoots().some((r) => isIssuedBy(c, r))) return true;
  if (anchors.caPath !== undefined && capathCerts(anchors.caPath).some((r) => isIssuedBy(c, r))) return true;
  return false;
}

function checkChain(certs: crypto.X509Certificate[], file: string, anchors: Anchors, findings: Finding[]): void {
  // RFC 8446 4.4.2: each certificate is certified by the next one.
  for (let i = 1; i < certs.length; i++) {
    const child = certs[i - 1]!;
    if (isIssuedBy(child, certs[i]!)) continue;
    const issuerAt = certs.findIndex((c, k) => k !== i - 1 && isIssuedBy(child, c));
    // The child signs another certificate of the file: it is an issuer placed too early.
    const signsLater = certs.some((c, k) => k !== i - 1 && isIssuedBy(c, child) && !isSelfSigned(c));
    const childName = `certificate ${i} ("${subjectOf(child)}")`;
    const nextName = `certificate ${i + 1} ("${subjectOf(certs[i]!)}")`;
    if (issuerAt >= 0 || signsLater) {
      const hint = issuerAt >= 0 ? `, certificate ${issuerAt + 1} does` : '';
      findings.push({
        severity: 'error',
        message: `${file}: the chain is out of order: ${nextName} does not sign ${childName}${hint}; put the server certificate first, then each certificate's issuer`,
      });
    } else {
      findings.push({
        severity: 'error',
        message: `${file}: wrong intermediate: ${nextName} is not the issuer of ${childName}, which was issued by "${describeName(child.issuer)}"`,
      });
    }
    return;
  }
  const last = certs[certs.length - 1]!;
  if (isSelfSigned(last) || issuerTrusted(last, anchors)) return;
  const issuer = describeName(last.issuer);
  if (certs.length === 1) {
    findings.push({
      severity: 'error',
      message: `${file} contains only the server certificate, not its chain: its issuer "${issuer}" is not a trusted root. Use the full chain (for Let's Encrypt: fullchain.pem, not cert.pem)`,
    });
  } else {
    findings.push({
      severity: 'warning',
      message: `${file}: the chain ends with "${subjectOf(last)}", whose issuer "${issuer}" is not a trusted root here (not in Node's root store nor the CAfile/CApath); only clients that trust it can verify this server`,
    });
  }
}

function checkValidity(certs: crypto.X509Certificate[], file: string, now: Date, findings: Finding[]): void {
  for (const c of certs) {
    const notAfter = new Date(c.validTo);
    const notBefore = new Date(c.validFrom);
    const name = subjectOf(c);
    if (notAfter.getTime() < now.getTime()) {
      findings.push({ severity: 'error', message: `${file}: certificate "${name}" expired on ${formatDate(notAfter)}` });
    } else if (notBefore.getTime() > now.getTime()) {
      findings.push({ severity: 'error', message: `${file}: certificate "${name}" is not valid before ${formatDate(notBefore)}` });
    } else {
      const days = Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS);
      if (days < EXPIRY_WARNING_DAYS) {
        const when = days === 0 ? 'within a day' : days === 1 ? 'in 1 day' : `in ${days} days`;
        findings.push({ severity: 'warning', message: `${file}: certificate "${name}" expires ${when}, on ${formatDate(notAfter)}` });
      }
    }
  }
}

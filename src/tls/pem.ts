/**
 * Reading the PEM files smtpd's TLS parameters name: key + certificate chain pairs (legacy
 * cert/key files, `*_tls_chain_files`, SNI chain files) and trust anchors (CAfile, CApath).
 * Errors are ConfigError(path, 0, what): `/etc/x/fullchain.pem: cannot read: No such file or
 * directory`.
 *
 * A process that has dropped root may be given a RootRead (the master's root reader): a file it
 * may not open itself (EACCES/EPERM, a root-only Let's Encrypt key on reload) is then asked of it.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { ConfigError } from '../errors.js';
import { strerror } from '../log/strerror.js';

export interface PemBlock {
  /** `CERTIFICATE`, `PRIVATE KEY`, `RSA PRIVATE KEY`, ... */
  readonly label: string;
  /** The whole block, BEGIN and END lines included, LF-terminated. */
  readonly text: string;
}

/** A private key with its certificate chain (leaf first, then issuers). */
export interface KeyChain {
  readonly key: string;
  readonly certs: readonly string[];
  /** Where the key and leaf came from (for messages). */
  readonly keyFile: string;
  readonly certFile: string;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g;

export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) out.push({ label: m[1]!, text: `${m[0].replace(/\r\n/g, '\n')}\n` });
  return out;
}

const isKey = (label: string): boolean => /(^|\s)PRIVATE KEY$/.test(label);
const isCert = (label: string): boolean => label === 'CERTIFICATE' || label === 'TRUSTED CERTIFICATE' || label === 'X509 CERTIFICATE';

/** Reads a file with root's rights (../master/root-reader.ts); rejects with an Error carrying `code`. */
export type RootRead = (file: string) => Promise<Buffer>;

async function readText(file: string, rootRead: RootRead | undefined): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (rootRead === undefined || (code !== 'EACCES' && code !== 'EPERM')) throw err;
    try {
      return (await rootRead(file)).toString('utf8');
    } catch (rootErr) {
      throw new Error(`${strerror(err)} (as root: ${(rootErr as Error).message})`);
    }
  }
}

export async function readPem(file: string, rootRead?: RootRead): Promise<PemBlock[]> {
  let text: string;
  try {
    text = await readText(file, rootRead);
  } catch (err) {
    throw new ConfigError(file, 0, `cannot read: ${strerror(err)}`);
  }
  return pemBlocks(text);
}

function checkKey(b: PemBlock, file: string): void {
  if (b.label === 'ENCRYPTED PRIVATE KEY' || /Proc-Type: 4,ENCRYPTED/.test(b.text)) {
    throw new ConfigError(file, 0, 'the private key is encrypted; Postern needs an unencrypted key (as Postfix)');
  }
}

/**
 * Legacy pair (`smtpd_tls_cert_file` + `smtpd_tls_key_file`): the certificate file may hold the
 * leaf and its intermediates (Let's Encrypt fullchain.pem), served as the chain; the key file may
 * be the same file.
 */
export async function readCertKey(certFile: string, keyFile: string, rootRead?: RootRead): Promise<KeyChain> {
  const certBlocks = await readPem(certFile, rootRead);
  const certs = certBlocks.filter((b) => isCert(b.label)).map((b) => b.text);
  if (certs.length === 0) throw new ConfigError(certFile, 0, 'no certificate found (expected a PEM "BEGIN CERTIFICATE" block)');
  const keyBlocks = keyFile === certFile ? certBlocks : await readPem(keyFile, rootRead);
  const key = keyBlocks.find((b) => isKey(b.label));
  if (!key) throw new ConfigError(keyFile, 0, 'no private key found (expected a PEM "BEGIN PRIVATE KEY" block)');
  checkKey(key, keyFile);
  return { key: key.text, certs, keyFile, certFile };
}

/**
 * `*_tls_chain_files`: the files are one concatenated sequence `key1, cert1, [chain1], key2,
 * cert2, [chain2], ...` (postconf(5) smtpd_tls_chain_files); a key may be in the file before its
 * certificates.
 */
export async function readChainFiles(files: readonly string[], rootRead?: RootRead): Promise<KeyChain[]> {
  const out: KeyChain[] = [];
  let cur: { key: string; keyFile: string; certs: string[]; certFile: string } | null = null;
  const finish = (): void => {
    if (cur === null) return;
    if (cur.certs.length === 0) throw new ConfigError(cur.keyFile, 0, 'private key without a certificate after it (expected key, certificate, issuers)');
    out.push({ key: cur.key, certs: cur.certs, keyFile: cur.keyFile, certFile: cur.certFile });
    cur = null;
  };
  for (const file of files) {
    for (const b of await readPem(file, rootRead)) {
      if (isKey(b.label)) {
        checkKey(b, file);
        finish();
        cur = { key: b.text, keyFile: file, certs: [], certFile: file };
      } else if (isCert(b.label)) {
        if (cur === null) throw new ConfigError(file, 0, 'certificate without a private key before it (expected key, certificate, issuers)');
        if (cur.certs.length === 0) cur.certFile = file;
        cur.certs.push(b.text);
      }
    }
  }
  finish();
  if (out.length === 0) throw new ConfigError(files.join(', '), 0, 'no private key and certificate found');
  return out;
}

/** Every certificate in a CAfile. */
export async function readCaFile(file: string, rootRead?: RootRead): Promise<string[]> {
  const certs = (await readPem(file, rootRead)).filter((b) => isCert(b.label)).map((b) => b.text);
  if (certs.length === 0) throw new ConfigError(file, 0, 'no CA certificate found');
  return certs;
}

/**
 * Every certificate in a CApath directory (the `c_rehash`/`openssl rehash` links and the files
 * they point to are read alike; duplicates are dropped). Non-PEM files are skipped.
 */
export async function readCaPath(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new ConfigError(dir, 0, `cannot read directory: ${strerror(err)}`);
  }
  const seen = new Set<string>();
  for (const name of names.sort()) {
    if (name.startsWith('.')) continue;
    const file = path.join(dir, name);
    try {
      if (!(await stat(file)).isFile()) continue;
      for (const b of pemBlocks(await readFile(file, 'utf8'))) if (isCert(b.label)) seen.add(b.text);
    } catch {
      // a dangling link or an unreadable file is not a CA: OpenSSL's lookup skips it too
    }
  }
  return [...seen];
}

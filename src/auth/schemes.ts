/**
 * Dovecot password schemes (doc.dovecot.org "Password Schemes"): a stored password is
 * `{SCHEME}value`, or a bare value in the database's default scheme. Supported:
 *
 *   PLAIN, CLEAR, CLEARTEXT       the password itself
 *   SHA512-CRYPT, SHA256-CRYPT    `$6$...` / `$5$...` (src/auth/sha-crypt.ts)
 *   CRYPT                         crypt(3); only its `$5$`/`$6$` forms
 *   SHA, SHA1, SHA256, SHA512     base64 of the digest (hex accepted, as Dovecot does)
 *   SSHA, SSHA256, SSHA512        base64 of digest(password + salt) followed by the salt
 *
 * A `.HEX` / `.B64` / `.BASE64` suffix names the encoding explicitly (Dovecot's convention).
 * Comparisons are constant-time over equal-length digests.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isShaCrypt, randomSalt, shaCrypt } from './sha-crypt.js';

/** The scheme `postern pw` and `postern user add` use unless told otherwise (as doveadm pw). */
export const DEFAULT_SCHEME = 'SHA512-CRYPT';

/** Scheme names this module verifies (and can hash with). */
export const SCHEMES: readonly string[] = ['PLAIN', 'CLEAR', 'CLEARTEXT', 'CRYPT', 'SHA256-CRYPT', 'SHA512-CRYPT', 'SHA', 'SHA1', 'SHA256', 'SHA512', 'SSHA', 'SSHA256', 'SSHA512'];

const DIGESTS: Readonly<Record<string, { alg: string; size: number; salted: boolean }>> = {
  SHA: { alg: 'sha1', size: 20, salted: false },
  SHA1: { alg: 'sha1', size: 20, salted: false },
  SHA256: { alg: 'sha256', size: 32, salted: false },
  SHA512: { alg: 'sha512', size: 64, salted: false },
  SSHA: { alg: 'sha1', size: 20, salted: true },
  SSHA256: { alg: 'sha256', size: 32, salted: true },
  SSHA512: { alg: 'sha512', size: 64, salted: true },
};

export type VerifyResult = { readonly kind: 'ok' } | { readonly kind: 'mismatch' } | { readonly kind: 'unsupported'; readonly detail: string };

const OK: VerifyResult = Object.freeze({ kind: 'ok' });
const MISMATCH: VerifyResult = Object.freeze({ kind: 'mismatch' });

/** Constant-time equality; different lengths compare false after the same amount of work. */
export function safeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) {
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}

/** `{SCHEME}value` → upper-case scheme and value; a bare value gets `defaultScheme`. */
export function splitScheme(stored: string, defaultScheme: string): { scheme: string; value: string } {
  const m = /^\{([^{}]*)\}/.exec(stored);
  if (m) return { scheme: m[1]!.toUpperCase(), value: stored.slice(m[0].length) };
  return { scheme: defaultScheme.toUpperCase(), value: stored };
}

function decodeDigest(value: string, encoding: string | null, size: number, salted: boolean): Buffer | null {
  const hex = /^[0-9a-fA-F]+$/.test(value);
  if (encoding === 'HEX' || (encoding === null && hex && (salted ? value.length > size * 2 && value.length % 2 === 0 : value.length === size * 2))) {
    return hex && value.length % 2 === 0 ? Buffer.from(value, 'hex') : null;
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(value)) return null;
  return Buffer.from(value, 'base64');
}

/** Check `password` against a stored password. Never throws. */
export function verifyPassword(stored: string, password: string, defaultScheme: string): VerifyResult {
  const { scheme: full, value } = splitScheme(stored, defaultScheme);
  const dot = full.lastIndexOf('.');
  const suffix = dot > 0 ? full.slice(dot + 1) : '';
  const encoding = suffix === 'HEX' ? 'HEX' : suffix === 'B64' || suffix === 'BASE64' ? 'B64' : null;
  const scheme = encoding !== null ? full.slice(0, dot) : full;
  const pw = Buffer.from(password, 'utf8');
  switch (scheme) {
    case 'PLAIN':
    case 'CLEAR':
    case 'CLEARTEXT':
      return safeEqual(Buffer.from(value, 'utf8'), pw) ? OK : MISMATCH;
    case 'CRYPT':
    case 'SHA256-CRYPT':
    case 'SHA512-CRYPT': {
      if (!isShaCrypt(value) || (scheme === 'SHA256-CRYPT' && !value.startsWith('$5$')) || (scheme === 'SHA512-CRYPT' && !value.startsWith('$6$'))) {
        return { kind: 'unsupported', detail: `${scheme} hash is not in a supported crypt format ($5$ or $6$)` };
      }
      return safeEqual(Buffer.from(shaCrypt(pw, value), 'latin1'), Buffer.from(value, 'latin1')) ? OK : MISMATCH;
    }
    default: {
      const d = DIGESTS[scheme];
      if (d === undefined) return { kind: 'unsupported', detail: `unknown password scheme ${scheme}` };
      const raw = decodeDigest(value, encoding, d.size, d.salted);
      if (raw === null || raw.length < d.size || (!d.salted && raw.length !== d.size)) {
        return { kind: 'unsupported', detail: `${full} value has the wrong length or encoding` };
      }
      const salt = raw.subarray(d.size);
      const h = createHash(d.alg).update(pw).update(salt).digest();
      return safeEqual(h, raw.subarray(0, d.size)) ? OK : MISMATCH;
    }
  }
}

/** Hash a password as `{SCHEME}value` (doveadm pw). Throws Error on a scheme it cannot make. */
export function hashPassword(schemeName: string, password: string, o: { rounds?: number } = {}): string {
  const scheme = schemeName.toUpperCase();
  const pw = Buffer.from(password, 'utf8');
  const roundsPart = o.rounds !== undefined ? `rounds=${o.rounds}$` : '';
  switch (scheme) {
    case 'PLAIN':
    case 'CLEAR':
    case 'CLEARTEXT':
      return `{${scheme}}${password}`;
    case 'SHA256-CRYPT':
      return `{${scheme}}${shaCrypt(pw, `$5$${roundsPart}${randomSalt()}`)}`;
    case 'CRYPT':
    case 'SHA512-CRYPT':
      return `{${scheme}}${shaCrypt(pw, `$6$${roundsPart}${randomSalt()}`)}`;
    default: {
      const d = DIGESTS[scheme];
      if (d === undefined) throw new Error(`unknown password scheme ${schemeName}; supported: ${SCHEMES.join(' ')}`);
      const salt = d.salted ? randomBytes(8) : Buffer.alloc(0);
      const h = createHash(d.alg).update(pw).update(salt).digest();
      return `{${scheme}}${Buffer.concat([h, salt]).toString('base64')}`;
    }
  }
}

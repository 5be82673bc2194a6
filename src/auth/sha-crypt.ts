/**
 * SHA-crypt: the `$5$` (SHA-256) and `$6$` (SHA-512) password hashes of glibc crypt(3), written
 * from Ulrich Drepper's specification "Unix crypt using SHA-256 and SHA-512" (2007/2008).
 * Dovecot calls them SHA256-CRYPT and SHA512-CRYPT; `openssl passwd -5/-6` makes the same strings.
 *
 * Setting: `$5$salt`, `$6$rounds=N$salt` (a full hash works too: the part after the salt is
 * ignored). The salt is cut at 16 characters; rounds are clamped to 1000..999999999 and written
 * into the result only when the setting names them (spec steps 21-22).
 */
import { createHash, randomBytes } from 'node:crypto';

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const ROUNDS_DEFAULT = 5000;
const ROUNDS_MIN = 1000;
const ROUNDS_MAX = 999999999;
const SALT_MAX = 16;

export type ShaCryptAlgorithm = 'sha256' | 'sha512';

interface Variant {
  readonly prefix: string;
  readonly hash: ShaCryptAlgorithm;
  readonly size: number;
  /** Byte order of the final encoding (spec step 22e), three bytes per group of four characters. */
  readonly order: readonly (readonly [number, number, number])[];
  /** The last group: bytes (0 means zero) and how many characters it makes. */
  readonly tail: readonly [number | null, number | null, number, number];
}

const SHA256: Variant = {
  prefix: '$5$',
  hash: 'sha256',
  size: 32,
  order: [
    [0, 10, 20],
    [21, 1, 11],
    [12, 22, 2],
    [3, 13, 23],
    [24, 4, 14],
    [15, 25, 5],
    [6, 16, 26],
    [27, 7, 17],
    [18, 28, 8],
    [9, 19, 29],
  ],
  tail: [null, 31, 30, 3],
};

const SHA512: Variant = {
  prefix: '$6$',
  hash: 'sha512',
  size: 64,
  order: [
    [0, 21, 42],
    [22, 43, 1],
    [44, 2, 23],
    [3, 24, 45],
    [25, 46, 4],
    [47, 5, 26],
    [6, 27, 48],
    [28, 49, 7],
    [50, 8, 29],
    [9, 30, 51],
    [31, 52, 10],
    [53, 11, 32],
    [12, 33, 54],
    [34, 55, 13],
    [56, 14, 35],
    [15, 36, 57],
    [37, 58, 16],
    [59, 17, 38],
    [18, 39, 60],
    [40, 61, 19],
    [62, 20, 41],
  ],
  tail: [null, null, 63, 2],
};

function digest(alg: ShaCryptAlgorithm, ...parts: Buffer[]): Buffer {
  const h = createHash(alg);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** `n` bytes of `block` repeated (spec steps 16 and 20: P and S sequences). */
function repeatTo(block: Buffer, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i += block.length) block.copy(out, i, 0, Math.min(block.length, n - i));
  return out;
}

function b64From24(b2: number, b1: number, b0: number, n: number): string {
  let w = (b2 << 16) | (b1 << 8) | b0;
  let s = '';
  for (let i = 0; i < n; i++) {
    s += ITOA64[w & 0x3f];
    w >>>= 6;
  }
  return s;
}

/** Is `hash` a SHA-crypt string this module computes ($5$ or $6$)? */
export function isShaCrypt(hash: string): boolean {
  return hash.startsWith('$5$') || hash.startsWith('$6$');
}

/** crypt(password, setting) for `$5$`/`$6$` settings. Throws on any other setting. */
export function shaCrypt(password: string | Buffer, setting: string): string {
  const v = setting.startsWith('$5$') ? SHA256 : setting.startsWith('$6$') ? SHA512 : null;
  if (v === null) throw new Error('not a SHA-crypt setting ($5$ or $6$)');
  let rest = setting.slice(3);
  let rounds = ROUNDS_DEFAULT;
  let customRounds = false;
  const m = /^rounds=(\d+)\$/.exec(rest);
  if (m) {
    rounds = Math.min(ROUNDS_MAX, Math.max(ROUNDS_MIN, Number(m[1]!.slice(0, 10))));
    customRounds = true;
    rest = rest.slice(m[0].length);
  }
  const end = rest.indexOf('$');
  const saltText = (end < 0 ? rest : rest.slice(0, end)).slice(0, SALT_MAX);
  const P = typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
  const S = Buffer.from(saltText, 'latin1');
  const alg = v.hash;
  // Steps 4-8: digest B.
  const B = digest(alg, P, S, P);
  // Steps 1-3, 9-12: digest A.
  const a = createHash(alg);
  a.update(P);
  a.update(S);
  a.update(repeatTo(B, P.length));
  for (let n = P.length; n > 0; n >>>= 1) a.update(n & 1 ? B : P);
  const A = a.digest();
  // Steps 13-16: P sequence.
  const dp = createHash(alg);
  for (let i = 0; i < P.length; i++) dp.update(P);
  const Pseq = repeatTo(dp.digest(), P.length);
  // Steps 17-20: S sequence.
  const ds = createHash(alg);
  for (let i = 0; i < 16 + A[0]!; i++) ds.update(S);
  const Sseq = repeatTo(ds.digest(), S.length);
  // Step 21: the rounds.
  let C = A;
  for (let i = 0; i < rounds; i++) {
    const c = createHash(alg);
    c.update(i & 1 ? Pseq : C);
    if (i % 3 !== 0) c.update(Sseq);
    if (i % 7 !== 0) c.update(Pseq);
    c.update(i & 1 ? C : Pseq);
    C = c.digest();
  }
  // Step 22: the output string.
  let out = v.prefix;
  if (customRounds) out += `rounds=${rounds}$`;
  out += `${saltText}$`;
  for (const [x, y, z] of v.order) out += b64From24(C[x]!, C[y]!, C[z]!, 4);
  const [t2, t1, t0, n] = v.tail;
  out += b64From24(t2 === null ? 0 : C[t2]!, t1 === null ? 0 : C[t1]!, t0 === null ? 0 : C[t0]!, n);
  return out;
}

/** A random 16-character salt from crypt's alphabet. */
export function randomSalt(): string {
  let s = '';
  for (const b of randomBytes(SALT_MAX)) s += ITOA64[b & 0x3f];
  return s;
}

/**
 * Cipher grades → OpenSSL cipher strings, composed as Postfix's tls_set_ciphers() does
 * (reference 1.5): the grade's `tls_<grade>_cipherlist`, then `:!token` for each exclusion, in the
 * order main.cf exclusions, mandatory exclusions, automatic ones (`aNULL` when the server asks for
 * client certificates). TLS 1.3 suites are not governed by this list (OpenSSL keeps them apart).
 */
import type { Params } from '../config/types.js';
import { PosternError } from '../errors.js';

export type CipherGrade = 'high' | 'medium' | 'low' | 'export' | 'null';

export type CipherListParams = Pick<Params, 'tls_high_cipherlist' | 'tls_medium_cipherlist' | 'tls_low_cipherlist' | 'tls_export_cipherlist' | 'tls_null_cipherlist'>;

export interface CipherPolicy {
  readonly grade: string;
  /** `*_tls_exclude_ciphers` (every level). */
  readonly exclude: readonly string[];
  /** `*_tls_mandatory_exclude_ciphers`, only at mandatory levels. */
  readonly mandatoryExclude?: readonly string[];
  /** Automatic exclusions (`aNULL` with ask_ccert; `eNULL`/`aNULL` on the client side). */
  readonly auto?: readonly string[];
}

/** Exclusion lists may be written with whitespace, commas or colons (postconf(5)). */
function tokens(list: readonly string[]): string[] {
  return list.flatMap((s) => s.split(/[\s,:]+/)).filter((t) => t !== '');
}

/**
 * The OpenSSL cipher list for a grade and its exclusions, e.g. for grade high with exclusions
 * `aNULL, MD5, EXPORT` and ask_ccert: `aNULL:-aNULL:HIGH:@STRENGTH:!aNULL:!MD5:!EXPORT:!aNULL`.
 * Throws PosternError with Postfix's warning text (without the `H[A]: ` prefix the caller adds):
 * code `tls-cipher-grade` for an unknown grade, `tls-cipher-exclusion` for an exclusion that
 * starts with one of `! + - @` (Postfix then refuses TLS for the session).
 */
export function cipherList(o: CipherPolicy, params: CipherListParams): string {
  let base: string;
  switch (o.grade.toLowerCase()) {
    case 'high':
      base = params.tls_high_cipherlist;
      break;
    case 'medium':
      base = params.tls_medium_cipherlist;
      break;
    case 'low':
      base = params.tls_low_cipherlist;
      break;
    case 'export':
      base = params.tls_export_cipherlist;
      break;
    case 'null':
      base = params.tls_null_cipherlist;
      break;
    default:
      throw new PosternError('tls-cipher-grade', `invalid cipher grade: "${o.grade}"`);
  }
  if (base === '') throw new PosternError('tls-cipher-grade', `empty "${o.grade}" cipherlist`);
  let out = base;
  for (const tok of tokens([...o.exclude, ...(o.mandatoryExclude ?? []), ...(o.auto ?? [])])) {
    if ('!+-@'.includes(tok[0]!)) throw new PosternError('tls-cipher-exclusion', `invalid unary '!+-@' in cipher exclusion: ${tok}`);
    out += `:!${tok}`;
  }
  return out;
}

export type SmtpdCipherParams = CipherListParams &
  Pick<Params, 'smtpd_tls_ciphers' | 'smtpd_tls_mandatory_ciphers' | 'smtpd_tls_exclude_ciphers' | 'smtpd_tls_mandatory_exclude_ciphers'>;

/**
 * The smtpd grade and exclusions (P smtpd.c tls_server_start call): mandatory grade and both
 * exclusion lists when TLS is enforced (encrypt, wrappermode), `aNULL` when client certificates
 * are requested.
 */
export function smtpdCipherPolicy(params: SmtpdCipherParams, o: { mandatory: boolean; askClientCert: boolean }): CipherPolicy {
  return {
    grade: o.mandatory ? params.smtpd_tls_mandatory_ciphers : params.smtpd_tls_ciphers,
    exclude: params.smtpd_tls_exclude_ciphers,
    mandatoryExclude: o.mandatory ? params.smtpd_tls_mandatory_exclude_ciphers : [],
    auto: o.askClientCert ? ['aNULL'] : [],
  };
}

/** [pattern, bits used, algorithm bits]; first match wins (3DES before DES). */
const CIPHER_BITS: readonly (readonly [RegExp, number, number])[] = [
  [/CHACHA20/, 256, 256],
  [/AES[-_]?256/, 256, 256],
  [/AES[-_]?128/, 128, 128],
  [/CAMELLIA[-_]?256/, 256, 256],
  [/CAMELLIA[-_]?128/, 128, 128],
  [/ARIA[-_]?256/, 256, 256],
  [/ARIA[-_]?128/, 128, 128],
  [/DES-CBC3|3DES|DES_EDE/, 112, 168],
  [/SEED/, 128, 128],
  [/IDEA/, 128, 128],
  [/RC4/, 128, 128],
  [/(^|[-_])NULL([-_]|$)/, 0, 0],
  [/DES[-_]CBC/, 56, 56],
];

/**
 * SSL_CIPHER_get_bits() for a cipher name (OpenSSL or IANA form), since Node does not give the
 * counts (DESIGN 7): `TLS_AES_256_GCM_SHA384` ⇒ 256/256, `ECDHE-RSA-AES128-GCM-SHA256` ⇒ 128/128,
 * `DES-CBC3-SHA` ⇒ 112/168. Unknown ⇒ 0/0.
 */
export function cipherBits(name: string): { bits: number; algBits: number } {
  const n = name.toUpperCase();
  for (const [re, bits, algBits] of CIPHER_BITS) if (re.test(n)) return { bits, algBits };
  return { bits: 0, algBits: 0 };
}

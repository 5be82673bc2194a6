/**
 * `smtpd_tls_loglevel` / `smtp_tls_loglevel` → a feature mask, as Postfix's tls_log_mask()
 * (P tls/tls_misc.c): numbers 0-4 (5-9 ≡ 4), the names `none routine debug ssl-expert
 * ssl-developer`, and feature words, case-insensitive, separated by whitespace, commas or colons.
 * Unknown words are warned about (`unknown smtpd_tls_loglevel value "x" in "y"`) and ignored.
 */
export const TLS_LOG_NONE = 1 << 0;
export const TLS_LOG_SUMMARY = 1 << 1;
export const TLS_LOG_UNTRUSTED = 1 << 2;
export const TLS_LOG_PEERCERT = 1 << 3;
export const TLS_LOG_CERTMATCH = 1 << 4;
export const TLS_LOG_VERBOSE = 1 << 5;
export const TLS_LOG_CACHE = 1 << 6;
export const TLS_LOG_DEBUG = 1 << 7;
export const TLS_LOG_TLSPKTS = 1 << 8;
export const TLS_LOG_ALLPKTS = 1 << 9;
export const TLS_LOG_DANE = 1 << 10;

const LEVEL_1 = TLS_LOG_SUMMARY;
const LEVEL_2 = LEVEL_1 | TLS_LOG_VERBOSE | TLS_LOG_CACHE | TLS_LOG_DEBUG;
const LEVEL_3 = LEVEL_2 | TLS_LOG_TLSPKTS;
const LEVEL_4 = LEVEL_3 | TLS_LOG_ALLPKTS;

const WORDS: Readonly<Record<string, number>> = {
  '0': TLS_LOG_NONE,
  none: TLS_LOG_NONE,
  '1': LEVEL_1,
  routine: LEVEL_1,
  '2': LEVEL_2,
  debug: LEVEL_2,
  '3': LEVEL_3,
  'ssl-expert': LEVEL_3,
  '4': LEVEL_4,
  'ssl-developer': LEVEL_4,
  '5': LEVEL_4,
  '6': LEVEL_4,
  '7': LEVEL_4,
  '8': LEVEL_4,
  '9': LEVEL_4,
  summary: TLS_LOG_SUMMARY,
  untrusted: TLS_LOG_UNTRUSTED,
  peercert: TLS_LOG_PEERCERT,
  certmatch: TLS_LOG_CERTMATCH,
  verbose: TLS_LOG_VERBOSE,
  cache: TLS_LOG_CACHE,
  dane: TLS_LOG_DANE,
  'ssl-debug': TLS_LOG_DEBUG,
  'ssl-handshake-packet-dump': TLS_LOG_TLSPKTS,
  'ssl-session-packet-dump': TLS_LOG_TLSPKTS | TLS_LOG_ALLPKTS,
};

export function tlsLogMask(paramName: string, value: number | string, warn?: (text: string) => void): number {
  const text = String(value);
  let mask = 0;
  for (const word of text.split(/[\s,:]+/).filter((w) => w !== '')) {
    const key = word.toLowerCase();
    if (Object.hasOwn(WORDS, key)) mask |= WORDS[key]!;
    else warn?.(`unknown ${paramName} value "${word}" in "${text}"`);
  }
  return mask;
}

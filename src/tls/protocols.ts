/**
 * `*_tls_protocols` → Node's minVersion/maxVersion (postconf(5) smtpd_tls_protocols).
 *
 * Both syntaxes Postfix accepts: the exclusion/inclusion list (`!SSLv2, !SSLv3`, `TLSv1.2 TLSv1.3`)
 * and the 3.6+ bounds (`>=TLSv1.2`, `<=TLSv1.2`, also as hex `>=0303`); separators are whitespace,
 * commas and colons; names are case-insensitive; empty means every protocol the library has.
 * OpenSSL (and so Node) enables one contiguous range: the lowest enabled version and every
 * enabled version directly above it. A hole cuts the range there, as OpenSSL does with
 * SSL_OP_NO_* masks.
 */
import type * as tls from 'node:tls';
import { PosternError } from '../errors.js';

/** Index order of Postfix's protocol table; SSLv2/SSLv3 exist in the syntax only. */
const PROTOCOLS = ['sslv2', 'sslv3', 'tlsv1', 'tlsv1.1', 'tlsv1.2', 'tlsv1.3'] as const;
const NODE_NAMES: readonly (tls.SecureVersion | null)[] = [null, null, 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
const DISPLAY = ['SSLv2', 'SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;
/** First index Node (OpenSSL 3 without SSLv3) can enable. */
const FIRST_SUPPORTED = 2;

export interface ProtocolRange {
  readonly minVersion: tls.SecureVersion;
  readonly maxVersion: tls.SecureVersion;
  /** The range includes TLSv1 or TLSv1.1: with OpenSSL 3 the cipher list needs `@SECLEVEL=0` (DESIGN 7). */
  readonly legacy: boolean;
  /** Things the value asks for that cannot be honoured (SSLv2/SSLv3, versions cut off by a hole). */
  readonly notes: readonly string[];
}

/** Version for `>=`/`<=`: index into PROTOCOLS, or null for `None`/0 (no bound). */
function parseBound(tok: string, value: string): number | null {
  const t = tok.toLowerCase();
  if (t === 'none') return null;
  const named = PROTOCOLS.indexOf(t as (typeof PROTOCOLS)[number]);
  if (named >= 1) return named; // SSLv2 is not in Postfix's version table
  if (/^(0x)?[0-9a-f]+$/i.test(t)) {
    const v = Number.parseInt(t, 16);
    if (v === 0) return null;
    if (v >= 0x0300 && v <= 0x0304) return v - 0x0300 + 1;
  }
  throw invalid(value);
}

function parseName(tok: string, value: string): number {
  const i = PROTOCOLS.indexOf(tok.toLowerCase() as (typeof PROTOCOLS)[number]);
  if (i < 0) throw invalid(value);
  return i;
}

function invalid(value: string): PosternError {
  return new PosternError('tls-protocols', `Invalid TLS protocol list "${value}"`);
}

/**
 * Parses a `*_tls_protocols` value (a string, or the registry's list form of it). Throws
 * PosternError `tls-protocols` with Postfix's wording (`Invalid TLS protocol list "X"`) on an
 * unknown name, and when nothing Node supports is left.
 */
export function protocolRange(input: string | readonly string[]): ProtocolRange {
  const value = typeof input === 'string' ? input : input.join(', ');
  const include = new Set<number>();
  const exclude = new Set<number>();
  let floor: number | null = null;
  let ceiling: number | null = null;
  for (const tok of value.split(/[\s,:]+/).filter((t) => t !== '')) {
    if (tok.startsWith('>=')) floor = parseBound(tok.slice(2), value);
    else if (tok.startsWith('<=')) ceiling = parseBound(tok.slice(2), value);
    else if (tok.startsWith('!')) exclude.add(parseName(tok.slice(1), value));
    else include.add(parseName(tok, value));
  }
  const enabled = (i: number): boolean =>
    !exclude.has(i) && (include.size === 0 || include.has(i)) && (floor === null || i >= floor) && (ceiling === null || i <= ceiling);

  const notes: string[] = [];
  for (const i of [0, 1]) {
    if (include.has(i) || floor === i) notes.push(`${DISPLAY[i]} cannot be enabled: the TLS library does not support it`);
  }
  let lo = -1;
  for (let i = FIRST_SUPPORTED; i < PROTOCOLS.length; i++) {
    if (enabled(i)) {
      lo = i;
      break;
    }
  }
  if (lo < 0) throw new PosternError('tls-protocols', `Invalid TLS protocol list "${value}": no protocol supported by the TLS library is left`);
  let hi = lo;
  while (hi + 1 < PROTOCOLS.length && enabled(hi + 1)) hi++;
  for (let i = hi + 2; i < PROTOCOLS.length; i++) {
    if (enabled(i)) notes.push(`${DISPLAY[i]} is not used: the enabled protocols must form one contiguous range (${DISPLAY[lo]} to ${DISPLAY[hi]})`);
  }
  return {
    minVersion: NODE_NAMES[lo]!,
    maxVersion: NODE_NAMES[hi]!,
    legacy: lo < 4,
    notes,
  };
}

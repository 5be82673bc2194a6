/**
 * ESMTP parameters of MAIL FROM and RCPT TO (RFC 5321 4.1.2 Mail-parameters / Rcpt-parameters):
 * SIZE (RFC 1870), BODY (RFC 6152 8BITMIME, RFC 3030 BINARYMIME), SMTPUTF8 (RFC 6531),
 * RET / ENVID / NOTIFY / ORCPT (RFC 3461), AUTH (RFC 4954 5), and the xtext encodings
 * (RFC 3461 4, RFC 6533 3 utf-8-addr-xtext).
 *
 * Acceptance rules and reply texts are Postfix 3.7 smtpd's (mail_cmd(), rcpt_cmd()): parameters
 * are examined in the order sent and the first bad one decides the reply; a repeated RET, ENVID,
 * NOTIFY or ORCPT is a syntax error, a repeated SIZE or BODY overrides the earlier one.
 */
import { PosternError } from '../../errors.js';
import { PARAM_SYNTAX_ERROR, PARAMS_NOT_RECOGNIZED, BAD_SEQUENCE, EXCEEDED_STORAGE } from './codes.js';
import { replyError } from './reply.js';

/** One parameter as the client sent it. */
export interface EsmtpParam {
  /** The keyword, ASCII upper-cased ("SIZE"). */
  readonly keyword: string;
  /** The text after the first '=', or null when there is no '='. */
  readonly value: string | null;
  /** The parameter exactly as sent ("size=1000"), for replies such as "Unsupported option: X". */
  readonly text: string;
}

/**
 * The parameters of one MAIL/RCPT command: a map keyword → value (a repeated keyword keeps the
 * last value) that also remembers every parameter in order, as sent (`list`), so that
 * parseMailParams/parseRcptParams can report duplicates and quote the client's text.
 */
export class EsmtpParams extends Map<string, string | null> {
  readonly list: readonly EsmtpParam[];
  constructor(list: readonly EsmtpParam[]) {
    super(list.map((p) => [p.keyword, p.value] as const));
    this.list = Object.freeze([...list]);
  }
  /** Parse "KEY=value" words (already split at whitespace). */
  static fromWords(words: readonly string[]): EsmtpParams {
    return new EsmtpParams(words.map(paramFromText));
  }
}

/** ASCII-only upper-casing: "ı".toUpperCase() must not turn into "I". */
function asciiUpper(s: string): string {
  return s.replace(/[a-z]+/g, (m) => m.toUpperCase());
}

function paramFromText(text: string): EsmtpParam {
  const eq = text.indexOf('=');
  if (eq < 0) return { keyword: asciiUpper(text), value: null, text };
  return { keyword: asciiUpper(text.slice(0, eq)), value: text.slice(eq + 1), text };
}

function paramList(params: ReadonlyMap<string, string | null>): readonly EsmtpParam[] {
  if (params instanceof EsmtpParams) return params.list;
  const out: EsmtpParam[] = [];
  for (const [k, v] of params) {
    const keyword = asciiUpper(k);
    out.push({ keyword, value: v, text: v === null ? keyword : `${keyword}=${v}` });
  }
  return out;
}

// --- MAIL -------------------------------------------------------------------------------------

export type Body = '7BIT' | '8BITMIME' | 'BINARYMIME';

export interface MailParams {
  /** RFC 1870 SIZE=, the client's estimate in bytes (compare with message_size_limit). */
  readonly size: number | null;
  readonly body: Body | null;
  readonly smtputf8: boolean;
  readonly ret: 'FULL' | 'HDRS' | null;
  /** RFC 3461 ENVID, xtext-decoded (printable ASCII). */
  readonly envid: string | null;
  /**
   * RFC 4954 5 AUTH= mailbox as Postfix keeps it: the raw value with non-printable characters
   * replaced by '?'; null when absent or "<>".
   */
  readonly auth: string | null;
}

export interface MailParamOptions {
  /** postconf smtputf8_enable (and SMTPUTF8 not discarded from EHLO). */
  readonly smtputf8_enable: boolean;
  /** CHUNKING offered; BODY=BINARYMIME needs it (RFC 3030 3). */
  readonly chunking: boolean;
  /** BODY=BINARYMIME accepted; default: the value of `chunking`. Postfix 3.7 never accepts it. */
  readonly binarymime?: boolean;
  /** DSN offered (not in smtpd_discard_ehlo_keywords); default true. */
  readonly dsn?: boolean;
}

/** RFC 3461 4.4: "the ENVID ... MUST NOT exceed 100 characters". Postfix does not check it. */
export const ENVID_MAX = 100;
/** RFC 3461 4.2: the ORCPT value MUST NOT exceed 500 characters. Postfix does not check it. */
export const ORCPT_MAX = 500;

/** off_t limit: a SIZE above it is "552 5.3.4 Message size exceeds file system imposed limit". */
const SIZE_MAX = 2n ** 63n - 1n;

/** Postfix allprint(): non-empty, printable ASCII only. */
function allPrint(s: string): boolean {
  return /^[\x20-\x7e]+$/.test(s);
}

function dsnDisabled(): never {
  throw replyError(PARAM_SYNTAX_ERROR, '5.7.1', 'DSN support is disabled');
}

/**
 * Validate MAIL FROM parameters. Throws ReplyError with Postfix 3.7's texts:
 * `501 5.5.4 Bad message size syntax`, `552 5.3.4 Message size exceeds file system imposed limit`,
 * `501 5.5.4 Bad RET parameter syntax`, `501 5.5.4 Bad ENVID parameter syntax`,
 * `501 5.7.1 DSN support is disabled`, `503 5.5.4 Error: multiple AUTH= options`,
 * `555 5.5.4 Unsupported option: X` (X as the client sent it).
 * The SIZE value is not compared with message_size_limit here: that is the session's
 * `552 5.3.4 Message size exceeds fixed limit`.
 */
export function parseMailParams(params: ReadonlyMap<string, string | null>, opts: MailParamOptions): MailParams {
  let size: number | null = null;
  let body: Body | null = null;
  let smtputf8 = false;
  let ret: 'FULL' | 'HDRS' | null = null;
  let envid: string | null = null;
  let auth: string | null = null;
  const binarymime = opts.binarymime ?? opts.chunking;
  const dsn = opts.dsn ?? true;

  for (const p of paramList(params)) {
    const value = p.value;
    if (p.keyword === 'BODY' && value !== null && /^(8bitmime|7bit|binarymime)$/i.test(value)) {
      const v = asciiUpper(value) as Body;
      if (v === 'BINARYMIME' && !binarymime) unsupported(p);
      body = v; // RFC 6152, RFC 3030 3; repeated BODY: last wins (as Postfix)
    } else if (p.keyword === 'SIZE' && value !== null) {
      // RFC 1870 4: size-value = 1*20DIGIT
      if (!/^\d+$/.test(value)) throw replyError(PARAM_SYNTAX_ERROR, '5.5.4', 'Bad message size syntax');
      if (BigInt(value) > SIZE_MAX) {
        throw replyError(EXCEEDED_STORAGE, '5.3.4', 'Message size exceeds file system imposed limit');
      }
      size = Number(value);
    } else if (p.keyword === 'SMTPUTF8' && value === null && opts.smtputf8_enable) {
      smtputf8 = true; // RFC 6531 3.4: no value
    } else if (p.keyword === 'AUTH' && value !== null) {
      // Postfix smtpd_sasl_mail_opt(): kept raw (not xtext-decoded), made printable.
      // Only a stored mailbox counts: "AUTH=<> AUTH=x" is accepted, "AUTH=x AUTH=<>" is not.
      if (auth !== null) throw replyError(BAD_SEQUENCE, '5.5.4', 'Error: multiple AUTH= options');
      if (value !== '<>') auth = value.replace(/[^\x20-\x7e]/g, '?');
    } else if (p.keyword === 'RET' && value !== null) {
      if (!dsn) dsnDisabled();
      const v = asciiUpper(value);
      if (ret !== null || (v !== 'FULL' && v !== 'HDRS')) {
        throw replyError(PARAM_SYNTAX_ERROR, '5.5.4', 'Bad RET parameter syntax');
      }
      ret = v;
    } else if (p.keyword === 'ENVID' && value !== null) {
      if (!dsn) dsnDisabled();
      let decoded: string | null = null;
      if (envid === null && value.length <= ENVID_MAX) {
        try {
          decoded = xtextDecode(value);
        } catch {
          decoded = null;
        }
      }
      if (decoded === null || !allPrint(decoded)) {
        throw replyError(PARAM_SYNTAX_ERROR, '5.5.4', 'Bad ENVID parameter syntax');
      }
      envid = decoded;
    } else {
      unsupported(p);
    }
  }
  return Object.freeze({ size, body, smtputf8, ret, envid, auth });
}

function unsupported(p: EsmtpParam): never {
  throw replyError(PARAMS_NOT_RECOGNIZED, '5.5.4', `Unsupported option: ${p.text}`);
}

// --- RCPT -------------------------------------------------------------------------------------

export type NotifyKind = 'SUCCESS' | 'FAILURE' | 'DELAY';

export interface RcptParams {
  readonly notify: readonly NotifyKind[] | 'NEVER' | null;
  /** RFC 3461 4.2 ORCPT: addr-type as sent, and the decoded original address. */
  readonly orcpt: { readonly type: string; readonly address: string } | null;
}

export interface RcptParamOptions {
  /** DSN offered; default true. */
  readonly dsn?: boolean;
}

const NOTIFY_ORDER: readonly NotifyKind[] = ['SUCCESS', 'FAILURE', 'DELAY'];

/** RFC 3461 4.1 notify-esmtp-value; NEVER is exclusive. null = malformed. */
function parseNotify(value: string): readonly NotifyKind[] | 'NEVER' | null {
  const seen = new Set<string>();
  for (const word of value.split(/[, \t\r\n]+/)) {
    if (word === '') continue;
    const w = asciiUpper(word);
    if (w !== 'NEVER' && !NOTIFY_ORDER.includes(w as NotifyKind)) return null;
    seen.add(w);
  }
  if (seen.size === 0) return null;
  if (seen.has('NEVER')) return seen.size === 1 ? 'NEVER' : null;
  return Object.freeze(NOTIFY_ORDER.filter((k) => seen.has(k)));
}

/**
 * Validate RCPT TO parameters. Throws ReplyError with Postfix 3.7's texts:
 * `501 5.5.4 Error: Bad NOTIFY parameter syntax`, `501 5.5.4 Error: Bad ORCPT parameter syntax`,
 * `501 5.7.1 DSN support is disabled`, `555 5.5.4 Unsupported option: X`.
 * Stricter than Postfix: an ORCPT whose decoded address holds a control character (it would end
 * up in a DSN header) or that is longer than 500 characters is refused.
 */
export function parseRcptParams(params: ReadonlyMap<string, string | null>, opts: RcptParamOptions = {}): RcptParams {
  let notify: readonly NotifyKind[] | 'NEVER' | null = null;
  let orcpt: { readonly type: string; readonly address: string } | null = null;
  const dsn = opts.dsn ?? true;
  for (const p of paramList(params)) {
    const value = p.value;
    if (p.keyword === 'NOTIFY' && value !== null) {
      if (!dsn) dsnDisabled();
      const parsed: readonly NotifyKind[] | 'NEVER' | null = notify === null ? parseNotify(value) : null;
      if (parsed === null) throw replyError(PARAM_SYNTAX_ERROR, '5.5.4', 'Error: Bad NOTIFY parameter syntax');
      notify = parsed;
    } else if (p.keyword === 'ORCPT' && value !== null) {
      if (!dsn) dsnDisabled();
      const parsed: { type: string; address: string } | null = orcpt === null ? parseOrcpt(value) : null;
      if (parsed === null) throw replyError(PARAM_SYNTAX_ERROR, '5.5.4', 'Error: Bad ORCPT parameter syntax');
      orcpt = parsed;
    } else {
      unsupported(p);
    }
  }
  return Object.freeze({ notify, orcpt });
}

/** RFC 3461 4.2: orcpt-parameter = addr-type ";" xtext; RFC 6533 3: utf-8 type uses utf-8-addr-xtext. */
function parseOrcpt(value: string): { type: string; address: string } | null {
  if (value.length > ORCPT_MAX) return null;
  const semi = value.indexOf(';');
  if (semi <= 0) return null;
  const type = value.slice(0, semi);
  if (/[\x00-\x20\x7f-\x9f]/.test(type)) return null;
  let address: string;
  try {
    address = type.toLowerCase() === 'utf-8' ? uxtextDecode(value.slice(semi + 1)) : xtextDecode(value.slice(semi + 1));
  } catch {
    return null;
  }
  if (/[\x00-\x1f\x7f-\x9f]/.test(address)) return null;
  return Object.freeze({ type, address });
}

// --- xtext ------------------------------------------------------------------------------------

const utf8Fatal = new TextDecoder('utf-8', { fatal: true });

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

/**
 * Decode RFC 3461 4 xtext: "+" followed by two hex digits is one octet; every other character
 * stands for itself. Like Postfix's xtext_unquote(), lower-case hex digits are accepted. The
 * octets are read as UTF-8. Throws PosternError('xtext') on a malformed "+XX" or invalid UTF-8.
 */
export function xtextDecode(s: string): string {
  if (s.indexOf('+') < 0) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2b) {
      const hi = hexValue(s.charCodeAt(i + 1));
      const lo = hexValue(s.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) throw new PosternError('xtext', 'malformed xtext: "+" must be followed by two hex digits');
      bytes.push((hi << 4) | lo);
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      const cp = s.codePointAt(i)!;
      if (cp > 0xffff) i++;
      for (const b of Buffer.from(String.fromCodePoint(cp), 'utf8')) bytes.push(b);
    }
  }
  try {
    return utf8Fatal.decode(Uint8Array.from(bytes));
  } catch {
    throw new PosternError('xtext', 'malformed xtext: decoded octets are not UTF-8');
  }
}

/**
 * Encode as RFC 3461 4 xtext: octets "!" to "~" except "+" and "=" stand for themselves, every
 * other octet (of the UTF-8 encoding) becomes "+XX" with upper-case hex.
 */
export function xtextEncode(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    if (b > 0x20 && b < 0x7f && b !== 0x2b && b !== 0x3d) out += String.fromCharCode(b);
    else out += '+' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/**
 * Decode RFC 6533 3 utf-8-addr-xtext: "\x{HEX}" (1-6 hex digits, a Unicode scalar value other
 * than NUL) is that character; every other character stands for itself (as Postfix's
 * uxtext_unquote()). Throws PosternError('xtext') on a malformed escape.
 */
export function uxtextDecode(s: string): string {
  if (s.indexOf('\\x{') < 0) return s;
  return s.replace(/\\x\{([^}]*)\}?/g, (m, hex: string) => {
    if (!m.endsWith('}') || !/^[0-9a-fA-F]{1,6}$/.test(hex)) {
      throw new PosternError('xtext', 'malformed utf-8-addr-xtext escape');
    }
    const cp = Number.parseInt(hex, 16);
    if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      throw new PosternError('xtext', 'utf-8-addr-xtext escape is not a Unicode scalar value');
    }
    return String.fromCodePoint(cp);
  });
}

/**
 * Encode as RFC 6533 3 utf-8-addr-xtext: "+", "=", "\", space and controls become "\x{HEX}";
 * other ASCII stands for itself; non-ASCII stays raw UTF-8 unless `ascii` is set
 * (utf-8-addr-unitext vs the 7-bit form for a peer without SMTPUTF8).
 */
export function uxtextEncode(s: string, opts: { ascii?: boolean } = {}): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    const special = cp <= 0x20 || cp === 0x2b || cp === 0x3d || cp === 0x5c || (cp >= 0x7f && cp <= 0x9f);
    if (special || (opts.ascii && cp > 0x7f)) out += `\\x{${cp.toString(16).toUpperCase()}}`;
    else out += ch;
  }
  return out;
}

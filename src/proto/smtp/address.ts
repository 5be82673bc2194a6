/**
 * MAIL FROM / RCPT TO argument parsing: RFC 5321 4.1.1.2, 4.1.1.3 and the 4.1.2 grammar
 * (Reverse-path, Forward-path, Mailbox, Local-part, address literals 4.1.3), RFC 6531 3.3
 * (UTF-8 mailboxes), with Postfix 3.7 smtpd's acceptance rules at the default
 * strict_rfc821_envelopes = no:
 *
 * - The command is split into words as Postfix's smtpd_token() does: whitespace separates words
 *   except inside <...> and "..." (which nest, and honour backslash escapes); the word "FROM:" /
 *   "TO:" ends at its colon, so `MAIL FROM:<a@b>`, `MAIL FROM: <a@b>` and `MAIL FROM:a@b` all
 *   work, while `MAIL FROM :<a@b>` is a syntax error.
 * - One pair of enclosing angle brackets is optional; a source route `@a,@b:` at the front is
 *   dropped (RFC 5321 4.1.1.3 / Appendix C: "MUST ... ignore the route").
 * - A mailbox without a domain is accepted (Postfix appends $myhostname later): domain = ''.
 *   The null reverse-path <> is accepted for MAIL only.
 * - The domain is a host name (letters, digits, '-', '_' as Postfix's valid_hostname(), labels of
 *   at most 63 and a name of at most 255 octets, not all-numeric; one trailing dot allowed) or an
 *   address literal [1.2.3.4] / [IPv6:...]. Non-ASCII domains need SMTPUTF8 (RFC 6531 3.4) and are
 *   checked in their A-label form.
 * - An address starting with '-' is refused (postconf allow_min_user = no).
 *
 * Stricter than Postfix's RFC 822 tokenizer, on purpose: any control character (C0, DEL, C1)
 * anywhere in the address, an unquoted special or space in the local part, an empty local part
 * with a domain, comments and RFC 822 phrases are refused. The whole argument must be the command
 * line decoded as UTF-8 (invalid octets become U+FFFD, which is refused).
 *
 * The address is returned in Postfix's internal form: a quoted local part is unquoted
 * (`"a b"@x` → `a b@x`); quoteLocalPart() makes it wire-safe again.
 */
import { domainToASCII } from 'node:url';
import { PARAM_SYNTAX_ERROR } from './codes.js';
import { EsmtpParams } from './esmtp-params.js';
import { replyError, type ReplyError } from './reply.js';

export interface Path {
  /** Internal form, '' = null sender <>. */
  readonly address: string;
  /** Unquoted local part ('' for <>). */
  readonly localPart: string;
  /** Domain as sent ('' when none): host name, or [1.2.3.4] / [IPv6:...] literal. */
  readonly domain: string;
  /** The address holds non-ASCII characters (needs SMTPUTF8, RFC 6531). */
  readonly utf8: boolean;
}

export interface MailArg {
  readonly path: Path;
  /** Parameters in order; keyword upper-cased. The object is an EsmtpParams (it keeps the list). */
  readonly params: ReadonlyMap<string, string | null>;
}

export interface AddressOptions {
  /**
   * Whether non-ASCII domains are acceptable. MAIL: default = smtputf8_enable and the command has
   * the SMTPUTF8 parameter (as Postfix). RCPT: pass the transaction's SMTPUTF8 state to get
   * Postfix's "Bad recipient address syntax" for a non-ASCII domain; when omitted the address is
   * accepted and only flagged (`utf8: true`).
   */
  readonly smtputf8?: boolean;
  /** postconf smtputf8_enable (MAIL only); default true (Postfix 3.7 default). */
  readonly smtputf8_enable?: boolean;
  /** postconf allow_min_user; default false. */
  readonly allow_min_user?: boolean;
}

// --- Tokenizer (Postfix smtpd_token() word rules) ------------------------------------------------

interface Word {
  readonly text: string;
  /** An unterminated <...> or "..." (Postfix SMTPD_TOK_ERROR). */
  readonly error: boolean;
}

function isSpace(c: string): boolean {
  return c === ' ' || c === '\t';
}

/** Split a command argument into words. */
export function smtpWords(arg: string): Word[] {
  const words: Word[] = [];
  let i = 0;
  const n = arg.length;
  for (;;) {
    let tok = '';
    let error = false;
    while (i < n) {
      const c = arg[i++]!;
      if (isSpace(c)) {
        while (i < n && isSpace(arg[i]!)) i++;
        if (tok.length > 0) break;
      } else if (c === '<' || c === '"') {
        // Nested quoting: '"' has highest precedence, '<' only nests inside '<'.
        const stack: string[] = [c === '<' ? '>' : '"'];
        tok += c;
        let closed = false;
        while (i < n) {
          const d = arg[i++]!;
          tok += d;
          const wanted = stack[stack.length - 1]!;
          if (d === '\\') {
            if (i >= n) break;
            tok += arg[i++]!;
          } else if (d === wanted) {
            stack.pop();
            if (stack.length === 0) {
              closed = true;
              break;
            }
          } else if (d === '"') {
            stack.push('"');
          } else if (d === '<' && wanted === '>') {
            stack.push('>');
          }
        }
        if (!closed) error = true;
      } else if (c === ':') {
        tok += c;
        const low = tok.toLowerCase();
        if (low === 'to:' || low === 'from:') break;
      } else {
        if (c === '\\') {
          tok += c;
          if (i >= n) break;
          tok += arg[i++]!;
        } else {
          tok += c;
        }
      }
    }
    if (tok.length === 0) return words;
    words.push({ text: tok, error });
  }
}

// --- Address grammar ---------------------------------------------------------------------------

/** C0 controls, DEL, C1 controls, and U+FFFD (what an invalid UTF-8 octet decodes to). */
const BAD_CHAR = /[\x00-\x1f\x7f-\x9f\ufffd\u{d800}-\u{dfff}]/u;
/** RFC 5322 atext plus '.' (Postfix accepts leading, trailing and repeated dots) plus UTF-8 (RFC 6531 3.3). */
const DOT_STRING = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u{a0}-\u{10ffff}]+$/u;
/** RFC 5321 4.1.2 qtextSMTP / quoted-pairSMTP, plus UTF-8 (RFC 6531 3.3). */
const QUOTED_STRING = /^"((?:[\x20\x21\x23-\x5b\x5d-\x7e\u{a0}-\u{10ffff}]|\\[\x20-\x7e])*)"$/u;

/** RFC 5321 4.1.3 IPv4-address-literal, with Postfix's valid_ipv4_hostaddr() rule against 0.x.y.z. */
export function isIPv4Literal(s: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return false;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return false;
  if (parts[0] === 0 && parts.some((p) => p !== 0)) return false;
  return true;
}

/**
 * RFC 5321 4.1.3 IPv6-addr: IPv6-full, IPv6-comp ("::" plus at most 6 groups), IPv6v4-full and
 * IPv6v4-comp ("::" plus at most 4 groups before the IPv4 part). No zone id. Also used for
 * the IPv4 tail: isIPv4Literal() (Postfix refuses 0.x.y.z there too).
 */
export function isIPv6Literal(s: string): boolean {
  const groups = s.split('::');
  if (groups.length > 2) return false;
  const hex = /^[0-9A-Fa-f]{1,4}$/;
  const split = (x: string): string[] => (x === '' ? [] : x.split(':'));
  const all = groups.flatMap(split);
  // IPv6v4: the last group is a dotted quad and stands for two 16-bit groups.
  const last = all[all.length - 1] ?? '';
  const v4 = last.includes('.');
  if (v4 && !isIPv4Literal(last)) return false;
  if (!(v4 ? all.slice(0, -1) : all).every((g) => hex.test(g))) return false;
  const count = all.length + (v4 ? 1 : 0);
  if (groups.length === 2) {
    // An IPv4 part must end the address: "1.2.3.4::" is not an address.
    if (v4 && groups[1] === '') return false;
    return count <= 6; // "::" stands for at least two zero groups (RFC 5321 4.1.3)
  }
  return count === 8;
}

/** Postfix valid_hostname(): ASCII letters/digits/'_', inner '-', labels <= 63, total <= 255, not all-numeric. */
export function isValidHostname(name: string): boolean {
  if (name.length === 0 || name.length > 255) return false;
  let numeric = true;
  for (const label of name.split('.')) {
    if (label.length === 0 || label.length > 63) return false;
    if (!/^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?$/.test(label)) return false;
    if (!/^\d+$/.test(label)) numeric = false;
  }
  return !numeric;
}

/** The domain part: host name (trailing dot allowed) or address literal. */
function validDomain(domain: string, allowUtf8: boolean): boolean {
  if (domain.startsWith('[')) {
    if (!domain.endsWith(']')) return false;
    const inner = domain.slice(1, -1);
    if (/^ipv6:/i.test(inner)) return isIPv6Literal(inner.slice(5));
    return isIPv4Literal(inner);
  }
  // Postfix's resolver strips one trailing dot (not "..").
  const host = domain.endsWith('.') && !domain.endsWith('..') ? domain.slice(0, -1) : domain;
  if (/^[\x00-\x7f]*$/.test(host)) return isValidHostname(host);
  if (!allowUtf8) return false;
  // RFC 6531 3.3 / RFC 5890: a U-label domain must have a valid A-label form.
  const ace = domainToASCII(host);
  return ace !== '' && isValidHostname(ace);
}

/**
 * Wire form of a local part: as is when it is an RFC 5321 Dot-string (or UTF-8 atext), else a
 * quoted string with '"' and '\' escaped (RFC 5321 4.1.2 Quoted-string).
 */
export function quoteLocalPart(local: string): string {
  if (/^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\uffff]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\uffff]+)*$/.test(local)) {
    return local;
  }
  return '"' + local.replace(/["\\]/g, '\\$&') + '"';
}

/** The wire form of a path: "<local@domain>" with the local part quoted when needed. */
export function formatPath(path: Path): string {
  if (path.address === '') return '<>';
  return '<' + quoteLocalPart(path.localPart) + (path.domain === '' ? '' : '@' + path.domain) + '>';
}

/**
 * Extract the mailbox from the address word (Postfix extract_addr()). Returns null when the
 * address is unacceptable.
 */
function extractPath(word: string, allowEmpty: boolean, allowUtf8: boolean, allowMinUser: boolean): Path | null {
  if (BAD_CHAR.test(word)) return null;
  let text = word;
  if (text.length >= 2 && text.startsWith('<') && text.endsWith('>')) text = text.slice(1, -1);
  // RFC 5321 4.1.1.3, Appendix C: strip the source route "@a,@b:".
  if (text.startsWith('@')) {
    const colon = text.indexOf(':');
    if (colon >= 0) {
      if (!/^@[^,:@<>]+(?:,@[^,:@<>]+)*$/.test(text.slice(0, colon))) return null;
      text = text.slice(colon + 1);
    }
  }
  if (text === '') {
    return allowEmpty ? Object.freeze({ address: '', localPart: '', domain: '', utf8: false }) : null;
  }

  let local: string;
  let rest: string;
  if (text.startsWith('"')) {
    // Quoted local part: find the closing quote, honouring backslash escapes.
    let i = 1;
    for (; i < text.length; i++) {
      if (text[i] === '\\') i++;
      else if (text[i] === '"') break;
    }
    if (i >= text.length) return null;
    const m = QUOTED_STRING.exec(text.slice(0, i + 1));
    if (!m) return null;
    local = m[1]!.replace(/\\(.)/g, '$1');
    rest = text.slice(i + 1);
    // <""> is the null address to Postfix (its internal form is empty); ""@domain is refused.
    if (local === '') return rest === '' && allowEmpty ? Object.freeze({ address: '', localPart: '', domain: '', utf8: false }) : null;
  } else {
    const at = text.lastIndexOf('@');
    local = at < 0 ? text : text.slice(0, at);
    rest = at < 0 ? '' : text.slice(at);
    if (local === '' || !DOT_STRING.test(local)) return null;
  }

  let domain = '';
  if (rest !== '') {
    if (!rest.startsWith('@')) return null;
    domain = rest.slice(1);
    if (domain === '' || !validDomain(domain, allowUtf8)) return null;
  }
  const address = domain === '' ? local : `${local}@${domain}`;
  if (!allowMinUser && address.startsWith('-')) return null;
  return Object.freeze({ address, localPart: local, domain, utf8: /[^\x00-\x7f]/.test(address) });
}

function parsePathCommand(
  arg: string,
  verb: 'from:' | 'to:',
  syntax: () => ReplyError,
  badAddress: () => ReplyError,
  opts: AddressOptions,
  isMail: boolean,
): MailArg {
  const words = smtpWords(arg);
  if (words.length < 2 || words[0]!.text.toLowerCase() !== verb) throw syntax();
  const addr = words[1]!;
  if (addr.error) throw badAddress();
  const params = EsmtpParams.fromWords(words.slice(2).map((w) => w.text));
  let allowUtf8: boolean;
  if (isMail) {
    // Postfix mail_cmd(): SMTPUTF8 is looked for before the sender address is parsed.
    allowUtf8 = opts.smtputf8 ?? ((opts.smtputf8_enable ?? true) && params.list.some((p) => p.text.toUpperCase() === 'SMTPUTF8'));
  } else {
    allowUtf8 = opts.smtputf8 ?? true;
  }
  const path = extractPath(addr.text, isMail, allowUtf8, opts.allow_min_user ?? false);
  if (path === null) throw badAddress();
  return Object.freeze({ path, params });
}

/**
 * Parse the argument of MAIL (the text after the verb, e.g. " FROM:<a@b> SIZE=100").
 * Throws ReplyError `501 5.5.4 Syntax: MAIL FROM:<address>` or `501 5.1.7 Bad sender address syntax`.
 */
export function parseMailFrom(arg: string, opts: AddressOptions = {}): MailArg {
  return parsePathCommand(
    arg,
    'from:',
    () => replyError(PARAM_SYNTAX_ERROR, '5.5.4', 'Syntax: MAIL FROM:<address>'),
    () => replyError(PARAM_SYNTAX_ERROR, '5.1.7', 'Bad sender address syntax'),
    opts,
    true,
  );
}

/**
 * Parse the argument of RCPT (the text after the verb, e.g. " TO:<a@b> NOTIFY=NEVER").
 * Throws ReplyError `501 5.5.4 Syntax: RCPT TO:<address>` or `501 5.1.3 Bad recipient address syntax`.
 */
export function parseRcptTo(arg: string, opts: AddressOptions = {}): MailArg {
  return parsePathCommand(
    arg,
    'to:',
    () => replyError(PARAM_SYNTAX_ERROR, '5.5.4', 'Syntax: RCPT TO:<address>'),
    () => replyError(PARAM_SYNTAX_ERROR, '5.1.3', 'Bad recipient address syntax'),
    opts,
    false,
  );
}

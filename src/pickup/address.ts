/**
 * RFC 5322 address lists as Postfix's sendmail(1) reads them (global/tok822_parse.c, in the part
 * sendmail needs): command-line recipients and `-f` are parsed "as if they were a message header"
 * (so `sendmail 'Joe <joe@x>, ann@y'` works), and `sendmail -t` takes the recipients from the
 * To:, Cc:, Bcc: fields (or, when any Resent-To/Cc/Bcc: is present, from those alone).
 *
 * Addresses come out in Postfix's internal form: a quoted local part is unquoted
 * (`"john doe"@x` → `john doe@x`), comments and display names are dropped, group names and
 * source routes (`<@a,@b:u@h>`) are removed, and an empty group (`undisclosed-recipients:;`)
 * yields nothing. `<>` yields the empty address (null sender).
 *
 * Pure: no disk, no config.
 */

type TokenKind = 'atom' | 'qstring' | 'special';

interface Token {
  readonly kind: TokenKind;
  readonly text: string;
}

const SPECIALS = '<>@,;:.';
const ATOM_END = ' \t\r\n()<>@,;:."[\\';

/** RFC 5322 3.2 lexical tokens; comments and white space are dropped. */
function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      i++;
    } else if (c === '(') {
      // RFC 5322 3.2.2 comment, nested, with quoted-pairs; an unterminated one runs to the end.
      let depth = 0;
      while (i < s.length) {
        const d = s[i]!;
        if (d === '\\') i += 2;
        else {
          if (d === '(') depth++;
          else if (d === ')') depth--;
          i++;
          if (depth === 0) break;
        }
      }
    } else if (c === '"') {
      let text = '';
      i++;
      while (i < s.length && s[i] !== '"') {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        text += s[i];
        i++;
      }
      i++; // closing quote (or past the end)
      out.push({ kind: 'qstring', text });
    } else if (c === '[') {
      // Domain literal: kept with its brackets.
      const end = s.indexOf(']', i);
      const stop = end < 0 ? s.length : end + 1;
      out.push({ kind: 'atom', text: s.slice(i, stop) });
      i = stop;
    } else if (SPECIALS.includes(c)) {
      out.push({ kind: 'special', text: c });
      i++;
    } else {
      let j = i;
      while (j < s.length && !ATOM_END.includes(s[j]!)) j++;
      if (j === i) j++; // a lone ')' or '\\': keep it as an atom so it cannot stall the loop
      out.push({ kind: 'atom', text: s.slice(i, j) });
      i = j;
    }
  }
  return out;
}

/** Join tokens into the internal form (tok822_internalize: no quotes, no white space). */
function internalize(tokens: readonly Token[]): string {
  return tokens.map((t) => t.text).join('');
}

/** One address out of the tokens of one list element (`phrase <addr>` or a bare addr-spec). */
function addressOf(tokens: readonly Token[]): string | null {
  if (tokens.length === 0) return null;
  const open = tokens.findLastIndex((t) => t.kind === 'special' && t.text === '<');
  if (open >= 0) {
    let close = tokens.findIndex((t, k) => k > open && t.kind === 'special' && t.text === '>');
    if (close < 0) close = tokens.length;
    let inner = tokens.slice(open + 1, close);
    // RFC 5322 4.4 obs-route: "<@a,@b:user@host>" → "user@host".
    const colon = inner.findIndex((t) => t.kind === 'special' && t.text === ':');
    if (colon >= 0 && inner[0]?.text === '@') inner = inner.slice(colon + 1);
    return internalize(inner);
  }
  return internalize(tokens);
}

/**
 * Parse an address list (a header field value or a command-line argument) into addresses in
 * internal form, in order. `keepEmpty` keeps the empty address of `<>` (for the sender).
 */
export function parseAddressList(text: string, keepEmpty = false): string[] {
  const tokens = tokenize(text);
  const out: string[] = [];
  let cur: Token[] = [];
  let angle = 0;
  const flush = (): void => {
    const a = addressOf(cur);
    cur = [];
    if (a !== null && (a !== '' || keepEmpty)) out.push(a);
  };
  for (const t of tokens) {
    if (t.kind === 'special') {
      if (t.text === '<') angle++;
      else if (t.text === '>') angle = Math.max(0, angle - 1);
      else if (angle === 0 && t.text === ',') {
        flush();
        continue;
      } else if (angle === 0 && t.text === ':') {
        // A group: the display name before ':' is not an address (RFC 5322 3.4).
        cur = [];
        continue;
      } else if (angle === 0 && t.text === ';') {
        flush();
        continue;
      }
    }
    cur.push(t);
  }
  flush();
  return out;
}

/** The first address of `text`, or '' (sendmail -f: `-f ''` and `-f '<>'` are the null sender). */
export function parseSender(text: string): { address: string; count: number } {
  const all = parseAddressList(text, true);
  return { address: all[0] ?? '', count: all.length };
}

/** Header fields whose addresses `sendmail -t` extracts (Postfix header_opts.c HDR_OPT_XRECIP). */
const PLAIN_RCPT = new Set(['to', 'cc', 'bcc']);
const RESENT_RCPT = new Set(['resent-to', 'resent-cc', 'resent-bcc']);

/**
 * Collects the recipients of `sendmail -t` from the primary header fields, one unfolded field at
 * a time. As Postfix's sendmail: once a Resent-To/Cc/Bcc: field is seen, only the Resent- fields
 * count (RFC 5322 3.6.6), including ones before it.
 */
export class RecipientExtractor {
  private readonly plain: string[] = [];
  private readonly resent: string[] = [];
  private sawResent = false;

  /** One header field: name and value (unfolded or not; line breaks are white space). */
  field(name: string, value: string): void {
    const n = name.toLowerCase();
    if (RESENT_RCPT.has(n)) {
      this.sawResent = true;
      this.resent.push(...parseAddressList(value));
    } else if (PLAIN_RCPT.has(n) && !this.sawResent) {
      this.plain.push(...parseAddressList(value));
    }
  }

  recipients(): string[] {
    return this.sawResent ? [...this.resent] : [...this.plain];
  }
}

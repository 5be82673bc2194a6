/**
 * The SMTP command tokenizer, with the rules of Postfix's smtpd_token(): words are separated by
 * whitespace; `<...>` and `"..."` keep their spaces (nested quotes inside brackets, backslash
 * escapes); `FROM:` and `TO:` end a word so `MAIL FROM:<a>` and `MAIL FROM: <a>` both give three
 * words. An unterminated `<` or `"` marks the token as an error (Postfix then answers 501 for
 * MAIL/RCPT).
 */

export interface Token {
  readonly text: string;
  /** An opening `<` or `"` without its closing partner. */
  readonly error: boolean;
}

const SPACE = new Set([' ', '\t', '\n', '\v', '\f', '\r']);

function quoted(s: string, i: number, start: string, last: string): { end: number; text: string; error: boolean } {
  let out = start;
  const stack: string[] = [last];
  let wanted = last;
  while (i < s.length) {
    const c = s[i++]!;
    out += c;
    if (c === '\\') {
      if (i >= s.length) break;
      out += s[i++]!;
    } else if (c === wanted) {
      if (stack.length === 1) return { end: i, text: out, error: false };
      stack.pop();
      wanted = stack[stack.length - 1]!;
    } else if (c === '"') {
      stack.push('"');
      wanted = '"';
    } else if (c === '<' && wanted === '>') {
      stack.push('>');
      wanted = '>';
    }
  }
  return { end: i, text: out, error: true };
}

/** Split one command line into words. */
export function tokenize(line: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  for (;;) {
    let text = '';
    let error = false;
    while (i < line.length) {
      const c = line[i++]!;
      if (SPACE.has(c)) {
        while (i < line.length && SPACE.has(line[i]!)) i++;
        if (text.length > 0) break;
      } else if (c === '<' || c === '"') {
        const q = quoted(line, i, c, c === '<' ? '>' : '"');
        i = q.end;
        text += q.text;
        if (q.error) error = true;
      } else if (c === ':') {
        text += c;
        const l = text.toLowerCase();
        if (l === 'to:' || l === 'from:') break;
      } else {
        if (c === '\\') {
          text += c;
          if (i >= line.length) break;
          text += line[i++]!;
          continue;
        }
        text += c;
      }
    }
    if (text.length === 0) return out;
    out.push({ text, error });
  }
}

/** Postfix is_header(): "Name:" — the first word looks like a message header. */
export function isHeader(word: string): boolean {
  return /^[\x21-\x39\x3b-\x7e]+:/.test(word);
}

/**
 * Postfix escapeBytes() (util/unescape.c): printable ASCII as is (a backslash doubled), \a \b \f \n \r \t
 * \v by name, every other byte (other controls, DEL, non-ASCII) as \ooo; for the log lines that quote
 * what a client sent (improper pipelining, non-SMTP commands).
 */
export function escapeBytes(b: Buffer): string {
  let out = '';
  for (const c of b) {
    if (c >= 0x20 && c < 0x7f) out += c === 0x5c ? '\\\\' : String.fromCharCode(c);
    else if (c === 0x07) out += '\\a';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x0c) out += '\\f';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0d) out += '\\r';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x0b) out += '\\v';
    else out += `\\${c.toString(8).padStart(3, '0')}`;
  }
  return out;
}

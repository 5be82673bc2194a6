/**
 * Address lists as they appear in aliases(5) values, :include: files and luser_relay: RFC 822
 * addresses separated by commas, with "quoted strings", (comments) and <route-addr>, plus the
 * local(8) forms `|command`, `/file/name`, `~/file`, `:include:/file`, and `\user` (Postfix
 * global/tok822_parse.c + local/token.c, simplified). Each address comes back in internal
 * (unquoted) form: `"|/usr/bin/vacation bob"` gives `|/usr/bin/vacation bob`.
 */

interface Token {
  readonly kind: 'atom' | 'quoted' | 'special';
  readonly text: string;
  /** White space preceded this token. */
  readonly spaced: boolean;
}

const SPECIALS = new Set(['<', '>', '@', ',', ';', ':']);
const isWs = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';

/** Split text into tokens; comments are dropped, quoted strings are unquoted. */
export function scanTokens(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  let spaced = false;
  while (i < text.length) {
    const c = text[i]!;
    if (isWs(c)) {
      spaced = true;
      i++;
      continue;
    }
    if (c === '(') {
      let depth = 0;
      for (; i < text.length; i++) {
        const d = text[i];
        if (d === '\\') i++;
        else if (d === '(') depth++;
        else if (d === ')' && --depth === 0) {
          i++;
          break;
        }
      }
      spaced = true;
      continue;
    }
    if (c === '"') {
      let s = '';
      i++;
      for (; i < text.length && text[i] !== '"'; i++) {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        s += text[i];
      }
      i++;
      out.push({ kind: 'quoted', text: s, spaced });
      spaced = false;
      continue;
    }
    if (SPECIALS.has(c)) {
      out.push({ kind: 'special', text: c, spaced });
      spaced = false;
      i++;
      continue;
    }
    let s = '';
    while (i < text.length && !isWs(text[i]) && !SPECIALS.has(text[i]!) && text[i] !== '"' && text[i] !== '(') {
      if (text[i] === '\\' && i + 1 < text.length) {
        s += text[i]! + text[i + 1]!;
        i += 2;
        continue;
      }
      s += text[i];
      i++;
    }
    out.push({ kind: 'atom', text: s, spaced });
    spaced = false;
  }
  return out;
}

/** Internal form of a token run: quotes gone, words that were apart joined by one space. */
function internalize(tokens: readonly Token[]): string {
  let s = '';
  tokens.forEach((t, n) => {
    if (n > 0 && t.spaced && t.kind !== 'special' && tokens[n - 1]!.kind !== 'special') s += ' ';
    s += t.text;
  });
  return s;
}

/**
 * The addresses of an address list, in internal form. `:include:` entries keep their
 * `:include:` prefix; `<route-addr>` forms give the address inside the brackets (a source route
 * `@a,@b:` is dropped); a group `name: a, b;` gives its members.
 */
export function parseAddressList(text: string): string[] {
  const out: string[] = [];
  // Split on top-level commas, keeping :include: entries whole.
  const tokens = scanTokens(text);
  let group: Token[] = [];
  let angle = 0;
  const flush = (): void => {
    if (group.length > 0) {
      const a = addressOf(group);
      if (a !== '') out.push(a);
    }
    group = [];
  };
  for (const t of tokens) {
    if (t.kind === 'special' && t.text === '<') angle++;
    if (t.kind === 'special' && t.text === '>') angle = Math.max(0, angle - 1);
    if (angle === 0 && t.kind === 'special' && (t.text === ',' || t.text === ';')) {
      flush();
      continue;
    }
    group.push(t);
  }
  flush();
  return out;
}

function addressOf(group: Token[]): string {
  let toks = group;
  // :include:/path (token.c compares the internalized text with ":include:").
  if (toks.length >= 3 && toks[0]!.text === ':' && toks[1]!.kind === 'atom' && toks[1]!.text.toLowerCase() === 'include' && toks[2]!.text === ':') {
    return `:include:${internalize(toks.slice(3))}`;
  }
  // Group syntax "name: member" (not a route): keep what follows the colon.
  const colon = toks.findIndex((t) => t.kind === 'special' && t.text === ':');
  const lt = toks.findIndex((t) => t.kind === 'special' && t.text === '<');
  if (colon > 0 && (lt < 0 || colon < lt)) toks = toks.slice(colon + 1);
  const open = toks.findIndex((t) => t.kind === 'special' && t.text === '<');
  if (open >= 0) {
    let close = toks.findIndex((t, n) => n > open && t.kind === 'special' && t.text === '>');
    if (close < 0) close = toks.length;
    toks = toks.slice(open + 1, close);
    // Source route @a,@b:user@c (RFC 5321 4.1.2, ignored as Postfix does).
    const routeEnd = toks.findIndex((t) => t.kind === 'special' && t.text === ':');
    if (routeEnd >= 0 && toks[0]?.text === '@') toks = toks.slice(routeEnd + 1);
  }
  return internalize(toks);
}

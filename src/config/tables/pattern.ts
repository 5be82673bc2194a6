/**
 * Translate the patterns of regexp: tables (POSIX extended regular expressions as glibc regcomp
 * reads them, regexp_table(5)) and pcre: tables (PCRE2, pcre_table(5)) into JavaScript RegExp
 * source with the same meaning, or refuse.
 *
 * Faithful rewrites: anchors (`^ $ \A \z \Z \G`, multi-line and DOLLAR_ENDONLY variants), `.`
 * with and without dotall/REG_NEWLINE, POSIX classes `[[:alpha:]]` (C locale), `\s` (ASCII
 * whitespace only), `\Q…\E`, `(?#…)`, PCRE's `x` (extended) and `U` (ungreedy) flags, `A`
 * (anchored, via the sticky flag), `\x{…}`/octal escapes, POSIX bracket expressions (a backslash
 * is literal there, `]` first is literal), glibc's `\< \> \` \'` and `{,n}`.
 *
 * Refused (ConfigError from the caller): anything JavaScript would read differently — possessive
 * quantifiers, atomic groups, inline modifiers `(?i)`, recursion and subroutine calls,
 * conditionals, callouts, backtracking verbs, branch reset, backreferences (JavaScript lets a
 * reference to an unset group match the empty string, PCRE and POSIX fail), `\K \R \X \h \v \p`,
 * unknown letter escapes, negated POSIX classes `[:^alpha:]`, and in regexp: tables PCRE-only
 * syntax (`(?…)`, lazy quantifiers, `\d`), which glibc would not read as PCRE does.
 *
 * Known difference kept: POSIX picks the leftmost-LONGEST match, JavaScript the leftmost-first;
 * whether a pattern matches is the same, but `$n` text can differ for alternations such as
 * `(a|ab)` where one branch is a prefix of another.
 */

export type Dialect = 'regexp' | 'pcre';

export interface PatternFlags {
  /** Case-insensitive (both dialects, default on). */
  readonly i: boolean;
  /** regexp: REG_NEWLINE; pcre: MULTILINE. */
  readonly m: boolean;
  /** pcre: DOTALL (default on). */
  readonly s: boolean;
  /** regexp: REG_EXTENDED (default on; off = basic RE, refused); pcre: EXTENDED (default off). */
  readonly x: boolean;
  /** pcre: ANCHORED. */
  readonly A: boolean;
  /** pcre: DOLLAR_ENDONLY. */
  readonly E: boolean;
  /** pcre: UNGREEDY. */
  readonly U: boolean;
}

export type TranslateResult =
  | { readonly ok: true; readonly re: RegExp; readonly groups: number }
  | { readonly ok: false; readonly unsupported: boolean; readonly message: string };

/** A construct JavaScript would read differently: the table is refused. */
class Refused extends Error {
  constructor(what: string, why = 'JavaScript RegExp would match it differently') {
    super(`${what} is not supported (${why})`);
  }
}

/** Plain bad syntax (Postfix would skip the rule with a warning; Postern refuses the table). */
class Invalid extends Error {}

const START = '(?<![\\s\\S])';
const BACKREF_WHY = 'JavaScript lets a reference to an unset group match the empty string, PCRE and POSIX do not';
const END = '(?![\\s\\S])';
const SPACE_CHARS = '\\t\\n\\v\\f\\r ';

/** POSIX character classes in the C locale (regcomp and PCRE's default tables agree). */
const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alpha: 'A-Za-z',
  digit: '0-9',
  alnum: '0-9A-Za-z',
  upper: 'A-Z',
  lower: 'a-z',
  space: SPACE_CHARS,
  blank: ' \\t',
  punct: '!-\\/:-@\\[-`{-~',
  print: ' -~',
  graph: '!-~',
  cntrl: '\\x00-\\x1f\\x7f',
  xdigit: '0-9A-Fa-f',
};
const PCRE_ONLY_CLASSES: Readonly<Record<string, string>> = { word: '\\w', ascii: '\\x00-\\x7f' };

const hex2 = (n: number): string => `\\x${n.toString(16).padStart(2, '0')}`;
const hex4 = (n: number): string => (n <= 0xff ? hex2(n) : `\\u${n.toString(16).padStart(4, '0')}`);
const escapeLiteral = (c: string): string => (/[\\^$.*+?()[\]{}|/-]/.test(c) ? `\\${c}` : c);
const isAlnum = (c: string): boolean => /^[0-9A-Za-z]$/.test(c);

export function translatePattern(pattern: string, dialect: Dialect, flags: PatternFlags): TranslateResult {
  if (dialect === 'regexp' && !flags.x) {
    return refusedResult('basic regular expressions (flag x turns REG_EXTENDED off) are not supported (write the pattern in extended syntax)');
  }
  let translated: { source: string; groups: number };
  try {
    translated = new Translator(pattern, dialect, flags).run();
  } catch (err) {
    if (err instanceof Refused) return refusedResult(err.message);
    if (err instanceof Invalid) return { ok: false, unsupported: false, message: `invalid pattern: ${err.message}` };
    throw err;
  }
  const jsFlags = `${flags.i ? 'i' : ''}${dialect === 'pcre' && flags.A ? 'y' : ''}`;
  try {
    return { ok: true, re: new RegExp(translated.source, jsFlags), groups: translated.groups };
  } catch (err) {
    return { ok: false, unsupported: false, message: `invalid pattern: ${err instanceof Error ? err.message.replace(/^Invalid regular expression: /, '') : String(err)}` };
  }
}

function refusedResult(message: string): TranslateResult {
  return { ok: false, unsupported: true, message };
}

class Translator {
  private i = 0;
  private out = '';
  private groups = 0;
  private readonly pcre: boolean;

  constructor(
    private readonly p: string,
    dialect: Dialect,
    private readonly f: PatternFlags,
  ) {
    this.pcre = dialect === 'pcre';
  }

  run(): { source: string; groups: number } {
    const p = this.p;
    while (this.i < p.length) {
      const c = p[this.i]!;
      if (this.pcre && this.f.x) {
        if (/[ \t\n\v\f\r]/.test(c)) {
          this.i++;
          continue;
        }
        if (c === '#') {
          const nl = p.indexOf('\n', this.i);
          this.i = nl < 0 ? p.length : nl + 1;
          continue;
        }
      }
      switch (c) {
        case '\\':
          this.escape();
          break;
        case '[':
          this.out += this.bracket();
          break;
        case '(':
          this.group();
          break;
        case ')':
          this.out += ')';
          this.i++;
          break;
        case '*':
        case '+':
        case '?':
          this.i++;
          this.quantifier(c);
          break;
        case '{': {
          const q = this.interval();
          if (q === undefined) {
            this.out += '\\{';
            this.i++;
          } else this.quantifier(q);
          break;
        }
        case '.':
          this.out += (this.pcre ? this.f.s : !this.f.m) ? '[\\s\\S]' : '[^\\n]';
          this.i++;
          break;
        case '^':
          if (this.pcre) this.out += this.f.m ? `(?:${START}|(?<=\\n)(?=[\\s\\S]))` : '^';
          else this.out += this.f.m ? '(?<![^\\n])' : '^';
          this.i++;
          break;
        case '$':
          if (this.pcre) this.out += this.f.m ? `(?=\\n|${END})` : this.f.E ? '$' : `(?=\\n?${END})`;
          else this.out += this.f.m ? '(?![^\\n])' : '$';
          this.i++;
          break;
        default:
          this.out += c;
          this.i++;
      }
    }
    return { source: this.out, groups: this.groups };
  }

  /** `{m}`, `{m,}`, `{m,n}` (and glibc's `{,n}`) at this.i; advances past it. */
  private interval(): string | undefined {
    const m = /^\{([0-9]*)(,([0-9]*))?\}/.exec(this.p.slice(this.i));
    const bad = m === null || (m[1] === '' && (!this.pcre ? m[2] === undefined || m[3] === '' : true));
    if (bad) {
      if (!this.pcre) throw new Invalid(`invalid interval "${this.p.slice(this.i, this.i + 8)}"`);
      return undefined;
    }
    this.i += m[0].length;
    return m[1] === '' ? `{0${m[2]}}` : m[0];
  }

  private quantifier(q: string): void {
    const next = this.p[this.i];
    let lazy = false;
    if (this.pcre) {
      if (next === '+') throw new Refused(`possessive quantifier "${q}+"`);
      if (next === '?') {
        lazy = true;
        this.i++;
      }
      if (this.f.U) lazy = !lazy;
    } else if (next === '*' || next === '+' || next === '?' || (next === '{' && /^\{[0-9]*,?[0-9]*\}/.test(this.p.slice(this.i)))) {
      throw new Refused(`"${q}${next}"`, 'POSIX has no lazy quantifiers: regcomp reads this as a repeated repetition; use a pcre: table');
    }
    this.out += q + (lazy ? '?' : '');
  }

  private group(): void {
    const p = this.p;
    const rest = p.slice(this.i + 1);
    if (this.pcre && rest.startsWith('*')) throw new Refused('backtracking control verb "(*..."');
    if (!rest.startsWith('?')) {
      this.groups++;
      this.out += '(';
      this.i++;
      return;
    }
    if (!this.pcre) throw new Refused('"(?"', 'PCRE syntax; regexp: tables are POSIX extended regular expressions; use a pcre: table');
    const r = rest.slice(1);
    if (r.startsWith('#')) {
      const close = p.indexOf(')', this.i);
      if (close < 0) throw new Invalid('unterminated "(?#" comment');
      this.i = close + 1;
      return;
    }
    for (const keep of [':', '=', '!', '<=', '<!']) {
      if (r.startsWith(keep)) {
        this.out += `(?${keep}`;
        this.i += 2 + keep.length;
        return;
      }
    }
    const named = /^(?:<|P<|')([A-Za-z_][A-Za-z0-9_]*)[>']/.exec(r);
    if (named !== null) {
      this.groups++;
      this.out += `(?<${named[1]}>`;
      this.i += 2 + named[0].length;
      return;
    }
    if (r.startsWith('>')) throw new Refused('atomic group "(?>"');
    if (r.startsWith('|')) throw new Refused('branch reset group "(?|"');
    if (r.startsWith('P=') || r.startsWith('P>') || r.startsWith('&') || /^[R0-9+]/.test(r) || /^-[0-9]/.test(r)) {
      throw new Refused(`recursion, subroutine call or named backreference "(?${r.slice(0, 2)}"`);
    }
    if (r.startsWith('(')) throw new Refused('conditional group "(?("');
    if (r.startsWith('C')) throw new Refused('callout "(?C"');
    if (/^[-a-zA-Z^]/.test(r)) {
      const m = /^[-a-zA-Z^]*[:)]?/.exec(r)![0];
      throw new Refused(`inline modifier "(?${m}"`, 'put the flag after the pattern, as in /.../i');
    }
    throw new Refused(`group syntax "(?${r.slice(0, 1)}"`);
  }

  /** An escape outside a bracket expression. */
  private escape(): void {
    const p = this.p;
    const e = p[this.i + 1];
    if (e === undefined) throw new Invalid('trailing backslash');
    if (!this.pcre) {
      this.i += 2;
      const map: Readonly<Record<string, string>> = {
        w: '\\w',
        W: '\\W',
        b: '\\b',
        B: '\\B',
        s: `[${SPACE_CHARS}]`,
        S: `[^${SPACE_CHARS}]`,
        '<': '\\b(?=\\w)',
        '>': '\\b(?<=\\w)',
        '`': START,
        "'": END,
      };
      const t = map[e];
      if (t !== undefined) {
        this.out += t;
        return;
      }
      if (/[1-9]/.test(e)) throw new Refused(`backreference "\\${e}"`, BACKREF_WHY);
      if (isAlnum(e)) {
        const hint = e === 'd' ? '; use [0-9]' : e === 'D' ? '; use [^0-9]' : '';
        throw new Refused(`"\\${e}"`, `not a POSIX regular expression escape${hint}, or use a pcre: table`);
      }
      this.out += `\\${e}`;
      return;
    }
    // PCRE
    if (e === 'Q') {
      const end = p.indexOf('\\E', this.i + 2);
      const literal = p.slice(this.i + 2, end < 0 ? p.length : end);
      for (const ch of literal) this.out += escapeLiteral(ch);
      this.i = end < 0 ? p.length : end + 2;
      return;
    }
    if (e === 'E') {
      this.i += 2;
      return;
    }
    const simple: Readonly<Record<string, string>> = {
      A: START,
      G: START,
      z: END,
      Z: `(?=\\n?${END})`,
      b: '\\b',
      B: '\\B',
      d: '\\d',
      D: '\\D',
      w: '\\w',
      W: '\\W',
      s: `[${SPACE_CHARS}]`,
      S: `[^${SPACE_CHARS}]`,
    };
    const t = simple[e];
    if (t !== undefined) {
      this.out += t;
      this.i += 2;
      return;
    }
    this.out += this.characterEscape(false);
  }

  /**
   * PCRE escapes that stand for one character (inside or outside a class); advances this.i.
   * Refuses the ones JavaScript lacks or reads differently.
   */
  private characterEscape(inClass: boolean): string {
    const p = this.p;
    const e = p[this.i + 1]!;
    this.i += 2;
    switch (e) {
      case 't':
      case 'n':
      case 'r':
      case 'f':
        return `\\${e}`;
      case 'a':
        return hex2(7);
      case 'e':
        return hex2(0x1b);
      case 'c': {
        const x = p[this.i];
        if (x === undefined || x.charCodeAt(0) > 0x7f) throw new Invalid('"\\c" at end of pattern');
        this.i++;
        return hex2(x.toUpperCase().charCodeAt(0) ^ 0x40);
      }
      case 'x': {
        if (p[this.i] === '{') {
          const m = /^\{([0-9a-fA-F]+)\}/.exec(p.slice(this.i));
          if (m === null) throw new Invalid('malformed "\\x{...}"');
          const v = Number.parseInt(m[1]!, 16);
          if (v > 0xffff) throw new Refused(`"\\x{${m[1]}}" beyond U+FFFF`);
          this.i += m[0].length;
          return hex4(v);
        }
        const m = /^[0-9a-fA-F]{0,2}/.exec(p.slice(this.i))![0];
        this.i += m.length;
        return hex2(m === '' ? 0 : Number.parseInt(m, 16));
      }
      case 'o': {
        const m = /^\{([0-7]+)\}/.exec(p.slice(this.i));
        if (m === null) throw new Invalid('malformed "\\o{...}"');
        const v = Number.parseInt(m[1]!, 8);
        if (v > 0xffff) throw new Refused(`"\\o{${m[1]}}" beyond U+FFFF`);
        this.i += m[0].length;
        return hex4(v);
      }
      case '0': {
        const m = /^[0-7]{0,2}/.exec(p.slice(this.i))![0];
        this.i += m.length;
        return hex2(m === '' ? 0 : Number.parseInt(m, 8));
      }
      default:
        break;
    }
    if (/[1-9]/.test(e)) {
      // PCRE: \1-\9, or a number up to the groups seen so far, is a backreference; any other
      // number is up to three octal digits (\103 is "C").
      const digits = /^[0-9]*/.exec(p.slice(this.i - 1))![0];
      const octal = /^[0-7]{1,3}/.exec(digits)?.[0];
      if (!inClass && (Number(digits) < 10 || Number(digits) <= this.groups || octal === undefined)) {
        throw new Refused(`backreference "\\${digits}"`, BACKREF_WHY);
      }
      if (octal === undefined) throw new Refused(`escape "\\${e}" in a character class`);
      this.i += octal.length - 1;
      return hex4(Number.parseInt(octal, 8));
    }
    if (e === 'g' || e === 'k') throw new Refused(`backreference "\\${e}"`, BACKREF_WHY);
    if (isAlnum(e)) throw new Refused(`escape "\\${e}"`);
    return `\\${e}`;
  }

  /** A bracket expression at this.i (`[...]`), as JavaScript class text. */
  private bracket(): string {
    const p = this.p;
    let j = this.i + 1;
    let negate = false;
    if (p[j] === '^') {
      negate = true;
      j++;
    }
    let body = '';
    let first = true;
    for (;;) {
      if (j >= p.length) throw new Invalid('unterminated character class "["');
      const c = p[j]!;
      if (c === ']' && !first) break;
      first = false;
      if (c === '[' && (p[j + 1] === ':' || p[j + 1] === '=' || p[j + 1] === '.')) {
        const kind = p[j + 1]!;
        const close = p.indexOf(`${kind}]`, j + 2);
        if (close >= 0) {
          const name = p.slice(j + 2, close);
          j = close + 2;
          if (kind === ':') {
            if (name.startsWith('^')) throw new Refused(`negated POSIX class "[:${name}:]"`);
            const cls = POSIX_CLASSES[name] ?? (this.pcre ? PCRE_ONLY_CLASSES[name] : undefined);
            if (cls === undefined) throw new Invalid(`unknown POSIX class "[:${name}:]"`);
            body += cls;
          } else {
            if ([...name].length !== 1) throw new Refused(`collating element "[${kind}${name}${kind}]"`);
            body += escapeLiteral(name);
          }
          continue;
        }
      }
      if (c === '\\') {
        if (!this.pcre) {
          // POSIX: a backslash inside a bracket expression is an ordinary character.
          body += '\\\\';
          j++;
          continue;
        }
        const e = p[j + 1];
        if (e === undefined) throw new Invalid('trailing backslash');
        if (e === 'Q' || e === 'E') throw new Refused('"\\Q...\\E" inside a character class');
        if (e === 'd' || e === 'D' || e === 'w' || e === 'W' || e === 'S') {
          body += `\\${e}`;
          j += 2;
          continue;
        }
        if (e === 's') {
          body += SPACE_CHARS;
          j += 2;
          continue;
        }
        if (e === 'b') {
          body += hex2(8);
          j += 2;
          continue;
        }
        this.i = j;
        body += this.characterEscape(true);
        j = this.i;
        continue;
      }
      body += c === '[' || c === ']' || c === '^' ? `\\${c}` : c;
      j++;
    }
    if (!this.pcre && this.f.m && negate) body += '\\n';
    this.i = j + 1;
    return `[${negate ? '^' : ''}${body}]`;
  }
}

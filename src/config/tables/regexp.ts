/**
 * regexp: and pcre: tables (regexp_table(5), pcre_table(5)): `/pattern/flags result`,
 * `!/pattern/ result`, `if /pattern/` … `endif` (nesting), regexp's legacy `/p1/!/p2/ result`,
 * and `$1`, `${1}`, `$(1)`, `$$` in the result. Rules Postfix would skip are skipped with
 * Postfix's warning text; patterns JavaScript would read differently are refused (pattern.ts).
 */
import type { ConfigError } from '../../errors.js';
import { type Dialect, type PatternFlags, translatePattern } from './pattern.js';
import { isSpace, type LogicalLine } from './text.js';

interface Compiled {
  readonly re: RegExp;
  /** false for `!/pattern/`: the rule fires when the pattern does NOT match. */
  readonly match: boolean;
}

type Part = string | number;

type Rule =
  | { readonly op: 'match'; readonly line: number; readonly first: Compiled; readonly second?: Compiled; readonly parts: readonly Part[] }
  | { readonly op: 'if'; readonly line: number; readonly cond: Compiled; endif?: number }
  | { readonly op: 'endif'; readonly line: number };

export interface RegexpRules {
  readonly rules: readonly Rule[];
  readonly warnings: readonly string[];
}

/** Makes the error for a pattern that cannot be used (file and line of the rule, or of the parameter for inline tables). */
export type ErrorAt = (line: number, detail: string) => ConfigError;

interface RawPattern {
  readonly source: string;
  readonly match: boolean;
  readonly flags: PatternFlags;
  readonly next: number;
}

const isAlnum = (c: string | undefined): boolean => c !== undefined && /^[0-9A-Za-z]$/.test(c);

export function parseRegexpRules(lines: readonly LogicalLine[], dialect: Dialect, mapName: string, errorAt: ErrorAt): RegexpRules {
  const warnings: string[] = [];
  const rules: Rule[] = [];
  const open: number[] = [];
  const label = `${dialect} map ${mapName}`;
  const warn = (line: number, text: string): void => {
    warnings.push(`${label}, line ${line}: ${text}`);
  };

  const getPattern = (s: string, pos: number, line: number): RawPattern | undefined => {
    let match = true;
    while (pos < s.length && (s[pos] === '!' || isSpace(s[pos]))) {
      if (s[pos] === '!') match = !match;
      pos++;
    }
    if (pos >= s.length) {
      warn(line, 'no regexp: skipping this rule');
      return undefined;
    }
    const delim = s[pos]!;
    const start = ++pos;
    while (pos < s.length && s[pos] !== delim) pos += s[pos] === '\\' ? 2 : 1;
    if (pos >= s.length) {
      warn(line, `no closing regexp delimiter "${delim}": ${dialect === 'pcre' ? 'ignoring' : 'skipping'} this rule`);
      return undefined;
    }
    const source = s.slice(start, pos);
    pos++;
    const f = dialect === 'pcre'
      ? { i: true, m: false, s: true, x: false, A: false, E: false, U: false }
      : { i: true, m: false, s: false, x: true, A: false, E: false, U: false };
    const allowed = dialect === 'pcre' ? 'imsxAEU' : 'imx';
    while (pos < s.length && !isSpace(s[pos]) && !(dialect === 'regexp' && s[pos] === '!')) {
      const o = s[pos]!;
      if (allowed.includes(o)) {
        const k = o as keyof typeof f;
        f[k] = !f[k];
      } else if (dialect === 'pcre' && o === 'X') {
        warn(line, `ignoring obsolete regexp option "${o}"`);
      } else {
        warn(line, `unknown regexp option "${o}": skipping this rule`);
        return undefined;
      }
      pos++;
    }
    return { source, match, flags: f, next: pos };
  };

  const compile = (raw: RawPattern, line: number): { c: Compiled; groups: number } => {
    const t = translatePattern(raw.source, dialect, raw.flags);
    if (!t.ok) {
      throw errorAt(line, `${dialect} pattern ${raw.match ? '' : '!'}/${raw.source}/: ${t.message}`);
    }
    return { c: { re: t.re, match: raw.match }, groups: t.groups };
  };

  for (const { text, line } of lines) {
    if (!isAlnum(text[0])) {
      const first = getPattern(text, 0, line);
      if (first === undefined) continue;
      let pos = first.next;
      let second: RawPattern | undefined;
      if (dialect === 'regexp' && text[pos] === '!') {
        second = getPattern(text, pos, line);
        if (second === undefined) continue;
        pos = second.next;
      }
      while (pos < text.length && isSpace(text[pos])) pos++;
      const replacement = text.slice(pos);
      if (replacement === '') warn(line, 'no replacement text: using empty string');
      const parsed = parseReplacement(replacement, dialect, (t) => warn(line, t), warnings);
      if (parsed === undefined) {
        warn(line, 'bad replacement syntax: skipping this rule');
        continue;
      }
      if (parsed.maxSub > 0 && !first.match) {
        warn(line, '$number found in negative match replacement text: skipping this rule');
        continue;
      }
      const c1 = compile(first, line);
      if (parsed.maxSub > c1.groups) {
        warn(line, `out of range replacement index "${parsed.maxSub}": skipping this rule`);
        continue;
      }
      const c2 = second === undefined ? undefined : compile(second, line).c;
      rules.push(c2 === undefined ? { op: 'match', line, first: c1.c, parts: parsed.parts } : { op: 'match', line, first: c1.c, second: c2, parts: parsed.parts });
    } else if (/^if$/i.test(text.slice(0, 2)) && !isAlnum(text[2])) {
      let pos = 2;
      while (pos < text.length && isSpace(text[pos])) pos++;
      const pat = getPattern(text, pos, line);
      if (pat === undefined) continue;
      pos = pat.next;
      while (pos < text.length && isSpace(text[pos])) pos++;
      if (pos < text.length) {
        warn(line, `ignoring extra text after IF statement: "${text.slice(pos)}"`);
        warn(line, 'do not prepend whitespace to statements between IF and ENDIF');
      }
      const { c } = compile(pat, line);
      open.push(rules.length);
      rules.push({ op: 'if', line, cond: c });
    } else if (/^endif$/i.test(text.slice(0, 5)) && !isAlnum(text[5])) {
      if (open.length === 0) {
        warn(line, 'ignoring ENDIF without matching IF');
        continue;
      }
      if (text.slice(5).split('').some((ch) => !isSpace(ch))) warn(line, 'ignoring extra text after ENDIF');
      const ifIndex = open.pop()!;
      const ifRule = rules[ifIndex];
      if (ifRule !== undefined && ifRule.op === 'if') ifRule.endif = rules.length;
      rules.push({ op: 'endif', line });
    } else {
      warn(line, 'ignoring unrecognized request');
    }
  }
  for (const idx of open) warn(rules[idx]!.line, 'IF has no matching ENDIF');
  return { rules, warnings };
}

/**
 * Postfix mac_parse over the result text: `$$` → `$`, `$n`, `${n}`, `$(n)`. Returns undefined
 * after warning (as Postfix) when the text is bad.
 */
function parseReplacement(text: string, dialect: Dialect, warn: (t: string) => void, raw: string[]): { parts: Part[]; maxSub: number } | undefined {
  const parts: Part[] = [];
  let lit = '';
  let maxSub = 0;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c !== '$') {
      lit += c;
      i++;
      continue;
    }
    if (text[i + 1] === '$') {
      lit += '$';
      i += 2;
      continue;
    }
    if (lit !== '') parts.push(lit);
    lit = '';
    i++;
    let name: string;
    const open = text[i];
    if (open === '(' || open === '{') {
      const close = open === '(' ? ')' : '}';
      let level = 1;
      let ep = i + 1;
      for (; level > 0; ep++) {
        if (ep >= text.length) {
          raw.push(`truncated macro reference: "${text}"`);
          return undefined;
        }
        if (text[ep] === open) level++;
        if (text[ep] === close) level--;
      }
      name = text.slice(i + 1, ep - 1);
      i = ep;
    } else {
      const m = /^[A-Za-z0-9_]*/.exec(text.slice(i))![0];
      name = m;
      i += m.length;
    }
    if (name === '') {
      raw.push(`empty macro name: "${text}"`);
      return undefined;
    }
    if (!/^[0-9]+$/.test(name)) {
      warn(`non-numeric replacement index "${name}"`);
      return undefined;
    }
    const n = Number.parseInt(name, 10);
    if (n < 1) {
      warn(`${dialect === 'regexp' ? 'out-of-range' : 'out of range'} replacement index "${name}"`);
      return undefined;
    }
    maxSub = Math.max(maxSub, n);
    parts.push(n);
  }
  if (lit !== '' || parts.length === 0) parts.push(lit);
  return { parts, maxSub };
}

/** Apply the rules to one key (the whole key: no parent-domain or partial-address search). */
export function lookupRegexp(rules: readonly Rule[], key: string): string | undefined {
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    if (rule.op === 'endif') continue;
    if (rule.op === 'if') {
      rule.cond.re.lastIndex = 0;
      if (rule.cond.re.test(key) === rule.cond.match) continue;
      if (rule.endif === undefined) return undefined;
      i = rule.endif;
      continue;
    }
    rule.first.re.lastIndex = 0;
    const m = rule.first.re.exec(key);
    if ((m !== null) !== rule.first.match) continue;
    if (rule.second !== undefined) {
      rule.second.re.lastIndex = 0;
      if (rule.second.re.test(key) !== rule.second.match) continue;
    }
    let out = '';
    for (const part of rule.parts) out += typeof part === 'string' ? part : (m?.[part] ?? '');
    return out;
  }
  return undefined;
}


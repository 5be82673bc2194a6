// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${name}` is Postfix's macro syntax in these strings, not a template.
/**
 * `$name` expansion of main.cf values, as Postfix's mac_expand(3) with recursion (postconf(5)
 * "$name, ${name}, ${name?value}, ${name:value}, ${name?{value}:{value}}" and the relational form
 * `${{text1} == {text2} ? {x} : {y}}` with ==, !=, <, <=, >=, > and the compatibility-level
 * variants `<level`, `<=level`, `>level`, `>=level`, `==level`, `!=level`).
 *
 * - `$$` is a literal `$`; `$(name)` is the legacy spelling of `${name}`.
 * - An undefined name expands to nothing; `onUndefined` hears about it (postconf warns).
 * - A value that refers back to itself fails with "unreasonable macro call nesting", as Postfix.
 * - Syntax errors fail too (Postfix warns, then its daemons die with "macro processing error").
 * Errors are PosternError('config-expand'); the caller adds the file and line.
 */
import { PosternError } from '../errors.js';

export interface ExpandContext {
  /** The raw (unexpanded) value of a parameter, or undefined when it has none. */
  lookup(name: string): string | undefined;
  /** Called for each `$name` used (not just tested) whose value is undefined. */
  onUndefined?(name: string): void;
}

/** Postfix's limit (mac_expand.c); a reference loop trips it too. */
const MAX_NESTING = 100;
const SPACE = ' \t\r\n\f\v';
const OPERATORS = ['==', '!=', '<', '<=', '>=', '>'] as const;
type Operator = (typeof OPERATORS)[number];

function fail(detail: string): never {
  throw new PosternError('config-expand', detail);
}

/** Expand every `$name` reference in `pattern`, recursively. */
export function expand(pattern: string, ctx: ExpandContext): string {
  const out: string[] = [];
  parse(pattern, ctx, out, 0, []);
  return out.join('');
}

/** The names `pattern` refers to, in both branches of conditionals, without expanding anything. */
export function referencedNames(pattern: string): string[] {
  const names = new Set<string>();
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] !== '$') continue;
    if (pattern[i + 1] === '$') {
      i += 1;
      continue;
    }
    let j = i + 1;
    if (pattern[j] === '{' || pattern[j] === '(') j = skipSpace(pattern, j + 1);
    const m = /^[A-Za-z0-9_]+/.exec(pattern.slice(j));
    if (m !== null) names.add(m[0]);
  }
  return [...names];
}

interface Piece {
  readonly kind: 'literal' | 'expr';
  readonly text: string;
}

/** mac_parse(3): cut text into literals and `$...` expressions. */
function split(value: string): Piece[] {
  const pieces: Piece[] = [];
  let buf = '';
  let i = 0;
  while (i < value.length) {
    const c = value[i];
    if (c !== '$') {
      buf += c;
      i += 1;
      continue;
    }
    if (value[i + 1] === '$') {
      buf += '$';
      i += 2;
      continue;
    }
    if (buf.length > 0) pieces.push({ kind: 'literal', text: buf });
    buf = '';
    i += 1;
    const open = value[i];
    if (open === '{' || open === '(') {
      const close = open === '{' ? '}' : ')';
      let level = 1;
      let j = i + 1;
      for (; level > 0; j++) {
        if (j >= value.length) fail(`truncated macro reference: "${value}"`);
        if (value[j] === open) level++;
        else if (value[j] === close) level--;
      }
      buf = value.slice(i + 1, j - 1);
      i = j;
    } else {
      let j = i;
      while (j < value.length && /[A-Za-z0-9_]/.test(value[j])) j++;
      buf = value.slice(i, j);
      i = j;
    }
    if (buf.length === 0) fail(`empty macro name: "${value}"`);
    pieces.push({ kind: 'expr', text: buf });
    buf = '';
  }
  if (buf.length > 0) pieces.push({ kind: 'literal', text: buf });
  return pieces;
}

function parse(text: string, ctx: ExpandContext, out: string[], depth: number, active: string[]): void {
  for (const piece of split(text)) {
    if (piece.kind === 'literal') out.push(piece.text);
    else expression(piece.text, ctx, out, depth + 1, active);
  }
}

function skipSpace(s: string, i: number): number {
  while (i < s.length && SPACE.includes(s[i])) i++;
  return i;
}

/** `{payload}` at s[i]: the payload (braces balanced) and the index after the `}` and any space. */
function curly(s: string, i: number): { payload: string; next: number } {
  let level = 1;
  let j = i + 1;
  for (; j < s.length; j++) {
    if (s[j] === '{') level++;
    else if (s[j] === '}' && --level === 0) break;
  }
  if (j >= s.length) fail(`unbalanced {} in attribute expression: "${s.slice(i)}"`);
  return { payload: s.slice(i + 1, j), next: skipSpace(s, j + 1) };
}

function expression(expr: string, ctx: ExpandContext, out: string[], depth: number, active: string[]): void {
  if (depth > MAX_NESTING) fail(`unreasonable macro call nesting: "${expr}"`);
  let i = skipSpace(expr, 0);
  // undefined: not defined; '': defined but empty (false); else non-empty (true).
  let value: string | undefined;
  let name: string | undefined;
  let op = '';
  if (expr[i] === '{') {
    const left = curly(expr, i);
    i = left.next;
    let j = i;
    while (j < expr.length && '<>!=?+-*/~&|%'.includes(expr[j])) j++;
    const opText = expr.slice(i, j);
    if (!(OPERATORS as readonly string[]).includes(opText)) {
      fail(`"==" or "!=" or "<" or "<=" or ">=" or ">" expected at: "...${left.payload}}>>>${expr.slice(i, i + 20)}"`);
    }
    i = j;
    let suffix = '';
    while (i < expr.length && /[A-Za-z0-9]/.test(expr[i])) suffix += expr[i++];
    if (suffix !== '' && suffix !== 'level') fail(`bad operator suffix at: "...${opText}>>>${suffix}"`);
    i = skipSpace(expr, i);
    if (expr[i] !== '{') fail(`"{expression}" expected at: "...{${left.payload}} ${opText}>>>${expr.slice(i, i + 20)}"`);
    const right = curly(expr, i);
    i = right.next;
    const a = expandNested(left.payload, ctx, depth, active);
    const b = expandNested(right.payload, ctx, depth, active);
    value = compare(a, opText as Operator, b, suffix === 'level') ? 'true' : '';
    if (i < expr.length) {
      op = expr[i];
      if (op !== '?' && op !== ':') fail(`"?" or ":" expected at: "...}>>>${expr.slice(i, i + 20)}"`);
      i += 1;
    }
  } else {
    const start = i;
    for (;;) {
      const k = skipSpace(expr, i);
      if (k >= expr.length) {
        name = expr.slice(start, i);
        break;
      }
      if (expr[k] === '?' || expr[k] === ':') {
        name = expr.slice(start, i);
        op = expr[k];
        i = k + 1;
        break;
      }
      if (expr[k] === '{') fail(`unknown function "${expr.slice(start, i)}" at "...>>>${expr.slice(start)}"`);
      if (!/[A-Za-z0-9_]/.test(expr[i])) fail(`attribute name syntax error at: "...${expr.slice(0, i)}>>>${expr.slice(i, i + 20)}"`);
      i += 1;
    }
    value = ctx.lookup(name);
  }
  const truthy = value !== undefined && value !== '';
  if (op === '?') {
    let whenTrue: string;
    let k = skipSpace(expr, i);
    if (expr[k] === '{') {
      const c = curly(expr, k);
      whenTrue = c.payload;
      k = c.next;
    } else {
      whenTrue = expr.slice(i);
      k = expr.length;
    }
    if (truthy) parse(whenTrue, ctx, out, depth, active);
    if (k >= expr.length) return;
    if (expr[k] !== ':') fail(`":" expected at: "...${whenTrue}}>>>${expr.slice(k, k + 20)}"`);
    i = k + 1;
    op = ':';
    if (truthy) {
      // still check the syntax of the other branch
      otherBranch(expr, i);
      return;
    }
  }
  if (op === ':') {
    const k = skipSpace(expr, i);
    let whenFalse: string;
    let rest = '';
    if (expr[k] === '{') {
      const c = curly(expr, k);
      whenFalse = c.payload;
      rest = expr.slice(c.next);
    } else whenFalse = expr.slice(i);
    if (!truthy) parse(whenFalse, ctx, out, depth, active);
    if (rest !== '') fail(`unexpected input at: "...${whenFalse}}>>>${rest.slice(0, 20)}"`);
    return;
  }
  // Plain ${name} or a bare relational expression.
  if (name === undefined) {
    out.push(value ?? '');
    return;
  }
  if (value === undefined) {
    ctx.onUndefined?.(name);
    return;
  }
  if (value === '') return;
  if (active.includes(name)) fail(`unreasonable macro call nesting: "${name}"`);
  active.push(name);
  parse(value, ctx, out, depth, active);
  active.pop();
}

function otherBranch(expr: string, i: number): void {
  const k = skipSpace(expr, i);
  if (expr[k] === '{') {
    const c = curly(expr, k);
    if (c.next < expr.length) fail(`unexpected input at: "...${c.payload}}>>>${expr.slice(c.next, c.next + 20)}"`);
  }
}

function expandNested(text: string, ctx: ExpandContext, depth: number, active: string[]): string {
  const out: string[] = [];
  parse(text, ctx, out, depth, active);
  return out.join('');
}

/** Numeric when both sides are all digits, else by code unit (strcmp); `level` compares compatibility levels. */
function compare(a: string, op: Operator, b: string, level: boolean): boolean {
  let delta: number;
  if (level) delta = compareLevels(a, b);
  else if (/^\d+$/.test(a) && /^\d+$/.test(b)) delta = Number(a) - Number(b);
  else delta = a < b ? -1 : a > b ? 1 : 0;
  switch (op) {
    case '==':
      return delta === 0;
    case '!=':
      return delta !== 0;
    case '<':
      return delta < 0;
    case '<=':
      return delta <= 0;
    case '>=':
      return delta >= 0;
    case '>':
      return delta > 0;
  }
}

/** Compatibility levels `N`, `N.N`, `N.N.N` (postconf(5) COMPATIBILITY_README); missing parts are 0. */
export function parseCompatibilityLevel(text: string): readonly [number, number, number] | null {
  const m = /^(\d+)(?:\.(\d+)(?:\.(\d+))?)?$/.exec(text.trim());
  if (m === null) return null;
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

function compareLevels(a: string, b: string): number {
  const x = parseCompatibilityLevel(a);
  const y = parseCompatibilityLevel(b);
  if (x === null) fail(`bad compatibility level: "${a}"`);
  if (y === null) fail(`bad compatibility level: "${b}"`);
  for (let k = 0; k < 3; k++) if (x[k] !== y[k]) return x[k] - y[k];
  return 0;
}

/**
 * The text grammar shared by every table source (postmap(1) "INPUT FILE FORMAT", access(5)
 * "TABLE FORMAT"): logical lines, `#` comment lines, continuation lines that start with
 * whitespace; and the `{ ... }` brace syntax of inline:, static:{...} and regexp:{ {rule}, ... }.
 */

/** Postfix's ISSPACE: ASCII whitespace only (not Unicode spaces). */
export const isSpace = (ch: string | undefined): boolean =>
  ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '\v' || ch === '\f';

export function trimSpace(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isSpace(s[a])) a++;
  while (b > a && isSpace(s[b - 1])) b--;
  return s.slice(a, b);
}

export interface LogicalLine {
  readonly text: string;
  /** First physical line of the logical line (1-based), as Postfix reports it. */
  readonly line: number;
}

const BLANK_OR_COMMENT = /^[ \t\r\v\f]*(#|$)/;

/**
 * Split a table source into logical lines (Postfix readllines): comment and blank lines are
 * dropped even in the middle of a logical line; a line that starts with whitespace continues the
 * previous one (joined without the newline, its leading whitespace kept). A logical line that
 * would start with whitespace is dropped with Postfix's warning.
 */
export function logicalLines(content: string, name: string, warnings: string[]): LogicalLine[] {
  const physical = content.split('\n');
  if (physical.length > 0 && physical[physical.length - 1] === '') physical.pop();
  const out: LogicalLine[] = [];
  let buf = '';
  let first = 0;
  const flush = (): void => {
    if (buf === '') return;
    if (isSpace(buf[0])) {
      warnings.push(`${name}: logical line must not start with whitespace: "${buf.slice(0, 30)}${buf.length > 30 ? '...' : ''}"`);
    } else out.push({ text: buf, line: first });
    buf = '';
  };
  physical.forEach((raw, i) => {
    if (BLANK_OR_COMMENT.test(raw)) return;
    if (isSpace(raw[0]) && buf !== '') {
      buf += raw;
      return;
    }
    flush();
    buf = raw;
    first = i + 1;
  });
  flush();
  return out;
}

/** Postfix balpar: length of the balanced `{...}` text at the start of `s`, 0 if unbalanced. */
export function balancedLength(s: string, open = '{', close = '}'): number {
  if (s[0] !== open) return 0;
  let level = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === open) level++;
    else if (s[i] === close) {
      level--;
      if (level === 0) return i + 1;
    }
  }
  return 0;
}

/**
 * Postfix extpar: `{ text }` → `text`. With `strip`, whitespace inside the braces is removed.
 * Returns the inner text, or an error in Postfix's words.
 */
export function extractBraced(s: string, strip: boolean): { text: string; error?: string } {
  let inner: string;
  let error: string | undefined;
  if (s[0] !== '{') {
    return { text: strip ? trimSpace(s) : s, error: `no '{' at start of text in "${s}"` };
  }
  const len = balancedLength(s);
  if (len === 0) {
    error = `missing '}' in "${s}"`;
    inner = s.slice(1);
  } else {
    if (len !== s.length) error = `syntax error after '}' in "${s}"`;
    inner = s.slice(1, len - 1);
  }
  const text = strip ? trimSpace(inner) : inner;
  return error === undefined ? { text } : { text, error };
}

/** Postfix mystrtokq: split on commas/whitespace, keeping `{...}` groups whole. */
export function splitBraceList(s: string): string[] {
  const out: string[] = [];
  let i = 0;
  const sep = (c: string | undefined): boolean => c === ',' || isSpace(c);
  while (i < s.length) {
    while (i < s.length && sep(s[i])) i++;
    if (i >= s.length) break;
    const start = i;
    let level = 0;
    for (; i < s.length; i++) {
      const c = s[i];
      if (c === '{') level++;
      else if (level > 0 && c === '}') level--;
      else if (level === 0 && sep(c)) break;
    }
    out.push(s.slice(start, i));
  }
  return out;
}

/**
 * `regexp:{ {rule-1}, {rule-2} }` → the in-memory file Postfix builds from it (one rule per
 * line), or an error in Postfix's words.
 */
export function inlineRules(name: string): { lines: string[]; error?: string } {
  const outer = extractBraced(name, false);
  if (outer.error !== undefined) return { lines: [], error: outer.error };
  const lines: string[] = [];
  for (const item of splitBraceList(outer.text)) {
    const rule = extractBraced(item, true);
    if (rule.error !== undefined) return { lines, error: rule.error };
    lines.push(rule.text);
  }
  return { lines };
}

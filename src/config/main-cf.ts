/**
 * main.cf grammar, as postconf(5) and Postfix's readllines()/split_nameval():
 * - A logical line starts at a line that does not begin with whitespace; lines that begin with
 *   whitespace continue it (their text is appended as is, leading whitespace included).
 * - Lines whose first non-blank character is `#`, and blank lines, are ignored, also between a
 *   line and its continuation. A `#` anywhere else is part of the value.
 * - `name = value`: blanks around `=` and at both ends of the value are dropped.
 * - A later definition of the same name wins (with Postfix's "overriding earlier entry" warning).
 * Also the in-place editor behind `postconf -e` / `postconf -X` (postconf_edit.c): comments and
 * order are kept, a changed parameter's logical line is replaced, new ones are appended.
 */
import { ConfigError } from '../errors.js';
import type { Setting } from './types.js';

export interface MainCf {
  /** The effective setting per name (last definition), in order of first definition. */
  readonly settings: ReadonlyMap<string, Setting>;
  readonly warnings: readonly string[];
}

export interface LogicalLine {
  readonly text: string;
  /** First physical line, 1-based. */
  readonly line: number;
  /** Where each physical line's text starts in `text`: [offset, line number], ascending. */
  readonly parts: readonly (readonly [number, number])[];
}

/** The physical line holding character `offset` of a logical line. */
export function lineAt(ll: LogicalLine, offset: number): number {
  let line = ll.line;
  for (const [start, n] of ll.parts) if (start <= offset) line = n;
  return line;
}

const BLANK = /^[ \t\r\n\f\v]*$/;
const isSpace = (c: string | undefined): boolean => c !== undefined && ' \t\r\n\f\v'.includes(c);

function physicalLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

function isCommentOrBlank(l: string): boolean {
  return BLANK.test(l) || l.trimStart().startsWith('#');
}

/** Logical lines of a Postfix configuration file (main.cf and master.cf share this). */
export function logicalLines(text: string, file: string, warnings: string[]): LogicalLine[] {
  const out: LogicalLine[] = [];
  let cur: { text: string; line: number; parts: [number, number][] } | null = null;
  const flush = (): void => {
    if (cur === null) return;
    if (isSpace(cur.text[0])) {
      const shown = cur.text.length > 30 ? `${cur.text.slice(0, 30)}...` : cur.text;
      warnings.push(`${file}: logical line must not start with whitespace: "${shown}"`);
    } else out.push(cur);
    cur = null;
  };
  physicalLines(text).forEach((l, i) => {
    if (l.includes('\0')) warnings.push(`${file}, line ${i + 1}: text after null byte may be ignored`);
    if (isCommentOrBlank(l)) return;
    if (isSpace(l[0]) && cur !== null) {
      cur.parts.push([cur.text.length, i + 1]);
      cur.text += l;
      return;
    }
    flush();
    cur = { text: l, line: i + 1, parts: [[0, i + 1]] };
  });
  flush();
  return out;
}

/** split_nameval(): `name = value` with blanks trimmed; null with the reason when malformed. */
export function splitNameValue(text: string): { name: string; value: string } | { error: string } {
  const t = text.replace(/^[ \t\r\n\f\v]+/, '');
  if (t === '' || t[0] === '=') return { error: 'missing attribute name' };
  const m = /^([^ \t\r\n\f\v=]+)[ \t\r\n\f\v]*=(.*)$/s.exec(t);
  if (m === null) return { error: "missing '=' after attribute name" };
  return { name: m[1], value: m[2].replace(/^[ \t\r\n\f\v]+|[ \t\r\n\f\v]+$/g, '') };
}

/** Parse main.cf text. Throws ConfigError on a line that is not `name = value`. */
export function parseMainCf(text: string, file: string): MainCf {
  const warnings: string[] = [];
  const settings = new Map<string, Setting>();
  for (const ll of logicalLines(text, file, warnings)) {
    const nv = splitNameValue(ll.text);
    if ('error' in nv) throw new ConfigError(file, ll.line, `${nv.error}: "${ll.text}"`);
    const old = settings.get(nv.name);
    if (old !== undefined && old.value !== nv.value) {
      warnings.push(`${file}, line ${ll.line}: overriding earlier entry: ${nv.name}=${old.value}`);
    }
    // Map keeps the first insertion position; `postconf -n` sorts anyway.
    settings.set(nv.name, Object.freeze({ name: nv.name, value: nv.value, file, line: ll.line }));
  }
  return { settings, warnings };
}

/**
 * `postconf -e` (value string) and `postconf -X` (null): rewrite main.cf text. Every logical line
 * defining an edited name is replaced by `name = value` (or removed), its continuation lines go
 * with it, comments stay; names not found are appended in sorted order.
 */
export function editMainCf(text: string, edits: ReadonlyMap<string, string | null>): string {
  const out: string[] = [];
  const found = new Set<string>();
  let skipping = false;
  const lines = text.split('\n');
  const endsWithNewline = lines.length > 0 && lines[lines.length - 1] === '';
  if (endsWithNewline) lines.pop();
  for (const l of lines) {
    if (isCommentOrBlank(l)) {
      out.push(l);
      continue;
    }
    if (isSpace(l[0])) {
      if (!skipping) out.push(l);
      continue;
    }
    const name = /^[^ \t\r\n\f\v=]*/.exec(l)?.[0] ?? '';
    if (edits.has(name)) {
      skipping = true;
      found.add(name);
      const v = edits.get(name);
      if (typeof v === 'string') out.push(`${name} = ${v}`);
    } else {
      skipping = false;
      out.push(l);
    }
  }
  for (const name of [...edits.keys()].sort()) {
    const v = edits.get(name);
    if (!found.has(name) && typeof v === 'string') out.push(`${name} = ${v}`);
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/**
 * Fixed-key tables: texthash:, hash:/btree:/lmdb:/dbm:/sdbm:/cdb: (read from the text source that
 * postmap(1) would compile, so no .db file is needed), inline:{...} and static:. Keys are folded
 * to lower case at load and at lookup, as Postfix does for fixed-case maps (DICT_FLAG_FOLD_FIX,
 * postmap(1) "-f").
 */
import { balancedLength, isSpace, logicalLines, splitBraceList, trimSpace } from './text.js';

export interface FixedEntries {
  readonly map: Map<string, string>;
  readonly warnings: string[];
  /** First duplicate, when duplicates are an error for this table type. */
  readonly duplicate?: { readonly line: number; readonly key: string };
}

export interface FixedOptions {
  /** Fold keys to lower case (default true; postmap -f turns it off). */
  readonly fold: boolean;
  /** texthash: Postfix's own wording adds "-- ignoring this line" (dict_thash.c), postmap's doesn't. */
  readonly texthash: boolean;
  /** 'warn': keep the first and warn (postmap); 'error': report the first duplicate. */
  readonly duplicates: 'warn' | 'error';
}

export const foldKey = (key: string, fold: boolean): string => (fold ? key.toLowerCase() : key);

/** Parse `key whitespace value` lines (postmap.c / dict_thash.c, with "quoted keys" and \ escapes). */
export function parseKeyValueSource(content: string, name: string, opts: FixedOptions): FixedEntries {
  const warnings: string[] = [];
  const map = new Map<string, string>();
  let duplicate: { line: number; key: string } | undefined;
  const ignoring = opts.texthash ? ' -- ignoring this line' : '';
  for (const { text, line } of logicalLines(content, name, warnings)) {
    let i = 0;
    let inQuotes = false;
    for (; i < text.length; i++) {
      const c = text[i];
      if (c === '\\') {
        i++;
        if (i >= text.length) break;
      } else if (isSpace(c)) {
        if (!inQuotes) break;
      } else if (c === '"') inQuotes = !inQuotes;
    }
    if (inQuotes) {
      warnings.push(`${name}, line ${line}: unbalanced '"' in '${text}' -- ignoring this line`);
      continue;
    }
    const key = text.slice(0, Math.min(i, text.length));
    const value = trimSpace(text.slice(i + 1));
    if (key === '' || value === '') {
      warnings.push(`${name}, line ${line}: expected format: key whitespace value${ignoring}`);
      continue;
    }
    if (key.endsWith(':')) warnings.push(`${name}, line ${line}: record is in "key: value" format; is this an alias file?`);
    const k = foldKey(key, opts.fold);
    if (map.has(k)) {
      if (opts.duplicates === 'error') {
        duplicate ??= { line, key: k };
      } else warnings.push(`${name}, line ${line}: duplicate entry: "${k}"`);
      continue;
    }
    map.set(k, value);
  }
  return duplicate === undefined ? { map, warnings } : { map, warnings, duplicate };
}

/** Postfix split_qnameval: `key = value` with an optionally "quoted" key. */
export function splitNameValue(text: string): { key: string; value: string } | { error: string } {
  let k = 0;
  while (k < text.length && isSpace(text[k])) k++;
  if (k >= text.length) return { error: 'no key found; expected format: key = value' };
  let e = k;
  let inQuotes = false;
  for (; e < text.length; e++) {
    const c = text[e];
    if (c === '\\') {
      e++;
      if (e >= text.length) break;
    } else if (isSpace(c) || c === '=') {
      if (!inQuotes) break;
    } else if (c === '"') inQuotes = !inQuotes;
  }
  if (inQuotes) return { error: `unbalanced '"'` };
  let v = Math.min(e, text.length);
  while (v < text.length && isSpace(text[v])) v++;
  if (text[v] !== '=') return { error: "missing '=' after attribute name" };
  return { key: text.slice(k, Math.min(e, text.length)), value: trimSpace(text.slice(v + 1)) };
}

/**
 * inline:{ key=value, { key = text with spaces } } (dict_inline.c). Returns the entries or
 * Postfix's complaint (`bad syntax: "inline:…"; need "inline:{name=value...}"`).
 */
export function parseInline(name: string, fold: boolean): { map: Map<string, string> } | { error: string } {
  const need = `need "inline:{name=value...}"`;
  const len = name.startsWith('{') ? balancedLength(name) : 0;
  const inner = len > 0 ? name.slice(1, len - 1) : '';
  if (len === 0 || len !== name.length || inner === '') return { error: `bad syntax: "inline:${name}"; ${need}` };
  const map = new Map<string, string>();
  for (const item of splitBraceList(inner)) {
    let text = item;
    if (text.startsWith('{')) {
      const end = balancedLength(text);
      if (end === 0) return { error: `missing '}' in "${text}": "inline:${name}"; ${need}` };
      if (end !== text.length) return { error: `syntax error after '}' in "${text}": "inline:${name}"; ${need}` };
      text = trimSpace(text.slice(1, end - 1));
    }
    const kv = splitNameValue(text);
    if ('error' in kv) return { error: `${kv.error}: "inline:${name}"; ${need}` };
    // No duplicate checks, as dict_inline.c: a later entry replaces an earlier one.
    map.set(foldKey(kv.key, fold), kv.value);
  }
  if (map.size === 0) return { error: `empty table: "inline:${name}"; ${need}` };
  return { map };
}

/** static:value or static:{ text with spaces } (dict_static.c). */
export function parseStatic(name: string): { value: string } | { error: string } {
  if (!name.startsWith('{')) return { value: name };
  const end = balancedLength(name);
  if (end === 0) return { error: `bad static:name syntax: missing '}' in "${name}"` };
  if (end !== name.length) return { error: `bad static:name syntax: syntax error after '}' in "${name}"` };
  return { value: trimSpace(name.slice(1, end - 1)) };
}

/**
 * Lookup tables `type:name`, as Postfix's DATABASE_README: texthash:, hash:/btree:/lmdb:/dbm:/
 * sdbm:/cdb: (all read from the TEXT source that postmap(1) would compile — the path without
 * .db — so existing tables work without running postmap), inline:{...}, static:, cidr:, regexp:,
 * pcre: (files, or inline `{ {rule}, ... }` as Postfix 3.7). A `proxy:` prefix is accepted and
 * ignored (proxymap(8) only relays lookups).
 *
 * Tables are read once, at open, into memory; lookups are synchronous. Fixed-key tables fold
 * keys to lower case; pattern tables (regexp, pcre, cidr) see the key as given. Reads: the table
 * files named in main.cf, nothing else. Errors are ConfigError: a missing file or a bad table
 * name names the parameter's file and line (`origin`); a bad line inside a table names the table
 * file and its line. Rules that Postfix itself skips are skipped with Postfix's warning text
 * (`Table.warnings`), so `postern postmap` shows what `postmap` would.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../../errors.js';
import { lookupCidr, parseCidrRules } from './cidr.js';
import { foldKey, parseInline, parseKeyValueSource, parseStatic } from './fixed.js';
import { lookupRegexp, parseRegexpRules } from './regexp.js';
import { inlineRules, logicalLines } from './text.js';

export { type AccessKey, type AccessKind, type AccessOptions, accessKeys, accessLookup, accessOptionsFrom } from './access.js';

/** The shared contract: one lookup table. */
export interface LookupTable {
  readonly spec: string;
  /** The value for `key`, regexp/pcre with `$n` substituted; undefined when not found. */
  get(key: string): string | undefined;
  /**
   * 'pattern' tables (regexp, pcre, cidr) are searched only with the whole key in access(5)
   * searches, never with partial keys (Postfix DICT_FLAG_PATTERN). Absent means 'fixed'.
   */
  readonly kind?: 'fixed' | 'pattern';
}

/** Where the table was named: the main.cf/master.cf parameter's file and line. */
export interface TableOrigin {
  readonly file: string;
  readonly line: number;
  /** Relative table paths resolve against this directory (else the working directory). */
  readonly configDir?: string;
}

export interface OpenOptions {
  /** Fold fixed-table keys to lower case (default true; `postmap -f` turns it off). */
  readonly fold?: boolean;
  /**
   * A repeated key: 'warn' keeps the first and warns (what postmap does when it builds a hash
   * table); 'error' refuses the table (what Postfix daemons do with a texthash: duplicate).
   * Default: 'error' for texthash, 'warn' for the hash family.
   */
  readonly duplicates?: 'warn' | 'error';
}

export interface Table extends LookupTable {
  /** `texthash`, `hash`, `cidr`, … (after any `proxy:`). */
  readonly type: string;
  /** The part after `type:`. */
  readonly name: string;
  /** The file read, if any. */
  readonly path?: string;
  readonly kind: 'fixed' | 'pattern';
  /** What Postfix would warn about while opening the table, in its words (without `warning: `). */
  readonly warnings: readonly string[];
  /** Every key and value in file order (postmap -s); undefined for tables that cannot list them. */
  entries(): ReadonlyMap<string, string> | undefined;
}

/** The hash family: Postfix compiles these with postmap; Postern reads the source text. */
export const INDEXED_TYPES: readonly string[] = ['hash', 'btree', 'lmdb', 'dbm', 'sdbm', 'cdb'];
export const SUPPORTED_TYPES: readonly string[] = ['texthash', ...INDEXED_TYPES, 'inline', 'static', 'cidr', 'regexp', 'pcre'];

const STRERROR: Readonly<Record<string, string>> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ELOOP: 'Too many levels of symbolic links',
  EPERM: 'Operation not permitted',
};

/**
 * Open `type:name`. Throws ConfigError: `unsupported dictionary type: X`, a missing or unreadable
 * file, bad inline syntax, a pattern JavaScript cannot match the same way, a texthash duplicate.
 */
export function openTable(spec: string, origin?: TableOrigin, options: OpenOptions = {}): Table {
  const fail = (detail: string): ConfigError => (origin !== undefined ? new ConfigError(origin.file, origin.line, detail) : new ConfigError(spec, 0, detail));
  const body = spec.startsWith('proxy:') ? spec.slice('proxy:'.length) : spec;
  const colon = body.indexOf(':');
  if (colon <= 0 || colon === body.length - 1) throw fail(`open dictionary: expecting "type:name" form instead of "${spec}"`);
  const type = body.slice(0, colon);
  const name = body.slice(colon + 1);
  const fold = options.fold ?? true;
  const filePath = (): string => (isAbsolute(name) ? name : resolve(origin?.configDir ?? process.cwd(), name));
  const read = (path: string, what: 'open' | 'open database'): string => {
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      let detail = `${what} ${path}: ${STRERROR[code] ?? (err instanceof Error ? err.message : String(err))}`;
      if (code === 'ENOENT' && INDEXED_TYPES.includes(type)) {
        const built = ['.db', '.lmdb', '.cdb', '.pag'].map((ext) => path + ext).find((p) => existsSync(p));
        if (built !== undefined) detail += ` (Postern reads the text source that postmap compiled into ${built}; put the source file back)`;
      }
      throw fail(detail);
    }
  };
  const base = { spec, type, name };

  if (type === 'texthash' || INDEXED_TYPES.includes(type)) {
    const path = filePath();
    const texthash = type === 'texthash';
    const parsed = parseKeyValueSource(read(path, 'open database'), name, { fold, texthash, duplicates: options.duplicates ?? (texthash ? 'error' : 'warn') });
    if (parsed.duplicate !== undefined) throw new ConfigError(path, parsed.duplicate.line, `duplicate entry: "${parsed.duplicate.key}"`);
    const map = parsed.map;
    return { ...base, path, kind: 'fixed', warnings: parsed.warnings, get: (key) => map.get(foldKey(key, fold)), entries: () => map };
  }
  if (type === 'inline') {
    const parsed = parseInline(name, fold);
    if ('error' in parsed) throw fail(parsed.error);
    const map = parsed.map;
    return { ...base, kind: 'fixed', warnings: [], get: (key) => map.get(foldKey(key, fold)), entries: () => map };
  }
  if (type === 'static') {
    const parsed = parseStatic(name);
    if ('error' in parsed) throw fail(parsed.error);
    const value = parsed.value;
    return { ...base, kind: 'fixed', warnings: [], get: () => value, entries: () => undefined };
  }
  if (type === 'cidr' || type === 'regexp' || type === 'pcre') {
    let content: string;
    let path: string | undefined;
    let errorFile: string;
    let lineOffset: number | undefined;
    if (name.startsWith('{')) {
      const inline = inlineRules(name);
      if (inline.error !== undefined) throw fail(`${type} map: ${inline.error}`);
      content = inline.lines.join('\n');
      errorFile = origin?.file ?? spec;
      lineOffset = origin?.line ?? 0;
    } else {
      path = filePath();
      content = read(path, 'open');
      errorFile = path;
    }
    const warnings: string[] = [];
    const lines = logicalLines(content, name, warnings);
    if (type === 'cidr') {
      const parsed = parseCidrRules(lines, name);
      const rules = parsed.rules;
      return { ...base, ...(path === undefined ? {} : { path }), kind: 'pattern', warnings: [...warnings, ...parsed.warnings], get: (key) => lookupCidr(rules, key), entries: () => undefined };
    }
    const errorAt = (line: number, detail: string): ConfigError =>
      lineOffset === undefined ? new ConfigError(errorFile, line, detail) : new ConfigError(errorFile, lineOffset, `${type}:{...} rule ${line}: ${detail}`);
    const parsed = parseRegexpRules(lines, type, name, errorAt);
    const rules = parsed.rules;
    return { ...base, ...(path === undefined ? {} : { path }), kind: 'pattern', warnings: [...warnings, ...parsed.warnings], get: (key) => lookupRegexp(rules, key), entries: () => undefined };
  }
  throw fail(`unsupported dictionary type: ${type}`);
}

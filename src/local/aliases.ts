/**
 * alias_maps for local(8): aliases(5) files and any other lookup table.
 *
 * `hash:/etc/aliases` (and texthash:, btree:, lmdb:, cdb:, dbm:, sdbm:) name an aliases(5) source
 * file, read directly as postalias(1) would read it: `name: value` logical lines (continuation
 * lines start with white space, `#` lines are comments), the name case-folded and unquoted, the
 * value kept as written (an address list, parsed at delivery by ./tokens.ts). Lines postalias
 * would skip are skipped with its warning (`need name:value pair`, `name must be local`); the
 * first of duplicate names wins, as with a hash table. Other types (regexp:, pcre:, inline:,
 * static:) go through the shared table code (../config/tables). `nis:` (in Postfix's default
 * `hash:/etc/aliases, nis:mail.aliases`) is skipped: Postern has no NIS client.
 *
 * Files are re-read when they change (checked at most once a second), as Postfix's local(8)
 * restarts when a table changes. A table that cannot be read makes lookups report an error, which
 * local delivery turns into a deferral ("alias database unavailable"), never into a bounce.
 */
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { INDEXED_TYPES, type LookupTable, openTable } from '../config/tables/index.js';
import { logicalLines } from '../config/tables/text.js';
import { errText } from '../mailbox/errors.js';
import { scanTokens } from './tokens.js';

export interface AliasSource {
  readonly map: Map<string, string>;
  readonly warnings: string[];
}

/** Parse aliases(5) text (`name` is the file name used in warnings). */
export function parseAliases(text: string, name: string): AliasSource {
  const warnings: string[] = [];
  const map = new Map<string, string>();
  for (const { text: line, line: lineno } of logicalLines(text, name, warnings)) {
    const toks = scanTokens(line);
    const colonAt = toks.findIndex((t) => t.kind === 'special' && t.text === ':');
    if (colonAt <= 0 || toks.slice(0, colonAt).some((t) => t.kind === 'special' && t.text === ',')) {
      warnings.push(`${name}, line ${lineno}: need name:value pair`);
      continue;
    }
    // The value is the text after the first colon outside quotes and comments.
    const valueText = line.slice(colonOffset(line) + 1).trim();
    if (valueText === '') {
      warnings.push(`${name}, line ${lineno}: need name:value pair`);
      continue;
    }
    const keyToks = toks.slice(0, colonAt);
    if (keyToks.some((t) => t.kind === 'special' && t.text === '@') || keyToks.some((t) => t.kind === 'atom' && t.text.includes('%'))) {
      warnings.push(`${name}, line ${lineno}: name must be local`);
      continue;
    }
    const key = keyToks
      .map((t) => t.text)
      .join('')
      .toLowerCase();
    if (map.has(key)) {
      warnings.push(`${name}, line ${lineno}: duplicate entry: "${key}"`);
      continue;
    }
    map.set(key, valueText);
  }
  return { map, warnings };
}

/** Offset of the first ':' outside "quotes" and (comments). */
function colonOffset(line: string): number {
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (quoted) {
      if (c === '"') quoted = false;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === '(') depth++;
    else if (c === ')') depth = Math.max(0, depth - 1);
    else if (c === ':' && depth === 0) return i;
  }
  return -1;
}

/** One table of alias_maps. */
export interface AliasTable {
  readonly spec: string;
  /** The aliases file (file-based tables), for delivery rights: its owner runs |command and /file. */
  readonly path: string | null;
  /** Owner uid of the file (null for tables without one). */
  readonly ownerUid: number | null;
  /** The value for a local name; undefined when not found. Throws AliasMapError when unreadable. */
  get(name: string): string | undefined;
}

export class AliasMapError extends Error {
  constructor(
    readonly spec: string,
    message: string,
  ) {
    super(message);
  }
}

const ALIAS_FILE_TYPES: readonly string[] = ['texthash', ...INDEXED_TYPES];

class AliasFile implements AliasTable {
  private map = new Map<string, string>();
  private stamp = '';
  private checkedAt = Number.NEGATIVE_INFINITY;
  private error: string | null = null;
  private uid: number | null = null;

  constructor(
    readonly spec: string,
    readonly path: string,
    private readonly warn: (text: string) => void,
  ) {
    this.refresh(true);
  }

  get ownerUid(): number | null {
    return this.uid;
  }

  private refresh(force = false): void {
    const now = Date.now();
    if (!force && now - this.checkedAt < 1000) return;
    this.checkedAt = now;
    try {
      const st = statSync(this.path);
      const stamp = `${st.mtimeMs}/${st.size}/${st.ino}`;
      this.uid = st.uid;
      if (stamp === this.stamp && this.error === null) return;
      const parsed = parseAliases(readFileSync(this.path, 'utf8'), this.path);
      for (const w of parsed.warnings) this.warn(w);
      this.map = parsed.map;
      this.stamp = stamp;
      this.error = null;
    } catch (err) {
      this.error = `open ${this.path}: ${errText(err)}`;
    }
  }

  get(name: string): string | undefined {
    this.refresh();
    if (this.error !== null) throw new AliasMapError(this.spec, this.error);
    return this.map.get(name.toLowerCase());
  }
}

/** The tables of alias_maps, in order. Opening never throws: unusable tables fail at lookup. */
export function openAliasMaps(specs: readonly string[], o: { configDir?: string; warn: (text: string) => void }): AliasTable[] {
  const out: AliasTable[] = [];
  for (const raw of specs) {
    const spec = raw.startsWith('proxy:') ? raw.slice('proxy:'.length) : raw;
    const colon = spec.indexOf(':');
    const type = colon > 0 ? spec.slice(0, colon) : '';
    const name = colon > 0 ? spec.slice(colon + 1) : spec;
    if (type === 'nis' || type === 'nisplus') continue;
    if (ALIAS_FILE_TYPES.includes(type)) {
      const path = isAbsolute(name) ? name : resolve(o.configDir ?? process.cwd(), name);
      out.push(new AliasFile(raw, path, o.warn));
      continue;
    }
    let table: LookupTable | null = null;
    let error: string | null = null;
    try {
      table = openTable(raw, o.configDir !== undefined ? { file: 'main.cf', line: 0, configDir: o.configDir } : undefined);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    out.push({
      spec: raw,
      path: null,
      ownerUid: null,
      get: (n) => {
        if (table === null) throw new AliasMapError(raw, error ?? 'unavailable');
        return table.get(n);
      },
    });
  }
  return out;
}

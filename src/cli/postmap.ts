/**
 * `postern postmap [-fs] [-c config_dir] [-q key] [type:]file...` — postmap(1) for scripts that
 * call it: `-q KEY` prints the first value found in the tables (exit 0) or nothing (exit 1),
 * `-q -` answers one `key<TAB>value` line per key read from standard input, `-s` lists the first
 * table. Without -q/-s it checks each table and reports what Postfix would warn about, in
 * postmap's words (`postmap: warning: FILE, line N: ...`), exit 0; a table Postern cannot use is
 * `postmap: fatal: ...`, exit 1. No .db file is written: Postern reads hash:, btree:, lmdb:, …
 * tables from their text source.
 *
 * Options that only make sense when building a database (-N -n -o -p -r -u -U -v -w) are
 * accepted and ignored; -b -d -F -h -i -m are refused.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { INDEXED_TYPES, openTable, type Table } from '../config/tables/index.js';
import type { CliContext } from './context.js';

const USAGE = 'usage: postmap [-bfFhimnNoprsuUvw] [-c config_dir] [-d key] [-q key] [map_type:]file...';
const WITH_ARG = new Set(['c', 'd', 'q']);
const IGNORED = new Set(['n', 'N', 'o', 'p', 'r', 'u', 'U', 'v', 'w']);
const REFUSED: Readonly<Record<string, string>> = {
  b: 'message body queries (-b)',
  h: 'message header queries (-h)',
  m: 'MIME parsing (-m)',
  d: 'deleting entries (-d): edit the text file instead',
  i: 'incremental updates (-i): edit the text file instead',
  F: 'base64 file values (-F)',
};

/** Postfix's default_database_type; the type only changes how Postern names the table. */
const DEFAULT_TYPE = 'hash';

export async function main(args: string[], ctx: CliContext): Promise<number> {
  const say = (text: string): void => {
    ctx.stderr.write(`postmap: ${text}\n`);
  };
  const fatal = (text: string): number => {
    say(`fatal: ${text}`);
    return 1;
  };

  let query: string | undefined;
  let sequence = false;
  let fold = true;
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    for (let k = 1; k < a.length; k++) {
      const opt = a[k]!;
      let value: string | undefined;
      if (WITH_ARG.has(opt)) {
        value = a.slice(k + 1);
        if (value === '') {
          value = args[++i];
          if (value === undefined) return fatal(USAGE);
        }
        k = a.length;
      }
      if (opt === 'q' || opt === 's' || opt === 'd' || opt === 'i') {
        if (query !== undefined || sequence) return fatal('specify only one of -d -i -q or -s');
      }
      if (opt === 'q') query = value;
      else if (opt === 's') sequence = true;
      else if (opt === 'f') fold = false;
      else if (opt === 'c') {
        // The configuration directory: Postern's postmap needs nothing from main.cf.
      } else if (IGNORED.has(opt)) {
        // Database-building options: nothing to build.
      } else if (REFUSED[opt] !== undefined) return fatal(`Postern does not support ${REFUSED[opt]}`);
      else return fatal(USAGE);
    }
  }
  const files = args.slice(i);
  if (files.length === 0) return fatal(USAGE);

  const spec = (file: string): string => (file.includes(':') ? file : `${DEFAULT_TYPE}:${file}`);
  const open = (file: string): Table => {
    const table = openTable(spec(file), undefined, { fold, duplicates: 'warn' });
    for (const w of table.warnings) say(`warning: ${w}`);
    return table;
  };
  const emptyWarning = (table: Table, key: string): void => {
    say(`warning: table ${table.type}:${table.name}: key ${key}: empty string result is not allowed`);
    say(`warning: table ${table.type}:${table.name} should return NO RESULT in case of NOT FOUND`);
  };

  try {
    if (query === '-') {
      const tables: (Table | undefined)[] = files.map(() => undefined);
      let found = false;
      const input = readFileSync(0, 'utf8');
      const keys = input.split('\n');
      if (keys[keys.length - 1] === '') keys.pop();
      for (const key of keys) {
        for (let n = 0; n < files.length; n++) {
          const table = tables[n] ?? open(files[n]!);
          tables[n] = table;
          const value = table.get(key);
          if (value === undefined) continue;
          if (value === '') emptyWarning(table, key);
          ctx.stdout.write(`${key}\t${value}\n`);
          found = true;
          break;
        }
      }
      return found ? 0 : 1;
    }
    if (query !== undefined) {
      for (const file of files) {
        const table = open(file);
        const value = table.get(query);
        if (value === undefined) continue;
        if (value === '') emptyWarning(table, query);
        ctx.stdout.write(`${value}\n`);
        return 0;
      }
      return 1;
    }
    if (sequence) {
      // As postmap: only the first table is listed.
      const table = open(files[0]!);
      const entries = table.entries();
      if (entries === undefined) return fatal(`table ${table.type}:${table.name}: sequence operation is not supported`);
      for (const [key, value] of entries) ctx.stdout.write(`${key}\t${value}\n`);
      return 0;
    }
    for (const file of files) {
      const table = open(file);
      if (INDEXED_TYPES.includes(table.type)) {
        say(`Postern reads ${table.type}:${table.name} from its text source ${table.path ?? table.name}; no database file is built or needed`);
      }
    }
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) return fatal(err.line > 0 ? err.message : err.detail);
    throw err;
  }
}

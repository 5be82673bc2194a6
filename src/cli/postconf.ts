/**
 * `postern postconf`: show or edit the configuration as Postfix's postconf(1) does.
 *
 *   postconf [-c DIR] [-dhnx] [NAME...]   parameters: all in effect, -d defaults, -n set in main.cf,
 *                                         -h values only, -x with $name expanded
 *   postconf [-c DIR] -M[f] [service[/type]...]   master.cf services (-f folds long lines)
 *   postconf [-c DIR] -e name=value...    edit main.cf in place (comments and order kept)
 *   postconf [-c DIR] -X name...          remove parameters from main.cf
 *
 * Output is byte-for-byte postconf's: `name = value`, names sorted, whitespace in values
 * normalised to single spaces (postconf_print.c). Unlike postconf, `-e` refuses a value that
 * Postern would reject (the file is left unchanged).
 */
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultValues, expandValue, isParamName, paramsFrom, RAW_PARAMS } from '../config/index.js';
import { referencedNames } from '../config/expand.js';
import { editMainCf, parseMainCf, splitNameValue } from '../config/main-cf.js';
import { formatMasterEntry, parseMasterCf } from '../config/master-cf.js';
import { PARAMS } from '../config/params/index.js';
import { POSTFIX_37_NAMES } from '../config/params/postfix-names.js';
import type { Setting } from '../config/types.js';
import { ConfigError, PosternError } from '../errors.js';
import type { CliContext } from './context.js';

interface Options {
  configDir: string;
  explicitDir: boolean;
  defaults: boolean;
  setOnly: boolean;
  valuesOnly: boolean;
  expand: boolean;
  master: boolean;
  fold: boolean;
  edit: boolean;
  remove: boolean;
  args: string[];
}

class Usage extends Error {}

const USAGE = 'usage: postern postconf [-c config_dir] [-d | -n] [-h] [-x] [-M[f] [service[/type]...]] [-e name=value...] [-X name...] [name...]';

function parseArgs(argv: readonly string[], ctx: CliContext): Options {
  const o: Options = {
    configDir: ctx.configDir,
    explicitDir: ctx.configDirExplicit,
    defaults: false,
    setOnly: false,
    valuesOnly: false,
    expand: false,
    master: false,
    fold: false,
    edit: false,
    remove: false,
    args: [],
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      i++;
      break;
    }
    if (a[0] !== '-' || a === '-') break;
    for (let k = 1; k < a.length; k++) {
      const f = a[k];
      if (f === 'c') {
        const dir = k + 1 < a.length ? a.slice(k + 1) : argv[++i];
        if (dir === undefined) throw new Usage('option -c requires a directory');
        o.configDir = dir;
        o.explicitDir = true;
        break;
      }
      if (f === 'd') o.defaults = true;
      else if (f === 'n') o.setOnly = true;
      else if (f === 'h') o.valuesOnly = true;
      else if (f === 'x') o.expand = true;
      else if (f === 'M') o.master = true;
      else if (f === 'f') o.fold = true;
      else if (f === 'e') o.edit = true;
      else if (f === 'X') o.remove = true;
      else throw new Usage(`invalid option -- '${f}'`);
    }
  }
  o.args = argv.slice(i);
  const modes = [o.master, o.edit, o.remove, o.defaults || o.setOnly].filter(Boolean).length;
  if (modes > 1 || (o.defaults && o.setOnly)) throw new Usage('specify only one of -d, -n, -M, -e or -X');
  return o;
}

/** postconf_print.c pcf_print_line(): words separated by single spaces (no folding unless -f). */
function normalise(text: string): string {
  return text.split(/[ \t\r\n]+/).filter((w) => w !== '').join(' ');
}

function line(name: string, value: string, o: Options): string {
  return o.valuesOnly ? `${normalise(value)}\n` : `${normalise(`${name} = ${value}`)}\n`;
}

async function readMainCf(dir: string): Promise<string | null> {
  try {
    return await readFile(join(dir, 'main.cf'), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function fatal(ctx: CliContext, text: string): number {
  ctx.stderr.write(`postconf: fatal: ${text}\n`);
  return 1;
}

/** Names main.cf or master.cf refer to: postconf shows user-defined parameters that are used. */
async function usedNames(settings: ReadonlyMap<string, Setting>, dir: string): Promise<Set<string>> {
  const used = new Set<string>();
  for (const s of settings.values()) for (const n of referencedNames(s.value)) used.add(n);
  const master = await readFile(join(dir, 'master.cf'), 'utf8').catch(() => '');
  try {
    for (const e of parseMasterCf(master, join(dir, 'master.cf'))) for (const ov of e.overrides) for (const n of referencedNames(ov.value)) used.add(n);
  } catch {
    // `postconf -M` reports master.cf errors
  }
  return used;
}

export async function main(argv: string[], ctx: CliContext): Promise<number> {
  let o: Options;
  try {
    o = parseArgs(argv, ctx);
  } catch (err) {
    if (err instanceof Usage) {
      ctx.stderr.write(`postconf: fatal: ${err.message}\n${USAGE}\n`);
      return 1;
    }
    throw err;
  }
  try {
    if (o.master) return await showMaster(o, ctx);
    if (o.edit || o.remove) return await editMain(o, ctx);
    return await showParams(o, ctx);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof PosternError) return fatal(ctx, err.message);
    if (err instanceof Error && 'code' in err && typeof err.code === 'string') return fatal(ctx, err.message);
    throw err;
  }
}

async function showParams(o: Options, ctx: CliContext): Promise<number> {
  const mainPath = join(o.configDir, 'main.cf');
  const text = await readMainCf(o.configDir);
  if (text === null && !o.defaults) return fatal(ctx, `open ${mainPath}: No such file or directory`);
  const main = parseMainCf(text ?? '', mainPath);
  for (const w of main.warnings) ctx.stderr.write(`postconf: warning: ${w}\n`);
  const settings = new Map(main.settings);
  // postconf -c DIR (or MAIL_CONFIG) makes config_directory an explicit setting.
  if (o.explicitDir && !o.defaults) settings.set('config_directory', { name: 'config_directory', value: o.configDir, file: mainPath, line: 0 });
  const defaults = defaultValues(undefined, settings);
  const used = await usedNames(settings, o.configDir);
  const known = (n: string): boolean => isParamName(n) || POSTFIX_37_NAMES.has(n) || used.has(n);
  const value = (n: string): string | undefined => {
    if (o.defaults) return isParamName(n) ? defaults.get(n) : undefined;
    return settings.get(n)?.value ?? (isParamName(n) ? defaults.get(n) : undefined);
  };
  let names: string[];
  if (o.args.length > 0) names = o.args;
  else if (o.setOnly) names = [...settings.keys()].filter(known).sort();
  else if (o.defaults) names = Object.keys(PARAMS).sort();
  else names = [...new Set([...Object.keys(PARAMS), ...[...settings.keys()].filter(known)])].sort();
  if (o.args.length === 0) {
    for (const s of main.settings.values()) {
      if (!known(s.name)) ctx.stderr.write(`postconf: warning: ${mainPath}: unused parameter: ${s.name}=${s.value}\n`);
    }
  }
  const undefinedSeen = new Set<string>();
  let out = '';
  for (const name of names) {
    let v = value(name);
    if (v === undefined || (o.setOnly && !settings.has(name))) {
      if (o.args.length > 0 && v === undefined) {
        const why = POSTFIX_37_NAMES.has(name) && !isParamName(name) ? 'Postfix parameter not implemented by Postern' : 'unknown parameter';
        ctx.stderr.write(`postconf: warning: ${name}: ${why}\n`);
      }
      continue;
    }
    if (o.expand && !RAW_PARAMS.has(name)) {
      v = expandValue(v, o.defaults ? new Map() : settings, undefined, (u) => {
        if (undefinedSeen.has(u) || POSTFIX_37_NAMES.has(u)) return;
        undefinedSeen.add(u);
        ctx.stderr.write(`postconf: warning: ${mainPath}: undefined parameter: ${u}\n`);
      });
    }
    out += line(name, v, o);
  }
  ctx.stdout.write(out);
  return 0;
}

async function showMaster(o: Options, ctx: CliContext): Promise<number> {
  const path = join(o.configDir, 'master.cf');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fatal(ctx, `open ${path}: No such file or directory`);
    throw err;
  }
  const warnings: string[] = [];
  const entries = parseMasterCf(text, path, warnings);
  for (const w of warnings) ctx.stderr.write(`postconf: warning: ${w}\n`);
  const requests = o.args.map((raw) => {
    const [name, type, extra] = raw.split('/');
    if (extra !== undefined || name === '') throw new Usage('-M option requires service_name[/type]');
    return { raw, name, type, hits: 0 };
  });
  let out = '';
  for (const e of entries) {
    const match = requests.length === 0 || requests.some((r) => r.name === e.name && (r.type === undefined || r.type === e.type) && ++r.hits > 0);
    if (match) out += formatMasterEntry(e, o.fold);
  }
  for (const r of requests) if (r.hits === 0) ctx.stderr.write(`postconf: warning: unmatched request: "${r.raw}"\n`);
  ctx.stdout.write(out);
  return 0;
}

async function editMain(o: Options, ctx: CliContext): Promise<number> {
  const path = join(o.configDir, 'main.cf');
  const edits = new Map<string, string | null>();
  for (const raw of o.args) {
    if (raw.includes('\n')) return fatal(ctx, '-e, -X, or -# accepts no multi-line input');
    const t = raw.trimStart();
    if (t.startsWith('#')) return fatal(ctx, '-e, -X, or -# accepts no comment input');
    if (o.edit) {
      const nv = splitNameValue(t);
      if ('error' in nv) return fatal(ctx, `${nv.error}: "${raw}"`);
      const old = edits.get(nv.name);
      if (typeof old === 'string' && old !== nv.value) ctx.stderr.write(`postconf: warning: ignoring earlier request: '${nv.name} = ${old}'\n`);
      edits.delete(nv.name);
      edits.set(nv.name, nv.value);
    } else {
      if (t === '') return fatal(ctx, '-X or -# requires non-blank parameter names');
      if (t.includes('=')) return fatal(ctx, '-X or -# requires parameter names without value');
      edits.set(t.trimEnd(), null);
    }
  }
  const before = (await readMainCf(o.configDir)) ?? '';
  const after = editMainCf(before, edits);
  // Refuse to write a value Postern would reject at start (postconf itself does not check).
  if (o.edit && validates(before, path) && !validates(after, path)) {
    try {
      paramsFrom(after, path);
    } catch (err) {
      if (err instanceof ConfigError) return fatal(ctx, `${err.detail}; ${path} not changed`);
      throw err;
    }
  }
  const tmp = `${path}.tmp`;
  const mode = await stat(path).then(
    (s) => s.mode & 0o7777,
    () => 0o644,
  );
  await writeFile(tmp, after, { mode });
  await rename(tmp, path);
  return 0;
}

function validates(text: string, path: string): boolean {
  try {
    paramsFrom(text, path);
    return true;
  } catch {
    return false;
  }
}

/**
 * master.cf grammar, as master(5) and postconf's reader (postconf_master.c):
 *   service type private unpriv chroot wakeup maxproc command [args...]
 * - logical lines, continuation lines and `#` comments as main.cf;
 * - fields split on blanks with `{ ... }` groups kept whole;
 * - `-o name=value`, `-oname=value` and `-o { name = value }` (Postfix 3.0) overrides;
 * - `-` in private/unpriv/chroot/wakeup/maxproc means Postfix's default (y, y, n, 0,
 *   $default_process_limit);
 * - inet service names: `smtp`, `25`, `127.0.0.1:2525`, `[::1]:2525`, `host:submission`.
 * Effective parameters per service (main.cf + overrides) are built by ./index.ts.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { type LogicalLine, lineAt, logicalLines, splitNameValue } from './main-cf.js';
import type { ServiceType } from './types.js';
import { splitList } from './values.js';

/** One master.cf entry as written (normalised like `postconf -M` shows it). */
export interface MasterEntry {
  readonly name: string;
  readonly type: ServiceType;
  /** private, unpriv, chroot, wakeup, maxproc as written (`-` kept). */
  readonly fields: readonly [string, string, string, string, string];
  readonly command: string;
  /** Arguments after the command; `-o` values with `{}` removed and `name = value` as `name=value`. */
  readonly argv: readonly string[];
  /** Arguments other than `-o name=value` pairs. */
  readonly args: readonly string[];
  /** `-o` overrides in order (with the physical line of each); a later one for the same name wins. */
  readonly overrides: readonly { readonly name: string; readonly value: string; readonly line: number }[];
  readonly file: string;
  readonly line: number;
}

const TYPES: readonly ServiceType[] = ['inet', 'unix', 'unix-dgram', 'fifo', 'pass'];
const BLANKS = ' \t\r\n';

/** Remove one level of `{ }` and surrounding blanks (extpar with EXTPAR_FLAG_STRIP). */
function unbrace(text: string, file: string, line: number): string {
  if (!text.endsWith('}')) throw new ConfigError(file, line, `missing '}' in "${text}"`);
  return text.slice(1, -1).trim();
}

/** Offsets of the blank-separated fields of `text` (as splitList(text, BLANKS) cuts them). */
function fieldOffsets(text: string): number[] {
  const out: number[] = [];
  let level = 0;
  let inField = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const blank = level === 0 && BLANKS.includes(c);
    if (!blank && !inField) out.push(i);
    inField = !blank;
    if (c === '{') level++;
    else if (c === '}' && level > 0) level--;
  }
  return out;
}

function parseEntry(ll: LogicalLine, file: string): MasterEntry {
  const { text, line } = ll;
  const argv = splitList(text, BLANKS);
  const offsets = fieldOffsets(text);
  const lineOf = (k: number): number => lineAt(ll, offsets[k] ?? 0);
  if (argv.length < 8) throw new ConfigError(file, line, `bad field count: "${text}"`);
  const [name, type, priv, unpriv, chroot, wakeup, maxproc, command] = argv;
  if (!(TYPES as readonly string[]).includes(type)) throw new ConfigError(file, line, `invalid type field "${type}" in "${text}"; expected inet, unix, unix-dgram, fifo or pass`);
  const yn: [string, string][] = [
    ['private', priv],
    ['unpriv', unpriv],
    ['chroot', chroot],
  ];
  for (const [field, v] of yn) {
    if (!['y', 'n', '-'].includes(v)) throw new ConfigError(file, line, `invalid ${field} field "${v}" in "${text}"; expected y, n or -`);
  }
  if (wakeup !== '-' && !/^\d+\??$/.test(wakeup)) throw new ConfigError(file, line, `invalid wakeup field "${wakeup}" in "${text}"; expected a number of seconds or -`);
  if (maxproc !== '-' && !/^\d+$/.test(maxproc)) throw new ConfigError(file, line, `invalid maxproc field "${maxproc}" in "${text}"; expected a number or -`);

  const rest = argv.slice(8);
  const norm: string[] = [];
  const args: string[] = [];
  const overrides: { name: string; value: string; line: number }[] = [];
  let i = 0;
  // Daemon options first (postconf_master.c pcf_normalize_daemon_args()).
  for (; i < rest.length; i++) {
    const a = rest[i];
    if (a[0] !== '-' || a === '--') break;
    if (!a.startsWith('-o')) {
      norm.push(a);
      args.push(a);
      continue;
    }
    let value: string;
    const at = lineOf(8 + i);
    if (a.length > 2) value = a.slice(2);
    else if (i + 1 < rest.length) value = rest[++i];
    else throw new ConfigError(file, at, `option -o requires a name=value argument`);
    if (value.startsWith('{')) value = unbrace(value, file, at);
    const nv = splitNameValue(value);
    if ('error' in nv) throw new ConfigError(file, at, `-o ${value}: ${nv.error}`);
    norm.push('-o', `${nv.name}=${nv.value}`);
    overrides.push({ name: nv.name, value: nv.value, line: at });
  }
  for (; i < rest.length; i++) {
    const a = rest[i].startsWith('{') ? unbrace(rest[i], file, line) : rest[i];
    norm.push(a);
    args.push(a);
  }
  return Object.freeze({
    name,
    type: type as ServiceType,
    fields: Object.freeze([priv, unpriv, chroot, wakeup, maxproc]) as readonly [string, string, string, string, string],
    command,
    argv: Object.freeze(norm),
    args: Object.freeze(args),
    overrides: Object.freeze(overrides.map((o) => Object.freeze(o))),
    file,
    line,
  });
}

/** Parse master.cf text; ConfigError names the file and line of a malformed entry. */
export function parseMasterCf(text: string, file: string, warnings: string[] = []): MasterEntry[] {
  return logicalLines(text, file, warnings).map((ll) => parseEntry(ll, file));
}

/** `postconf -M` output for one entry (postconf_master.c column layout, no folding). */
export function formatMasterEntry(e: MasterEntry, fold = false): string {
  const goals = [0, 11, 17, 25, 33, 41, 49, 57];
  const fields = [e.name, e.type, ...e.fields, e.command];
  let s = '';
  fields.forEach((f, k) => {
    if (s.length > 0) {
      do s += ' ';
      while (s.length < goals[k]);
    }
    s += f;
  });
  const lines = [s];
  const hasBlank = (t: string): boolean => /[ \t\r\n]/.test(t);
  let inOptions = true;
  let forceWrap = false;
  for (let k = 0; k < e.argv.length; k++) {
    const a = e.argv[k];
    let text: string;
    if (inOptions && (a[0] !== '-' || a === '--')) inOptions = false;
    if (inOptions && a === '-o' && k + 1 < e.argv.length) {
      const v = e.argv[++k];
      text = `-o ${hasBlank(v) ? `{${v}}` : v}`;
      // each -o on its own line when folding (postconf -Mf)
      if (fold) lines.push(`    ${text}`);
      else lines[lines.length - 1] += ` ${text}`;
      forceWrap = true;
      continue;
    }
    text = !inOptions && hasBlank(a) ? `{${a}}` : a;
    if (fold && (forceWrap || lines[lines.length - 1].length + 1 + text.length >= 80)) lines.push(`    ${text}`);
    else lines[lines.length - 1] += ` ${text}`;
    forceWrap = false;
  }
  return `${lines.join('\n')}\n`;
}

/** Well-known ports, so a missing /etc/services does not break the common names. */
const PORTS: Readonly<Record<string, number>> = {
  smtp: 25,
  submission: 587,
  smtps: 465,
  submissions: 465,
  imap: 143,
  imap2: 143,
  imaps: 993,
  pop3: 110,
  pop3s: 995,
  lmtp: 24,
  sieve: 4190,
};

let servicesFile: Map<string, number> | null = null;

/** TCP port names from /etc/services (read once). */
function etcServices(): Map<string, number> {
  if (servicesFile !== null) return servicesFile;
  const map = new Map<string, number>();
  try {
    for (const raw of readFileSync('/etc/services', 'utf8').split('\n')) {
      const l = raw.replace(/#.*/, '').trim().split(/\s+/);
      const m = /^(\d+)\/tcp$/.exec(l[1] ?? '');
      if (m === null) continue;
      for (const n of [l[0], ...l.slice(2)]) if (n !== '' && !map.has(n)) map.set(n, Number(m[1]));
    }
  } catch {
    // no /etc/services: only the built-in names resolve
  }
  servicesFile = map;
  return map;
}

/** A TCP service name or number → port, or null when unknown. */
export function resolvePort(service: string): number | null {
  if (/^\d+$/.test(service)) {
    const n = Number(service);
    return n > 0 && n < 65536 ? n : null;
  }
  return PORTS[service] ?? etcServices().get(service) ?? null;
}

/** Where an inet service listens: host null = every address of inet_interfaces. */
export function inetListen(e: Pick<MasterEntry, 'name' | 'file' | 'line'>): { host: string | null; port: number } {
  let host: string | null = null;
  let port: string;
  const bracket = /^\[([^\]]*)\]:(.+)$/.exec(e.name);
  if (bracket !== null) {
    host = bracket[1];
    port = bracket[2];
  } else if (e.name.includes(':')) {
    const at = e.name.lastIndexOf(':');
    host = e.name.slice(0, at);
    port = e.name.slice(at + 1);
  } else port = e.name;
  if (host === '' || host === '*') host = null;
  const n = resolvePort(port);
  if (n === null) throw new ConfigError(e.file, e.line, `unknown service: ${port}/tcp in "${e.name}"`);
  return { host, port: n };
}

/**
 * Typed values of main.cf parameters (postconf(5) "boolean", "integer", "time", lists, ...).
 * A value is checked after `$name` expansion. A bad value is reported as
 * `invalid NAME value "VALUE": what is allowed` (CONVENTIONS "Errors"); the caller adds
 * `file, line N: `.
 */
import { PosternError } from '../errors.js';
import type { ParamSpec, TimeUnit } from './params/types.js';

/** A problem with one value; the caller turns it into a ConfigError at the right line. */
export class ValueError extends PosternError {
  constructor(detail: string) {
    super('config-value', detail);
  }
}

const SEPARATORS = ' \t\r\n,';

/**
 * Split a list on whitespace and commas, keeping `{ ... }` groups (with their braces) whole, as
 * Postfix's mystrtokq(): `inline:{ a=b, c=d }` and `{ name = value }` stay one element.
 */
export function splitList(text: string, separators: string = SEPARATORS): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && separators.includes(text[i])) i++;
    if (i >= text.length) break;
    let level = 0;
    let j = i;
    for (; j < text.length; j++) {
      const c = text[j];
      if (c === '{') level++;
      else if (c === '}') {
        if (level > 0) level--;
      } else if (level === 0 && separators.includes(c)) break;
    }
    out.push(text.slice(i, j));
    i = j;
  }
  return out;
}

/** `a, b or c` for error messages (empty choices left out). */
export function choices(values: readonly string[]): string {
  const v = values.filter((x) => x !== '');
  if (v.length <= 1) return v.join('');
  return `${v.slice(0, -1).join(', ')} or ${v[v.length - 1]}`;
}

const TIME_UNITS: Readonly<Record<TimeUnit, number>> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

export function parseBool(name: string, text: string): boolean {
  // mail_conf_bool.c compares case-insensitively.
  const t = text.toLowerCase();
  if (t === 'yes') return true;
  if (t === 'no') return false;
  throw new ValueError(`invalid ${name} value "${text}": expected yes or no`);
}

function checkRange(name: string, text: string, n: number, min: number | undefined, max: number | undefined, show: (n: number) => string): void {
  if (min !== undefined && n < min) throw new ValueError(`invalid ${name} value "${text}": expected at least ${show(min)}`);
  if (max !== undefined && n > max) throw new ValueError(`invalid ${name} value "${text}": expected at most ${show(max)}`);
}

export function parseInt32(name: string, text: string, min?: number, max?: number): number {
  if (!/^[+-]?\d+$/.test(text)) throw new ValueError(`invalid ${name} value "${text}": expected a number`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || Math.abs(n) > 2147483647) throw new ValueError(`invalid ${name} value "${text}": number out of range`);
  checkRange(name, text, n, min, max, String);
  return n;
}

/** Time in seconds; a bare number is in `unit` (postconf(5) "Time units"). */
export function parseTime(name: string, text: string, unit: TimeUnit, min?: number, max?: number): number {
  const m = /^(\d+)([smhdw]?)$/.exec(text);
  if (m === null) throw new ValueError(`invalid ${name} value "${text}": bad time value or unit; expected a number with an optional unit s, m, h, d or w (a bare number means ${unit})`);
  const seconds = Number(m[1]) * TIME_UNITS[(m[2] || unit) as TimeUnit];
  if (!Number.isSafeInteger(seconds) || seconds > 2147483647) throw new ValueError(`invalid ${name} value "${text}": time out of range`);
  checkRange(name, text, seconds, min, max, (n) => `${n}s`);
  return seconds;
}

/** Bytes; Postfix sizes take no unit suffix. */
export function parseSize(name: string, text: string, min?: number, max?: number): number {
  if (!/^\d+$/.test(text)) throw new ValueError(`invalid ${name} value "${text}": expected a number of bytes (no unit)`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new ValueError(`invalid ${name} value "${text}": number out of range`);
  checkRange(name, text, n, min, max, String);
  return n;
}

/** Matched case-insensitively by Postfix: cipher grades (tls_misc.c), smtpd_forbid_bare_newline (postconf(5)). */
const CASE_INSENSITIVE_ENUMS = new Set(['smtpd_tls_ciphers', 'smtpd_tls_mandatory_ciphers', 'smtp_tls_ciphers', 'smtp_tls_mandatory_ciphers', 'smtpd_forbid_bare_newline']);

/** Element checks for list parameters whose words come from a fixed set. */
const LIST_WORDS: Readonly<Record<string, readonly string[]>> = {
  inet_protocols: ['all', 'ipv4', 'ipv6'],
  notify_classes: ['bounce', '2bounce', 'data', 'delay', 'policy', 'protocol', 'resource', 'software'],
  allow_mail_to_commands: ['alias', 'forward', 'include'],
  allow_mail_to_files: ['alias', 'forward', 'include'],
  smtp_host_lookup: ['dns', 'native'],
};

/** A table-list element: `type:name` (also `type:{ inline }`, `proxy:type:name`). */
const TABLE_SPEC = /^[A-Za-z][A-Za-z0-9_-]*:./s;

/**
 * Parse an expanded value by its registry spec. `warn` receives non-fatal findings
 * (Postfix's warning text without the `warning: ` prefix).
 */
export function parseValue(name: string, spec: ParamSpec<unknown>, text: string, warn: (text: string) => void = () => {}): unknown {
  switch (spec.type) {
    case 'bool':
      return parseBool(name, text);
    case 'int':
      return parseInt32(name, text, spec.min, spec.max);
    case 'time':
      return parseTime(name, text, spec.unit ?? 's', spec.min, spec.max);
    case 'size':
      return parseSize(name, text, spec.min, spec.max);
    case 'string':
      return text;
    case 'enum':
      return parseEnum(name, spec.values ?? [], text, warn);
    case 'list': {
      const items = Object.freeze(splitList(text));
      const words = LIST_WORDS[name];
      if (words !== undefined) {
        for (const item of items) {
          if (!words.includes(item.toLowerCase())) throw new ValueError(`invalid ${name} value "${item}": expected ${choices(words)}`);
        }
      }
      return items;
    }
    case 'table-list': {
      const items = Object.freeze(splitList(text));
      for (const item of items) {
        if (!TABLE_SPEC.test(item)) throw new ValueError(`invalid ${name} value "${item}": expected type:table (for example texthash:/etc/postfix/file)`);
      }
      return items;
    }
  }
}

function parseEnum(name: string, values: readonly string[], text: string, warn: (text: string) => void): string {
  // postconf(5): "yes" is a compatibility alias for "normalize".
  if (name === 'smtpd_forbid_bare_newline' && text === 'yes') return 'normalize';
  if (values.includes(text)) return text;
  if (CASE_INSENSITIVE_ENUMS.has(name)) {
    const lower = text.toLowerCase();
    if (values.includes(lower)) return name === 'smtpd_forbid_bare_newline' && lower === 'yes' ? 'normalize' : lower;
  }
  // smtpd.c: the server has no use for peer-matching levels and treats them as encrypt.
  if (name === 'smtpd_tls_security_level' && ['fingerprint', 'verify', 'secure'].includes(text)) {
    warn(`${name}: unsupported TLS level "${text}", using "encrypt"`);
    return 'encrypt';
  }
  throw new ValueError(`invalid ${name} value "${text}": expected ${choices(values)}`);
}

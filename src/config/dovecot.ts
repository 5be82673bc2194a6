/**
 * A minimal dovecot.conf reader: only what Postern needs to share Dovecot's user database, the
 * first `passdb { driver = passwd-file  args = [scheme=X] [key=value...] FILE }` block. Other
 * sections are skipped (braces are tracked so nested blocks do not confuse it); `!include` lines
 * are ignored. Errors are ConfigErrors: `dovecot.conf, line N: ...`.
 */
import * as path from 'node:path';
import { ConfigError } from '../errors.js';

export interface DovecotPassdb {
  /** The passwd-file, absolute. */
  readonly file: string;
  /** `scheme=X` from args: the scheme of passwords stored without `{SCHEME}` (Dovecot default CRYPT). */
  readonly scheme: string;
  /** Where the block is: `dovecot.conf, line N`. */
  readonly origin: { readonly file: string; readonly line: number };
}

/** Dovecot's default scheme for passwd-file passwords without a {SCHEME} prefix. */
export const PASSWD_FILE_DEFAULT_SCHEME = 'CRYPT';

/** Strip a `#` comment that is not inside double quotes. */
function stripComment(line: string): string {
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') q = !q;
    else if (c === '#' && !q) return line.slice(0, i);
  }
  return line;
}

/**
 * The passwd-file passdb of a dovecot.conf text, or null when it has none.
 * `file` names the config for messages and resolves a relative passwd-file path.
 */
export function parseDovecotPassdb(text: string, file: string): DovecotPassdb | null {
  const lines = text.split(/\r?\n/);
  let depth = 0;
  /** The passdb block being read: its depth, start line and settings. */
  let block: { depth: number; line: number; settings: Map<string, { value: string; line: number }> } | null = null;
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const line = stripComment(lines[i]!).trim();
    if (line === '' || line.startsWith('!include')) continue;
    const open = /^([A-Za-z0-9_-]+)(?:\s+[^{}=]*)?\s*\{$/.exec(line);
    if (open) {
      depth++;
      if (block === null && open[1] === 'passdb') block = { depth, line: n, settings: new Map() };
      continue;
    }
    if (line === '}') {
      if (depth === 0) throw new ConfigError(file, n, "unexpected '}'");
      if (block !== null && block.depth === depth) {
        const found = finish(block, file);
        if (found !== null) return found;
        block = null;
      }
      depth--;
      continue;
    }
    const kv = /^([A-Za-z0-9_/-]+)\s*=\s*(.*)$/.exec(line);
    if (!kv) throw new ConfigError(file, n, `cannot parse "${line.slice(0, 60)}"; expected "name = value", "section {" or "}"`);
    if (block !== null && depth === block.depth) block.settings.set(kv[1]!, { value: kv[2]!.replace(/^"(.*)"$/, '$1'), line: n });
  }
  if (depth > 0) throw new ConfigError(file, lines.length, "missing '}' at end of file");
  return null;
}

function finish(block: { line: number; settings: Map<string, { value: string; line: number }> }, file: string): DovecotPassdb | null {
  const driver = block.settings.get('driver')?.value;
  if (driver !== 'passwd-file') return null;
  const args = block.settings.get('args');
  if (args === undefined || args.value.trim() === '') throw new ConfigError(file, block.line, 'passdb with driver = passwd-file has no args (the passwd-file path)');
  let scheme = PASSWD_FILE_DEFAULT_SCHEME;
  let passwd: string | null = null;
  for (const word of args.value.trim().split(/\s+/)) {
    const m = /^([a-z_]+)=(.*)$/.exec(word);
    if (m && passwd === null) {
      if (m[1] === 'scheme') scheme = m[2]!.toUpperCase();
      continue;
    }
    passwd = word;
  }
  if (passwd === null) throw new ConfigError(file, args.line, `passdb args "${args.value}" name no passwd-file`);
  if (passwd.includes('%')) throw new ConfigError(file, args.line, `passwd-file path ${passwd}: %variables are not supported by Postern; name one file`);
  return { file: path.resolve(path.dirname(file), passwd), scheme, origin: { file, line: block.line } };
}

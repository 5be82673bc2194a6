/**
 * Dovecot passwd-file user databases (doc.dovecot.org "passwd-file"): one user per line,
 * `user:password:uid:gid:gecos:home:shell:extra_fields`, only user and password needed; `#`
 * comments and blank lines are skipped. A password is `{SCHEME}value` or a bare value in the
 * database's default scheme.
 *
 * UserDb reads the file once and again whenever its mtime, size or inode changes (checked at each
 * authentication, so `postern user passwd` takes effect at once); a reload that fails keeps the
 * previous contents and warns. Unknown or unusable schemes make that one user fail, with a warning
 * that names the file, line and scheme. User names are compared in lower case, as Dovecot's default
 * auth_username_format = %Lu.
 */
import * as fs from 'node:fs';
import { PosternError } from '../errors.js';
import { strerror } from '../log/strerror.js';
import { DEFAULT_SCHEME, hashPassword, splitScheme, type VerifyResult, verifyPassword } from './schemes.js';
import { verifyPasswordAsync } from './verify-worker.js';

export interface PasswdEntry {
  readonly user: string;
  /** The password field as written (`{SCHEME}value` or a bare value). */
  readonly password: string;
  /** The fields after the password, kept as written (uid, gid, gecos, home, shell, extra). */
  readonly rest: readonly string[];
  readonly line: number;
}

export interface ParsedPasswdFile {
  readonly entries: ReadonlyMap<string, PasswdEntry>;
  /** `file, line N: ...` texts about lines that were skipped. */
  readonly warnings: readonly string[];
}

/** Parse passwd-file text. Never throws: bad lines are skipped with a warning. */
export function parsePasswdFile(text: string, file: string): ParsedPasswdFile {
  const entries = new Map<string, PasswdEntry>();
  const warnings: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim() === '' || raw.trimStart().startsWith('#')) continue;
    const fields = raw.split(':');
    const user = fields[0]!;
    if (user === '' || /[\s]/.test(user)) {
      warnings.push(`${file}, line ${n}: ${user === '' ? 'empty user name' : `user name "${user}" contains white space`}; line skipped`);
      continue;
    }
    if (fields.length < 2 || fields[1] === '') {
      warnings.push(`${file}, line ${n}: user ${user} has no password; line skipped`);
      continue;
    }
    const key = user.toLowerCase();
    if (entries.has(key)) {
      warnings.push(`${file}, line ${n}: user ${user} exists more than once; the first (line ${entries.get(key)!.line}) is used`);
      continue;
    }
    entries.set(key, { user, password: fields[1]!, rest: fields.slice(2), line: n });
  }
  return { entries, warnings };
}

/** One passwd-file line for `entry` (used by `postern user`). */
export function formatPasswdLine(user: string, password: string, rest: readonly string[] = []): string {
  return [user, password, ...rest].join(':');
}

export type VerifyOutcome = 'ok' | 'mismatch' | 'unknown-user' | 'unusable';

export interface UserDbOptions {
  /** Scheme of passwords without `{SCHEME}` (Dovecot passwd-file default: CRYPT). */
  readonly defaultScheme: string;
  /** Where warnings go (log `warning:`). */
  readonly warn: (text: string) => void;
}

/** A passwd-file, re-read when it changes. */
export class UserDb {
  private entries: ReadonlyMap<string, PasswdEntry> = new Map();
  private stamp = '';

  private constructor(
    readonly file: string,
    private readonly opts: UserDbOptions,
  ) {}

  /** Open and read `file` now. Throws PosternError('auth') when it cannot be read. */
  static open(file: string, opts: UserDbOptions): UserDb {
    const db = new UserDb(file, opts);
    let st: fs.Stats;
    let text: string;
    try {
      st = fs.statSync(file);
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new PosternError('auth', `cannot read user database ${file}: ${strerror(e)}`, { cause: e });
    }
    db.load(text, st);
    return db;
  }

  private load(text: string, st: fs.Stats): void {
    const parsed = parsePasswdFile(text, this.file);
    for (const w of parsed.warnings) this.opts.warn(w);
    this.entries = parsed.entries;
    this.stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
  }

  /** Re-read the file when its mtime/size/inode changed. */
  private refresh(): void {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.file);
    } catch (e) {
      this.opts.warn(`${this.file}: cannot stat user database: ${strerror(e)}; using the last contents read`);
      return;
    }
    if (`${st.mtimeMs}:${st.size}:${st.ino}` === this.stamp) return;
    try {
      this.load(fs.readFileSync(this.file, 'utf8'), st);
    } catch (e) {
      this.opts.warn(`${this.file}: cannot read user database: ${strerror(e)}; using the last contents read`);
    }
  }

  /** Number of users (after a refresh). */
  get size(): number {
    this.refresh();
    return this.entries.size;
  }

  /** The canonical (lower-case) login name when the user exists. */
  has(user: string): boolean {
    this.refresh();
    return this.entries.has(user.toLowerCase());
  }

  /**
   * Check a login. An unknown user still costs one SHA512-CRYPT computation, so response times do
   * not tell which users exist.
   */
  verify(user: string, password: string): VerifyOutcome {
    this.refresh();
    const e = this.entries.get(user.toLowerCase());
    if (e === undefined) {
      verifyPassword(DUMMY_HASH, password, DEFAULT_SCHEME);
      return 'unknown-user';
    }
    return this.judge(e, verifyPassword(e.password, password, this.opts.defaultScheme));
  }

  /** verify(), with the hash computed in a worker thread (smtpd: the event loop keeps serving). */
  async verifyAsync(user: string, password: string): Promise<VerifyOutcome> {
    this.refresh();
    const e = this.entries.get(user.toLowerCase());
    if (e === undefined) {
      await verifyPasswordAsync(DUMMY_HASH, password, DEFAULT_SCHEME);
      return 'unknown-user';
    }
    return this.judge(e, await verifyPasswordAsync(e.password, password, this.opts.defaultScheme));
  }

  private judge(e: PasswdEntry, r: VerifyResult): VerifyOutcome {
    if (r.kind === 'unsupported') {
      const { scheme } = splitScheme(e.password, this.opts.defaultScheme);
      this.opts.warn(`${this.file}, line ${e.line}: user ${e.user}: password scheme ${scheme}: ${r.detail}; authentication fails`);
      return 'unusable';
    }
    return r.kind;
  }
}

/** A hash no password matches in practice; verified for unknown users to even out timing. */
const DUMMY_HASH = hashPassword(DEFAULT_SCHEME, 'postern-no-such-user');

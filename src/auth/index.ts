/**
 * Where smtpd's SASL user database comes from, and opening it.
 *
 * - `smtpd_sasl_type = dovecot` and `$config_directory/dovecot.conf` has a
 *   `passdb { driver = passwd-file  args = [scheme=X] FILE }`: that FILE, with X as the scheme of
 *   passwords without `{SCHEME}` (Postern shares the file with a Dovecot IMAP server).
 * - otherwise `smtpd_sasl_path` names the passwd-file (absolute, or relative to config_directory);
 *   bare passwords are CRYPT as in Dovecot's passwd-file.
 *
 * Reads: dovecot.conf, the passwd-file. Never logs passwords.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type DovecotPassdb, PASSWD_FILE_DEFAULT_SCHEME, parseDovecotPassdb } from '../config/dovecot.js';
import type { Params } from '../config/types.js';
import { PosternError } from '../errors.js';
import { strerror } from '../log/strerror.js';
import { UserDb } from './passwd-file.js';

export { DEFAULT_SCHEME, hashPassword, SCHEMES, verifyPassword } from './schemes.js';
export { formatPasswdLine, type PasswdEntry, parsePasswdFile, UserDb, type VerifyOutcome } from './passwd-file.js';

export interface UserDbLocation {
  readonly file: string;
  readonly defaultScheme: string;
  /** What chose the file, for messages: `smtpd_sasl_path` or `dovecot.conf, line N`. */
  readonly source: string;
}

type SaslParams = Pick<Params, 'config_directory' | 'smtpd_sasl_type' | 'smtpd_sasl_path'>;

/** The passdb of $config_directory/dovecot.conf, or null when there is none. Throws ConfigError. */
export function dovecotPassdb(configDir: string): DovecotPassdb | null {
  const file = path.join(configDir, 'dovecot.conf');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  return parseDovecotPassdb(text, file);
}

/** Which passwd-file smtpd uses. Throws ConfigError for a broken dovecot.conf. */
export function locateUserDb(p: SaslParams): UserDbLocation {
  if (p.smtpd_sasl_type === 'dovecot') {
    const db = dovecotPassdb(p.config_directory);
    if (db !== null) return { file: db.file, defaultScheme: db.scheme, source: `${db.origin.file}, line ${db.origin.line}` };
  }
  return { file: path.resolve(p.config_directory, p.smtpd_sasl_path), defaultScheme: PASSWD_FILE_DEFAULT_SCHEME, source: 'smtpd_sasl_path' };
}

/**
 * Open smtpd's user database. Throws PosternError('auth') with a message that names the
 * parameter when it cannot be read (postern run / check refuse to start).
 */
export function openUserDb(p: SaslParams, warn: (text: string) => void): UserDb {
  const loc = locateUserDb(p);
  try {
    return UserDb.open(loc.file, { defaultScheme: loc.defaultScheme, warn });
  } catch (e) {
    const how =
      loc.source === 'smtpd_sasl_path'
        ? `smtpd_sasl_path = ${p.smtpd_sasl_path} names ${loc.file}`
        : `the passdb passwd-file of ${loc.source} is ${loc.file}`;
    throw new PosternError(
      'auth',
      `smtpd_sasl_auth_enable = yes, but the SASL user database cannot be read: ${how}: ${strerror(e instanceof PosternError && e.cause !== undefined ? e.cause : e)}; ` +
        'set smtpd_sasl_path to a Dovecot passwd-file (postern user add creates one), or smtpd_sasl_type = dovecot with a passdb passwd-file in dovecot.conf',
    );
  }
}

/**
 * For `postern check`: the reason smtpd would refuse to start because of SMTP AUTH (no readable
 * user database, a broken dovecot.conf), or null when AUTH is off or its database opens.
 */
export function checkUserDb(p: SaslParams & Pick<Params, 'smtpd_sasl_auth_enable'>): string | null {
  if (!p.smtpd_sasl_auth_enable) return null;
  const warnings: string[] = [];
  try {
    openUserDb(p, (t) => warnings.push(t));
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}

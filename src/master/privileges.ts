/**
 * mail_owner: who Postern runs as after binding its ports when started as root.
 *
 * Postfix checks mail_owner at start (mail_params.c check_mail_owner) and refuses an unknown user or
 * one with user or group ID 0; its daemons then run as that user with only its primary group
 * (set_ugid.c: setgroups(1, &gid), setgid, setuid). Postern does the same in its one process, after
 * every listener is bound and every daemon has read its files.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { PosternError } from '../errors.js';

export interface Account {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

function parsePasswdLine(line: string): Account | null {
  const f = line.split(':');
  if (f.length < 7) return null;
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return null;
  return { name: f[0]!, uid, gid };
}

/**
 * The passwd entry of a user name: `getent passwd NAME` (so NSS sources such as LDAP count, as
 * getpwnam(3) would), else /etc/passwd when getent is missing. null when there is no such user.
 */
export function lookupUser(name: string): Account | null {
  if (name === '' || name.includes(':') || name.includes('\n')) return null;
  try {
    const out = execFileSync('getent', ['passwd', '--', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    const a = parsePasswdLine(out.split('\n')[0] ?? '');
    return a !== null && a.name === name ? a : null;
  } catch (err) {
    // getent exits 2 for "not found"; ENOENT means there is no getent: read the file.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return null;
  }
  let text: string;
  try {
    text = fs.readFileSync('/etc/passwd', 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const a = parsePasswdLine(line);
    if (a !== null && a.name === name) return a;
  }
  return null;
}

/**
 * Validates mail_owner as Postfix does. Message texts follow mail_params.c:
 *   `file /etc/postern/main.cf: parameter mail_owner: unknown user name value: NAME`
 *   `file /etc/postern/main.cf: parameter mail_owner: user root has privileged user ID`
 *   `file /etc/postern/main.cf: parameter mail_owner: user NAME has privileged group ID`
 */
export function checkMailOwner(name: string, mainCfPath: string, lookup: (n: string) => Account | null = lookupUser): Account {
  const where = `file ${mainCfPath}: parameter mail_owner`;
  const a = lookup(name);
  if (a === null) throw new PosternError('mail_owner', `${where}: unknown user name value: ${name}`);
  if (a.uid === 0) throw new PosternError('mail_owner', `${where}: user ${name} has privileged user ID`);
  if (a.gid === 0) throw new PosternError('mail_owner', `${where}: user ${name} has privileged group ID`);
  return a;
}

/** True when this process can and should drop privileges (real root on a POSIX system). */
export function runningAsRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Becomes `account` for good: supplementary groups reduced to its primary group, then gid, then uid
 * (the order matters: after setuid a process may no longer change its groups). Throws PosternError
 * when any step fails or root privileges remain.
 */
export function dropPrivileges(account: Account): void {
  const { setgroups, setgid, setuid } = process;
  if (setgroups === undefined || setgid === undefined || setuid === undefined) {
    throw new PosternError('privileges', 'cannot change user ID on this platform');
  }
  try {
    setgroups([account.gid]);
    setgid(account.gid);
    setuid(account.uid);
  } catch (err) {
    throw new PosternError('privileges', `set user ID ${account.uid} group ID ${account.gid} (${account.name}): ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (process.getuid?.() !== account.uid || process.geteuid?.() !== account.uid || process.getgid?.() !== account.gid) {
    throw new PosternError('privileges', `set user ID ${account.uid} group ID ${account.gid} (${account.name}): still privileged`);
  }
}

/**
 * Directory creation for mailboxes (Postfix util/make_dirs.c): create each missing component with
 * the given mode, owned by the mailbox owner when running as root (Postfix creates them while
 * running as the recipient), and make each new entry durable (fsync of its parent).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { DirSync } from '../io/durable.js';

export interface MailboxOwner {
  readonly uid: number;
  readonly gid: number;
}

/** Whether files we create must be given to `owner` (we are root and the owner is not). */
export function mustChown(owner: MailboxOwner | null | undefined): owner is MailboxOwner {
  if (owner === null || owner === undefined) return false;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return false;
  return owner.uid !== 0 || owner.gid !== 0;
}

/**
 * Would `owner` have the permission `bits` (W_OK | X_OK style, 0-7) on a file with this stat?
 * The owner, group or other bits as the kernel picks them (supplementary groups not considered).
 */
export function ownerMay(st: { uid: number; gid: number; mode: number }, owner: MailboxOwner, bits: number): boolean {
  if (owner.uid === 0) return true;
  if (st.uid === owner.uid) return ((st.mode >> 6) & bits) === bits;
  if (st.gid === owner.gid) return ((st.mode >> 3) & bits) === bits;
  return (st.mode & bits) === bits;
}

/**
 * Create `dir` and its missing parents (mode `mode`). Idempotent. Running as root for another
 * owner, a directory is only created where the owner could have created it (write and search
 * permission on its parent, as Postfix's make_dirs() running as the recipient), and is then
 * given to the owner; otherwise EACCES, so mail for an account whose home is `/nonexistent`
 * does not make root create it.
 */
export async function makeDirs(dir: string, mode: number, owner: MailboxOwner | null | undefined, dirSync: DirSync): Promise<void> {
  const target = path.resolve(dir);
  const missing: string[] = [];
  for (let d = target; ; d = path.dirname(d)) {
    try {
      const st = await fsp.stat(d);
      if (!st.isDirectory()) throw Object.assign(new Error(`${d}: not a directory`), { code: 'ENOTDIR' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || path.dirname(d) === d) throw err;
      missing.push(d);
    }
  }
  for (const d of missing.reverse()) {
    if (mustChown(owner) && !ownerMay(await fsp.stat(path.dirname(d)), owner, 0o3)) {
      throw Object.assign(new Error(`mkdir ${d}: permission denied for uid ${owner.uid}`), { code: 'EACCES' });
    }
    try {
      await fsp.mkdir(d, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      continue; // a concurrent delivery made it
    }
    if (mustChown(owner)) await fsp.chown(d, owner.uid, owner.gid);
    await dirSync.sync(path.dirname(d));
  }
}

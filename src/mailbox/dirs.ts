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

/** Create `dir` and its missing parents (mode `mode`, chowned to `owner` as root). Idempotent. */
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

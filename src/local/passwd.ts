/**
 * getpwnam()/getpwuid() for the local delivery agent: Node has neither, so the passwd(5) file is
 * read (default /etc/passwd; NSS sources such as LDAP are not consulted). The file is re-read when
 * its mtime or size changes, checked at most once a second.
 */
import * as fsp from 'node:fs/promises';

export interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly gecos: string;
  readonly dir: string;
  readonly shell: string;
}

/** Parse passwd(5) text; malformed lines are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const f = line.split(':');
    if (f.length < 7) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (f[0] === '' || !Number.isSafeInteger(uid) || !Number.isSafeInteger(gid) || f[2] === '' || f[3] === '') continue;
    out.push({ name: f[0]!, uid, gid, gecos: f[4]!, dir: f[5]!, shell: f.slice(6).join(':') });
  }
  return out;
}

export class PasswdFile {
  private byName = new Map<string, PasswdEntry>();
  private byUid = new Map<number, PasswdEntry>();
  private stamp = '';
  private checkedAt = Number.NEGATIVE_INFINITY;
  private loading: Promise<void> | null = null;

  constructor(readonly file: string = '/etc/passwd') {}

  private async refresh(): Promise<void> {
    const now = Date.now();
    if (now - this.checkedAt < 1000) return;
    if (this.loading) return this.loading;
    this.loading = (async () => {
      try {
        const st = await fsp.stat(this.file);
        const stamp = `${st.mtimeMs}/${st.size}/${st.ino}`;
        if (stamp !== this.stamp) {
          const entries = parsePasswd(await fsp.readFile(this.file, 'utf8'));
          const byName = new Map<string, PasswdEntry>();
          const byUid = new Map<number, PasswdEntry>();
          for (const e of entries) {
            if (!byName.has(e.name)) byName.set(e.name, e);
            if (!byUid.has(e.uid)) byUid.set(e.uid, e);
          }
          this.byName = byName;
          this.byUid = byUid;
          this.stamp = stamp;
        }
        this.checkedAt = Date.now();
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  /** The account named `name` (exact match, as getpwnam), or null. Throws when the file cannot be read. */
  async getpwnam(name: string): Promise<PasswdEntry | null> {
    await this.refresh();
    return this.byName.get(name) ?? null;
  }

  async getpwuid(uid: number): Promise<PasswdEntry | null> {
    await this.refresh();
    return this.byUid.get(uid) ?? null;
  }
}

const shared = new Map<string, PasswdFile>();

/** One PasswdFile per path for the process. */
export function passwdFile(file = '/etc/passwd'): PasswdFile {
  let p = shared.get(file);
  if (!p) {
    p = new PasswdFile(file);
    shared.set(file, p);
  }
  return p;
}

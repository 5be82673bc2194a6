/**
 * pickup: maildrop/ → cleanup, as Postfix's pickup(8).
 *
 * What it does: takes the files `postern sendmail` leaves in queue_directory/maildrop/
 * (./maildrop.ts), oldest first, and hands each to cleanup as a local submission: the sender and
 * recipients canonicalised (append_at_myorigin, append_dot_mydomain), duplicates dropped, a
 * `Received: by $myhostname ($mail_name, from userid N)` field first, and Message-Id:, Date:,
 * From: added when missing. Logs `QID: uid=N from=<sender>` (Postfix pickup.c; pflogsumm counts
 * it as received) before cleanup's `message-id=` line. The maildrop file is removed only after
 * cleanup's commit is durable: a crash in between may queue the message twice, never lose it.
 *
 * When: a scan at start, then on every change fs.watch reports in maildrop/, and every 60 s
 * (Postfix's master.cf wakeup time for pickup) in case an event was missed (network file
 * systems, inotify limits). One scan runs at a time; it repeats while it removes files.
 *
 * Bad files: a file that is not a complete maildrop file (truncated, garbage, a symlink, a file
 * with several links, an envelope that does not check) is moved to corrupt/ with a warning; so is a
 * file cleanup refuses for good (5xx: too big, too many hops, no recipients), where Postfix would
 * bounce it; and a file pickup may not read (EACCES: not made by sendmail, which writes 0644),
 * where Postfix would warn about it at every scan. A temporary failure (disk full, 4xx, EMFILE)
 * leaves the file for the next scan. Temporary files of a sendmail that died (`*.tmp`) are
 * removed after a day.
 *
 * Trust: nothing in a maildrop file. The submitting user is the file's owner (fstat). maildrop/ is
 * made mode 1733 (world-writable, sticky, not listable): Postfix makes it 0730 group postdrop and
 * lets users in through the set-gid postdrop program, which a Node program cannot be; with the
 * sticky bit users cannot remove each other's files, without the read bit they cannot list them,
 * and the random file names (./maildrop.ts) keep them from opening them.
 *
 * Disk: reads and removes maildrop/ files, moves bad ones to corrupt/; queue files only through
 * cleanup. main.cf parameters: queue_directory, myhostname, myorigin, mydomain, mail_name,
 * append_at_myorigin, append_dot_mydomain (and cleanup's).
 *
 * Run it after the master has dropped privileges (it creates the queue directories if missing).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Cleanup, type CleanupInput, type CleanupTxn } from '../cleanup/index.js';
import { mailDate, quote822Local } from '../cleanup/headers.js';
import type { Config, Params } from '../config/types.js';
import type { Daemon, DaemonFactory } from '../master/daemon.js';
import { PosternError } from '../errors.js';
import type { Log, Logger } from '../log/index.js';
import { strerror } from '../log/strerror.js';
import { ReplyError } from '../proto/smtp/reply.js';
import { createQueueDirectories, queueDirPath } from '../queue/directories.js';
import type { EnvelopeRecipient } from '../queue/envelope.js';
import { MAILDROP_NAME_RE, MAILDROP_TEMP_RE, type MaildropFile, openMaildropFile } from './maildrop.js';

export { MaildropWriter, type MaildropEnvelope, openMaildropFile } from './maildrop.js';

/** Postfix master.cf: `pickup unix n - y 60 1 pickup` (wakeup every 60 s). */
export const PICKUP_WAKEUP_MS = 60_000;
/** A `*.tmp` file this old belongs to a sendmail that died. */
export const STALE_TEMP_MS = 24 * 3600 * 1000;
/** maildrop/: world-writable, sticky, not listable (see the top of this file). */
export const MAILDROP_MODE = 0o1733;

export interface PickupOptions {
  readonly config: Pick<Config, 'params'>;
  readonly log: Log;
  /** The process's cleanup; default: a new Cleanup over config.params. */
  readonly cleanup?: Cleanup;
  /** Periodic rescan (default 60 s). */
  readonly wakeupMs?: number;
  /** Use fs.watch (default true). Tests turn it off to drive scans themselves. */
  readonly watch?: boolean;
  /** The service's syslog_name (master.cf `-o syslog_name=...`). */
  readonly syslog_name?: string;
}

export interface Pickup {
  /** Resolves after the first scan. */
  readonly ready: Promise<void>;
  /** Run a scan now (or after the running one); resolves when the maildrop was looked at. */
  scan(): Promise<void>;
  /** New parameters (SIGHUP); a Cleanup made by pickup is made anew. */
  reload(config: Pick<Config, 'params'>): void;
  /** Stop watching; resolves after the file in progress is done. */
  stop(): Promise<void>;
}

type Outcome = 'removed' | 'kept' | 'gone';

/** Postfix trivial-rewrite, local context: `user` → `user@$myorigin`, `user@host` → `user@host.$mydomain` (when enabled). */
export function canonicalAddress(address: string, params: Params): string {
  if (address === '') return address;
  const at = address.lastIndexOf('@');
  if (at < 0) {
    if (!params.append_at_myorigin) return address;
    const origin = params.myorigin !== '' ? params.myorigin : params.myhostname;
    return `${address}@${origin}`;
  }
  const domain = address.slice(at + 1);
  if (params.append_dot_mydomain && domain !== '' && !domain.includes('.') && !domain.startsWith('[') && params.mydomain !== '') {
    return `${address}.${params.mydomain}`;
  }
  return address;
}

const NON_ASCII = /[^\x00-\x7f]/;

class PickupService implements Pickup {
  readonly ready: Promise<void>;
  private params: Params;
  private cleanup: Cleanup;
  private readonly ownCleanup: boolean;
  private readonly logger: Logger;
  private readonly dir: string;
  private readonly corruptDir: string;
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: PickupOptions) {
    this.params = o.config.params;
    this.ownCleanup = o.cleanup === undefined;
    this.cleanup = o.cleanup ?? new Cleanup({ queue_directory: this.params.queue_directory, params: this.params, log: o.log });
    this.logger = o.log.logger('pickup', o.syslog_name !== undefined ? { syslog_name: o.syslog_name } : {});
    this.dir = queueDirPath(this.params.queue_directory, 'maildrop');
    this.corruptDir = queueDirPath(this.params.queue_directory, 'corrupt');
    this.ready = this.start();
  }

  private async start(): Promise<void> {
    try {
      await createQueueDirectories(this.params.queue_directory);
      const st = await fsp.stat(this.dir);
      if ((st.mode & 0o7777) !== MAILDROP_MODE) await fsp.chmod(this.dir, MAILDROP_MODE);
    } catch (err) {
      this.logger.warning(`${this.dir}: ${strerror(err)}`);
    }
    if (this.stopped) return;
    if (this.o.watch !== false) {
      try {
        this.watcher = fs.watch(this.dir, { persistent: false }, () => {
          void this.scan();
        });
        this.watcher.on('error', (err) => {
          this.logger.warning(`watch ${this.dir}: ${strerror(err)}; scanning every ${Math.round((this.o.wakeupMs ?? PICKUP_WAKEUP_MS) / 1000)}s`);
          this.watcher?.close();
          this.watcher = null;
        });
      } catch (err) {
        this.logger.warning(`watch ${this.dir}: ${strerror(err)}; scanning every ${Math.round((this.o.wakeupMs ?? PICKUP_WAKEUP_MS) / 1000)}s`);
      }
    }
    this.timer = setInterval(() => void this.scan(), this.o.wakeupMs ?? PICKUP_WAKEUP_MS);
    this.timer.unref();
    await this.scan();
  }

  scan(): Promise<void> {
    if (this.stopped) return this.running ?? Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = (async () => {
      do {
        this.again = false;
        try {
          // As Postfix's pickup: keep scanning while files go away (new ones may have come).
          while (!this.stopped && (await this.scanOnce()) > 0);
        } catch (err) {
          this.logger.warning(`scan ${this.dir}: ${strerror(err)}`);
        }
      } while (this.again && !this.stopped);
    })();
    this.running = run.finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** One pass over maildrop/, oldest file first. Returns the number of files removed. */
  private async scanOnce(): Promise<number> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    const now = Date.now();
    const files: { name: string; mtimeMs: number }[] = [];
    for (const name of names) {
      if (MAILDROP_NAME_RE.test(name)) {
        try {
          files.push({ name, mtimeMs: (await fsp.lstat(path.join(this.dir, name))).mtimeMs });
        } catch {
          // gone meanwhile
        }
      } else if (MAILDROP_TEMP_RE.test(name)) {
        const file = path.join(this.dir, name);
        try {
          if (now - (await fsp.lstat(file)).mtimeMs > STALE_TEMP_MS) await fsp.unlink(file);
        } catch {
          // gone meanwhile, or not ours to remove
        }
      }
      // Anything else is left for the admin, as Postfix's pickup does.
    }
    files.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    let removed = 0;
    for (const f of files) {
      if (this.stopped) break;
      if ((await this.pickupFile(f.name)) === 'removed') removed++;
    }
    return removed;
  }

  private async moveAside(name: string, uid: number | null, why: string): Promise<Outcome> {
    const from = path.join(this.dir, name);
    const to = path.join(this.corruptDir, name);
    const who = uid === null ? '' : `uid=${uid}: `;
    try {
      await fsp.rename(from, to);
      this.logger.warning(`maildrop/${name}: ${who}${why} -- moved to corrupt/${name}`);
      return 'removed';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
      this.logger.warning(`maildrop/${name}: ${who}${why}; cannot move it to corrupt/: ${strerror(err)}`);
      return 'kept';
    }
  }

  private async pickupFile(name: string): Promise<Outcome> {
    const file = path.join(this.dir, name);
    let md: MaildropFile;
    try {
      md = await openMaildropFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return 'gone';
      if (code === 'EMFILE' || code === 'ENFILE' || code === 'EIO') {
        this.logger.warning(`open input file maildrop/${name}: ${strerror(err)}`);
        return 'kept';
      }
      if (code === 'ELOOP') return this.moveAside(name, null, 'symbolic link');
      const why = err instanceof PosternError ? err.message.slice(file.length + 2) : strerror(err);
      let uid: number | null = null;
      try {
        uid = (await fsp.lstat(file)).uid;
      } catch {
        // gone
      }
      return this.moveAside(name, uid, why);
    }
    try {
      return await this.copy(md);
    } finally {
      await md.close().catch(() => undefined);
    }
  }

  private async copy(md: MaildropFile): Promise<Outcome> {
    const p = this.params;
    const env = md.envelope;
    let txn: CleanupTxn;
    try {
      txn = await this.cleanup.open();
    } catch (err) {
      this.logger.warning(`maildrop/${md.name}: cannot open a queue file: ${err instanceof ReplyError ? err.message : strerror(err)}`);
      return 'kept';
    }
    try {
      this.logger.info(`${txn.queueId}: uid=${md.uid} from=<${quote822Local(env.sender)}>`);
      const seen = new Set<string>();
      const recipients: EnvelopeRecipient[] = [];
      for (const r of env.recipients) {
        const address = canonicalAddress(r.address, p);
        if (address === '' || seen.has(address)) continue;
        seen.add(address);
        recipients.push({ address, notify: r.notify, orcpt: r.orcpt });
      }
      const sender = canonicalAddress(env.sender, p);
      const myhostname = this.cleanup.myhostname;
      const input: CleanupInput = {
        sender,
        recipients,
        ret: env.ret,
        envid: env.envid,
        smtputf8: env.smtputf8 || NON_ASCII.test(sender) || recipients.some((r) => NON_ASCII.test(r.address)),
        body: env.body,
        client: null,
        // pickup.c: the file owner, not the login name, for tracing.
        receivedHeader: `Received: by ${myhostname} (${p.mail_name}, from userid ${md.uid})\r\n\tid ${txn.queueId}; ${mailDate(md.mtimeMs)}`,
        addMissingHeaders: true,
        fullName: env.fullName,
        arrivalTime: env.time,
      };
      for await (const chunk of md.content()) {
        if (!txn.write(chunk)) await txn.drain();
      }
      await txn.commit(input);
    } catch (err) {
      await txn.abort().catch(() => undefined);
      if (err instanceof ReplyError) {
        const r = err.reply;
        if (r.code >= 400 && r.code < 500) {
          this.logger.warning(`maildrop/${md.name}: error writing ${txn.queueId}: ${err.message}`);
          return 'kept';
        }
        return this.moveAside(md.name, md.uid, `refused by cleanup: ${err.message}`);
      }
      if (err instanceof PosternError) return this.moveAside(md.name, md.uid, err.message);
      this.logger.warning(`maildrop/${md.name}: error writing ${txn.queueId}: ${strerror(err)}`);
      return 'kept';
    }
    try {
      await fsp.unlink(md.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        // The message is queued; the file would be picked up again: say so loudly.
        this.logger.warning(`remove maildrop/${md.name}: ${strerror(err)}`);
        return 'kept';
      }
    }
    return 'removed';
  }

  reload(config: Pick<Config, 'params'>): void {
    this.params = config.params;
    if (this.ownCleanup) this.cleanup = new Cleanup({ queue_directory: this.params.queue_directory, params: this.params, log: this.o.log });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ready.catch(() => undefined);
    await this.running;
  }
}

/**
 * Start the pickup service: scan maildrop/ now, then on changes and every 60 s. Call after the
 * master has dropped privileges. `cleanup` should be the process's shared Cleanup (so qmgr hears
 * its kicks; any Cleanup over the same queue_directory shares them, ../queue/kick.ts).
 */
export function startPickup(o: PickupOptions): Pickup {
  return new PickupService(o);
}

/**
 * The master's daemon for a `pickup` service line (master.cf `pickup unix n - n 60 1 pickup`).
 * The master starts non-inet daemons after it has dropped root privileges, so the queue files
 * pickup writes belong to mail_owner. The master.cf wakeup field sets the rescan period
 * (default 60 s).
 */
export const createDaemon: DaemonFactory = async (ctx) => {
  const params = ctx.service.params;
  const syslog_name = ctx.service.overrides.has('syslog_name') ? params.syslog_name : undefined;
  const wakeup = Number.parseInt(ctx.service.wakeup, 10);
  let pickup: Pickup | null = null;
  let stopped = false;
  const starting = (async () => {
    if (stopped) return;
    pickup = startPickup({
      config: { params },
      log: ctx.log,
      ...(syslog_name !== undefined ? { syslog_name } : {}),
      ...(Number.isFinite(wakeup) && wakeup > 0 ? { wakeupMs: wakeup * 1000 } : {}),
    });
  })();
  const daemon: Daemon = {
    accept(socket) {
      socket.destroy();
    },
    async reload(_config, service) {
      await starting;
      pickup?.reload({ params: service.params });
    },
    async drain() {
      stopped = true;
      await starting;
      await pickup?.stop();
    },
  };
  return daemon;
};

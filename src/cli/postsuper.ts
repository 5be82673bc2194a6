/**
 * `postern postsuper [-c config_dir] [-d|-h|-H|-r|-e|-f queue_id|ALL|-] [-p] [-s] [queue...]`:
 * queue maintenance, as Postfix's postsuper(1).
 *
 *   -d ID  delete (default queues: maildrop incoming active deferred hold)
 *   -h ID  put on hold (incoming active deferred → hold)
 *   -H ID  release from hold (hold → deferred)
 *   -r ID  requeue (→ incoming/, so qmgr resolves the addresses again; done recipients stay done)
 *   -e ID  force expiry (qmgr returns the message at its next attempt), -f ID expire and release
 *   -p     purge temporary files older than 7 days (cleanup's in incoming/, sendmail's in maildrop/)
 *   -s     structure check: nothing to repair in Postern's flat queue (accepted)
 * ID is a queue id, `ALL` (upper case) or `-` (queue ids from standard input, one a line).
 * Options run in the order given; then the summary lines (`postsuper: Deleted: 2 messages`, ...).
 * Each named message gets its own line (`QID: removed`, `QID: placed on hold`, `QID: released from
 * hold`, `QID: requeued`, `QID: expired`); on standard error and, as `postfix/postsuper[pid]`, in
 * maillog_file, as Postfix logs them. `ALL` logs only the summary, as Postfix.
 *
 * The running server (DESIGN invariant 2: qmgr alone moves and deletes queue files). The simplest
 * safe design is Postfix's own: postsuper works on the files directly, with one atomic rename(2)
 * or unlink(2) per message, and qmgr treats a file that vanished under it (ENOENT on its own
 * rename or unlink) as "someone else took it" — which ../qmgr/scheduler.ts does. What that
 * guarantees while Postern runs:
 *   - no message is ever lost or half-moved: each step is one atomic system call, the target name
 *     is checked to be free first (a rename never replaces another message), and the state log
 *     (done recipients) is keyed by queue id and file hash, so it follows the file to hold/ and
 *     back (a released message does not deliver its done recipients again);
 *   - a message qmgr is delivering right now (active/) can still be delivered by the attempt in
 *     progress (as in Postfix: "postsuper -d" races with delivery); a hold or requeue that lands
 *     during that attempt may deliver its last recipients twice, never zero times;
 *   - queue ids repeat (short ids), so postsuper -d ID may hit a new message that got the same id
 *     just after the old one was delivered — the risk Postfix's man page describes.
 * After a release or requeue, qmgr is asked (trigger `scan`) to look at the queue now; when the
 * server is stopped the files simply wait.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { loadConfig } from '../config/index.js';
import type { Params } from '../config/types.js';
import { strerror } from '../log/strerror.js';
import { MAILDROP_TEMP_RE } from '../pickup/maildrop.js';
import { type QueueName, queueDirPath, removeStaleTemporaryFiles } from '../queue/directories.js';
import { isQueueId } from '../queue/id.js';
import { removeStateLog } from '../queue/state-log.js';
import { triggerQmgr } from '../queue/trigger.js';
import type { CliContext } from './context.js';
import { getopt, type ToolLog, toolLog } from './postqueue.js';

const USAGE =
  'usage: postsuper [-c config_dir] [-d queue_id (delete)] [-e queue_id (expire)] [-f queue_id (expire and/or un-hold)] ' +
  '[-h queue_id (hold)] [-H queue_id (un-hold)] [-p (purge temporary files)] [-r queue_id (requeue)] [-s (structure fix)] ' +
  '[-S (redundant structure fix)][-v (verbose)] [queue...]';

/** Queues postsuper knows, in Postfix's default order. corrupt/ is Postern's (files that failed validation). */
const DEFAULT_QUEUES: readonly QueueName[] = ['maildrop', 'incoming', 'active', 'deferred', 'hold'];
const KNOWN_QUEUES: ReadonlySet<string> = new Set<string>([...DEFAULT_QUEUES, 'corrupt']);

/** Postfix MAX_TEMP_AGE: 7 days. */
const MAX_TEMP_AGE_MS = 7 * 24 * 3600 * 1000;
/** Postfix MAIL_QUEUE_STAT_EXPIRE (S_IXGRP), also ../qmgr/scheduler.ts FORCE_EXPIRE_MODE. */
const EXPIRE_BIT = 0o010;

type Op = 'd' | 'h' | 'H' | 'r' | 'e' | 'f';

export interface PostsuperIo {
  readonly stdin: Readable;
  /** Ask a running qmgr to scan now (default: the trigger; failures are ignored). */
  readonly kickQmgr: (queue_directory: string) => Promise<void>;
}

interface Counts {
  requeued: number;
  deleted: number;
  expired: number;
  held: number;
  released: number;
}

async function defaultKick(queue_directory: string): Promise<void> {
  await triggerQmgr(queue_directory, 'scan');
}

export async function main(args: string[], ctx: CliContext): Promise<number> {
  return postsuper(args, ctx);
}

class Super {
  readonly counts: Counts = { requeued: 0, deleted: 0, expired: 0, held: 0, released: 0 };
  /** A release or requeue happened: poke qmgr at the end. */
  moved = false;
  /** Requeued in this run: `-r ID -r ALL` counts a message once (Postfix: maildrop/ is skipped). */
  private readonly requeued = new Set<string>();

  constructor(
    private readonly qdir: string,
    private readonly log: ToolLog,
  ) {}

  private file(queue: QueueName, id: string): string {
    return path.join(queueDirPath(this.qdir, queue), id);
  }

  /** A complete message file in `queue` (a regular file; lstat, so no symlink is followed). */
  private async present(queue: QueueName, id: string): Promise<boolean> {
    try {
      return (await fsp.lstat(this.file(queue, id))).isFile();
    } catch {
      return false;
    }
  }

  /** rename(2) that never replaces an existing message. false when the source vanished (lost a race). */
  private async move(id: string, from: QueueName, to: QueueName): Promise<boolean> {
    const target = this.file(to, id);
    try {
      await fsp.lstat(target);
      this.log.warning(`${id}: ${to}/${id} exists; ${from}/${id} left where it is`);
      return false;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    try {
      await fsp.rename(this.file(from, id), target);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      this.log.warning(`rename ${from}/${id} to ${to}/${id}: ${strerror(err)}`);
      return false;
    }
  }

  private async remove(queue: QueueName, id: string): Promise<boolean> {
    try {
      await fsp.unlink(this.file(queue, id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warning(`remove ${queue}/${id}: ${strerror(err)}`);
      return false;
    }
    // The message file is gone (the point of no return); now its state log. A crash in between
    // leaves a log bound to this file's hash, which no later message can use.
    if (queue !== 'maildrop') await removeStateLog(this.qdir, id).catch(() => undefined);
    return true;
  }

  private async expire(queue: QueueName, id: string): Promise<boolean> {
    const fh = await fsp.open(this.file(queue, id), 'r').catch(() => null);
    if (fh === null) return false;
    try {
      const st = await fh.stat();
      if (!st.isFile() || (st.mode & EXPIRE_BIT) !== 0) return false;
      await fh.chmod((st.mode | EXPIRE_BIT) & 0o7777);
      return true;
    } catch (err) {
      this.log.warning(`expire file ${queue}/${id}: cannot set permission: ${strerror(err)}`);
      return false;
    } finally {
      await fh.close();
    }
  }

  /** One queue id (Postfix delete_one, hold_one, ...): the first queue holding it, tried twice (it may be moving). */
  async one(op: Op, queues: readonly QueueName[], id: string): Promise<void> {
    if (!isQueueId(id)) {
      this.log.warning(`invalid mail queue id: ${id}`);
      return;
    }
    if (op === 'f') {
      await this.one('e', queues, id);
      await this.one('H', queues, id);
      return;
    }
    // Two passes, as Postfix: the file may move from a queue not yet looked at to one already
    // passed while we look (qmgr at work).
    for (let tries = 0; tries < 2; tries++) {
      for (const queue of queues) {
        if (!this.applies(op, queue) || !(await this.present(queue, id))) continue;
        if (await this.apply(op, queue, id, true)) return;
        if (await this.present(queue, id)) return; // refused (target taken, no permission): said so
      }
      if (op === 'H') return; // release_one: no second try, as Postfix
    }
  }

  private applies(op: Op, queue: QueueName): boolean {
    switch (op) {
      case 'd':
        return true;
      case 'h':
        return queue !== 'maildrop' && queue !== 'hold' && queue !== 'corrupt';
      case 'H':
        return queue === 'hold';
      case 'r':
      case 'e':
      case 'f':
        return queue !== 'maildrop' && queue !== 'corrupt';
    }
  }

  private async apply(op: Op, queue: QueueName, id: string, logEach: boolean): Promise<boolean> {
    const say = (what: string): void => {
      if (logEach) this.log.info(`${id}: ${what}`);
    };
    switch (op) {
      case 'd':
        if (!(await this.remove(queue, id))) return false;
        this.counts.deleted++;
        say('removed');
        return true;
      case 'h':
        if (!(await this.move(id, queue, 'hold'))) return false;
        this.counts.held++;
        say('placed on hold');
        return true;
      case 'H':
        if (!(await this.move(id, queue, 'deferred'))) return false;
        this.counts.released++;
        this.moved = true;
        say('released from hold');
        return true;
      case 'r': {
        if (this.requeued.has(id)) return false;
        if (queue === 'incoming') {
          // Already where a requeued message goes: only its time stamp, as Postfix resets it.
          await fsp.utimes(this.file(queue, id), new Date(), new Date()).catch(() => undefined);
        } else if (!(await this.move(id, queue, 'incoming'))) return false;
        await fsp.utimes(this.file('incoming', id), new Date(), new Date()).catch((err: unknown) => this.log.warning(`incoming/${id}: reset time stamps: ${strerror(err)}`));
        this.counts.requeued++;
        this.requeued.add(id);
        this.moved = true;
        say('requeued');
        return true;
      }
      case 'e':
        if (!(await this.expire(queue, id))) return false;
        this.counts.expired++;
        say('expired');
        return true;
      case 'f':
        return false;
    }
  }

  /** `ALL`: every message in `queues` the operation applies to (Postfix super()); no per-message lines. */
  async all(op: Op, queues: readonly QueueName[]): Promise<void> {
    for (const queue of queues) {
      if (op === 'f') {
        if (this.applies('e', queue)) for (const id of await this.ids(queue)) await this.apply('e', queue, id, false);
        if (queue === 'hold') for (const id of await this.ids(queue)) await this.apply('H', queue, id, false);
        continue;
      }
      if (!this.applies(op, queue)) continue;
      for (const id of await this.ids(queue)) await this.apply(op, queue, id, false);
    }
  }

  private async ids(queue: QueueName): Promise<string[]> {
    try {
      return (await fsp.readdir(queueDirPath(this.qdir, queue))).filter(isQueueId).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warning(`scan ${queue}: ${strerror(err)}`);
      return [];
    }
  }

  /** -p: temporary files older than 7 days. */
  async purge(now = Date.now()): Promise<void> {
    await removeStaleTemporaryFiles(this.qdir, MAX_TEMP_AGE_MS, now).catch((err: unknown) => this.log.warning(`purge incoming: ${strerror(err)}`));
    const dir = queueDirPath(this.qdir, 'maildrop');
    let names: string[] = [];
    try {
      names = await fsp.readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (!MAILDROP_TEMP_RE.test(name)) continue;
      const file = path.join(dir, name);
      try {
        if (now - (await fsp.lstat(file)).mtimeMs > MAX_TEMP_AGE_MS) await fsp.unlink(file);
      } catch {
        // gone meanwhile
      }
    }
  }
}

async function readIds(stdin: Readable): Promise<string[]> {
  const parts: Buffer[] = [];
  for await (const chunk of stdin) parts.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  const text = Buffer.concat(parts).toString('utf8');
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** postsuper with injectable standard input and qmgr kick (tests). */
export async function postsuper(args: string[], ctx: CliContext, io: Partial<PostsuperIo> = {}): Promise<number> {
  const early = toolLog('postsuper', ctx.stderr, null);
  let configDir = ctx.configDir;
  const actions: { op: Op; arg: string }[] = [];
  let purge = false;
  const g = getopt(args, 'c:d:e:f:h:H:pr:sSv');
  for (let o = g.next(); o !== null; o = g.next()) {
    switch (o.opt) {
      case 'c':
        if (!o.arg!.startsWith('/')) {
          early.fatal('-c requires absolute pathname');
          return 1;
        }
        configDir = o.arg!;
        break;
      case 'd':
      case 'e':
      case 'f':
      case 'h':
      case 'H':
      case 'r':
        actions.push({ op: o.opt, arg: o.arg! });
        break;
      case 'p':
        purge = true;
        break;
      case 's':
      case 'S':
      case 'v':
        break;
      default:
        ctx.stderr.write(`postsuper: ${o.bad}\n`);
        early.fatal(USAGE);
        return 1;
    }
  }
  const named = g.rest();
  for (const q of named) {
    if (!KNOWN_QUEUES.has(q)) {
      early.fatal(`invalid directory name: ${q}`);
      return 1;
    }
  }
  const queues: readonly QueueName[] = named.length > 0 ? (named as QueueName[]) : DEFAULT_QUEUES;
  // Postfix: no action at all means -s -p.
  if (actions.length === 0) purge = true;

  let params: Params;
  try {
    params = (await loadConfig({ configDir, env: ctx.env })).params;
  } catch (err) {
    early.fatal(err instanceof Error ? err.message : String(err));
    return 1;
  }
  const log = toolLog('postsuper', ctx.stderr, params);
  try {
    const qdir = params.queue_directory;
    try {
      await fsp.access(qdir);
    } catch (err) {
      log.fatal(`chdir ${qdir}: ${strerror(err)}`);
      return 1;
    }
    const s = new Super(qdir, log);
    if (purge) await s.purge();
    let stdinIds: string[] | null = null;
    for (const a of actions) {
      if (a.arg === 'ALL') await s.all(a.op, queues);
      else if (a.arg === '-') {
        // Standard input can be read once; a second "-" sees nothing, as in Postfix.
        const ids: string[] = stdinIds === null ? await readIds(io.stdin ?? process.stdin) : [];
        stdinIds = ids;
        for (const id of ids) await s.one(a.op, queues, id);
      } else await s.one(a.op, queues, a.arg);
    }
    const has = (...ops: Op[]): boolean => actions.some((a) => ops.includes(a.op));
    const n = (k: number): string => `${k} message${k === 1 ? '' : 's'}`;
    const c = s.counts;
    if (has('r')) log.info(`Requeued: ${n(c.requeued)}`);
    if (has('d')) log.info(`Deleted: ${n(c.deleted)}`);
    if (has('e', 'f')) log.info(`Force-expired: ${n(c.expired)}`);
    if (has('h')) log.info(`Placed on hold: ${n(c.held)}`);
    if (has('H', 'f')) log.info(`Released from hold: ${n(c.released)}`);
    if (s.moved) await (io.kickQmgr ?? defaultKick)(qdir).catch(() => undefined);
    return 0;
  } finally {
    await log.close();
  }
}

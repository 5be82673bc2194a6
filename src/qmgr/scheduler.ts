/**
 * The queue manager's scheduler (Postfix qmgr(8), one process, one scheduler). See ./index.ts
 * for the overview; this module is the machinery.
 *
 * Life of a message:
 *   incoming/ or deferred/ --rename--> active/ --(all recipients done)--> unlink, `QID: removed`
 *                                              --(some deferred)--> mtime = next try, deferred/
 *   A file that fails validation goes to corrupt/ with a warning; hold/ is never looked at.
 *   At start, files left in active/ by a crash go back to incoming/ (Postfix qmgr_move()).
 *
 * Per-recipient progress is appended (fdatasync) to the message's state log before it counts:
 * `done` when delivered (or bounced and the bounce is queued), `deferred` with the reason for
 * mailq. A restart re-reads it, so finished recipients are neither lost nor delivered twice.
 * A recipient that virtual_alias_maps expands into several addresses keeps one `done` record per
 * finished address (index >= the envelope's recipient count, fields `of` and `address`), and its
 * own `done` record when all of them are finished.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { Cleanup } from '../cleanup/index.js';
import { Bounce, type ReportRecipient } from '../bounce/index.js';
import { transportParam } from '../config/index.js';
import type { Config, Params } from '../config/types.js';
import { PosternError } from '../errors.js';
import type { Log, Logger } from '../log/index.js';
import { strerror } from '../log/strerror.js';
import { SpareKeeper } from '../queue/spare.js';
import type { DeliveryAction, DeliveryAgent, DeliveryRecipient, DeliveryRequest, DeliveryStatus } from '../queue/delivery.js';
import { createQueueDirectories, type QueueName, queueDirPath, queueFilePath } from '../queue/directories.js';
import { type EnvelopeRecipient, originalRecipient } from '../queue/envelope.js';
import { type QueueFile, readQueueFile } from '../queue/file.js';
import { isQueueId } from '../queue/id.js';
import { queueKick } from '../queue/kick.js';
import { type DeferredRecord, type DoneRecord, removeStateLog, StateLog, type StateRecord } from '../queue/state-log.js';
import { Resolver, splitAddress, splitExtension } from '../resolve/index.js';
import { builtinErrorAgent } from './builtin.js';
import { deliveryLogLine } from './log-line.js';

/** Queue files activated at once during a scan. */
const ACTIVATE_PARALLEL = 8;

/** A delivery agent for one transport, as master.cf defines it. */
export interface TransportAgent {
  readonly agent: DeliveryAgent;
  /** master.cf command (the log tag's service: `smtp` for the `relay` transport); default the transport name. */
  readonly command?: string;
  /** The service's syslog_name (master.cf `-o syslog_name=...`). */
  readonly syslog_name?: string;
  /** master.cf maxproc: deliveries in flight over this transport; 0 = no limit. */
  readonly maxproc?: number;
}

export type AgentTable = ReadonlyMap<string, TransportAgent>;

export interface QmgrOptions {
  /** main.cf (params, and settings for `<transport>_destination_concurrency_limit` etc.). */
  readonly config: Pick<Config, 'params' | 'settings' | 'mainCfPath'> & { readonly configDir?: string };
  readonly log: Log;
  /** transport name → agent. `error` and `retry` default to the built-in error(8). */
  readonly agents: AgentTable;
  /** Posts bounces; default a Cleanup on queue_directory. */
  readonly cleanup?: Cleanup;
  /** ms since the epoch. */
  readonly clock?: () => number;
  /** For address literals ([ip]) of this host; default from inet_interfaces. */
  readonly interfaceAddresses?: readonly string[];
  /** syslog_name of the qmgr service. */
  readonly syslog_name?: string;
}

/** Postfix MAIL_QUEUE_STAT_EXPIRE: `postsuper -e` sets the group-execute bit of a queue file. */
export const FORCE_EXPIRE_MODE = 0o010;

interface Rcpt {
  readonly index: number;
  readonly envelope: EnvelopeRecipient;
  /** The address delivered to (after alias expansion and canonicalisation). */
  readonly address: string;
  /** For expanded recipients: which expansion (null when the envelope recipient is delivered as one). */
  readonly expandedFrom: number | null;
}

interface Outcome {
  readonly rcpt: Rcpt;
  readonly status: DeliveryStatus;
}

interface Entry {
  readonly msg: ActiveMessage;
  readonly transport: string;
  readonly nexthop: string;
  readonly recipients: Rcpt[];
}

interface Dest {
  readonly transport: string;
  readonly name: string;
  readonly todo: Entry[];
  busy: number;
}

interface ActiveMessage {
  readonly id: string;
  readonly path: string;
  readonly qf: QueueFile;
  readonly state: StateLog;
  readonly activeTime: number;
  readonly forceExpire: boolean;
  pending: number;
  /** Expanded addresses already finished, per envelope index (lower case). */
  readonly expandedDone: Map<number, Set<string>>;
  /** Expansion size per envelope index (for the index's own done record). */
  readonly expansionSize: Map<number, number>;
  nextSlot: number;
  readonly success: Outcome[];
  readonly bounced: Outcome[];
  readonly deferred: Outcome[];
  /**
   * Force-expired (`postsuper -e`): the last deferral of each recipient not done, by deferKey().
   * They are returned to the sender as they are, without a new delivery attempt (Postfix's defer log).
   */
  readonly lastDeferred: ReadonlyMap<string, DeferredRecord>;
  /** Appends of this pass (awaited before the message is finished); never reject. */
  writes: Promise<void>[];
  /** Records of the pass's last delivery, not yet appended: see write(). */
  held: StateRecord[];
  /** The first failed append of this pass. */
  writeError: unknown;
}

interface ExpandedDoneRecord extends DoneRecord {
  readonly of: number;
  readonly address: string;
}

function isExpandedDone(r: StateRecord): r is ExpandedDoneRecord {
  const x = r as Partial<ExpandedDoneRecord>;
  return r.kind === 'done' && typeof x.of === 'number' && typeof x.address === 'string';
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** A deferred record's recipient: the envelope index, and the address when it was one of an expansion. */
const deferKey = (index: number, address: string | null): string => (address === null ? `${index}` : `${index}\0${address.toLowerCase()}`);

/** The last deferred record per recipient (deferKey()). */
function lastDeferrals(records: readonly StateRecord[]): Map<string, DeferredRecord> {
  const out = new Map<string, DeferredRecord>();
  for (const r of records) if (r.kind === 'deferred') out.set(deferKey(r.rcpt, r.address ?? null), r);
  return out;
}

export class Qmgr {
  private params: Params;
  private config: QmgrOptions['config'];
  private agents: AgentTable;
  private resolver: Resolver;
  private readonly log: Log;
  private readonly logger: Logger;
  private readonly agentLoggers = new Map<string, Logger>();
  private readonly clock: () => number;
  private readonly qdir: string;
  /** Where finished queue files go (../queue/spare.ts). */
  readonly spares: SpareKeeper;
  private bounce: Bounce;
  private readonly cleanup: Cleanup;
  private readonly active = new Map<string, ActiveMessage>();
  private readonly dests = new Map<string, Dest>();
  private readonly transportBusy = new Map<string, number>();
  private readonly activating = new Set<string>();
  /** Incoming ids kicked while the active window was full. */
  private readonly waiting = new Set<string>();
  private incomingBacklog = false;
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly warnedTransports = new Set<string>();
  private unsubscribe: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopping = false;
  private scanning: Promise<void> | null = null;
  private pumpScheduled = false;
  private idleWaiters: (() => void)[] = [];
  private readonly builtin = new Map<string, TransportAgent>([
    ['error', { agent: builtinErrorAgent('bounce'), command: 'error' }],
    ['retry', { agent: builtinErrorAgent('defer'), command: 'error' }],
  ]);

  private constructor(private readonly opts: QmgrOptions) {
    this.config = opts.config;
    this.params = opts.config.params;
    this.agents = opts.agents;
    this.log = opts.log;
    this.logger = opts.log.logger('qmgr', opts.syslog_name !== undefined ? { syslog_name: opts.syslog_name } : {});
    this.clock = opts.clock ?? Date.now;
    this.qdir = this.params.queue_directory;
    this.spares = new SpareKeeper(this.qdir);
    this.resolver = this.makeResolver(this.params);
    this.cleanup = opts.cleanup ?? new Cleanup({ queue_directory: this.qdir, params: this.params, log: this.log });
    this.bounce = new Bounce({ params: this.params, log: opts.log, cleanup: this.cleanup, clock: this.clock });
    this.checkLifetimes();
  }

  private makeResolver(params: Params): Resolver {
    return new Resolver(params, {
      ...(this.config.configDir !== undefined ? { configDir: this.config.configDir } : {}),
      mainCfPath: this.config.mainCfPath,
      ...(this.opts.interfaceAddresses !== undefined ? { interfaceAddresses: this.opts.interfaceAddresses } : {}),
      warn: (w) => this.logger.warning(w),
    });
  }

  /**
   * Start: create the queue directories, put files a crash left in active/ back into incoming/,
   * listen for cleanup's kick, scan incoming/ and deferred/, and rescan every queue_run_delay.
   */
  static async start(opts: QmgrOptions): Promise<Qmgr> {
    const q = new Qmgr(opts);
    await createQueueDirectories(q.qdir);
    await q.recoverActive();
    q.unsubscribe = queueKick(q.qdir).on((id, queue, file) => {
      if (queue === 'incoming') q.kick(id, file);
    });
    q.schedulePeriodic();
    q.track(q.scan(false));
    return q;
  }

  private schedulePeriodic(): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      this.track(this.scan(false));
      this.schedulePeriodic();
    }, this.params.queue_run_delay * 1000);
    this.timer.unref();
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch((err: unknown) => this.logger.warning(`${errText(err)}`));
    this.inflight.add(q);
    void q.finally(() => {
      this.inflight.delete(q);
      this.checkIdle();
    });
  }

  private async recoverActive(): Promise<void> {
    for (const name of await fsp.readdir(queueDirPath(this.qdir, 'active'))) {
      if (!isQueueId(name)) continue;
      await this.rename(name, 'active', 'incoming').catch((err: unknown) => this.logger.warning(`${name}: rename from active to incoming: ${strerror(err)}`));
    }
  }

  private rename(id: string, from: QueueName, to: QueueName): Promise<void> {
    return fsp.rename(queueFilePath(this.qdir, from, id), queueFilePath(this.qdir, to, id));
  }

  /** A new file in incoming/ (cleanup's kick, or the trigger): activate it now if the window allows. */
  kick(queueId: string, file?: QueueFile): void {
    if (this.stopping || !isQueueId(queueId)) return;
    if (this.active.size + this.activating.size >= this.params.qmgr_message_active_limit) {
      if (this.waiting.size < 10_000) this.waiting.add(queueId);
      else this.incomingBacklog = true;
      return;
    }
    this.track(this.activate(queueId, 'incoming', false, file));
  }

  /** `postqueue -f`: everything in deferred/ now, whatever its retry time, and incoming/. */
  flush(): Promise<void> {
    return this.scan(true);
  }

  /** `postqueue -s site` / ETRN: deferred messages with a recipient in `site` now. */
  async flushSite(site: string): Promise<void> {
    const want = site.toLowerCase().replace(/^\[|\]$/g, '');
    for (const id of await this.list('deferred')) {
      if (this.stopping) return;
      let qf: QueueFile;
      try {
        qf = await readQueueFile(queueFilePath(this.qdir, 'deferred', id), { verifyHash: false });
      } catch {
        continue;
      }
      const match = qf.envelope.recipients.some((r) => {
        const d = splitAddress(r.address).domain;
        return d !== null && d.toLowerCase().replace(/^\[|\]$/g, '') === want;
      });
      if (match) this.track(this.activate(id, 'deferred', true));
    }
  }

  private async list(queue: QueueName): Promise<string[]> {
    try {
      return (await fsp.readdir(queueDirPath(this.qdir, queue))).filter(isQueueId);
    } catch (err) {
      this.logger.warning(`scan ${queue}: ${strerror(err)}`);
      return [];
    }
  }

  /** Scan incoming/ and deferred/ (all: ignore the deferred files' retry times). One scan at a time. */
  scan(all: boolean): Promise<void> {
    if (this.scanning !== null) {
      if (!all) return this.scanning;
      return this.scanning.then(() => this.scan(true));
    }
    // Several activations at once (each is a rename, a read and a hash of the queue file): one at a
    // time kept only 1-2 messages in delivery during a queue drain (bench profile).
    const each = async (ids: readonly string[], fn: (id: string) => Promise<boolean>): Promise<void> => {
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < ids.length) {
          if (!(await fn(ids[next++]!))) return;
        }
      };
      await Promise.all(Array.from({ length: Math.min(ACTIVATE_PARALLEL, ids.length) }, worker));
    };
    const run = (async () => {
      this.incomingBacklog = false;
      await each(await this.list('incoming'), async (id) => {
        if (this.stopping) return false;
        if (!this.room()) {
          this.incomingBacklog = true;
          return false;
        }
        await this.activate(id, 'incoming', false);
        return true;
      });
      const now = this.clock();
      await each(await this.list('deferred'), async (id) => {
        if (this.stopping || !this.room()) return false;
        if (!all) {
          try {
            const st = await fsp.stat(queueFilePath(this.qdir, 'deferred', id));
            // qmgr_active_feed(): files with a future time stamp cool down (1 s slack).
            if (st.mtimeMs > now + 1000) return true;
          } catch {
            return true;
          }
        }
        await this.activate(id, 'deferred', all);
        return true;
      });
    })();
    this.scanning = run.finally(() => {
      this.scanning = null;
      // Room freed while this scan ran was not used (refill() does not start a second scan): without
      // this, files left in incoming/ waited for queue_run_delay (seen: 7 of 100,000 in the bench).
      if (this.incomingBacklog && this.room()) this.refill();
    });
    return this.scanning;
  }

  private room(): boolean {
    return this.active.size + this.activating.size < this.params.qmgr_message_active_limit;
  }

  private async activate(id: string, from: 'incoming' | 'deferred', flush: boolean, known?: QueueFile): Promise<void> {
    if (this.stopping || this.active.has(id) || this.activating.has(id)) return;
    if (!this.room()) {
      if (from === 'incoming') this.incomingBacklog = true;
      return;
    }
    this.activating.add(id);
    try {
      await this.activateLocked(id, from, flush, known);
    } finally {
      this.activating.delete(id);
      this.refill();
    }
  }

  private async activateLocked(id: string, from: 'incoming' | 'deferred', _flush: boolean, known?: QueueFile): Promise<void> {
    let mode = 0;
    try {
      // stat(2) inline: an inode already in memory (io/durable.ts on which calls leave the thread pool).
      mode = fs.statSync(queueFilePath(this.qdir, from, id)).mode;
      await this.rename(id, from, 'active');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warning(`${id}: rename from ${from} to active: ${strerror(err)}`);
      return;
    }
    const path = queueFilePath(this.qdir, 'active', id);
    let qf: QueueFile;
    try {
      // cleanup in this process just wrote, hashed and fsynced it: take its facts instead of a
      // second read and hash (files found by a scan, or from another process, are read).
      qf = known !== undefined && known.envelope.queueId === id ? { ...known, path } : await readQueueFile(path);
    } catch (err) {
      if (err instanceof PosternError && err.code === 'corrupt') {
        this.logger.warning(`${id}: message rejected: ${err.message.startsWith(`${path}: `) ? err.message.slice(path.length + 2) : err.message}`);
        await this.saveCorrupt(id);
        return;
      }
      this.logger.warning(`open active ${id}: ${strerror(err)}`);
      await this.deferFile(id, this.params.minimal_backoff_time);
      return;
    }
    let state: StateLog;
    try {
      state = await StateLog.open(this.qdir, id, qf.sha256);
    } catch (err) {
      this.logger.warning(`${id}: open state log: ${strerror(err)}`);
      await this.deferFile(id, this.params.minimal_backoff_time);
      return;
    }
    const forceExpire = (mode & FORCE_EXPIRE_MODE) !== 0;
    const msg: ActiveMessage = {
      id,
      path,
      qf,
      state,
      activeTime: this.clock(),
      forceExpire,
      lastDeferred: forceExpire ? lastDeferrals(state.records) : new Map(),
      pending: 0,
      expandedDone: new Map(),
      expansionSize: new Map(),
      nextSlot: qf.envelope.recipients.length,
      success: [],
      bounced: [],
      deferred: [],
      writes: [],
      held: [],
      writeError: null,
    };
    const done = state.doneRecipients();
    for (const r of state.records) {
      if (!isExpandedDone(r)) continue;
      const s = msg.expandedDone.get(r.of) ?? new Set<string>();
      msg.expandedDone.set(r.of, s);
      s.add(r.address.toLowerCase());
      msg.nextSlot = Math.max(msg.nextSlot, r.rcpt + 1);
    }
    this.active.set(id, msg);
    const env = qf.envelope;
    const undone = env.recipients.map((_, i) => i).filter((i) => !done.has(i));
    this.logger.info(`${id}: from=<${env.sender}>, size=${env.size}, nrcpt=${undone.length} (queue active)`);
    this.plan(msg, undone);
    if (msg.pending === 0) await this.finish(msg);
    else this.schedulePump();
  }

  private async saveCorrupt(id: string): Promise<void> {
    try {
      await this.rename(id, 'active', 'corrupt');
      this.logger.warning(`saving corrupt file "${id}" from queue "active" to queue "corrupt"`);
    } catch (err) {
      this.logger.warning(`${id}: save corrupt file: ${strerror(err)}`);
    }
  }

  /** Move active/id to deferred/ with its next try `delay` seconds from now (the file's mtime). */
  private async deferFile(id: string, delaySeconds: number): Promise<void> {
    const path = queueFilePath(this.qdir, 'active', id);
    const when = (this.clock() + delaySeconds * 1000) / 1000;
    try {
      await fsp.utimes(path, when, when);
      await this.rename(id, 'active', 'deferred');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warning(`${id}: defer: ${strerror(err)}`);
    }
  }

  private agentFor(transport: string): TransportAgent | undefined {
    return this.agents.get(transport) ?? this.builtin.get(transport);
  }

  private readonly limits = new Map<string, number>();

  private limit(transport: string, suffix: 'destination_concurrency_limit' | 'destination_recipient_limit'): number {
    const key = `${transport}_${suffix}`;
    let v = this.limits.get(key);
    if (v === undefined) {
      try {
        v = transportParam(this.config, transport, suffix);
      } catch (err) {
        this.logger.warning(`${key}: ${errText(err)}; using the default`);
        v = suffix === 'destination_concurrency_limit' ? this.params.default_destination_concurrency_limit : this.params.default_destination_recipient_limit;
      }
      this.limits.set(key, v);
    }
    return v;
  }

  /** Resolve the undone recipients and queue their deliveries (qmgr_message_resolve()). */
  private plan(msg: ActiveMessage, undone: readonly number[]): void {
    const env = msg.qf.envelope;
    const byDest = new Map<string, Entry[]>();
    const add = (transport: string, nexthop: string, rcpt: Rcpt): void => {
      const rlimit = this.limit(transport, 'destination_recipient_limit');
      let queueName = nexthop.toLowerCase();
      if (transport !== 'error' && transport !== 'retry' && rlimit === 1) {
        const { local } = splitAddress(rcpt.address);
        const { base } = splitExtension(local, this.params);
        queueName = `${base}@${nexthop}`.toLowerCase();
      }
      const key = `${transport}\0${queueName}`;
      const entries = byDest.get(key) ?? [];
      byDest.set(key, entries);
      let e = entries[entries.length - 1];
      // One envelope index at most once per request: agents answer per index.
      if (e === undefined || e.recipients.length >= rlimit || e.recipients.some((r) => r.index === rcpt.index)) {
        e = { msg, transport, nexthop, recipients: [] };
        entries.push(e);
      }
      e.recipients.push(rcpt);
    };
    for (const i of undone) {
      const er = env.recipients[i]!;
      const exp = this.resolver.expandVirtual(er.address);
      if (!exp.ok) {
        const rcpt: Rcpt = { index: i, envelope: er, address: this.resolver.canonicalize(er.address), expandedFrom: null };
        if (!this.returnDeferred(msg, rcpt)) add('retry', `${exp.dsn} ${exp.reason}`, rcpt);
        continue;
      }
      const multi = exp.addresses.length > 1;
      if (multi) msg.expansionSize.set(i, exp.addresses.length);
      const finished = msg.expandedDone.get(i);
      let open = 0;
      for (const a of exp.addresses) {
        if (multi && finished?.has(a.toLowerCase())) continue;
        open++;
        const res = this.resolver.resolve(a);
        const rcpt: Rcpt = { index: i, envelope: er, address: res.address, expandedFrom: multi ? i : null };
        let transport = res.transport;
        let nexthop = res.nexthop;
        if (res.addressClass === 'local') {
          // qmgr_message_resolve(): mail to the local double-bounce address is discarded here.
          const local = splitAddress(res.address).local;
          if (local.toLowerCase() === this.params.double_bounce_sender.toLowerCase()) {
            this.internal(msg, rcpt, '2.0.0', 'undeliverable postmaster notification discarded');
            continue;
          }
        }
        if (msg.forceExpire) {
          // qmgr_message_alloc()/qmgr_message_resolve(): a force-expired message is never delivered.
          // A recipient with a deferral on record is returned with that reason as it is (no log
          // line of its own); one without goes to retry, so the bounce still says why.
          if (this.returnDeferred(msg, rcpt)) continue;
          transport = 'retry';
          nexthop = '4.7.0 message is administratively expired';
        }
        add(transport, nexthop, rcpt);
      }
      if (multi && open === 0) this.write(msg, [{ kind: 'done', rcpt: i, action: 'expanded', status: '2.0.0', at: this.clock() }]);
    }
    for (const [key, entries] of byDest) {
      let d = this.dests.get(key);
      if (d === undefined) {
        const [transport, name] = key.split('\0') as [string, string];
        d = { transport, name, todo: [], busy: 0 };
        this.dests.set(key, d);
      }
      for (const e of entries) {
        d.todo.push(e);
        msg.pending++;
      }
    }
  }

  /**
   * Force-expired: take the recipient's last deferral as its outcome, for the bounce finish()
   * sends. False when there is none (never deferred: from incoming/ or hold/).
   */
  private returnDeferred(msg: ActiveMessage, rcpt: Rcpt): boolean {
    if (!msg.forceExpire) return false;
    const rec = msg.lastDeferred.get(deferKey(rcpt.index, rcpt.expandedFrom !== null ? rcpt.address : null));
    if (rec === undefined) return false;
    msg.deferred.push({
      rcpt,
      status: {
        index: rcpt.index,
        dsn: rec.status,
        action: 'deferred',
        reason: rec.reason,
        relay: 'none',
        connSeconds: 0,
        xmitSeconds: 0,
        ...(rec.remoteMta !== undefined ? { remoteMta: rec.remoteMta } : {}),
        ...(rec.diagnostic !== undefined ? { diagnostic: rec.diagnostic } : {}),
      },
    });
    return true;
  }

  /** A disposition qmgr makes itself (no agent): logged as qmgr. */
  private internal(msg: ActiveMessage, rcpt: Rcpt, dsn: string, reason: string): void {
    const status: DeliveryStatus = { index: rcpt.index, dsn, action: dsn.startsWith('2') ? 'delivered' : dsn.startsWith('5') ? 'failed' : 'deferred', reason, relay: 'none', connSeconds: 0, xmitSeconds: 0 };
    this.record(msg, rcpt, status, this.logger, null, this.clock());
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Start every delivery the concurrency limits allow. */
  private pump(): void {
    if (this.stopping) return;
    for (const [key, d] of this.dests) {
      if (d.todo.length === 0) {
        if (d.busy === 0) this.dests.delete(key);
        continue;
      }
      const ta = this.agentFor(d.transport);
      const climit = this.limit(d.transport, 'destination_concurrency_limit');
      const maxproc = ta?.maxproc ?? 0;
      while (d.todo.length > 0 && (climit <= 0 || d.busy < climit) && (maxproc <= 0 || (this.transportBusy.get(d.transport) ?? 0) < maxproc)) {
        const e = d.todo.shift()!;
        d.busy++;
        this.transportBusy.set(d.transport, (this.transportBusy.get(d.transport) ?? 0) + 1);
        this.track(
          this.deliver(e, ta).finally(() => {
            d.busy--;
            this.transportBusy.set(d.transport, (this.transportBusy.get(d.transport) ?? 1) - 1);
            this.schedulePump();
          }),
        );
      }
    }
  }

  private agentLogger(transport: string, ta: TransportAgent): Logger {
    const service = ta.command ?? transport;
    const key = `${ta.syslog_name ?? ''}/${service}`;
    let l = this.agentLoggers.get(key);
    if (l === undefined) {
      l = this.log.logger(service, ta.syslog_name !== undefined ? { syslog_name: ta.syslog_name } : {});
      this.agentLoggers.set(key, l);
    }
    return l;
  }

  private async deliver(e: Entry, ta: TransportAgent | undefined): Promise<void> {
    const msg = e.msg;
    if (ta === undefined) {
      if (!this.warnedTransports.has(e.transport)) {
        this.warnedTransports.add(e.transport);
        this.logger.warning(`connect to transport private/${e.transport}: no delivery agent for this transport in this Postern${e.transport === 'smtp' || e.transport === 'relay' ? ' (smtp client not implemented yet)' : ''}; mail for it is deferred`);
      }
      for (const r of e.recipients) this.internal(msg, r, '4.3.0', 'mail transport unavailable');
      await this.entryDone(msg);
      return;
    }
    const env = msg.qf.envelope;
    const recipients: DeliveryRecipient[] = e.recipients.map((r) => ({
      index: r.index,
      address: r.address,
      origAddress: r.address.toLowerCase() !== originalRecipient(r.envelope).toLowerCase() ? originalRecipient(r.envelope) : null,
      notify: r.envelope.notify,
      orcpt: r.envelope.orcpt,
    }));
    const req: DeliveryRequest = {
      queueId: msg.id,
      queueFile: msg.path,
      file: msg.qf,
      sender: env.sender,
      recipients,
      transport: e.transport,
      nexthop: e.nexthop,
      arrivalTime: env.arrivalTime,
      activeTime: msg.activeTime,
    };
    const handoff = this.clock();
    let statuses: readonly DeliveryStatus[] = [];
    try {
      statuses = await ta.agent.deliver(req);
    } catch (err) {
      this.logger.warning(`${msg.id}: ${e.transport} delivery agent failed: ${errText(err)}`);
    }
    if (this.stopping && !this.active.has(msg.id)) return;
    const now = this.clock();
    const logger = this.agentLogger(e.transport, ta);
    for (const r of e.recipients) {
      const st = statuses.find((s) => s.index === r.index) ?? {
        index: r.index,
        dsn: '4.3.0',
        action: 'deferred' as const,
        reason: 'unknown mail transport error',
        relay: 'none',
        connSeconds: 0,
        xmitSeconds: 0,
      };
      this.record(msg, r, st, logger, handoff, now);
    }
    await this.entryDone(msg);
  }

  /** Log one outcome and remember it; `done` records for sent recipients are appended now. */
  private record(msg: ActiveMessage, rcpt: Rcpt, st: DeliveryStatus, logger: Logger, handoff: number | null, now: number): void {
    const env = msg.qf.envelope;
    const cls = st.dsn[0];
    const status = cls === '2' ? 'sent' : cls === '5' ? 'bounced' : 'deferred';
    const dsn = cls === '2' || cls === '4' || cls === '5' ? st.dsn : '4.3.0';
    const times = { arrival: env.arrivalTime, active: msg.activeTime, handoff, connSeconds: st.connSeconds, done: now };
    const maxDig = this.params.delay_logging_resolution_limit;
    const orig = originalRecipient(rcpt.envelope);
    const origTo = rcpt.address.toLowerCase() !== orig.toLowerCase() ? orig : null;
    const leaves = st.expanded;
    if (leaves !== undefined && leaves.length > 0) {
      // The local agent expanded an alias: one line per address delivered, orig_to the recipient.
      for (const leaf of leaves) {
        const lc = leaf.dsn[0];
        const ls = lc === '2' ? 'sent' : lc === '5' ? 'bounced' : 'deferred';
        logger.info(deliveryLogLine({ queueId: msg.id, to: leaf.address, origTo: orig, relay: st.relay, dsn: leaf.dsn, status: ls, reason: leaf.reason }, times, maxDig));
      }
    } else {
      logger.info(deliveryLogLine({ queueId: msg.id, to: rcpt.address, origTo, relay: st.relay, dsn, status, reason: st.reason }, times, maxDig));
    }
    const outcome: Outcome = { rcpt, status: { ...st, dsn } };
    if (status === 'sent') {
      const action: DeliveryAction = st.action === 'relayed' || st.action === 'expanded' ? st.action : 'delivered';
      this.write(msg, this.doneRecords(msg, rcpt, action, dsn));
      if (Array.isArray(rcpt.envelope.notify) && rcpt.envelope.notify.some((n) => n.toUpperCase() === 'SUCCESS')) msg.success.push(outcome);
    } else if (status === 'bounced') {
      msg.bounced.push(outcome);
    } else {
      msg.deferred.push(outcome);
      this.write(msg, [
        {
          kind: 'deferred',
          rcpt: rcpt.index,
          status: dsn,
          reason: st.reason,
          at: now,
          ...(rcpt.expandedFrom !== null ? { address: rcpt.address } : {}),
          ...(st.remoteMta !== undefined ? { remoteMta: st.remoteMta } : {}),
          ...(st.diagnostic !== undefined ? { diagnostic: st.diagnostic } : {}),
        },
      ]);
    }
  }

  /**
   * Append records as part of this pass; a failure is kept for finish(). Not synced here: most
   * messages are removed at the end of the pass, and a message that goes back to deferred/ syncs
   * its log first (finish). A machine crash in between repeats a delivery, never loses one.
   */
  private write(msg: ActiveMessage, records: StateRecord[]): void {
    if (records.length === 0) return;
    // While other deliveries of the message are still under way, the records go to the log now, so
    // a process that dies meanwhile does not repeat these recipients. Those of the last one wait
    // for finish(): when every recipient is then done, the file is removed and a log would only be
    // created and unlinked again (an inode allocated and freed per message, ../queue/spare.ts).
    msg.held.push(...records);
    if (msg.pending > 1) this.flushHeld(msg);
  }

  private flushHeld(msg: ActiveMessage): void {
    if (msg.held.length === 0) return;
    const records = msg.held;
    msg.held = [];
    msg.writes.push(
      msg.state.appendUnsynced(...records).catch((err: unknown) => {
        msg.writeError ??= err;
      }),
    );
  }

  /**
   * The `done` records for one finished recipient. An expanded address gets its own record, and
   * the envelope recipient its record once every address it expanded to is finished.
   */
  private doneRecords(msg: ActiveMessage, rcpt: Rcpt, action: DoneRecord['action'], status: string): StateRecord[] {
    const at = this.clock();
    if (rcpt.expandedFrom === null) return [{ kind: 'done', rcpt: rcpt.index, action, status, at }];
    const i = rcpt.expandedFrom;
    const rec: ExpandedDoneRecord = { kind: 'done', rcpt: msg.nextSlot++, action, status, at, of: i, address: rcpt.address };
    const s = msg.expandedDone.get(i) ?? new Set<string>();
    msg.expandedDone.set(i, s);
    s.add(rcpt.address.toLowerCase());
    if (s.size >= (msg.expansionSize.get(i) ?? Number.POSITIVE_INFINITY)) return [rec, { kind: 'done', rcpt: i, action: 'expanded', status: '2.0.0', at }];
    return [rec];
  }

  private async entryDone(msg: ActiveMessage): Promise<void> {
    msg.pending--;
    if (msg.pending === 0) await this.finish(msg);
  }

  private report(o: Outcome, kind: 'failure' | 'delay' | 'success'): ReportRecipient {
    const st = o.status;
    const relay = st.relay;
    const reason = kind === 'success' && relay !== 'none' ? `delivery via ${relay}: ${st.reason}` : st.reason;
    return {
      address: o.rcpt.address,
      envelopeAddress: originalRecipient(o.rcpt.envelope),
      orcpt: o.rcpt.envelope.orcpt,
      notify: o.rcpt.envelope.notify,
      status: st.dsn,
      action: st.action,
      reason,
      ...(st.remoteMta !== undefined ? { remoteMta: st.remoteMta } : {}),
      ...(st.diagnostic !== undefined ? { diagnostic: st.diagnostic } : {}),
    };
  }

  /** Every recipient of this pass has an outcome: notices, then remove or defer (qmgr_active_done()). */
  private async finish(msg: ActiveMessage): Promise<void> {
    const id = msg.id;
    const env = msg.qf.envelope;
    // Every recipient done, nothing to report: the file goes, and the held records with it.
    const removing = !this.stopping && msg.deferred.length === 0 && msg.bounced.length === 0 && msg.success.length === 0;
    if (removing) msg.held = [];
    else this.flushHeld(msg);
    await Promise.all(msg.writes);
    msg.writes = [];
    if (msg.writeError !== null && !this.stopping) {
      // A done record that is not durable means a later retry repeats the delivery (never a loss).
      this.logger.warning(`${id}: update state log: ${strerror(msg.writeError)}`);
      msg.deferred.push(...msg.bounced);
      msg.bounced.length = 0;
    }
    if (this.stopping) {
      await this.release(msg);
      return;
    }
    let failed = false;
    if (msg.bounced.length > 0) {
      try {
        const posted = await this.bounce.notify('failure', msg.qf, msg.bounced.map((o) => this.report(o, 'failure')));
        await this.doneAfterNotice(msg, 'bounce', posted[0]?.queueId ?? '', msg.bounced);
      } catch (err) {
        this.logger.warning(`${id}: bounce or trace service failure: ${errText(err)}`);
        failed = true;
      }
    }
    if (msg.success.length > 0) {
      try {
        const posted = await this.bounce.notify('success', msg.qf, msg.success.map((o) => this.report(o, 'success')));
        if (posted.length > 0) await msg.state.append({ kind: 'notified', notice: 'success', queueId: posted[0]!.queueId, rcpts: msg.success.map((o) => o.rcpt.index), at: this.clock() });
      } catch (err) {
        this.logger.warning(`${id}: bounce or trace service failure: ${errText(err)}`);
      }
    }
    const now = this.clock();
    if (msg.deferred.length > 0 || failed) {
      const lifetime = env.sender === '' ? this.bounceQueueLifetime() : this.params.maximal_queue_lifetime;
      const expired = msg.forceExpire || now >= env.arrivalTime + lifetime * 1000;
      if (expired && !failed) {
        this.logger.info(`${id}: from=<${env.sender}>, status=${msg.forceExpire ? 'force-expired' : 'expired'}, returned to sender`);
        try {
          const posted = await this.bounce.notify('failure', msg.qf, msg.deferred.map((o) => this.report(o, 'failure')));
          await this.doneAfterNotice(msg, 'bounce', posted[0]?.queueId ?? '', msg.deferred);
          await this.remove(msg);
          return;
        } catch (err) {
          this.logger.warning(`${id}: bounce or trace service failure: ${errText(err)}`);
        }
      } else if (!failed && this.params.delay_warning_time > 0 && now >= env.arrivalTime + this.params.delay_warning_time * 1000 - 1000) {
        const warned = msg.state.records.some((r) => r.kind === 'notified' && r.notice === 'delay');
        if (!warned) {
          try {
            const posted = await this.bounce.notify('delay', msg.qf, msg.deferred.map((o) => this.report(o, 'delay')));
            await msg.state.append({ kind: 'notified', notice: 'delay', queueId: posted[0]?.queueId ?? '', rcpts: msg.deferred.map((o) => o.rcpt.index), at: this.clock() });
          } catch (err) {
            this.logger.warning(`${id}: bounce or trace service failure: ${errText(err)}`);
          }
        }
      }
      // qmgr_active_done_3_generic(): back off by the time in queue, within the limits.
      const inQueue = Math.floor((now - env.arrivalTime) / 1000);
      // Cut to the maximum first, then raised to the minimum: when maximal_backoff_time is set
      // below minimal_backoff_time, the minimum wins (as in Postfix).
      const delay = Math.max(Math.min(inQueue, this.params.maximal_backoff_time), this.params.minimal_backoff_time);
      // The done records of this pass become durable before the file waits for its next try.
      await msg.state.sync().catch((err: unknown) => this.logger.warning(`${id}: update state log: ${strerror(err)}`));
      await msg.state.close().catch(() => undefined);
      await this.deferFile(id, delay);
      this.active.delete(id);
      this.refill();
      return;
    }
    await this.remove(msg);
  }

  /** bounce_queue_lifetime, at most maximal_queue_lifetime (qmgr_post_init()). */
  private bounceQueueLifetime(): number {
    return Math.min(this.params.bounce_queue_lifetime, this.params.maximal_queue_lifetime);
  }

  /** Postfix's start-up warning when bounce_queue_lifetime is cut to maximal_queue_lifetime. */
  private checkLifetimes(): void {
    if (this.params.bounce_queue_lifetime > this.params.maximal_queue_lifetime) {
      this.logger.warning('bounce_queue_lifetime is larger than maximal_queue_lifetime - adjusting bounce_queue_lifetime');
    }
  }

  /** After a notice is queued: `notified` plus `done` (failed) for the reported recipients, in one durable append. */
  private async doneAfterNotice(msg: ActiveMessage, notice: 'bounce', queueId: string, outcomes: readonly Outcome[]): Promise<void> {
    const at = this.clock();
    const recs: StateRecord[] = [{ kind: 'notified', notice, queueId, rcpts: [...new Set(outcomes.map((o) => o.rcpt.index))], at }];
    const seen = new Set<string>();
    for (const o of outcomes) {
      const key = `${o.rcpt.index}\0${o.rcpt.address.toLowerCase()}`;
      if (seen.has(key)) continue;
      seen.add(key);
      recs.push(...this.doneRecords(msg, o.rcpt, 'failed', o.status.dsn));
    }
    await msg.state.append(...recs);
  }

  private async remove(msg: ActiveMessage): Promise<void> {
    await msg.state.close().catch(() => undefined);
    try {
      await this.spares.retire(msg.path, msg.qf.fileSize);
      // Same format as logged by postsuper (qmgr_active.c).
      this.logger.info(`${msg.id}: removed`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warning(`${msg.id}: remove ${msg.id} from active: ${strerror(err)}`);
    }
    if (msg.state.exists) await removeStateLog(this.qdir, msg.id).catch(() => undefined);
    this.active.delete(msg.id);
    this.refill();
  }

  /** Stopping: leave the file in active/ (the next start requeues it); close its state log. */
  private async release(msg: ActiveMessage): Promise<void> {
    await msg.state.close().catch(() => undefined);
    this.active.delete(msg.id);
  }

  /** Room in the active window again: take kicked ids, then rescan incoming/ if some were missed. */
  private refill(): void {
    if (this.stopping) return;
    for (const id of [...this.waiting]) {
      if (!this.room()) return;
      this.waiting.delete(id);
      this.track(this.activate(id, 'incoming', false));
    }
    if (this.incomingBacklog && this.room() && this.scanning === null) this.track(this.scan(false));
  }

  private checkIdle(): void {
    if (this.inflight.size > 0 || this.active.size > 0 || this.activating.size > 0) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Resolves when nothing is being activated, delivered or finished (tests, drain). */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      setImmediate(() => this.checkIdle());
    });
  }

  /** Messages in the active window now. */
  get activeCount(): number {
    return this.active.size;
  }

  /** SIGHUP: new parameters, resolver and agents for new work; deliveries in flight finish as they are. */
  reload(config: QmgrOptions['config'], agents?: AgentTable): void {
    const resolver = this.makeResolver(config.params);
    this.config = config;
    this.params = config.params;
    this.resolver = resolver;
    this.bounce = new Bounce({ params: config.params, log: this.log, cleanup: this.cleanup, clock: this.clock });
    this.limits.clear();
    this.checkLifetimes();
    if (agents !== undefined) this.agents = agents;
    if (this.timer !== null) clearTimeout(this.timer);
    this.schedulePeriodic();
  }

  /**
   * Stop: no new activations or deliveries; wait for deliveries in flight until `deadline` (ms
   * since the epoch), record their results, and leave unfinished messages in active/ (requeued
   * at the next start). Results that arrive later are dropped (the delivery may repeat).
   */
  async stop(deadline = Date.now() + 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.waiting.clear();
    for (const d of this.dests.values()) d.todo.length = 0;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
    });
    await Promise.race([Promise.allSettled([...this.inflight]), timeout]);
    clearTimeout(timer);
    for (const msg of [...this.active.values()]) await this.release(msg);
    this.dests.clear();
  }
}

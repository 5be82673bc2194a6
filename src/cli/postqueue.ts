/**
 * `postern postqueue -p | -j | -f | -i queue_id | -s site`, as Postfix's postqueue(1).
 *
 *   -p  the queue in sendmail's mailq format, byte for byte as Postfix's showq_compat.c (tools
 *       parse it): `-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------`, one
 *       block per message (`*` active, `!` hold, `#` forced to expire), `(reason)` lines from the
 *       state log's deferred records, `-- N Kbytes in M Requests.` or `Mail queue is empty`.
 *   -j  one JSON object per message, as Postfix 3.7's showq_json.c (queue_name, queue_id,
 *       arrival_time, message_size, forced_expire, sender, recipients[{address, delay_reason}]).
 *   -f  flush: ask qmgr (through its trigger, ../queue/trigger.ts) to try every deferred message now.
 *   -i  flush one deferred message (its retry time is set to now, as Postfix's flush(8) does, and
 *       qmgr is asked to scan); -s flush the deferred mail for one site (fast_flush_domains).
 *
 * Queues listed, in Postfix's order: maildrop, active, incoming, deferred, hold (corrupt/ is not a
 * queue). Postern reads the queue directories itself (there is no showq daemon), so listing needs
 * read access to queue_directory: root or mail_owner, as Postfix's stand-alone showq. Recipients
 * already done (state log) are not shown, as Postfix removes them from the queue file.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { quote822Local } from '../cleanup/headers.js';
import { loadConfig } from '../config/index.js';
import { openTable } from '../config/tables/index.js';
import type { Params } from '../config/types.js';
import { Log, type Logger } from '../log/index.js';
import { strerror } from '../log/strerror.js';
import { openMaildropFile } from '../pickup/maildrop.js';
import { EX_CONFIG, EX_SOFTWARE, EX_UNAVAILABLE, EX_USAGE } from '../pickup/submit.js';
import { isIPv4Literal, isIPv6Literal, isValidHostname } from '../proto/smtp/address.js';
import { type QueueName, queueDirPath } from '../queue/directories.js';
import { type QueueFile, readQueueFile } from '../queue/file.js';
import { isQueueId } from '../queue/id.js';
import { readStateLog } from '../queue/state-log.js';
import { type QmgrRequest, triggerQmgr } from '../queue/trigger.js';
import type { CliContext } from './context.js';

// --- tool messages -----------------------------------------------------------------------------

/** A command-line tool's messages: `prog: text` on stderr and, when maillog_file is a file the user may append to, `postfix/prog[pid]: text` there (Postfix msg_vstream + maillog_client). */
export interface ToolLog {
  info(text: string): void;
  warning(text: string): void;
  /** Logs `fatal: text`; the caller returns the exit status. */
  fatal(text: string): void;
  /**
   * The mail log alone, as `postfix/service[pid]`: what a program this tool runs in its own process
   * logs there (sendmail -bs runs smtpd -S). Null when maillog_file cannot be written.
   */
  mailLog(service: string): Logger | null;
  close(): Promise<void>;
}

export function toolLog(prog: string, stderr: NodeJS.WritableStream, params: Params | null): ToolLog {
  let log: Log | null = null;
  const file = params?.maillog_file ?? '';
  if (params !== null && file !== '' && file !== '/dev/stdout' && file !== '/dev/stderr') {
    try {
      log = Log.open({ syslog_name: params.syslog_name, myhostname: params.myhostname, maillog_file: file });
    } catch {
      log = null; // not ours to write (an ordinary user): stderr only
    }
  }
  const logger = log?.logger(prog, { id: process.pid }) ?? null;
  return {
    info(text) {
      stderr.write(`${prog}: ${text}\n`);
      logger?.info(text);
    },
    warning(text) {
      stderr.write(`${prog}: warning: ${text}\n`);
      logger?.warning(text);
    },
    fatal(text) {
      stderr.write(`${prog}: fatal: ${text}\n`);
      logger?.fatal(text);
    },
    mailLog(service) {
      return log?.logger(service, { id: process.pid }) ?? null;
    },
    async close() {
      await log?.close();
    },
  };
}

/** POSIX getopt over `args` (no permutation: stops at the first non-option or `--`). */
export interface Getopt {
  /** The option letter, '?' for an unknown option or a missing argument, null at the end. */
  next(): { opt: string; arg: string | null; bad: string | null } | null;
  /** Arguments after the options. */
  rest(): string[];
}

export function getopt(args: readonly string[], spec: string): Getopt {
  let i = 0;
  let pos = 1;
  return {
    next() {
      if (i >= args.length) return null;
      const a = args[i]!;
      if (pos === 1) {
        if (a === '--') {
          i++;
          return null;
        }
        if (a.length < 2 || a[0] !== '-') return null;
      }
      const c = a[pos]!;
      const k = spec.indexOf(c);
      const takesArg = k >= 0 && spec[k + 1] === ':';
      if (k < 0 || c === ':') {
        pos++;
        if (pos >= a.length) {
          i++;
          pos = 1;
        }
        return { opt: '?', arg: null, bad: `invalid option -- '${c}'` };
      }
      if (!takesArg) {
        pos++;
        if (pos >= a.length) {
          i++;
          pos = 1;
        }
        return { opt: c, arg: null, bad: null };
      }
      let arg: string;
      if (pos + 1 < a.length) {
        arg = a.slice(pos + 1);
        i++;
      } else if (i + 1 < args.length) {
        arg = args[i + 1]!;
        i += 2;
      } else {
        i++;
        pos = 1;
        return { opt: '?', arg: null, bad: `option requires an argument -- '${c}'` };
      }
      pos = 1;
      return { opt: c, arg, bad: null };
    },
    rest() {
      return args.slice(i);
    },
  };
}

// --- the queue listing (Postfix showq) -----------------------------------------------------------

/** Postfix showq's queue order. */
export const SHOWQ_QUEUES: readonly QueueName[] = ['maildrop', 'active', 'incoming', 'deferred', 'hold'];

export interface ShowqRecipient {
  /** Printable, quoted as Postfix shows it. */
  readonly address: string;
  /** '' when no reason is known. */
  readonly reason: string;
}

export interface ShowqEntry {
  readonly queue: QueueName;
  readonly id: string;
  /** Seconds since the epoch. */
  readonly arrivalTime: number;
  readonly size: number;
  readonly forcedExpire: boolean;
  /** Printable, quoted; the null sender as empty_address_recipient (MAILER-DAEMON). */
  readonly sender: string;
  readonly recipients: readonly ShowqRecipient[];
}

/** Postfix printable(): control characters (and, without SMTPUTF8, non-ASCII) become '?'. */
export function printable(s: string, utf8 = true): string {
  return utf8 ? s.replace(/[\x00-\x1f\x7f-\x9f]/g, '?') : s.replace(/[^\x20-\x7e]/g, '?');
}

function showAddress(address: string, params: Params): string {
  return printable(quote822Local(address === '' ? params.empty_address_recipient : address), params.smtputf8_enable);
}

/** Postfix MAIL_QUEUE_STAT_EXPIRE (`postsuper -e`): the group-execute bit of a queue file. */
const FORCED_EXPIRE_BIT = 0o010;

async function queueEntry(queue_directory: string, queue: QueueName, id: string, params: Params): Promise<ShowqEntry | null> {
  const file = path.join(queueDirPath(queue_directory, queue), id);
  if (queue === 'maildrop') {
    const md = await openMaildropFile(file);
    try {
      const env = md.envelope;
      return {
        queue,
        id,
        arrivalTime: Math.floor(env.time / 1000),
        // As Postfix: a maildrop file has no size record yet; its file size is shown.
        size: md.size,
        forcedExpire: false,
        sender: showAddress(env.sender, params),
        recipients: env.recipients.map((r) => ({ address: showAddress(r.address, params), reason: '' })),
      };
    } finally {
      await md.close();
    }
  }
  const st = await fsp.lstat(file);
  if (!st.isFile()) return null;
  const qf: QueueFile = await readQueueFile(file, { verifyHash: false });
  const env = qf.envelope;
  const records = await readStateLog(queue_directory, id, qf.sha256).catch(() => []);
  const done = new Set<number>();
  const reason = new Map<number, string>();
  for (const r of records) {
    if (r.kind === 'done') done.add(r.rcpt);
    else if (r.kind === 'deferred') reason.set(r.rcpt, r.reason);
  }
  // Postfix lists the recipients of the defer log (with their reasons) first, then the others.
  const withReason: ShowqRecipient[] = [];
  const without: ShowqRecipient[] = [];
  env.recipients.forEach((r, i) => {
    if (done.has(i)) return;
    const why = reason.get(i) ?? '';
    (why !== '' ? withReason : without).push({ address: showAddress(r.address, params), reason: printable(why, params.smtputf8_enable) });
  });
  return {
    queue,
    id,
    arrivalTime: Math.floor(env.arrivalTime / 1000),
    size: env.size,
    forcedExpire: (st.mode & FORCED_EXPIRE_BIT) !== 0,
    sender: showAddress(env.sender, params),
    recipients: [...withReason, ...without],
  };
}

/**
 * Every queued message, queue by queue in Postfix's order, ids sorted within a queue. Files that
 * vanish or do not validate meanwhile are skipped (as showq skips them). Throws on an unreadable
 * queue directory (EACCES).
 */
export async function* listQueue(queue_directory: string, params: Params): AsyncGenerator<ShowqEntry> {
  for (const queue of SHOWQ_QUEUES) {
    let names: string[];
    try {
      names = await fsp.readdir(queueDirPath(queue_directory, queue));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    names = names.filter(isQueueId).sort();
    for (const id of names) {
      let e: ShowqEntry | null;
      try {
        e = await queueEntry(queue_directory, queue, id, params);
      } catch {
        continue;
      }
      if (e !== null) yield e;
    }
  }
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number): string => String(n).padStart(2, '0');

/** asctime(localtime(t)), first 20 characters: `Wed Nov 25 12:40:34 ` (day space-padded). */
export function asctime20(sec: number): string {
  const d = new Date(sec * 1000);
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} `;
}

const padEnd = (s: string, n: number): string => s.padEnd(n, ' ');
const padStart = (s: string, n: number): string => s.padStart(n, ' ');

/** Postfix showq_compat.c formats (S_* for short ids, L_* with enable_long_queue_ids). */
function compatFormats(longIds: boolean): { heading: string; sender: (e: ShowqEntry, idStatus: string) => string; blank: (addr: string) => string } {
  if (longIds) {
    // "%-17s %8s %-19s %s\n" and "%-17s %8ld %19.19s %s\n"
    return {
      heading: `${padEnd('----Queue ID-----', 17)} ${padStart('--Size--', 8)} ${padEnd('---Arrival Time----', 19)} --Sender/Recipient------\n`,
      sender: (e, s) => `${padEnd(s, 17)} ${padStart(String(e.size), 8)} ${padStart(asctime20(e.arrivalTime).slice(0, 19), 19)} ${e.sender}\n`,
      blank: (a) => `${' '.repeat(17)} ${' '.repeat(8)} ${' '.repeat(19)} ${a}\n`,
    };
  }
  // "%-11s %7s %-20s %s\n" and "%-11s %7ld %20.20s %s\n"
  return {
    heading: `${padEnd('-Queue ID-', 11)} ${padStart('--Size--', 7)} ${padEnd('----Arrival Time----', 20)} -Sender/Recipient-------\n`,
    sender: (e, s) => `${padEnd(s, 11)} ${padStart(String(e.size), 7)} ${asctime20(e.arrivalTime)} ${e.sender}\n`,
    blank: (a) => `${' '.repeat(11)} ${' '.repeat(7)} ${' '.repeat(20)} ${a}\n`,
  };
}

/** One message block of `postqueue -p` (without the blank line between blocks). */
export function formatCompatEntry(e: ShowqEntry, longIds: boolean): string {
  const f = compatFormats(longIds);
  let idStatus = e.id;
  if (e.queue === 'active') idStatus += '*';
  else if (e.queue === 'hold') idStatus += '!';
  if (e.forcedExpire) idStatus += '#';
  let out = f.sender(e, idStatus);
  let saved = '';
  for (const r of e.recipients) {
    // A "(reason)" line when the reason differs from the previous recipient's; "(reason
    // unavailable)" when the previous one had a reason and this one has none.
    if (r.reason !== saved) {
      saved = r.reason;
      const show = saved !== '' ? saved : 'reason unavailable';
      out += `${' '.repeat(Math.max(0, 76 - show.length))}(${show})\n`;
    }
    out += f.blank(r.address);
  }
  return out;
}

/** Write the whole `postqueue -p` listing. */
export async function writeCompat(entries: AsyncIterable<ShowqEntry>, longIds: boolean, out: NodeJS.WritableStream): Promise<void> {
  let count = 0;
  let bytes = 0;
  for await (const e of entries) {
    out.write(count > 0 ? '\n' : compatFormats(longIds).heading);
    out.write(formatCompatEntry(e, longIds));
    count++;
    bytes += e.size;
  }
  if (count === 0) out.write('Mail queue is empty\n');
  else out.write(`\n-- ${Math.floor(bytes / 1024)} Kbytes in ${count} Request${count === 1 ? '' : 's'}.\n`);
}

/** Postfix quote_for_json() on an already printable string: backslash and double quote escaped. */
function jsonString(s: string): string {
  return `"${s.replace(/[\\"]/g, '\\$&').replace(/[\x00-\x1f\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`)}"`;
}

/** One line of `postqueue -j` (Postfix 3.7 showq_json.c member order and spacing). */
export function formatJsonEntry(e: ShowqEntry): string {
  const rcpts = e.recipients.map((r) => `{"address": ${jsonString(r.address)}${r.reason !== '' ? `, "delay_reason": ${jsonString(r.reason)}` : ''}}`);
  return (
    `{"queue_name": ${jsonString(e.queue)}, "queue_id": ${jsonString(e.id)}, "arrival_time": ${e.arrivalTime}, ` +
    `"message_size": ${e.size}, "forced_expire": ${e.forcedExpire ? 'true' : 'false'}, "sender": ${jsonString(e.sender)}, ` +
    `"recipients": [${rcpts.join(', ')}]}\n`
  );
}

// --- flush ---------------------------------------------------------------------------------------

/**
 * What postqueue asks a running qmgr (../queue/trigger.ts): `flush` = every deferred message now,
 * `scan` = look at incoming/ and the deferred messages that are due, `{ site }` = the deferred
 * mail for one destination now.
 */
export type FlushRequest = QmgrRequest;

/** Sends a request to the running server; throws when it cannot be reached. */
export type FlushSender = (queue_directory: string, request: FlushRequest) => Promise<void>;

/** RFC 5321 address literal or host name (Postfix valid_mailhost_literal / valid_hostname). */
function validSite(site: string): boolean {
  if (site.startsWith('[')) {
    if (!site.endsWith(']')) return false;
    const inner = site.slice(1, -1);
    return isIPv4Literal(inner) || (inner.toLowerCase().startsWith('ipv6:') && isIPv6Literal(inner.slice(5)));
  }
  return isValidHostname(site);
}

/**
 * Is `site` eligible for the fast flush service (fast_flush_domains, default $relay_domains;
 * parent_domain_matches_subdomains lists fast_flush_domains, so a parent matches its subdomains).
 */
export function fastFlushAllowed(site: string, params: Params): boolean {
  const name = site.toLowerCase();
  const subdomains = params.parent_domain_matches_subdomains.includes('fast_flush_domains');
  for (const entry of params.fast_flush_domains) {
    const e = entry.toLowerCase();
    if (e.includes(':') && !e.startsWith('[')) {
      try {
        const t = openTable(entry);
        for (let d = name; d !== ''; d = d.includes('.') ? d.slice(d.indexOf('.') + 1) : '') {
          if (t.get(d) !== undefined) return true;
          if (!subdomains) break;
        }
      } catch {
        // an unreadable table grants nothing
      }
      continue;
    }
    if (e === name) return true;
    if (e.startsWith('.') ? name.endsWith(e) : subdomains && name.endsWith(`.${e}`)) return true;
  }
  return false;
}

/** The default flush sender: qmgr's trigger endpoint. */
const defaultFlushSender: FlushSender = (queue_directory, request) => triggerQmgr(queue_directory, request);

// --- main ---------------------------------------------------------------------------------------

const USAGE = 'usage: postqueue -f | postqueue -i queueid | postqueue -j | postqueue -p | postqueue -s site';

export interface PostqueueOptions {
  /** Tests: the flush transport (default: qmgr's trigger). */
  readonly flush?: FlushSender;
}

type Mode = 'none' | 'list' | 'json' | 'flush' | 'flush-id' | 'flush-site';

export async function main(args: string[], ctx: CliContext, o: PostqueueOptions = {}): Promise<number> {
  let mode: Mode = 'none';
  let site = '';
  let id = '';
  let configDir = ctx.configDir;
  const early = toolLog('postqueue', ctx.stderr, null);
  const g = getopt(args, 'c:fi:jps:v');
  for (let opt = g.next(); opt !== null; opt = g.next()) {
    const set = (m: Mode): boolean => {
      if (mode !== 'none') return false;
      mode = m;
      return true;
    };
    let ok = true;
    switch (opt.opt) {
      case 'c':
        configDir = opt.arg!;
        break;
      case 'f':
        ok = set('flush');
        break;
      case 'i':
        ok = set('flush-id');
        id = opt.arg!;
        break;
      case 'j':
        ok = set('json');
        break;
      case 'p':
        ok = set('list');
        break;
      case 's':
        ok = set('flush-site');
        site = opt.arg!;
        break;
      case 'v':
        break;
      default:
        ctx.stderr.write(`postqueue: ${opt.bad}\n`);
        ok = false;
    }
    if (!ok) {
      early.fatal(USAGE);
      return EX_USAGE;
    }
  }
  if (g.rest().length > 0 || mode === 'none') {
    early.fatal(USAGE);
    return EX_USAGE;
  }

  let params: Params;
  try {
    params = (await loadConfig({ configDir, env: ctx.env })).params;
  } catch (err) {
    early.fatal(err instanceof Error ? err.message : String(err));
    return EX_CONFIG;
  }
  const log = toolLog('postqueue', ctx.stderr, params);
  try {
    return await run(mode, params, ctx, log, site, id, o);
  } finally {
    await log.close();
  }
}

async function run(mode: Mode, params: Params, ctx: CliContext, log: ToolLog, site: string, id: string, o: PostqueueOptions): Promise<number> {
  const qdir = params.queue_directory;
  if (mode === 'flush-site' && !validSite(site)) {
    log.fatal(`Cannot flush mail queue - invalid destination: "${site.slice(0, 100)}${site.length > 100 ? '...' : ''}"`);
    return EX_USAGE;
  }
  if (mode === 'flush-id' && !isQueueId(id)) {
    log.fatal(`Cannot flush queue ID - invalid name: "${id.slice(0, 100)}${id.length > 100 ? '...' : ''}"`);
    return EX_USAGE;
  }
  switch (mode) {
    case 'list':
    case 'json': {
      const longIds = params.enable_long_queue_ids;
      try {
        if (mode === 'list') await writeCompat(listQueue(qdir, params), longIds, ctx.stdout);
        else for await (const e of listQueue(qdir, params)) ctx.stdout.write(formatJsonEntry(e));
      } catch (err) {
        log.fatal(`Queue report unavailable - ${queueErrorText(err)}`);
        return EX_UNAVAILABLE;
      }
      return 0;
    }
    case 'flush-site':
      if (!fastFlushAllowed(site, params)) {
        log.fatal(`Flush service is not configured for destination "${site}"`);
        return EX_UNAVAILABLE;
      }
      return sendFlush(qdir, { site }, log, o);
    case 'flush-id': {
      // As Postfix's flush(8) for `postqueue -i`: make the deferred file due now (its mtime is
      // its retry time) and have qmgr scan. An id that is not deferred is no error (Postfix: OK).
      const file = path.join(queueDirPath(qdir, 'deferred'), id);
      const now = new Date();
      await fsp.utimes(file, now, now).catch(() => undefined);
      return sendFlush(qdir, 'scan', log, o);
    }
    case 'flush':
      return sendFlush(qdir, 'flush', log, o);
    default:
      log.fatal(USAGE);
      return EX_SOFTWARE;
  }
}

function queueErrorText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return typeof e?.path === 'string' ? `${e.path}: ${strerror(err)}` : strerror(err);
}

async function sendFlush(qdir: string, request: FlushRequest, log: ToolLog, o: PostqueueOptions): Promise<number> {
  try {
    await (o.flush ?? defaultFlushSender)(qdir, request);
    return 0;
  } catch {
    log.fatal('Cannot flush mail queue - mail system is down');
    return EX_UNAVAILABLE;
  }
}

/**
 * `postern sendmail [options] [recipient ...]`: the Sendmail-compatible interface, as Postfix's
 * sendmail(1). Installed under the names `sendmail`, `mailq` and `newaliases` (symbolic links to
 * bin/postern.js), it behaves as the name says.
 *
 * Delivery mode (the default) reads a message from standard input and leaves it in
 * queue_directory/maildrop/ (../pickup/submit.ts): durable (file and directory fsync) before the
 * exit status 0, and without the server running; pickup hands it to cleanup when Postern runs.
 *
 * Options as Postfix's: -f sender (-r), -F full_name, -t, -i / -oi, -N dsn, -R full|hdrs,
 * -V envid, -B 7BIT|8BITMIME, -bs (SMTP on stdin/stdout), -bp (= mailq), -bi / -I (newaliases:
 * nothing to rebuild, Postern reads alias tables from their text), -bm, -bh/-bH (ignored),
 * -q (= postqueue -f), -qRsite, -qIqueue_id, -q<time> (ignored), -C config_file, and the
 * Sendmail options Postfix ignores (-o..., -O..., -e, -h, -L, -p, -A, -c, -G, -U, -v, -x).
 * Not supported: -bd/-bl (run `postern run`), -bv (address verification), VERP (-XV).
 *
 * Exit status: sysexits(3) as Postfix's sendmail — EX_USAGE 64 (bad options, no recipient),
 * EX_DATAERR 65 (message too big), EX_OSERR 71 (no login name), EX_TEMPFAIL 75 (write error,
 * configuration unreadable), EX_UNAVAILABLE 69 (mail system down for -q).
 * Messages go to standard error as `sendmail: fatal: ...` and, when it may be written, to
 * maillog_file as `postfix/sendmail[pid]: fatal: ...`.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { loadConfig } from '../config/index.js';
import type { Params } from '../config/types.js';
import { parseSender } from '../pickup/address.js';
import { MAILDROP_MODE } from '../pickup/index.js';
import { runStdioSmtp } from '../pickup/smtp-stdio.js';
import { EX_OSERR, EX_TEMPFAIL, EX_USAGE, parseNotifyOption, SubmitError, type SubmitOptions, submit } from '../pickup/submit.js';
import { createQueueDirectories, queueDirPath } from '../queue/directories.js';
import type { CliContext } from './context.js';
import { type FlushSender, main as postqueue, type ToolLog, toolLog } from './postqueue.js';

/** What a test may replace; the defaults are the process's. */
export interface SendmailIo {
  readonly stdin: Readable;
  /** The submitting user's id and login name. */
  readonly uid: number;
  readonly user: string | null;
  /** The flush transport for -q (default: qmgr's trigger). */
  readonly flush: FlushSender;
}

export type Personality = 'sendmail' | 'mailq' | 'newaliases';

type Mode = 'enqueue' | 'mailq' | 'flush' | 'daemon' | 'newaliases' | 'user' | 'ignore' | 'verify';

/** Options that take an argument (Postfix sendmail.c GETOPT_LIST "A:B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:r:q:tvx"). */
const WITH_ARG = new Set('ABCFLNORVXbefhopqr');
const FLAGS = new Set('GIUcimntvx');

export async function main(args: string[], ctx: CliContext): Promise<number> {
  return sendmail(args, ctx, 'sendmail');
}

/** The login name's full name from the GECOS field (Postfix fullname(): up to , ; or %, & = Login). */
export function gecosName(uid: number, login: string | null, passwd = '/etc/passwd'): string | null {
  let text: string;
  try {
    text = fs.readFileSync(passwd, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 5 || Number(f[2]) !== uid || f[2] === '') continue;
    if (login !== null && f[0] !== login) continue;
    const gecos = f[4]!;
    let out = '';
    for (const ch of gecos) {
      if (ch === ',' || ch === ';' || ch === '%') break;
      out += ch === '&' ? (f[0]![0] ?? '').toUpperCase() + f[0]!.slice(1) : ch;
    }
    return out;
  }
  return null;
}

function loginName(): string | null {
  try {
    return os.userInfo().username;
  } catch {
    return null;
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `sendmail`, `mailq` (= sendmail -bp) and `newaliases` (= sendmail -bi). */
export async function sendmail(args: string[], ctx: CliContext, personality: Personality, io: Partial<SendmailIo> = {}): Promise<number> {
  const early = toolLog(personality, ctx.stderr, null);
  // An object, so TypeScript does not narrow it across the option() closure that changes it.
  const st: { mode: Mode } = { mode: personality === 'mailq' ? 'mailq' : personality === 'newaliases' ? 'newaliases' : 'enqueue' };
  let configDir = ctx.configDir;
  let sender: string | null = null;
  let fullName: string | null = null;
  let extract = false;
  let dotEnds = true;
  let notify: readonly string[] | 'NEVER' | null = null;
  let ret: 'FULL' | 'HDRS' | null = null;
  let envid: string | null = null;
  let body: '7BIT' | '8BITMIME' | null = null;
  let smtputf8 = false;
  let site: string | null = null;
  let flushId: string | null = null;
  let qtime: string | null = null;
  const warnings: string[] = [];
  const usage = (text = `usage: ${personality} [options]`): number => {
    early.fatal(text);
    return EX_USAGE;
  };

  let i = 0;
  while (i < args.length) {
    const a = args[i]!;
    if (a === '-q') {
      if (st.mode === 'daemon') warnings.push('ignoring -q option in daemon mode');
      else st.mode = 'flush';
      i++;
      continue;
    }
    if (a === '--') {
      i++;
      break;
    }
    if (a.length < 2 || a[0] !== '-') break;
    // "-V xy" and "-Vxy" were VERP before Postfix 2.3 (-XV now); VERP is not supported.
    if ((a === '-V' && args[i + 1]?.length === 2) || (a.startsWith('-V') && a.length === 4) || a.startsWith('-XV')) {
      warnings.push(`option ${a} (VERP) is not supported -- ignored`);
      i += a === '-V' ? 2 : 1;
      continue;
    }
    for (let pos = 1; pos < a.length; pos++) {
      const c = a[pos]!;
      if (FLAGS.has(c)) {
        if (c === 'n') {
          early.fatal('-n option not supported');
          return EX_USAGE;
        }
        if (c === 'I') st.mode = 'newaliases';
        else if (c === 'i') dotEnds = false;
        else if (c === 't') extract = true;
        // G (gateway), U, c, m, v, x: ignored as Postfix
        continue;
      }
      if (!WITH_ARG.has(c)) {
        ctx.stderr.write(`${personality}: invalid option -- '${c}'\n`);
        return usage();
      }
      let arg: string;
      if (pos + 1 < a.length) arg = a.slice(pos + 1);
      else if (i + 1 < args.length) {
        i++;
        arg = args[i]!;
      } else {
        ctx.stderr.write(`${personality}: option requires an argument -- '${c}'\n`);
        return usage();
      }
      const bad = option(c, arg);
      if (bad !== null) return usage(bad);
      break;
    }
    i++;
  }
  const recipientArgs = args.slice(i);

  /** One option with its argument; a fatal usage text, or null. */
  function option(c: string, arg: string): string | null {
    switch (c) {
      case 'B':
        if (arg !== '8BITMIME' && arg !== '7BIT') return '-B option needs 8BITMIME or 7BIT';
        body = arg;
        break;
      case 'C':
        configDir = path.basename(arg) === 'main.cf' ? path.dirname(arg) : arg;
        break;
      case 'F':
        fullName = arg;
        break;
      case 'N': {
        const n = parseNotifyOption(arg);
        if (n === null) warnings.push(`bad -N option value: '${arg}' -- ignored`);
        else notify = n;
        break;
      }
      case 'O': {
        const eq = arg.indexOf('=');
        const name = (eq < 0 ? arg : arg.slice(0, eq)).toUpperCase();
        const value = eq < 0 ? '' : arg.slice(eq + 1).toLowerCase();
        if (name === 'SMTPUTF8') {
          if (value === 'yes') smtputf8 = true;
          else if (value === 'no') smtputf8 = false;
          else warnings.push(`bad -O option: '${arg}' -- ignored`);
        }
        break;
      }
      case 'R':
        if (arg.toLowerCase() === 'full') ret = 'FULL';
        else if (arg.toLowerCase() === 'hdrs') ret = 'HDRS';
        else warnings.push('bad -R option value -- ignored');
        break;
      case 'V':
        if (arg.length > 100) warnings.push('too long -V option value -- ignored');
        else if (!/^[\x20-\x7e\t]+$/.test(arg)) warnings.push('bad syntax in -V option value -- ignored');
        else envid = arg;
        break;
      case 'X':
        return `unsupported: -X${arg[0] ?? ''}`;
      case 'b':
        switch (arg[0]) {
          case 'd':
          case 'l':
            if (st.mode === 'flush') warnings.push('ignoring -q option in daemon mode');
            st.mode = 'daemon';
            break;
          case 'h':
          case 'H':
            st.mode = 'ignore';
            break;
          case 'i':
            st.mode = 'newaliases';
            break;
          case 'm':
            st.mode = 'enqueue';
            break;
          case 'p':
            st.mode = 'mailq';
            break;
          case 's':
            st.mode = 'user';
            break;
          case 'v':
            st.mode = 'verify';
            break;
          default:
            return `unsupported: -b${arg[0] ?? ''}`;
        }
        break;
      case 'f':
      case 'r': {
        const s = parseSender(arg);
        if (s.count > 1) warnings.push(`-f option specified malformed sender: ${arg}`);
        sender = s.address;
        break;
      }
      case 'o':
        if (arg[0] === 'i') dotEnds = false;
        else if (arg === 'A') return '-oA requires pathname';
        break;
      case 'q':
        if (/^[0-9]/.test(arg)) qtime = arg;
        else if (arg[0] === 'R') {
          site = arg.slice(1);
          if (site === '') return 'specify: -qRsitename';
        } else if (arg[0] === 'I') {
          flushId = arg.slice(1);
          if (flushId === '') return 'specify: -qIqueueid';
        } else return `-q${arg[0] ?? ''} is not implemented`;
        break;
      default: // A, L, e, h, p: ignored as Postfix
    }
    return null;
  }

  // Conflicting options and arguments (Postfix sendmail.c, in its order).
  if (extract && st.mode !== 'enqueue') return usage('-t can be used only in delivery mode');
  if (site !== null && st.mode !== 'enqueue') return usage('-qR can be used only in delivery mode');
  if (flushId !== null && st.mode !== 'enqueue') return usage('-qI can be used only in delivery mode');

  let params: Params;
  try {
    params = (await loadConfig({ configDir, env: ctx.env })).params;
  } catch (err) {
    early.fatal(message(err));
    return EX_TEMPFAIL;
  }
  const log = toolLog(personality, ctx.stderr, params);
  try {
    for (const w of warnings) log.warning(w);
    if (qtime !== null && st.mode !== 'daemon') return 0;
    const none = (what: string): number | null => {
      if (recipientArgs.length === 0) return null;
      log.fatal(`${what} requires no recipient`);
      return EX_USAGE;
    };
    const toPostqueue = (pqArgs: string[]): Promise<number> =>
      postqueue(['-c', configDir, ...pqArgs], { ...ctx, configDir }, io.flush !== undefined ? { flush: io.flush } : {});
    switch (st.mode) {
      case 'enqueue':
        if (site !== null) return none('flush site') ?? (await toPostqueue(['-s', site]));
        if (flushId !== null) return none('flush queue_id') ?? (await toPostqueue(['-i', flushId]));
        return await enqueue(params, ctx, io, log, { sender, fullName, extract, dotEnds, notify, ret, envid, body, smtputf8, recipientArgs });
      case 'mailq':
        return none('display queue mode') ?? (await toPostqueue(['-p']));
      case 'flush':
        return none('flush queue mode') ?? (await toPostqueue(['-f']));
      case 'newaliases':
        // Postern reads alias tables from their text source: there is no database to rebuild.
        return none('alias initialization mode') ?? 0;
      case 'daemon':
        log.fatal('daemon mode is not supported: start the server with "postern run"');
        return EX_USAGE;
      case 'verify':
        log.fatal('unsupported: -bv');
        return EX_USAGE;
      case 'user': {
        const stop = none('stand-alone mode');
        if (stop !== null) return stop;
        const dir = await maildrop(params, log);
        if (dir === null) return EX_TEMPFAIL;
        // -F is not passed on: Postfix's sendmail runs `smtpd -S` without it.
        // Postfix's sendmail execs `smtpd -S`: its lines are smtpd's, with this process's id.
        const smtpd = log.mailLog('smtpd');
        await runStdioSmtp({ input: io.stdin ?? process.stdin, output: ctx.stdout, params, maildropDir: dir, ...(smtpd !== null ? { log: smtpd } : {}) });
        return 0;
      }
      default:
        return 0;
    }
  } finally {
    await log.close();
  }
}

function defaultFullName(ctx: CliContext, io: Partial<SendmailIo>): string | null {
  const env = ctx.env.NAME;
  if (env !== undefined && env !== '') return env;
  const uid = io.uid ?? process.getuid?.() ?? -1;
  return gecosName(uid, io.user !== undefined ? io.user : loginName());
}

/** queue_directory/maildrop, created (mode 1733) when the queue does not exist yet. */
async function maildrop(params: Params, log: ToolLog): Promise<string | null> {
  const dir = queueDirPath(params.queue_directory, 'maildrop');
  try {
    await fsp.stat(dir);
    return dir;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      log.fatal(`${dir}: ${message(err)}`);
      return null;
    }
  }
  try {
    await createQueueDirectories(params.queue_directory);
    await fsp.chmod(dir, MAILDROP_MODE);
    return dir;
  } catch (err) {
    log.fatal(`create ${dir}: ${message(err)}`);
    return null;
  }
}

/** What the command line decides of a submission; sender null = the login name. */
type EnqueueOptions = Pick<SubmitOptions, 'fullName' | 'extract' | 'dotEnds' | 'notify' | 'ret' | 'envid' | 'body' | 'smtputf8' | 'recipientArgs'> & {
  readonly sender: string | null;
};

async function enqueue(params: Params, ctx: CliContext, io: Partial<SendmailIo>, log: ToolLog, o: EnqueueOptions): Promise<number> {
  const uid = io.uid ?? process.getuid?.() ?? 0;
  let sender = o.sender;
  if (sender === null) {
    const user = io.user !== undefined ? io.user : loginName();
    if (user === null || user === '') {
      log.fatal(`no login name found for user ID ${uid}`);
      return EX_OSERR;
    }
    sender = user;
  }
  const dir = await maildrop(params, log);
  if (dir === null) return EX_TEMPFAIL;
  try {
    await submit(io.stdin ?? process.stdin, {
      ...o,
      maildropDir: dir,
      sender,
      fullName: o.fullName ?? defaultFullName(ctx, io),
      line_length_limit: params.line_length_limit,
      message_size_limit: params.message_size_limit,
      header_size_limit: params.header_size_limit,
      uid,
    });
    return 0;
  } catch (err) {
    if (err instanceof SubmitError) {
      log.fatal(err.message);
      return err.exitCode;
    }
    log.fatal(`${sender}(${uid}): ${message(err)}`);
    return EX_TEMPFAIL;
  }
}

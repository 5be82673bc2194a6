/**
 * The Postfix-format logger. Only this module writes log lines (CONVENTIONS "Logging").
 *
 * Line: `Mon DD HH:MM:SS host syslog_name/service[N]: [warning: |error: |fatal: |panic: ]text`
 * (see ./format.ts for the exact bytes and their source in Postfix). fail2ban's postfix filter and
 * pflogsumm read these lines, so:
 *   - `syslog_name` (main.cf, default `postfix`) is the program-name prefix; a service may override
 *     it with `-o syslog_name=postfix/submission` in master.cf, giving `postfix/submission/smtpd[N]`.
 *     To change the prefix for the whole server set `syslog_name = mymail` in main.cf — but keep
 *     the `postfix` prefix if fail2ban or pflogsumm must keep matching (pflogsumm 1.1.5 only counts
 *     `postfix/`, `postfix/smtps/` and `postfix/submission/`).
 *   - `[N]` is the session number from nextSessionId() for lines about one SMTP/IMAP session
 *     (analyzers pair `connect from` and `disconnect from` by it), else the process id.
 *
 * Data in: text from daemons. Out: `maillog_file` (path, O_APPEND), `/dev/stdout`, or standard
 * error when unset. Never pass passwords, AUTH payloads or message bodies to a Logger: the log
 * is read by people and tools that must not see them. Control characters in text become `?`, so
 * text quoted from a peer cannot forge a line.
 *
 * main.cf parameters: syslog_name, myhostname, maillog_file.
 */
import * as os from 'node:os';
import { formatLine, formatTimestamp, hostLabel, type Severity } from './format.js';
import { FdSink, type LineSink, MemorySink } from './writer.js';

export type { Severity } from './format.js';

export interface LogOptions {
  /** main.cf `syslog_name`; Postfix's default is `postfix`. */
  readonly syslog_name: string;
  /** main.cf `myhostname`; the log shows its first label. Empty: os.hostname(). */
  readonly myhostname: string;
  /** main.cf `maillog_file`: a path (appended to), `/dev/stdout`, or empty for standard error. */
  readonly maillog_file: string;
  /** Tests: the time to stamp on each line. Default: the system clock. */
  readonly clock?: () => Date;
}

export interface LoggerOptions {
  /** Per-service override (`-o syslog_name=postfix/submission`); default: the Log's syslog_name. */
  readonly syslog_name?: string;
  /** The `[N]` slot: a session number from nextSessionId(); default process.pid. */
  readonly id?: number;
}

export interface Logger {
  /** What this logger prints in the `[N]` slot. */
  readonly id: number;
  info(text: string): void;
  warning(text: string): void;
  error(text: string): void;
  /**
   * Logs `fatal: text` and flushes synchronously, so the line is out before the caller exits the
   * process or abandons its work. The logger never exits by itself.
   */
  fatal(text: string): void;
  /** As fatal, for a broken invariant (a bug), `panic: text`. */
  panic(text: string): void;
}

/** One line as a MemoryLog keeps it, split for assertions. */
export interface LogRecord {
  /** The complete line, as it would be written (without newline). */
  readonly line: string;
  /** `syslog_name/service`. */
  readonly tag: string;
  readonly id: number;
  readonly severity: Severity;
  /** The text as given (before `?` substitution and truncation). */
  readonly text: string;
}

class ServiceLogger implements Logger {
  readonly id: number;
  constructor(
    private readonly log: Log,
    private readonly service: string,
    private readonly syslogName: string | undefined,
    id: number,
  ) {
    this.id = id;
  }
  private emit(severity: Severity, text: string): void {
    this.log.emit(this.syslogName, this.service, this.id, severity, text);
  }
  info(text: string): void {
    this.emit('info', text);
  }
  warning(text: string): void {
    this.emit('warning', text);
  }
  error(text: string): void {
    this.emit('error', text);
  }
  fatal(text: string): void {
    this.emit('fatal', text);
    this.log.flushSync();
  }
  panic(text: string): void {
    this.emit('panic', text);
    this.log.flushSync();
  }
}

export class Log {
  private syslog_name: string;
  private host: string;
  private maillog_file: string;
  private readonly clock: (() => Date) | undefined;
  protected sink: LineSink;
  private closed = false;
  private stampSecond = Number.NaN;
  private stamp = '';

  private myhostname: string;
  private readonly ownSink: boolean;

  protected constructor(o: LogOptions, sink: LineSink | null) {
    this.ownSink = sink === null && o.clock === undefined;
    this.myhostname = o.myhostname;
    this.syslog_name = o.syslog_name;
    this.host = Log.hostOf(o.myhostname);
    this.maillog_file = o.maillog_file;
    this.clock = o.clock;
    this.sink = sink ?? new FdSink(o.maillog_file, (n) => this.dropNoticeLine(n));
  }

  /**
   * Opens the log destination. Throws PosternError (code `log`) when maillog_file cannot be
   * opened for append (`open maillog_file "/x": Permission denied`).
   */
  static open(o: LogOptions): Log {
    return new Log(o, null);
  }

  /** An in-memory log for tests: every line in `.lines`, split in `.records`. */
  static memory(o: Partial<LogOptions> = {}): MemoryLog {
    return new MemoryLog(o);
  }

  private static hostOf(myhostname: string): string {
    return hostLabel(myhostname !== '' ? myhostname : os.hostname());
  }

  /** A logger for one service (`smtpd`, `qmgr`, ...) or one session (`{ id: nextSessionId() }`). */
  logger(service: string, o: LoggerOptions = {}): Logger {
    return new ServiceLogger(this, service, o.syslog_name, o.id ?? process.pid);
  }

  /** @internal Used by loggers: format and queue one line. */
  emit(syslogName: string | undefined, service: string, id: number, severity: Severity, text: string): void {
    if (this.closed) return;
    const tag = `${syslogName ?? this.syslog_name}/${service}`;
    const line = formatLine(this.timestamp(), this.host, tag, id, severity, text);
    this.record(line, tag, id, severity, text);
    this.sink.write(line);
  }

  protected record(_line: string, _tag: string, _id: number, _severity: Severity, _text: string): void {}

  private timestamp(): string {
    const now = this.clock !== undefined ? this.clock().getTime() : Date.now();
    const second = Math.floor(now / 1000);
    if (second !== this.stampSecond) {
      this.stampSecond = second;
      this.stamp = formatTimestamp(new Date(now));
    }
    return this.stamp;
  }

  private dropNoticeLine(count: number): string {
    return formatLine(this.timestamp(), this.host, `${this.syslog_name}/postlog`, process.pid, 'warning', `${count} log messages dropped: log output stalled`);
  }

  /** Write every queued line now (fatal, before exit). */
  flushSync(): void {
    this.sink.flushSync();
  }

  /**
   * How to open the same destination again from another thread (a worker writing its own whole
   * lines to the same file, O_APPEND, or to the same standard error); null for a log in memory.
   */
  get shareable(): LogOptions | null {
    return this.ownSink ? { syslog_name: this.syslog_name, myhostname: this.myhostname, maillog_file: this.maillog_file } : null;
  }

  /** Reopen maillog_file by name (SIGHUP after logrotate renamed it). Throws PosternError if it cannot. */
  reopen(): void {
    this.sink.reopen();
  }

  /**
   * Reload: new syslog_name/myhostname take effect for the next line (loggers without their own
   * syslog_name follow); a changed maillog_file is opened (throws PosternError if it cannot, and the
   * old destination stays), then the old one is flushed and closed.
   */
  configure(o: Partial<Omit<LogOptions, 'clock'>>): void {
    if (o.maillog_file !== undefined && o.maillog_file !== this.maillog_file && !(this.sink instanceof MemorySink)) {
      const next = new FdSink(o.maillog_file, (n) => this.dropNoticeLine(n));
      const old = this.sink;
      this.sink = next;
      old.close();
    }
    if (o.maillog_file !== undefined) this.maillog_file = o.maillog_file;
    if (o.syslog_name !== undefined) this.syslog_name = o.syslog_name;
    if (o.myhostname !== undefined) {
      this.myhostname = o.myhostname;
      this.host = Log.hostOf(o.myhostname);
    }
  }

  /** Flush and close. Lines logged afterwards are dropped. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.sink.close();
  }
}

export class MemoryLog extends Log {
  readonly lines: string[];
  readonly records: LogRecord[] = [];
  constructor(o: Partial<LogOptions> = {}) {
    const sink = new MemorySink();
    super({ syslog_name: o.syslog_name ?? 'postfix', myhostname: o.myhostname ?? 'mx.example.test', maillog_file: '', ...(o.clock ? { clock: o.clock } : {}) }, sink);
    this.lines = sink.lines;
  }
  protected override record(line: string, tag: string, id: number, severity: Severity, text: string): void {
    this.records.push({ line, tag, id, severity, text });
  }
  /** The part of each line after `[N]: ` (severity word included), for assertions. */
  texts(): string[] {
    return this.lines.map((l) => l.slice(l.indexOf(']: ') + 3));
  }
}

/**
 * Session numbers for the `[N]` slot.
 *
 * Postfix runs one smtpd process per session, so the pid tells sessions apart; Postern runs many
 * sessions in one process and numbers them instead. The numbers come from a counter that starts
 * just above this process's pid (so they look like pids, and a restarted server starts elsewhere),
 * counts up by one, wraps from 2^31-1 to 1, and skips the pid itself (used by service loggers
 * without a session). Two live sessions share a number only if 2^31-2 sessions start while one of
 * them is still open — never, in practice — so a number is unique among concurrent sessions.
 */
const SESSION_ID_MAX = 2 ** 31 - 1;
let lastSessionId = process.pid;

export function nextSessionId(): number {
  lastSessionId = lastSessionId >= SESSION_ID_MAX ? 1 : lastSessionId + 1;
  if (lastSessionId === process.pid) return nextSessionId();
  return lastSessionId;
}

/** Tests: set the counter so the next id is `next` (checks the wrap-around). */
export function resetSessionIds(next: number): void {
  lastSessionId = next - 1;
}

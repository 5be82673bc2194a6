/**
 * The crash tests' own SMTP client: one transaction per connection (EHLO, MAIL, RCPT..., DATA,
 * QUIT), with no cleverness, so a test can tell exactly which messages got a 250 to the end of
 * DATA. The server may die at any byte: every failure (refused, reset, EOF, timeout) comes back as
 * a value, never as an exception, together with the last reply seen.
 */
import * as net from 'node:net';

export interface Reply {
  readonly code: number;
  /** The reply lines without CRLF, e.g. `250 2.0.0 Ok: queued as 4516420F32`. */
  readonly lines: readonly string[];
}

export interface Transaction {
  readonly host: string;
  readonly port: number;
  readonly helo: string;
  readonly sender: string;
  readonly recipients: readonly string[];
  /** The message with CRLF line ends, not dot-stuffed, ending in CRLF. */
  readonly message: string;
  /** Per reply (default 20 s). */
  readonly timeoutMs?: number;
  /** Called once the DATA 354 is in, before the message is written (disk-full test fills the disk here). */
  readonly beforeContent?: () => Promise<void>;
}

export type Outcome =
  /** 250 to the end of DATA: the server took responsibility for the message. */
  | { readonly kind: 'queued'; readonly reply: Reply; readonly queueId: string | null }
  /** The server answered something else at `stage`. */
  | { readonly kind: 'rejected'; readonly stage: Stage; readonly reply: Reply }
  /** No (complete) answer at `stage`: connection refused, reset, closed or timed out. */
  | { readonly kind: 'broken'; readonly stage: Stage; readonly error: string };

export type Stage = 'connect' | 'greeting' | 'ehlo' | 'mail' | 'rcpt' | 'data' | 'end-of-data';

/** Dot-stuffing of RFC 5321 4.5.2 and the terminating `.` line. */
export function dotStuff(message: string): string {
  const body = message.replace(/(^|\r\n)\./g, '$1..');
  return `${body.endsWith('\r\n') ? body : `${body}\r\n`}.\r\n`;
}

class Connection {
  private buf = '';
  private closedWith: string | null = null;
  private wake: (() => void) | null = null;

  constructor(private readonly socket: net.Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buf += d;
      this.notify();
    });
    const closed = (why: string): void => {
      if (this.closedWith === null) this.closedWith = why;
      this.notify();
    };
    socket.on('end', () => closed('connection closed by server'));
    socket.on('close', () => closed('connection closed'));
    socket.on('error', (e: Error) => closed(e.message));
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** A complete (possibly multi-line) reply, or a string saying why there is none. */
  async read(timeoutMs: number): Promise<Reply | string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const lines: string[] = [];
      let pos = 0;
      for (;;) {
        const nl = this.buf.indexOf('\r\n', pos);
        if (nl < 0) break;
        const line = this.buf.slice(pos, nl);
        pos = nl + 2;
        lines.push(line);
        if (!/^\d{3}-/.test(line)) {
          this.buf = this.buf.slice(pos);
          const code = /^(\d{3})/.exec(line);
          return code ? { code: Number(code[1]), lines } : `malformed reply ${JSON.stringify(line)}`;
        }
      }
      if (this.closedWith !== null) return this.closedWith;
      const left = deadline - Date.now();
      if (left <= 0) return `timeout after ${timeoutMs} ms`;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  write(text: string): void {
    if (this.closedWith === null && !this.socket.destroyed) this.socket.write(text, 'latin1');
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function connect(host: string, port: number, timeoutMs: number): Promise<net.Socket | string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const t = setTimeout(() => {
      s.destroy();
      resolve(`connect timeout after ${timeoutMs} ms`);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e: Error) => {
      clearTimeout(t);
      s.destroy();
      resolve(e.message);
    });
  });
}

/** Runs one SMTP transaction; never throws. */
export async function sendMail(t: Transaction): Promise<Outcome> {
  const timeout = t.timeoutMs ?? 20_000;
  const sock = await connect(t.host, t.port, timeout);
  if (typeof sock === 'string') return { kind: 'broken', stage: 'connect', error: sock };
  const c = new Connection(sock);
  try {
    const step = async (stage: Stage, command: string | null, ok: (code: number) => boolean): Promise<Outcome | Reply> => {
      if (command !== null) c.write(`${command}\r\n`);
      const r = await c.read(timeout);
      if (typeof r === 'string') return { kind: 'broken', stage, error: r };
      if (!ok(r.code)) return { kind: 'rejected', stage, reply: r };
      return r;
    };
    const isOutcome = (x: Outcome | Reply): x is Outcome => 'kind' in x;
    let r = await step('greeting', null, (code) => code === 220);
    if (isOutcome(r)) return r;
    r = await step('ehlo', `EHLO ${t.helo}`, (code) => code === 250);
    if (isOutcome(r)) return r;
    r = await step('mail', `MAIL FROM:<${t.sender}>`, (code) => code === 250);
    if (isOutcome(r)) return r;
    for (const rcpt of t.recipients) {
      r = await step('rcpt', `RCPT TO:<${rcpt}>`, (code) => code === 250);
      if (isOutcome(r)) return r;
    }
    r = await step('data', 'DATA', (code) => code === 354);
    if (isOutcome(r)) return r;
    if (t.beforeContent) await t.beforeContent();
    c.write(dotStuff(t.message));
    r = await step('end-of-data', null, (code) => code === 250);
    if (isOutcome(r)) return r;
    const id = /queued as ([0-9A-Za-z]+)/.exec(r.lines.join('\n'));
    c.write('QUIT\r\n');
    await c.read(2_000);
    return { kind: 'queued', reply: r, queueId: id ? id[1]! : null };
  } finally {
    c.destroy();
  }
}

/**
 * A scripted SMTP client for tests: send raw bytes or lines, read whole replies (multiline
 * aware), upgrade to TLS in place, see when the server closes.
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';

export class SmtpClient {
  private buf = '';
  private waiters: (() => void)[] = [];
  closed = false;
  private socket: Duplex;

  private constructor(
    private readonly raw: net.Socket,
    readonly defaultTimeout = 5000,
  ) {
    this.socket = raw;
    this.hook(raw);
  }

  private hook(s: Duplex): void {
    s.setEncoding?.('latin1');
    s.on('data', (d: string | Buffer) => {
      this.buf += typeof d === 'string' ? d : d.toString('latin1');
      this.wake();
    });
    const end = (): void => {
      this.closed = true;
      this.wake();
    };
    s.on('end', end);
    s.on('close', end);
    s.on('error', end);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  static connect(port: number, host = '127.0.0.1', timeout = 5000): Promise<SmtpClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host }, () => resolve(new SmtpClient(s, timeout)));
      s.once('error', reject);
    });
  }

  /** A client over a socket connected elsewhere (a relay into a network namespace). */
  static over(socket: net.Socket, timeout = 5000): SmtpClient {
    const c = new SmtpClient(socket, timeout);
    socket.resume();
    return c;
  }

  /** Everything received and not yet consumed. */
  get pending(): string {
    return this.buf;
  }

  private async waitUntil(pred: () => boolean, ms: number): Promise<void> {
    const end = Date.now() + ms;
    while (!pred()) {
      if (this.closed) return;
      const left = end - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for the server; have: ${JSON.stringify(this.buf)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** One complete reply, lines joined with \n (no CRLF). Throws if the server closed first. */
  async read(ms = this.defaultTimeout): Promise<string> {
    const complete = (): number => {
      let pos = 0;
      for (;;) {
        const nl = this.buf.indexOf('\r\n', pos);
        if (nl < 0) return -1;
        const line = this.buf.slice(pos, nl);
        if (/^\d{3}(?: |$)/.test(line)) return nl + 2;
        pos = nl + 2;
      }
    };
    await this.waitUntil(() => complete() >= 0, ms);
    const end = complete();
    if (end < 0) throw new Error(`connection closed; have: ${JSON.stringify(this.buf)}`);
    const r = this.buf.slice(0, end - 2).split('\r\n').join('\n');
    this.buf = this.buf.slice(end);
    return r;
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Send a line (CRLF added) and read its reply. */
  async cmd(line: string, ms?: number): Promise<string> {
    this.write(`${line}\r\n`);
    return this.read(ms);
  }

  /** Resolves when the server has closed the connection. */
  async waitClosed(ms = this.defaultTimeout): Promise<void> {
    await this.waitUntil(() => this.closed, ms);
    if (!this.closed) throw new Error('server did not close');
  }

  /** Upgrade this connection to TLS (after 220 to STARTTLS). */
  async startTls(o: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
    this.raw.removeAllListeners('data');
    const t = tls.connect({ socket: this.raw, rejectUnauthorized: false, servername: 'mx.example.test', ...o });
    await new Promise<void>((resolve, reject) => {
      t.once('secureConnect', () => resolve());
      t.once('error', reject);
    });
    this.socket = t;
    this.hook(t);
    return t;
  }

  close(): void {
    this.socket.destroy();
    this.raw.destroy();
  }
}

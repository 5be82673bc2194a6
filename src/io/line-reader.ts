/**
 * Bounded CRLF line reader over a socket (DESIGN invariant 3: no buffer grows with what a peer
 * sends).
 *
 * - Command lines end at LF; trailing CRs are removed (RFC 5321 2.3.8 wants CRLF; like Postfix's
 *   smtp_get() a bare LF also ends a command, and `bareLf` says so, for smtpd_forbid_bare_newline).
 * - A line longer than `lineLimit` bytes is cut at the limit and the rest of it, up to the next LF,
 *   is read and thrown away (Postfix smtp_get(..., SMTP_GET_FLAG_SKIP)); `truncated` says so.
 * - Raw mode for DATA/BDAT: `readChunk()` hands out buffered and new bytes unparsed; `unshift()`
 *   puts back the bytes that follow the end of the message.
 * - Pipelining (RFC 2920): `hasBuffered()` tells whether the peer sent more than was consumed;
 *   `peekBuffered()` shows it for the "improper command pipelining" log line.
 * - STARTTLS (RFC 3207 4, CVE-2011-0411): `detach()` stops reading the plain socket and
 *   `discardBuffered()` drops whatever plaintext the peer pipelined after the command; `attach()`
 *   continues on the TLS socket.
 *
 * At most about `lineLimit` + one socket chunk + `highWaterMark` bytes are ever held: reading from
 * the socket is paused while that much input waits unread (TCP then pushes back on the peer).
 */
import type { Duplex } from 'node:stream';

/** One command line. `text` excludes the line terminator. */
export interface Line {
  readonly kind: 'line';
  readonly bytes: Buffer;
  /** The line was longer than lineLimit; bytes holds its first lineLimit bytes. */
  readonly truncated: boolean;
  /** The line ended in LF without a CR before it. */
  readonly bareLf: boolean;
}
export interface Eof {
  readonly kind: 'eof';
}
export interface Timeout {
  readonly kind: 'timeout';
}
export type LineResult = Line | Eof | Timeout;
export type ChunkResult = { readonly kind: 'chunk'; readonly bytes: Buffer } | Eof | Timeout;

export interface LineReaderOptions {
  /** line_length_limit: longest command line kept, in bytes (Postfix default 2048). */
  readonly lineLimit: number;
  /** Stop reading the socket while this many unread bytes wait (default 64 KiB). */
  readonly highWaterMark?: number;
}

const LF = 0x0a;
const CR = 0x0d;

interface Waiter {
  resolve(): void;
  timer: NodeJS.Timeout | null;
  timedOut: boolean;
}

export class LineReader {
  private socket: Duplex | null;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private waiter: Waiter | null = null;
  private lineLimit: number;
  private readonly highWaterMark: number;
  private paused = false;
  /** Total bytes received from the peer (all sockets). */
  bytesIn = 0;

  private readonly onData = (b: Buffer): void => {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.buffered += b.length;
    this.bytesIn += b.length;
    if (this.buffered >= this.highWaterMark && this.socket !== null && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    this.wake();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.wake();
  };

  constructor(socket: Duplex, opts: LineReaderOptions) {
    this.lineLimit = Math.max(1, opts.lineLimit);
    this.highWaterMark = Math.max(opts.highWaterMark ?? 65536, this.lineLimit + 2);
    this.socket = null;
    this.attach(socket);
  }

  /** Change line_length_limit (stress mode, reload). */
  setLineLimit(n: number): void {
    this.lineLimit = Math.max(1, n);
  }

  /** Read from `socket` from now on (after a TLS upgrade: the TLSSocket). */
  attach(socket: Duplex): void {
    if (this.socket !== null) this.detach();
    this.socket = socket;
    this.ended = false;
    // Bytes the stream already holds (it was paused before we attached) are unread input too:
    // take them now, so hasBuffered() sees a client that talked first.
    if (!socket.readableFlowing) {
      for (let b = socket.read() as Buffer | null; b !== null; b = socket.read() as Buffer | null) this.onData(b);
    }
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    // 'error' is handled by the owner of the socket; a broken socket also emits 'close'.
    this.paused = false;
    if (this.buffered >= this.highWaterMark) {
      this.paused = true;
      socket.pause();
    } else {
      socket.resume();
    }
  }

  /** Stop reading the current socket and forget it (the caller is about to wrap it in TLS). */
  detach(): Duplex | null {
    const s = this.socket;
    if (s === null) return null;
    s.pause();
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('close', this.onEnd);
    this.socket = null;
    this.paused = false;
    return s;
  }

  /** Unread bytes are waiting (the peer sent ahead of our reply). RFC 2920 3.1. */
  hasBuffered(): boolean {
    return this.buffered > 0;
  }

  /** Up to `n` unread bytes, without consuming them. */
  peekBuffered(n: number): Buffer {
    const out: Buffer[] = [];
    let want = n;
    for (const c of this.chunks) {
      if (want <= 0) break;
      const part = c.length <= want ? c : c.subarray(0, want);
      out.push(part);
      want -= part.length;
    }
    return Buffer.concat(out);
  }

  /** Drop every unread byte (STARTTLS: CVE-2011-0411). Returns how many were dropped. */
  discardBuffered(): number {
    const n = this.buffered;
    this.chunks = [];
    this.buffered = 0;
    this.maybeResume();
    return n;
  }

  /** Put bytes back in front of the unread input (what followed the end of DATA). */
  unshift(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.unshift(b);
    this.buffered += b.length;
  }

  /** True when the peer closed its side and nothing is left to read. */
  get atEof(): boolean {
    return this.ended && this.buffered === 0;
  }

  /**
   * Next command line. Resolves `eof` when the peer closed before a complete line (a partial
   * line at EOF is dropped, as Postfix does), `timeout` after `timeoutMs` without a complete line.
   */
  async readLine(timeoutMs: number): Promise<LineResult> {
    const deadline = Date.now() + timeoutMs;
    let head: Buffer[] = [];
    let headLen = 0;
    /** Bytes of this line before the LF, kept or not. */
    let total = 0;
    for (;;) {
      while (this.chunks.length > 0) {
        const c = this.chunks[0]!;
        const i = c.indexOf(LF);
        const take = i < 0 ? c.length : i;
        const room = this.lineLimit - headLen;
        if (room > 0) {
          const part = take <= room ? c.subarray(0, take) : c.subarray(0, room);
          head.push(part);
          headLen += part.length;
        }
        total += take;
        if (i < 0) {
          this.chunks.shift();
          this.buffered -= c.length;
          continue;
        }
        const rest = c.subarray(i + 1);
        if (rest.length > 0) this.chunks[0] = rest;
        else this.chunks.shift();
        this.buffered -= i + 1;
        this.maybeResume();
        const raw = head.length === 1 ? head[0]! : Buffer.concat(head, headLen);
        // Postfix reads at most line_length_limit bytes including the LF; a CR that fills the
        // last place is completed by the LF after it (smtp_get_noexcept()).
        const crLast = raw.length > 0 && raw[raw.length - 1] === CR;
        const complete = total + 1 <= this.lineLimit || (total === this.lineLimit && crLast);
        if (!complete) return { kind: 'line', bytes: Buffer.from(raw), truncated: true, bareLf: false };
        let end = raw.length;
        while (end > 0 && raw[end - 1] === CR) end--;
        return { kind: 'line', bytes: Buffer.from(raw.subarray(0, end)), truncated: false, bareLf: !crLast };
      }
      this.maybeResume();
      if (this.ended) return { kind: 'eof' };
      if (head.length > 8) head = [Buffer.concat(head, headLen)];
      const left = deadline - Date.now();
      if (left <= 0) return { kind: 'timeout' };
      const timedOut = await this.wait(left);
      if (timedOut) return { kind: 'timeout' };
    }
  }

  /**
   * Raw bytes for DATA/BDAT: what is buffered, else the next bytes the peer sends; at most `max`
   * bytes (the rest stays buffered).
   */
  async readChunk(timeoutMs: number, max = Number.MAX_SAFE_INTEGER): Promise<ChunkResult> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.chunks.length > 0 && max > 0) {
        const c = this.chunks[0]!;
        if (c.length <= max) {
          this.chunks.shift();
          this.buffered -= c.length;
          this.maybeResume();
          return { kind: 'chunk', bytes: c };
        }
        this.chunks[0] = c.subarray(max);
        this.buffered -= max;
        return { kind: 'chunk', bytes: c.subarray(0, max) };
      }
      if (this.ended) return { kind: 'eof' };
      this.maybeResume();
      const left = deadline - Date.now();
      if (left <= 0) return { kind: 'timeout' };
      const timedOut = await this.wait(left);
      if (timedOut) return { kind: 'timeout' };
    }
  }

  /** Wake a pending read and stop reading the socket for good. */
  close(): void {
    this.ended = true;
    this.detach();
    this.chunks = [];
    this.buffered = 0;
    this.wake();
  }

  private maybeResume(): void {
    if (this.paused && this.socket !== null && this.buffered < this.highWaterMark) {
      this.paused = false;
      this.socket.resume();
    }
  }

  private wait(ms: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const w: Waiter = {
        timedOut: false,
        timer: null,
        resolve: () => {
          if (w.timer !== null) clearTimeout(w.timer);
          w.timer = null;
          resolve(w.timedOut);
        },
      };
      w.timer = setTimeout(() => {
        w.timedOut = true;
        if (this.waiter === w) this.waiter = null;
        w.timer = null;
        resolve(true);
      }, ms);
      this.waiter = w;
    });
  }

  private wake(): void {
    const w = this.waiter;
    if (w === null) return;
    this.waiter = null;
    w.resolve();
  }
}

/**
 * cleanup's streaming content pass: line-end repair, then the primary header section one header
 * at a time (as Postfix's cleanup with mime_state: is_header() syntax, header_size_limit,
 * message_drop_headers, Received: count, Message-ID/Date/From/To seen), then the body, passed
 * through. Memory stays bounded whatever the input: at most one logical header (header_size_limit)
 * and one physical line prefix of the same size are held.
 *
 * Also the header fields cleanup adds (Message-Id:, Date:, From:) in Postfix's formats.
 */

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const TAB = 0x09;
const CRLF = Buffer.from('\r\n', 'latin1');
const CR_BUF = Buffer.from([CR]);

/**
 * Canonical CRLF line ends: a bare LF becomes CRLF (Postfix stores lines as records, so any LF
 * ends a line), and with `replaceStrayCr` a CR not followed by LF becomes a space
 * (postconf(5) cleanup_replace_stray_cr_lf, the outbound half of the SMTP smuggling defence).
 * A CR at the end of a chunk is held until the next chunk shows what follows it.
 */
export class LineEnds {
  private pendingCr = false;

  constructor(private readonly replaceStrayCr: boolean) {}

  /** The repaired chunk: usually the input itself, uncopied. */
  push(chunk: Buffer): Buffer {
    let buf = this.pendingCr ? Buffer.concat([CR_BUF, chunk]) : chunk;
    this.pendingCr = false;
    if (buf.length > 0 && buf[buf.length - 1] === CR) {
      this.pendingCr = true;
      buf = buf.subarray(0, buf.length - 1);
    }
    return LineEnds.clean(buf, this.replaceStrayCr) ? buf : LineEnds.fix(buf, this.replaceStrayCr);
  }

  /** End of content: a held CR is stray. */
  end(): Buffer {
    if (!this.pendingCr) return Buffer.alloc(0);
    this.pendingCr = false;
    return Buffer.from([this.replaceStrayCr ? SP : CR]);
  }

  /** Every LF preceded by CR, and (when stray CRs are replaced) as many CRs as LFs, so every CR precedes an LF. */
  private static clean(buf: Buffer, strictCr: boolean): boolean {
    let lfs = 0;
    for (let i = buf.indexOf(LF); i >= 0; i = buf.indexOf(LF, i + 1)) {
      if (i === 0 || buf[i - 1] !== CR) return false;
      lfs++;
    }
    if (!strictCr) return true;
    let crs = 0;
    for (let i = buf.indexOf(CR); i >= 0; i = buf.indexOf(CR, i + 1)) crs++;
    return crs === lfs;
  }

  private static fix(buf: Buffer, replaceStrayCr: boolean): Buffer {
    const out = Buffer.allocUnsafe(buf.length * 2);
    let o = 0;
    for (let i = 0; i < buf.length; i++) {
      const c = buf[i]!;
      if (c === LF && (i === 0 || buf[i - 1] !== CR)) {
        out[o++] = CR;
        out[o++] = LF;
      } else if (c === CR && buf[i + 1] !== LF) {
        out[o++] = replaceStrayCr ? SP : CR;
      } else {
        out[o++] = c;
      }
    }
    return out.subarray(0, o);
  }
}

/** What the header pass learned, for the header fields cleanup adds and its log lines. */
export interface HeaderFacts {
  /** Received: fields in the content. */
  received: number;
  /**
   * Message-ID: and Resent-Message-ID: fields in order of appearance, with their values as
   * Postfix logs them (after the colon, leading white space skipped). At most 20 are kept.
   */
  readonly ids: { readonly resent: boolean; readonly value: string }[];
  /** Lower-case names of the fields seen (only those cleanup cares about). */
  readonly seen: Set<string>;
  /** A Resent-* field was seen: added fields become Resent-Message-Id:/Resent-Date:/Resent-From:. */
  resent: boolean;
  /** The first Message-ID's msg-id `<...>` for bounce threading, or null. */
  firstMessageId: string | null;
}

/** Fields whose presence matters (cleanup_message.c HDRS_SEEN_MASK users). */
const TRACKED = new Set(['message-id', 'resent-message-id', 'date', 'resent-date', 'from', 'resent-from', 'to', 'resent-to', 'cc', 'resent-cc', 'received']);
/** Postfix header_opts HDR_OPT_RR: these make cleanup add Resent- fields instead. */
const RESENT = new Set(['resent-bcc', 'resent-cc', 'resent-date', 'resent-from', 'resent-message-id', 'resent-reply-to', 'resent-sender', 'resent-to']);
/** Message-IDs kept for logging; more are counted but not logged (bounded memory). */
const MAX_LOGGED_IDS = 20;

/**
 * Length of the header name if `line` starts a header field (Postfix is_header_buf): one or more
 * printable ASCII characters other than ':' and white space, optional SP/TAB, then ':'.
 * 0 if not (also when no ':' appears within the bytes given).
 */
export function headerNameLength(line: Buffer): number {
  let len = 0;
  let afterName = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === 0x3a) return len;
    if (c === SP || c === TAB) {
      if (len === 0) return 0;
      afterName = true;
      continue;
    }
    if (c < 0x21 || c > 0x7e || afterName) return 0;
    len++;
  }
  return 0;
}

export interface HeaderPassOptions {
  readonly header_size_limit: number;
  /** message_drop_headers, lower case. */
  readonly dropHeaders: ReadonlySet<string>;
  /** Where processed content goes, in order. */
  readonly out: (chunk: Buffer) => void;
  /** header_checks (header-checks.ts): what to do with each logical field; null keeps it. */
  readonly check?: (field: Buffer) => { readonly drop: boolean; readonly replace?: string; readonly prepend?: string } | null;
  /** body_checks: each body line without its line end, while fewer than `bodyCheckLimit` body bytes were seen. */
  readonly checkBody?: (line: Buffer) => { readonly drop: boolean; readonly replace?: string; readonly prepend?: string } | null;
  readonly bodyCheckLimit?: number;
}

/**
 * The primary header section, streamed. After the first line that is not a header field or a
 * continuation (normally the empty line), everything passes through untouched.
 */
export class HeaderPass {
  readonly facts: HeaderFacts = { received: 0, ids: [], seen: new Set(), resent: false, firstMessageId: null };
  /** Input bytes taken as header section so far. */
  headerBytes = 0;
  /** Bytes passed to `out`. */
  outBytes = 0;
  /** Offset in the output where the header section ends (null while still in headers). */
  headerEnd: number | null = null;
  /** Some header field was cut at header_size_limit. */
  truncated = false;

  /** The current physical line's bytes (at most header_size_limit). */
  private line: Buffer[] = [];
  private lineLen = 0;
  /**
   * The logical header field being collected: its physical lines without line ends, each kept
   * only as far as needed to apply header_size_limit, and its length as Postfix counts it
   * (lines joined by one LF; whole lines appended while the field is under the limit).
   */
  private field: Buffer[] = [];
  private fieldLf = 0;
  /** The last line of `field` runs past header_size_limit (it is held only in part). */
  private lastCrosses = false;
  /** Discard input up to the end of the current physical line (an over-long header line). */
  private dropRestOfLine = false;
  private lastByte = -1;

  constructor(private readonly o: HeaderPassOptions) {}

  private emit(b: Buffer): void {
    if (b.length === 0) return;
    this.outBytes += b.length;
    this.lastByte = b[b.length - 1]!;
    this.o.out(b);
  }

  /** body_checks: the body line in progress, and body bytes looked at so far. */
  private bodyLine: Buffer[] = [];
  private bodySeen = 0;

  /** Body bytes: straight through, or line by line while body_checks still look. */
  private body(b: Buffer): void {
    const check = this.o.checkBody;
    if (check === undefined || (this.bodySeen >= (this.o.bodyCheckLimit ?? 0) && this.bodyLine.length === 0)) {
      this.emit(b);
      return;
    }
    let pos = 0;
    while (pos < b.length) {
      if (this.bodySeen >= (this.o.bodyCheckLimit ?? 0) && this.bodyLine.length === 0) {
        this.emit(b.subarray(pos));
        return;
      }
      const nl = b.indexOf(LF, pos);
      if (nl < 0) {
        this.bodyLine.push(b.subarray(pos));
        return;
      }
      this.bodyLine.push(b.subarray(pos, nl + 1));
      pos = nl + 1;
      this.bodyLineDone(check);
    }
  }

  private bodyLineDone(check: NonNullable<HeaderPassOptions['checkBody']>): void {
    const line = this.bodyLine.length === 1 ? this.bodyLine[0]! : Buffer.concat(this.bodyLine);
    this.bodyLine = [];
    this.bodySeen += line.length;
    let end = line.length;
    if (end > 0 && line[end - 1] === LF) end--;
    if (end > 0 && line[end - 1] === CR) end--;
    const v = check(line.subarray(0, end));
    if (v === null) {
      this.emit(line);
      return;
    }
    if (v.prepend !== undefined) this.emit(Buffer.from(`${v.prepend}\r\n`, 'utf8'));
    if (v.drop) return;
    this.emit(v.replace !== undefined ? Buffer.from(`${v.replace}\r\n`, 'utf8') : line);
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (this.headerEnd !== null) {
        this.body(pos === 0 ? chunk : chunk.subarray(pos));
        return;
      }
      const nl = chunk.indexOf(LF, pos);
      const end = nl < 0 ? n : nl + 1;
      const piece = chunk.subarray(pos, end);
      this.headerBytes += piece.length;
      pos = end;
      if (this.dropRestOfLine) {
        if (nl >= 0) this.dropRestOfLine = false;
        continue;
      }
      const room = this.o.header_size_limit - this.lineLen;
      if (piece.length > room) {
        // A physical line longer than header_size_limit: decide from its prefix now.
        this.line.push(piece.subarray(0, room));
        this.overlongLine(piece.subarray(room), nl >= 0);
        continue;
      }
      this.line.push(piece);
      this.lineLen += piece.length;
      if (nl >= 0) this.lineDone();
    }
  }

  private takeLine(): Buffer {
    const line = this.line.length === 1 ? this.line[0]! : Buffer.concat(this.line);
    this.line = [];
    this.lineLen = 0;
    return line;
  }

  private overlongLine(rest: Buffer, complete: boolean): void {
    const line = this.takeLine();
    const kind = this.classify(line);
    if (kind === 'eoh') {
      // The body starts here; the rest of this line and all that follows pass through.
      this.flushField();
      this.headerEnd = this.outBytes;
      this.body(line);
      this.body(rest);
      return;
    }
    // A header line this long is cut (header_size_limit): keep what fits, end it with CRLF.
    if (kind === 'header') this.flushField();
    this.addToField(line, true);
    if (!complete) this.dropRestOfLine = true;
  }

  private classify(line: Buffer): 'header' | 'cont' | 'eoh' {
    if (line.length > 0 && (line[0] === SP || line[0] === TAB)) return this.field.length > 0 ? 'cont' : 'eoh';
    return headerNameLength(line) > 0 ? 'header' : 'eoh';
  }

  private lineDone(): void {
    const line = this.takeLine();
    const kind = this.classify(line);
    if (kind === 'eoh') {
      this.flushField();
      this.headerEnd = this.outBytes;
      // The empty line that ends the headers is not a body line; a non-header line is (Postfix).
      if (line.length === 2 && line[0] === CR) this.emit(line);
      else this.body(line);
      return;
    }
    if (kind === 'header') this.flushField();
    this.addToField(line, false);
  }

  /**
   * Add a physical line (`partial`: only a prefix of an over-long line). Postfix's mime_state
   * appends a line while the field is shorter than header_size_limit; beyond that, lines are
   * discarded. Only limit + 1 bytes of the field can matter to the cut, so no more are kept.
   */
  private addToField(line: Buffer, partial: boolean): void {
    const limit = this.o.header_size_limit;
    let text = line;
    while (text.length > 0 && (text[text.length - 1] === LF || text[text.length - 1] === CR)) text = text.subarray(0, text.length - 1);
    const sep = this.field.length > 0 ? 1 : 0;
    if (sep && this.fieldLf >= limit) {
      this.truncated = true;
      return;
    }
    const start = this.fieldLf + sep;
    const room = Math.max(0, limit - start + 1);
    // A partial line continues past what we hold: it crosses the limit whatever its length.
    const crosses = partial || text.length > room;
    this.field.push(crosses ? text.subarray(0, Math.min(text.length, room)) : text);
    this.lastCrosses = crosses;
    this.fieldLf = crosses ? limit + 1 : start + text.length;
  }

  /**
   * The field as cleanup writes it (cleanup_out.c cleanup_out_header): when a line crosses
   * header_size_limit, cut before that line if that keeps over 90% of the limit ("nice cut"),
   * else cut inside it at exactly the limit ("unkind cut"); what follows is discarded.
   */
  private cutField(): Buffer[] {
    const limit = this.o.header_size_limit;
    const lines = this.field;
    const out: Buffer[] = [];
    let pos = 0;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      const length = i === lines.length - 1 && this.lastCrosses ? Number.POSITIVE_INFINITY : line.length;
      if (pos + length > limit) {
        this.truncated = true;
        if (pos <= 0.9 * limit) out.push(line.subarray(0, limit - pos), CRLF);
        break;
      }
      out.push(line, CRLF);
      pos += line.length + 1;
    }
    return out;
  }

  private flushField(): void {
    if (this.field.length === 0) return;
    let field = Buffer.concat(this.cutField());
    this.field = [];
    this.fieldLf = 0;
    this.lastCrosses = false;
    const f = this.facts;
    let name = field.subarray(0, headerNameLength(field)).toString('latin1').toLowerCase();
    // The Received: count is updated before header_checks may drop the field (cleanup_message.c).
    if (name === 'received') f.received += 1;
    const verdict = this.o.check?.(field) ?? null;
    if (verdict !== null) {
      if (verdict.prepend !== undefined) this.emit(Buffer.from(`${verdict.prepend}\r\n`, 'utf8'));
      if (verdict.drop) return;
      if (verdict.replace !== undefined) {
        field = Buffer.from(`${verdict.replace}\r\n`, 'utf8');
        name = field.subarray(0, headerNameLength(field)).toString('latin1').toLowerCase();
      }
    }
    if (TRACKED.has(name)) f.seen.add(name);
    if (RESENT.has(name)) f.resent = true;
    if (name === 'message-id' || name === 'resent-message-id') {
      const value = fieldValue(field);
      if (f.ids.length < MAX_LOGGED_IDS) f.ids.push({ resent: name !== 'message-id', value });
      if (name === 'message-id' && f.firstMessageId === null) {
        const m = /<[^<>]*>/.exec(value);
        if (m) f.firstMessageId = m[0];
      }
    }
    if (this.o.dropHeaders.has(name)) return;
    this.emit(field);
  }

  /** End of content: finish the header section if still in it; a last line without its line end gets one. */
  end(): void {
    this.dropRestOfLine = false;
    if (this.bodyLine.length > 0 && this.o.checkBody !== undefined) {
      // A last body line without its line end: checked as a line, ended with CRLF below.
      const rest = Buffer.concat(this.bodyLine);
      this.bodyLine = [];
      this.bodySeen += rest.length;
      const v = this.o.checkBody(rest);
      if (v?.prepend !== undefined) this.emit(Buffer.from(`${v.prepend}\r\n`, 'utf8'));
      if (v === null || !v.drop) this.emit(v?.replace !== undefined ? Buffer.from(v.replace, 'utf8') : rest);
    }
    if (this.headerEnd === null) {
      if (this.lineLen > 0) {
        this.line.push(CRLF);
        this.lineLen += 2;
        this.lineDone();
      }
      if (this.headerEnd === null) {
        this.flushField();
        this.headerEnd = this.outBytes;
      }
    }
    if (this.outBytes > 0 && this.lastByte !== LF) this.emit(CRLF);
  }
}

/**
 * A field's value as Postfix logs it: after the colon with leading white space (including a
 * folding line break) skipped; CRs removed, so a folded value keeps its LFs (the logger prints
 * them as '?', as Postfix does), and the final line end removed.
 */
export function fieldValue(field: Buffer): string {
  const s = field.toString('utf8');
  const colon = s.indexOf(':');
  return s
    .slice(colon + 1)
    .replace(/\r\n/g, '\n')
    .replace(/^[ \t\n]+/, '')
    .replace(/\n$/, '');
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const p2 = (n: number): string => String(n).padStart(2, '0');

/**
 * The local time zone's name for the `(%Z)` comment: the abbreviation where the platform has one
 * (`UTC`, `EST`, `PDT`), else Intl's short form (`GMT+1`; glibc would say `CET`).
 */
function zoneName(d: Date): string {
  // On the per-message path: building an Intl.DateTimeFormat costs ~0.5 ms, so build it once and
  // remember the name per UTC offset (an abbreviation changes only with the offset, at DST).
  const offset = d.getTimezoneOffset();
  const known = zoneNames.get(offset);
  if (known !== undefined) return known;
  let name = offset === 0 ? 'UTC' : 'GMT';
  try {
    zoneFormat ??= new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' });
    const part = zoneFormat.formatToParts(d).find((x) => x.type === 'timeZoneName');
    if (part) name = part.value === 'GMT' && offset === 0 && !process.env.TZ?.startsWith('GMT') ? 'UTC' : part.value;
  } catch {
    // keep the fallback
  }
  zoneNames.set(offset, name);
  return name;
}

let zoneFormat: Intl.DateTimeFormat | undefined;
const zoneNames = new Map<number, string>();

/**
 * Postfix mail_date(): `Wed, 25 Nov 2026 06:07:17 +0000 (UTC)` in local time (RFC 5322 3.3), for
 * every Date:, Received: and DSN date Postern writes (cleanup, pickup, local, bounce).
 * Two-digit day as Postfix 3.9 (HISTORY 20240206, TWO_DIGIT_DAY_IN_DATE_TIME): RFC 5322 3.3
 * recommends a single space for each FWS. Postfix 3.7.11 on Linux still uses strftime %e
 * (`Thu,  5 Nov`).
 */
export function mailDate(ms: number): string {
  const d = new Date(ms);
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? '-' : '+';
  const a = Math.abs(off);
  return (
    `${DAYS[d.getDay()]}, ${p2(d.getDate())} ${MONTHS[d.getMonth()]} ${d.getFullYear()} ` +
    `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${sign}${p2(Math.floor(a / 60))}${p2(a % 60)} (${zoneName(d)})`
  );
}

/**
 * The msg-id cleanup adds (cleanup_message.c): `<YYYYMMDDhhmmss.QUEUEID@myhostname>` with the
 * queue file's creation time in UTC, or `<QUEUEID@myhostname>` with long queue ids (they already
 * hold the time). The time is needed with short ids because they repeat over time.
 */
export function messageIdFor(queueId: string, createdMs: number, myhostname: string, longIds: boolean): string {
  if (longIds) return `<${queueId}@${myhostname}>`;
  const d = new Date(createdMs);
  const stamp = `${d.getUTCFullYear()}${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}${p2(d.getUTCHours())}${p2(d.getUTCMinutes())}${p2(d.getUTCSeconds())}`;
  return `<${stamp}.${queueId}@${myhostname}>`;
}

/** RFC 5322 3.2.3 specials plus space and controls: a local part with any of them is quoted. */
const NEEDS_QUOTE = /[\x00-\x20()<>@,;:\\".[\]\x7f]/;

/**
 * Postfix quote_822_local(): the address with its local part quoted when RFC 5322 needs it
 * (`"john doe"@example.com`). An already quoted local part is left alone.
 */
export function quote822Local(address: string): string {
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  const domain = at < 0 ? '' : address.slice(at);
  if (local.length >= 2 && local.startsWith('"') && local.endsWith('"')) return address;
  const dotAtomOk = local.length > 0 && !local.startsWith('.') && !local.endsWith('.') && !local.includes('..');
  const needs = local.split('.').some((atom) => NEEDS_QUOTE.test(atom)) || !dotAtomOk;
  if (!needs || local.length === 0) return address;
  return `"${local.replace(/(["\\])/g, '\\$1')}"${domain}`;
}

/**
 * The From: field cleanup adds: `From: addr` (the sender, MAILER-DAEMON for <>), or with a full
 * name (sendmail -F) `From: Full Name <addr>` (header_from_format = standard).
 */
export function fromField(prefix: string, sender: string, fullName: string | null): string {
  const addr = quote822Local(sender === '' ? 'MAILER-DAEMON' : sender);
  const name = (fullName ?? '').replace(/[\r\n]+/g, ' ').trim();
  if (sender === '' || name === '') return `${prefix}From: ${addr}\r\n`;
  const phrase = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+$/.test(name) ? name : `"${name.replace(/(["\\])/g, '\\$1')}"`;
  return `${prefix}From: ${phrase} <${addr}>\r\n`;
}

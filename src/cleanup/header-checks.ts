/**
 * header_checks(5) for the primary message header, as Postfix's cleanup applies them
 * (cleanup_message.c cleanup_header_callback() and cleanup_act()): each logical header field,
 * its lines joined by LF, is looked up in the header_checks tables; the first table that answers
 * decides. Actions:
 * - DUNNO, OK: nothing. WARN text, INFO text: a log line.
 * - IGNORE: the field is dropped; STRIP text: dropped and logged.
 * - REPLACE text: the field becomes `text`; PREPEND text: `text` goes above it (each must be a
 *   header field, `name: value`).
 * - REJECT [text]: the message is refused at the end of DATA with `550 5.7.1 text` (default
 *   "message content rejected"; a 4.x.x text makes it 451); DISCARD: accepted and dropped; HOLD:
 *   queued in hold/; REDIRECT addr: the recipients become addr; BCC addr: one more recipient.
 *   REJECT, DISCARD, REDIRECT and PASS end the checks for this message (CLEANUP_FLAG_FILTER_ALL).
 * - FILTER: needs a content filter transport (the smtp client), logged as ignored.
 * The log lines (`QID: reject: header Subject: x from client[addr]; from=<s> to=<r> proto=ESMTP
 * helo=<h>: 5.7.1 text`) need the envelope, so they are written at commit, in order.
 * mime_header_checks and nested_header_checks are not separate: every primary header field, MIME
 * ones included, is checked with header_checks (their default, $header_checks).
 */
import type { LookupTable } from '../config/tables/index.js';
import { headerNameLength } from './headers.js';

export interface HeaderCheckEvent {
  readonly action: string;
  readonly context: 'header' | 'body';
  /** The header field as looked up (lines joined by LF). */
  readonly content: string;
  readonly text: string;
}

/** What the header pass does with a field. */
export interface HeaderVerdict {
  readonly drop: boolean;
  /** Replacement field text (without line end). */
  readonly replace?: string;
  /** A field to emit before this one (without line end). */
  readonly prepend?: string;
}

const isHeaderText = (t: string): boolean => headerNameLength(Buffer.from(t, 'utf8')) > 0;

export class HeaderChecks {
  readonly events: HeaderCheckEvent[] = [];
  /** REJECT: `5.7.1 text` (or 4.x.x). */
  reason: string | null = null;
  discard = false;
  hold = false;
  redirect: string | null = null;
  readonly bcc: string[] = [];
  /** A table could not be searched: the message is not accepted (451, try again later). */
  lookupError = false;
  /** header_checks or body_checks, whichever had the lookup error. */
  lookupErrorMap = 'header_checks';
  private done = false;

  private context: 'header' | 'body' = 'header';

  constructor(
    private readonly tables: readonly (LookupTable | null)[],
    private readonly warn: (text: string) => void,
    private readonly bodyTables: readonly (LookupTable | null)[] = [],
  ) {}

  /** `field`: the logical header field with its line ends (CRLF). null: keep it as it is. */
  check(field: Buffer): HeaderVerdict | null {
    if (this.done || this.tables.length === 0) return null;
    const header = field.toString('utf8').replace(/\r?\n$/, '').replace(/\r\n/g, '\n');
    return this.lookup(this.tables, header, 'header');
  }

  /**
   * body_checks (cleanup_body_callback()): one body line without its line end. Without MIME
   * parsing, every body line is looked at, MIME part headers and boundaries included.
   */
  checkBody(line: Buffer): HeaderVerdict | null {
    if (this.done || this.bodyTables.length === 0) return null;
    return this.lookup(this.bodyTables, line.toString('utf8'), 'body');
  }

  private lookup(tables: readonly (LookupTable | null)[], key: string, context: 'header' | 'body'): HeaderVerdict | null {
    // maps_find() never looks up an empty key: an empty body line matches no rule, not even /^$/.
    if (key === '') return null;
    let value: string | undefined;
    for (const t of tables) {
      if (t === null) {
        this.lookupError = true;
        this.lookupErrorMap = `${context}_checks`;
        return null;
      }
      value = t.get(key);
      if (value !== undefined) break;
    }
    if (value === undefined) return null;
    this.context = context;
    return this.act(key, value);
  }

  private log(action: string, content: string, text: string): void {
    this.events.push({ action, context: this.context, content, text });
  }

  private act(header: string, value: string): HeaderVerdict | null {
    const map = `${this.context}_checks`;
    const m = /^(\S*)[ \t]*([\s\S]*)$/.exec(value)!;
    const cmd = m[1]!.toUpperCase();
    const text = m[2]!;
    switch (cmd) {
      case 'REJECT': {
        let reason = text !== '' ? (/^[245]\.\d{1,3}\.\d{1,3}(\s|$)/.test(text) ? text : `5.7.1 ${text}`) : '5.7.1 message content rejected';
        if (reason[0] !== '4' && reason[0] !== '5') {
          this.warn(`bad DSN action in ${text} -- need 4.x.x or 5.x.x`);
          reason = `5.7.1 ${text}`;
        }
        this.reason = reason;
        this.done = true;
        this.log('reject', header, reason);
        return null;
      }
      case 'WARN':
        this.log('warning', header, text);
        return null;
      case 'INFO':
        this.log('info', header, text);
        return null;
      case 'FILTER':
        this.warn(`${map} action FILTER ${text} is ignored: content filters need the smtp client, which Postern does not have yet`);
        return null;
      case 'PASS':
        this.log('pass', header, text);
        this.done = true;
        return null;
      case 'DISCARD':
        this.log('discard', header, text);
        this.discard = true;
        this.done = true;
        return null;
      case 'HOLD':
        if (!this.hold && !this.discard) {
          this.log('hold', header, text);
          this.hold = true;
        }
        return null;
      case 'PREPEND':
      case 'REPLACE': {
        const what = cmd.toLowerCase() as 'prepend' | 'replace';
        if (text === '') {
          this.warn(`${cmd} action without text in ${map} map`);
          return null;
        }
        if (this.context === 'header' && !isHeaderText(text)) {
          this.warn(`bad ${cmd} header text "${text}" in ${map} map -- need "headername: headervalue"`);
          return null;
        }
        this.log(what, header, text);
        return what === 'prepend' ? { drop: false, prepend: text } : { drop: false, replace: text };
      }
      case 'REDIRECT':
        if (!text.includes('@')) {
          this.warn(`bad REDIRECT target "${text}" in ${map} map -- need user@domain`);
          return null;
        }
        this.redirect = text;
        this.done = true;
        this.log('redirect', header, text);
        return null;
      case 'BCC':
        if (!text.includes('@')) {
          this.warn(`bad BCC address "${text}" in ${map} map -- need user@domain`);
          return null;
        }
        this.bcc.push(text);
        this.log('bcc', header, text);
        return null;
      case 'STRIP':
        this.log('strip', header, text);
        return { drop: true };
      case 'IGNORE':
        return { drop: true };
      case 'DUNNO':
      case 'OK':
        return null;
      default:
        this.warn(`unknown command in ${map} map: ${value}`);
        return null;
    }
  }
}

/**
 * `sendmail -bs`: an SMTP conversation on standard input/output (Postfix runs `smtpd -S`, which
 * hands each message to postdrop). Each accepted message becomes one maildrop file
 * (./maildrop.ts); the reply `250 2.0.0 Ok: queued as NAME` gives its maildrop name, and pickup
 * later gives it a queue id, as in Postfix.
 *
 * A session of smtpd's stand-alone mode from src/proto/smtp pieces: HELO, EHLO, MAIL (SIZE,
 * BODY=7BIT/8BITMIME, RET, ENVID, SMTPUTF8), RCPT (NOTIFY, ORCPT), DATA, RSET, NOOP, VRFY, ETRN,
 * QUIT, with smtpd's command table, error counting (smtpd_soft_error_limit,
 * smtpd_error_sleep_time, smtpd_hard_error_limit, smtpd_junk_command_limit) and
 * smtpd_forbidden_commands / smtpd_noop_commands. No TLS, no AUTH, no XCLIENT/XFORWARD, no
 * restrictions (stand-alone mode skips them: the submitting user is local and is recorded by the
 * file's owner), no BDAT: EHLO does not offer CHUNKING, and BDAT gets Postfix's answer for a
 * server without it (521, then hang up). Replies are Postfix 3.7's (observed with `sendmail -bs`
 * against Postfix 3.7.11).
 *
 * Logging, as Postfix's `smtpd -S` logs in the mail log under `postfix/smtpd[pid]`: `connect from
 * localhost[127.0.0.1]` (smtpd_peer_not_inet(): stdin is no socket), `NAME: client=localhost[127.0.0.1]`
 * when the first recipient is accepted and the maildrop file opened, `lost connection` / `timeout` /
 * `too many errors after CMD from ...`, the MAIL size reject, `warning:` lines, and `disconnect
 * from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5`.
 *
 * No full name: Postfix's sendmail runs `smtpd -S` without its -F option or the user's GECOS
 * name, so a message without From: gets the bare sender address there, as here.
 *
 * Data in: untrusted bytes from stdin, through the bounded LineReader and the DataReader
 * (RFC 5321 4.1.1.4 end of data; dot-unstuffing). Out: replies on stdout, maildrop files, log lines.
 * RFCs: 5321, 1869/1870 (SIZE), 6152 (8BITMIME), 3461 (DSN), 6531 (SMTPUTF8), 2034, 1985 (ETRN).
 */
import type { Duplex, Readable } from 'node:stream';
import { mailDate, quote822Local } from '../cleanup/headers.js';
import { wordMatcher } from '../config/tables/word-list.js';
import type { Params } from '../config/types.js';
import { PosternError } from '../errors.js';
import { LineReader } from '../io/line-reader.js';
import type { Logger } from '../log/index.js';
import { parseMailFrom, parseRcptTo } from '../proto/smtp/address.js';
import {
  BAD_SEQUENCE,
  CANNOT_VRFY,
  DOES_NOT_ACCEPT_MAIL,
  EXCEEDED_STORAGE,
  LOCAL_ERROR,
  MAILBOX_UNAVAILABLE,
  NOT_IMPLEMENTED,
  OK as OK_CODE,
  PARAM_SYNTAX_ERROR,
  SERVICE_CLOSING,
  SERVICE_NOT_AVAILABLE,
  SERVICE_READY,
  START_MAIL_INPUT,
  SYNTAX_ERROR,
  TRANSACTION_FAILED,
} from '../proto/smtp/codes.js';
import { CommandStats } from '../proto/smtp/command-stats.js';
import { DataReader } from '../proto/smtp/data-reader.js';
import { parseMailParams, parseRcptParams } from '../proto/smtp/esmtp-params.js';
import { formatReply, type Reply, ReplyError, reply, softBounce } from '../proto/smtp/reply.js';
import { escapeBytes, isHeader, type Token, tokenize } from '../proto/smtp/tokens.js';
import type { EnvelopeRecipient } from '../queue/envelope.js';
import { type MaildropEnvelope, MaildropWriter } from './maildrop.js';

export interface StdioSmtpOptions {
  readonly input: Readable;
  readonly output: NodeJS.WritableStream;
  readonly params: Params;
  /** queue_directory/maildrop */
  readonly maildropDir: string;
  /** The mail log as `smtpd` (Postfix's smtpd -S); none: nothing is logged. */
  readonly log?: Logger;
}

export interface StdioSmtpResult {
  /** Maildrop names of the messages accepted, in order. */
  readonly queued: readonly string[];
}

/** smtpd_peer_not_inet(): standard input is no socket, so the client is "localhost[127.0.0.1]". */
const NAMADDR = 'localhost[127.0.0.1]';

/** 458 Unable to queue messages (RFC 1985 5). */
const ETRN_UNABLE = 458;

/**
 * Postfix 3.7's smtpd_cmd_table, in its order (the order of the `disconnect from` counts); `junk`:
 * SMTPD_CMD_FLAG_LIMIT (counts toward smtpd_junk_command_limit).
 */
const COMMANDS: ReadonlyMap<string, { readonly junk: boolean }> = new Map(
  (
    [
      ['HELO', true],
      ['EHLO', true],
      ['XCLIENT', false],
      ['XFORWARD', false],
      ['STARTTLS', false],
      ['AUTH', false],
      ['MAIL', false],
      ['RCPT', false],
      ['DATA', false],
      ['BDAT', false],
      ['RSET', true],
      ['NOOP', true],
      ['VRFY', true],
      ['ETRN', true],
      ['QUIT', false],
    ] as const
  ).map(([name, junk]) => [name, { junk }]),
);

const WHERE_CONNECT = 'CONNECT';
const WHERE_UNKNOWN = 'UNKNOWN';
const WHERE_DATA = 'DATA content';
const WHERE_EOM = 'END-OF-MESSAGE';

type Reason = 'timeout' | 'lost connection' | 'too many errors';

/** Input ended or timed out: the session is over. */
class SessionEnd extends Error {
  constructor(readonly reason: Reason) {
    super(reason);
  }
}

interface Txn {
  sender: string;
  ret: 'FULL' | 'HDRS' | null;
  envid: string | null;
  body: '7BIT' | '8BITMIME' | null;
  smtputf8: boolean;
  recipients: EnvelopeRecipient[];
  /** Opened at the first accepted recipient (Postfix mail_open_stream()). */
  writer: MaildropWriter | null;
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Control characters become `?` in text quoted into the log. */
const printable = (s: string): string => s.replace(/[\x00-\x1f\x7f]/g, '?');

/** Run the conversation until QUIT, end of input, or a reply that ends the session. */
export async function runStdioSmtp(o: StdioSmtpOptions): Promise<StdioSmtpResult> {
  return new StdioSession(o).run();
}

class StdioSession {
  private readonly p: Params;
  private readonly reader: LineReader;
  private readonly timeoutMs: number;
  private readonly stats = new CommandStats([...COMMANDS.keys()]);
  private readonly isNoop: (w: string) => boolean;
  private readonly isForbidden: (w: string) => boolean;
  private readonly queued: string[] = [];
  private helo: string | null = null;
  private protocol = 'SMTP';
  private txn: Txn | null = null;
  private where = WHERE_CONNECT;
  private reason: Reason | null = null;
  private errorCount = 0;
  private junkCmds = 0;
  private hangup = false;
  /** Content bytes of the DATA in progress (`lost connection after DATA (N bytes)`). */
  private dataBytes = 0;

  constructor(private readonly o: StdioSmtpOptions) {
    this.p = o.params;
    this.timeoutMs = Math.max(1, this.p.smtpd_timeout) * 1000;
    // LineReader only listens for data/end/close and pauses/resumes: a Readable is enough.
    this.reader = new LineReader(o.input as unknown as Duplex, { lineLimit: this.p.line_length_limit });
    const warn = (t: string): void => o.log?.warning(t);
    this.isNoop = wordMatcher(this.p.smtpd_noop_commands, warn);
    this.isForbidden = wordMatcher(this.p.smtpd_forbidden_commands, warn);
  }

  private info(text: string): void {
    this.o.log?.info(text);
  }

  private warning(text: string): void {
    this.o.log?.warning(text);
  }

  /** smtpd_chat_reply(): the tarpit delay past smtpd_soft_error_limit, soft_bounce, 421/521 hang up. */
  private async send(r: Reply): Promise<void> {
    if (this.errorCount >= this.p.smtpd_soft_error_limit && this.p.smtpd_error_sleep_time > 0) await sleep(this.p.smtpd_error_sleep_time * 1000);
    const out = this.p.soft_bounce ? softBounce(r) : r;
    this.o.output.write(formatReply(out));
    if (out.code === SERVICE_NOT_AVAILABLE || out.code === DOES_NOT_ACCEPT_MAIL) this.hangup = true;
  }

  async run(): Promise<StdioSmtpResult> {
    this.info(`connect from ${NAMADDR}`);
    try {
      await this.send(reply(SERVICE_READY, null, this.p.smtpd_banner));
      await this.loop();
    } catch (err) {
      if (!(err instanceof SessionEnd)) throw err;
      this.reason = err.reason;
      if (err.reason === 'timeout') await this.send(reply(SERVICE_NOT_AVAILABLE, '4.4.2', `${this.p.myhostname} Error: timeout exceeded`));
    } finally {
      await this.finish();
    }
    return { queued: this.queued };
  }

  private async readLine(): Promise<{ bytes: Buffer; truncated: boolean }> {
    const got = await this.reader.readLine(this.timeoutMs);
    if (got.kind === 'eof') throw new SessionEnd('lost connection');
    if (got.kind === 'timeout') throw new SessionEnd('timeout');
    return got;
  }

  private async loop(): Promise<void> {
    const p = this.p;
    for (;;) {
      if (this.hangup) return;
      if (this.errorCount >= p.smtpd_hard_error_limit) {
        this.reason = 'too many errors';
        await this.send(reply(SERVICE_NOT_AVAILABLE, '4.7.0', `${p.myhostname} Error: too many errors`));
        return;
      }
      const line = await this.readLine();
      if (line.truncated) this.warning(`${NAMADDR}: request longer than ${p.line_length_limit}: ${printable(line.bytes.subarray(0, 30).toString('latin1'))}...`);
      let text: string;
      if (p.smtputf8_enable) {
        try {
          text = utf8Decoder.decode(line.bytes);
        } catch {
          await this.unknown(reply(SYNTAX_ERROR, '5.5.2', 'Error: bad UTF-8 syntax'));
          continue;
        }
      } else {
        text = line.bytes.toString('latin1');
      }
      const argv = tokenize(text);
      if (argv.length === 0) {
        await this.unknown(reply(SYNTAX_ERROR, '5.5.2', 'Error: bad syntax'));
        continue;
      }
      const verb = argv[0]!.text;
      if (this.isNoop(verb)) {
        await this.send(reply(OK_CODE, '2.0.0', 'Ok'));
        if (this.junkCmds++ > p.smtpd_junk_command_limit) this.errorCount++;
        continue;
      }
      const name = verb.toUpperCase();
      const cmd = COMMANDS.get(name);
      this.stats.attempt(cmd !== undefined ? name : null);
      if (cmd === undefined) {
        this.where = WHERE_UNKNOWN;
        if (isHeader(verb) || this.isForbidden(verb)) {
          this.warning(`non-SMTP command from ${NAMADDR}: ${escapeBytes(Buffer.from(text, p.smtputf8_enable ? 'utf8' : 'latin1')).slice(0, 100)}`);
          await this.send(reply(SERVICE_CLOSING, '2.7.0', 'Error: I can break rules, too. Goodbye.'));
          return;
        }
        await this.send(reply(SYNTAX_ERROR, '5.5.2', 'Error: command not recognized'));
        this.errorCount++;
        continue;
      }
      this.where = name;
      let ok: boolean;
      try {
        ok = await this.command(name, argv, text);
      } catch (err) {
        if (!(err instanceof ReplyError)) throw err;
        await this.send(err.reply);
        ok = false;
      }
      if (ok) this.stats.success(name);
      else this.errorCount++;
      if (cmd.junk && this.junkCmds++ > p.smtpd_junk_command_limit) this.errorCount++;
      if (name === 'QUIT') return;
    }
  }

  /** A line that is no command: counted as `unknown`, an error. */
  private async unknown(r: Reply): Promise<void> {
    this.where = WHERE_UNKNOWN;
    this.stats.attempt(null);
    await this.send(r);
    this.errorCount++;
  }

  /** One command; true when it succeeded. A ReplyError is a failure with that reply. */
  private async command(name: string, argv: readonly Token[], line: string): Promise<boolean> {
    const p = this.p;
    const fail = async (r: Reply): Promise<false> => {
      await this.send(r);
      return false;
    };
    switch (name) {
      case 'HELO':
      case 'EHLO': {
        if (argv.length < 2) return fail(reply(PARAM_SYNTAX_ERROR, null, `Syntax: ${name} hostname`));
        await this.mailReset();
        this.helo = argv
          .slice(1)
          .map((t) => t.text)
          .join(' ');
        // helo_cmd(): HELO after EHLO keeps ESMTP.
        if (name === 'EHLO') this.protocol = 'ESMTP';
        if (name === 'HELO') {
          await this.send(reply(OK_CODE, null, p.myhostname));
          return true;
        }
        const lines = [p.myhostname, 'PIPELINING'];
        lines.push(p.message_size_limit > 0 ? `SIZE ${p.message_size_limit}` : 'SIZE');
        if (!p.disable_vrfy_command) lines.push('VRFY');
        lines.push('ETRN', 'ENHANCEDSTATUSCODES', '8BITMIME', 'DSN');
        if (p.smtputf8_enable) lines.push('SMTPUTF8');
        await this.send(reply(OK_CODE, null, ...lines));
        return true;
      }
      case 'XCLIENT':
      case 'XFORWARD':
        return fail(reply(MAILBOX_UNAVAILABLE, '5.7.0', 'Error: insufficient authorization'));
      case 'STARTTLS':
        // smtpd_service(): TLS is off in stand-alone mode.
        return fail(reply(NOT_IMPLEMENTED, '5.5.1', 'Error: command not implemented'));
      case 'AUTH':
        return fail(reply(BAD_SEQUENCE, '5.5.1', 'Error: authentication not enabled'));
      case 'MAIL':
        return this.mail(argv, line);
      case 'RCPT':
        return this.rcpt(argv, line);
      case 'DATA': {
        const t = this.txn;
        if (t === null || t.recipients.length === 0) {
          return fail(t === null ? reply(BAD_SEQUENCE, '5.5.1', 'Error: need RCPT command') : reply(TRANSACTION_FAILED, '5.5.1', 'Error: no valid recipients'));
        }
        if (argv.length !== 1) return fail(reply(PARAM_SYNTAX_ERROR, '5.5.4', 'Syntax: DATA'));
        return this.data(t);
      }
      case 'BDAT':
        // Postfix bdat_cmd() when CHUNKING is not offered: the next input would be raw content.
        return fail(reply(DOES_NOT_ACCEPT_MAIL, '5.5.1', 'Error: command not implemented'));
      case 'RSET':
        if (argv.length !== 1) return fail(reply(PARAM_SYNTAX_ERROR, '5.5.4', 'Syntax: RSET'));
        await this.mailReset();
        await this.send(reply(OK_CODE, '2.0.0', 'Ok'));
        return true;
      case 'NOOP':
        await this.send(reply(OK_CODE, '2.0.0', 'Ok'));
        return true;
      case 'VRFY': {
        if (p.disable_vrfy_command) return fail(reply(NOT_IMPLEMENTED, '5.5.1', 'VRFY command is disabled'));
        let args = argv.slice(1).map((t) => t.text);
        if (p.smtputf8_enable && args.length > 0 && args[args.length - 1]!.toUpperCase() === 'SMTPUTF8') args = args.slice(0, -1);
        if (args.length < 1) return fail(reply(PARAM_SYNTAX_ERROR, '5.5.4', `Syntax: VRFY address${p.smtputf8_enable ? ' [SMTPUTF8]' : ''}`));
        // RFC 5321 3.5.3: "cannot VRFY user, but will accept message".
        await this.send(reply(CANNOT_VRFY, '2.0.0', argv[1]!.text));
        return true;
      }
      case 'ETRN': {
        if (p.smtpd_helo_required && this.helo === null) return fail(reply(BAD_SEQUENCE, null, 'Error: send HELO/EHLO first'));
        if (this.txn !== null) return fail(reply(BAD_SEQUENCE, null, 'Error: MAIL transaction in progress'));
        if (argv.length !== 2) return fail(reply(SYNTAX_ERROR, null, 'Syntax: ETRN domain'));
        let site = argv[1]!.text;
        if (site.startsWith('@') || site.startsWith('#')) site = site.slice(1);
        // RFC 1985 5; as an extension an address literal in [] (Postfix).
        if (!/^\[(?:IPv6:)?[0-9A-Fa-f:.]+\]$/.test(site) && !/^[A-Za-z0-9_.-]+$/.test(site)) return fail(reply(PARAM_SYNTAX_ERROR, null, 'Error: invalid parameter syntax'));
        this.warning('do not use ETRN in "sendmail -bs" mode');
        return fail(reply(ETRN_UNABLE, null, 'Unable to queue messages'));
      }
      case 'QUIT':
        await this.send(reply(SERVICE_CLOSING, '2.0.0', 'Bye'));
        return true;
      default:
        return fail(reply(SYNTAX_ERROR, '5.5.2', 'Error: command not recognized'));
    }
  }

  private async mail(argv: readonly Token[], line: string): Promise<boolean> {
    const p = this.p;
    if (p.smtpd_helo_required && this.helo === null) throw new ReplyError(reply(BAD_SEQUENCE, '5.5.1', 'Error: send HELO/EHLO first'));
    if (this.txn !== null) throw new ReplyError(reply(BAD_SEQUENCE, '5.5.1', 'Error: nested MAIL command'));
    if (argv.length < 3 || argv[1]!.text.toLowerCase() !== 'from:') throw new ReplyError(reply(PARAM_SYNTAX_ERROR, '5.5.4', 'Syntax: MAIL FROM:<address>'));
    const arg = line.replace(/^\s*\S+/, '');
    let parsed: ReturnType<typeof parseMailFrom>;
    try {
      parsed = parseMailFrom(arg, { smtputf8_enable: p.smtputf8_enable });
    } catch (err) {
      if (err instanceof ReplyError && err.reply.enhanced === '5.1.7' && !argv[2]!.error) {
        this.warning(`Illegal address syntax from ${NAMADDR} in MAIL command: ${printable(argv[2]!.text)}`);
      }
      throw err;
    }
    const mp = parseMailParams(parsed.params, { smtputf8_enable: p.smtputf8_enable, chunking: false });
    const sender = parsed.path.address;
    if (mp.size !== null && p.message_size_limit > 0 && mp.size > p.message_size_limit) {
      // smtpd_check_size(), logged as log_whatsup().
      this.info(`NOQUEUE: reject: MAIL from ${NAMADDR}: 552 5.3.4 Message size exceeds fixed limit; from=<${sender}> proto=${this.protocol}${this.helo !== null ? ` helo=<${this.helo}>` : ''}`);
      throw new ReplyError(reply(EXCEEDED_STORAGE, '5.3.4', 'Message size exceeds fixed limit'));
    }
    this.txn = {
      sender,
      ret: mp.ret,
      envid: mp.envid,
      body: mp.body === 'BINARYMIME' ? null : mp.body,
      smtputf8: mp.smtputf8,
      recipients: [],
      writer: null,
    };
    await this.send(reply(OK_CODE, '2.1.0', 'Ok'));
    return true;
  }

  private async rcpt(argv: readonly Token[], line: string): Promise<boolean> {
    const t = this.txn;
    if (t === null) throw new ReplyError(reply(BAD_SEQUENCE, '5.5.1', 'Error: need MAIL command'));
    if (argv.length < 3 || argv[1]!.text.toLowerCase() !== 'to:') throw new ReplyError(reply(PARAM_SYNTAX_ERROR, '5.5.4', 'Syntax: RCPT TO:<address>'));
    const arg = line.replace(/^\s*\S+/, '');
    let parsed: ReturnType<typeof parseRcptTo>;
    try {
      parsed = parseRcptTo(arg, { smtputf8: t.smtputf8 });
      if (parsed.path.address === '') throw new ReplyError(reply(PARAM_SYNTAX_ERROR, '5.1.3', 'Bad recipient address syntax'));
    } catch (err) {
      if (err instanceof ReplyError && err.reply.enhanced === '5.1.3' && !argv[2]!.error) {
        this.warning(`Illegal address syntax from ${NAMADDR} in RCPT command: ${printable(argv[2]!.text)}`);
      }
      throw err;
    }
    const rp = parseRcptParams(parsed.params);
    if (t.writer === null) {
      // mail_open_stream(): the maildrop file, named now, and the `client=` line.
      try {
        t.writer = await MaildropWriter.create(this.o.maildropDir, { sizeLimit: this.p.message_size_limit });
      } catch {
        throw new ReplyError(reply(LOCAL_ERROR, '4.3.0', 'Error: queue file write error'));
      }
      this.info(`${t.writer.name}: client=${NAMADDR}`);
    }
    t.recipients.push({
      address: parsed.path.address,
      notify: rp.notify === null || rp.notify === 'NEVER' ? rp.notify : [...rp.notify],
      orcpt: rp.orcpt === null ? null : `${rp.orcpt.type};${rp.orcpt.address}`,
    });
    await this.send(reply(OK_CODE, '2.1.5', 'Ok'));
    return true;
  }

  /** DATA: 354, content into the maildrop file, then the final reply. */
  private async data(t: Txn): Promise<boolean> {
    const p = this.p;
    const writer = t.writer!;
    let failed: Reply | null = null;
    const write = async (b: Buffer): Promise<void> => {
      if (failed !== null) return;
      try {
        await writer.write(b);
      } catch (err) {
        if (err instanceof PosternError && err.code === 'too-big') {
          this.warning(`${writer.name}: queue file size limit exceeded`);
          failed = reply(EXCEEDED_STORAGE, '5.3.4', 'Error: message file too big');
        } else {
          failed = reply(LOCAL_ERROR, '4.3.0', 'Error: queue file write error');
        }
      }
    };
    await this.send(reply(START_MAIL_INPUT, null, 'End data with <CR><LF>.<CR><LF>'));
    this.where = WHERE_DATA;
    this.dataBytes = 0;
    // Postfix smtpd: Received: from HELO (client) by myhostname (mail_name) with PROTO id ID, then
    // `for <rcpt>; date` on the next line for one recipient, else `;` and the date alone there.
    const proto = `${t.smtputf8 ? 'UTF8' : ''}${this.protocol}`;
    const by = `\tby ${p.myhostname} (${p.mail_name}) with ${proto} id ${writer.name}`;
    const date = mailDate(Date.now());
    await write(
      Buffer.from(
        `Received: from ${this.helo ?? 'localhost'} (localhost [127.0.0.1])\r\n` +
          (t.recipients.length === 1 ? `${by}\r\n\tfor <${quote822Local(t.recipients[0]!.address)}>; ${date}\r\n` : `${by};\r\n\t${date}\r\n`),
        'utf8',
      ),
    );
    const dr = new DataReader({ bareNewline: 'normalize' });
    for (;;) {
      const got = await this.reader.readChunk(this.timeoutMs);
      if (got.kind === 'eof') throw new SessionEnd('lost connection');
      if (got.kind === 'timeout') throw new SessionEnd('timeout');
      const r = dr.push(got.bytes);
      this.dataBytes += r.content.length;
      if (r.content.length > 0) await write(r.content);
      if (r.done) {
        if (r.rest.length > 0) this.reader.unshift(r.rest);
        break;
      }
    }
    this.where = WHERE_EOM;
    // The transaction ends here, whatever the outcome (Postfix mail_reset() after DATA).
    this.txn = null;
    if (failed !== null) {
      await writer.abort();
      await this.send(failed);
      return false;
    }
    const envelope: MaildropEnvelope = {
      version: 1,
      time: Date.now(),
      sender: t.sender,
      fullName: null,
      recipients: t.recipients,
      ret: t.ret,
      envid: t.envid,
      smtputf8: t.smtputf8,
      body: t.body,
    };
    try {
      await writer.commit(envelope);
    } catch {
      await writer.abort();
      await this.send(reply(LOCAL_ERROR, '4.3.0', 'Error: queue file write error'));
      return false;
    }
    this.queued.push(writer.name);
    await this.send(reply(OK_CODE, '2.0.0', `Ok: queued as ${writer.name}`));
    return true;
  }

  /** The transaction is over: a maildrop file not committed is removed. */
  private async mailReset(): Promise<void> {
    const w = this.txn?.writer ?? null;
    this.txn = null;
    if (w !== null) await w.abort().catch(() => undefined);
  }

  /** The `X after CMD` line and `disconnect from` (smtpd_service()). */
  private async finish(): Promise<void> {
    if (this.reason !== null) {
      if (this.where === WHERE_DATA) this.info(`${this.reason} after DATA (${this.dataBytes} bytes) from ${NAMADDR}`);
      else if (this.where !== WHERE_EOM || this.reason !== 'lost connection') this.info(`${this.reason} after ${this.where} from ${NAMADDR}`);
    }
    await this.mailReset();
    this.reader.close();
    this.info(`disconnect from ${NAMADDR}${this.stats.format()}`);
  }
}

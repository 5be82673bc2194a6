/**
 * One inbound SMTP session (Postfix smtpd.c smtpd_proto() and the command handlers): greeting,
 * the command loop with pipelining enforcement, error and junk limits, STARTTLS, MAIL/RCPT with
 * the access restrictions, DATA and BDAT into a cleanup transaction, and the connect/disconnect
 * log lines. Every command line read and reply line sent also goes into the session transcript,
 * and every error reply notes its notify_classes class (Postfix `state->error_mask`, set where
 * smtpd.c sets it); a transcript with an error of a class in notify_classes is mailed to the
 * postmaster at the end of the session (./transcript.ts).
 *
 * Invariants (DESIGN section 4): every byte from the peer goes through the bounded LineReader
 * (line_length_limit, message_size_limit, smtpd_timeout); a Reply is the only thing written to
 * the socket; a ReplyError aborts one command; any other exception is a bug: the session replies
 * `421 4.3.0 <myhostname> Server local data error`, logs a `warning:`, counts it in
 * `smtpdCounters.exceptions` and ends. `250 ... queued as` is sent only after cleanup's commit
 * resolved (the queue file and its directory entry are on disk).
 */
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { CleanupError, type CleanupInput, type CleanupTxn, type ClientFacts, type EnvelopeRecipient, postMail } from '../cleanup/index.js';
import type { Params } from '../config/types.js';
import type { Logger } from '../log/index.js';
import { LineReader } from '../io/line-reader.js';
import { parseMailFrom, parseRcptTo } from '../proto/smtp/address.js';
import { type BareNewlinePolicy, bareLfReply, bareNewlineAction, DataReader } from '../proto/smtp/data-reader.js';
import { type MailParams, parseMailParams, parseRcptParams } from '../proto/smtp/esmtp-params.js';
import {
  AUTH_CONTINUE,
  AUTH_INVALID,
  AUTH_REQUIRED,
  AUTH_SUCCEEDED,
  BAD_SEQUENCE,
  CANNOT_VRFY,
  DOES_NOT_ACCEPT_MAIL,
  EXCEEDED_STORAGE,
  HELP_MESSAGE,
  INSUFFICIENT_STORAGE,
  LOCAL_ERROR,
  MAILBOX_UNAVAILABLE,
  MAILBOX_UNAVAILABLE_TEMP,
  NOT_IMPLEMENTED,
  OK,
  PARAM_SYNTAX_ERROR,
  SERVICE_CLOSING,
  SERVICE_NOT_AVAILABLE,
  SERVICE_READY,
  START_MAIL_INPUT,
  SYNTAX_ERROR,
  TEMPORARY_FAILURE,
  TRANSACTION_FAILED,
  USER_NOT_LOCAL,
} from '../proto/smtp/codes.js';
import { formatReply, type Reply, ReplyError, reply, replyLines, softBounce } from '../proto/smtp/reply.js';
import { escapeBytes, isHeader } from '../proto/smtp/tokens.js';
import type { TlsSession } from '../tls/index.js';
import { CommandStats, type Command, findCommand, helpText } from './commands.js';
import type { Peer } from './peer.js';
import { printable, receivedHeader, sanitizeHelo } from './received.js';
import { AccessHangup, type AccessActions, type CheckSubject, type DeferFlags, Policy } from './restrictions.js';
import type { ServiceContext } from './service.js';
import { type Token, tokenize } from './tokens.js';
import { composeTranscriptNotice, HIDDEN, type MailErrorClass, Transcript, type TranscriptNotice } from './transcript.js';
import { SaslServer } from '../sasl/index.js';

/** 458 Unable to queue messages for node (RFC 1985 5). */
const ETRN_UNABLE = 458;
/** 459 Node not allowed: reason (RFC 1985 5). */
const ETRN_REFUSED = 459;

/** Process-wide counters; tests assert `exceptions` stays 0 (DESIGN invariant 4). */
export const smtpdCounters = { exceptions: 0, sessions: 0 };

const WHERE_CONNECT = 'CONNECT';
const WHERE_DATA = 'DATA content';
const WHERE_BDAT = 'BDAT content';
const WHERE_EOM = 'END-OF-MESSAGE';
/** Sequence number of policy `instance` values in this process. */
let instanceSeq = 0;
const WHERE_UNKNOWN = 'UNKNOWN';

/** Why a session ended early, as Postfix logs it (`timeout after RCPT from ...`). */
type Reason = 'timeout' | 'lost connection' | 'too many errors';

/** Thrown by reads: the peer went away or was too slow. Caught by run(). */
class SessionEnd extends Error {
  constructor(readonly reason: Reason | null) {
    super(reason ?? 'session end');
  }
}

/** EHLO keywords that smtpd_discard_ehlo_keywords can suppress. */
type EhloKeyword = 'pipelining' | 'size' | 'vrfy' | 'etrn' | 'starttls' | 'auth' | 'enhancedstatuscodes' | '8bitmime' | 'dsn' | 'smtputf8' | 'chunking';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Lenient = new TextDecoder('utf-8');

/** The notify class of a reply from cleanup (smtpd.c common_post_message_handling()). */
function cleanupErrorClass(e: ReplyError): MailErrorClass {
  if (!(e instanceof CleanupError)) return 'software';
  if (e.status === 'write') return 'resource';
  if (e.status === 'size' || e.status === 'hops') return 'bounce';
  return 'policy';
}

/** An AUTH command as the transcript keeps it: the mechanism, not the initial response. */
function hideAuthPayload(text: string): string {
  const m = /^(\s*AUTH\s+\S+)\s+\S/i.exec(text);
  return m === null ? text : `${m[1]} ${HIDDEN}`;
}

export class Session implements CheckSubject {
  // --- facts (CheckSubject) ---
  peer: Peer;
  helo: string | null = null;
  sender: string | null = null;
  /** The first accepted recipient (logging, Received: for one recipient). */
  recipient: string | null = null;
  protocol = 'SMTP';
  where = WHERE_CONNECT;
  queueId: string | null = null;
  rcptCount = 0;
  tls: TlsSession | null = null;
  saslUsername: string | null = null;
  /** The mechanism as the client named it (logged as sasl_method=). */
  saslMethod: string | null = null;
  illegalPipelining = false;
  smtputf8 = false;
  deferFlags: DeferFlags = { client: null, helo: null, sender: null };

  // --- transaction ---
  private mailParams: MailParams | null = null;
  private recipients: EnvelopeRecipient[] = [];
  private txn: CleanupTxn | null = null;
  private bdat: 'none' | 'ok' | 'error' = 'none';
  private actSize = 0;
  /** Postfix's policy `instance` for the current transaction (smtpd.c mail_cmd()); '' outside one. */
  instance = '';
  private arrival = new Date();
  private receivedLines: string[] = [];
  /** The line-ending normalizer of the BDAT chunks of this message. */
  private bdatReader: DataReader | null = null;
  private rcptOvershoot = 0;

  // --- session ---
  private readonly log: Logger;
  private readonly params: Params;
  private socket: Duplex;
  private readonly reader: LineReader;
  private readonly stats = new CommandStats();
  private out: string[] = [];
  private errorCount = 0;
  private junkCmds = 0;
  private hangup = false;
  private reason: Reason | null = null;
  private accessDenied: Reply | null = null;
  private discard = new Set<EhloKeyword>();
  private anvilKey: string | null = null;
  private closed = false;
  /** Postfix's session notes (smtpd_forbid_bare_newline = note), logged as ` notes=...` on disconnect. */
  private notedBareLf = false;
  /** SASL state, made at the first AUTH (Postfix keeps one per session with the dovecot driver). */
  private sasl: SaslServer | null = null;
  /** What the postmaster is sent when an error of a notify_classes class happened (./transcript.ts). */
  private readonly transcript: Transcript;
  /** Postmaster notices being queued; the session waits for them before its disconnect line. */
  private readonly notices: Promise<void>[] = [];

  constructor(
    private readonly svc: ServiceContext,
    private readonly raw: net.Socket,
    peer: Peer,
    log: Logger,
  ) {
    this.params = svc.params;
    this.peer = peer;
    this.log = log;
    this.socket = raw;
    this.reader = new LineReader(raw, { lineLimit: this.params.line_length_limit });
    this.transcript = new Transcript(this.params.notify_classes);
  }

  // --- CheckSubject logging ---
  info(text: string): void {
    this.log.info(text);
  }
  warning(text: string): void {
    this.log.warning(text);
  }
  /** Postfix `state->error_mask |= class`: the class of an error reply, for the postmaster notice. */
  noteError(c: MailErrorClass): void {
    this.transcript.error(c);
  }

  private subject(o: { sender?: string | null; recipient?: string | null; where?: string } = {}): CheckSubject {
    return {
      peer: this.peer,
      helo: this.helo,
      sender: o.sender !== undefined ? o.sender : this.sender,
      recipient: o.recipient !== undefined ? o.recipient : this.recipient,
      protocol: this.protocol,
      where: o.where ?? this.where,
      queueId: this.queueId,
      rcptCount: this.rcptCount,
      tls:
        this.tls === null
          ? null
          : {
              trusted: this.tls.trusted,
              peerCert: this.tls.peerCert,
              certFingerprint: this.tls.peerCertFingerprint,
              pkeyFingerprint: this.tls.peerPkeyFingerprint,
              peerCN: this.tls.peerCN,
              issuerCN: this.tls.issuerCN,
              protocol: this.tls.protocol,
              cipher: this.tls.cipher,
              bits: this.tls.bits,
            },
      saslUsername: this.saslUsername,
      saslMethod: this.saslMethod,
      size: this.actSize > 0 ? this.actSize : (this.mailParams?.size ?? 0),
      instance: this.instance,
      server: { addr: this.raw.localAddress ?? '', port: this.raw.localPort ?? 0 },
      illegalPipelining: this.illegalPipelining,
      smtputf8: this.smtputf8,
      deferFlags: this.deferFlags,
      actions: this.accessActions,
      noteError: (c) => this.noteError(c),
      info: (t) => this.log.info(t),
      warning: (t) => this.log.warning(t),
    };
  }

  private get timeoutMs(): number {
    return this.params.smtpd_timeout * 1000;
  }

  // --- output ---

  /** Queue a reply (Postfix smtpd_chat_reply()): error sleep, soft_bounce, 421/521 hang up. */
  async reply(r: Reply): Promise<void> {
    let rr = r;
    if (this.errorCount >= this.params.smtpd_soft_error_limit && this.params.smtpd_error_sleep_time > 0) {
      this.flush();
      await sleep(this.params.smtpd_error_sleep_time * 1000);
    }
    if (this.params.soft_bounce) rr = softBounce(rr);
    const footer = this.params.smtpd_reject_footer;
    if (footer !== '' && rr.code >= 400) rr = reply(rr.code, rr.enhanced, ...rr.lines, ...footer.split('\\n'));
    this.out.push(formatReply(rr));
    for (const line of replyLines(rr)) this.chatOut(line);
    // Postfix hangs up after any 421 or 521 reply (smtpd_chat.c).
    if (rr.code === SERVICE_NOT_AVAILABLE || rr.code === DOES_NOT_ACCEPT_MAIL) this.hangup = true;
  }

  /** A line read from the client, into the transcript (smtpd_chat_query()). */
  private chatIn(text: string): void {
    this.transcript.input(text);
    if (this.transcript.full) this.chatReset(0);
  }

  /** A reply line as sent, into the transcript. */
  private chatOut(line: string): void {
    this.transcript.output(line);
    if (this.transcript.full) this.chatReset(0);
  }

  /**
   * Postfix chat_reset(): past `threshold` lines the transcript is reset, and mailed to the
   * postmaster first when it holds an error of a notify_classes class.
   */
  private chatReset(threshold: number): void {
    const n = this.transcript.reset(threshold, this.reason);
    if (n !== null) this.notices.push(this.notifyPostmaster(n));
  }

  /**
   * smtpd_chat_notify(): the transcript as a local submission from double-bounce@$myhostname to
   * error_notice_recipient (bounce_notice_recipient after a `bounce` error). Never throws: a
   * notice that cannot be queued is logged and dropped, as Postfix drops it when cleanup is busy.
   */
  private async notifyPostmaster(n: TranscriptNotice): Promise<void> {
    const p = this.params;
    try {
      const content = composeTranscriptNotice(n, {
        myhostname: p.myhostname,
        myorigin: p.myorigin,
        mail_name: p.mail_name,
        error_notice_recipient: p.error_notice_recipient,
        smtputf8_enable: p.smtputf8_enable,
        namaddr: this.peer.namaddr,
      });
      await postMail(this.svc.cleanup, {
        sender: `${p.double_bounce_sender}@${p.myhostname}`,
        recipient: n.errors.has('bounce') ? p.bounce_notice_recipient : p.error_notice_recipient,
        content,
        now: Date.now(),
      });
    } catch (e) {
      this.log.warning(`postmaster notify: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Send a reply; an error reply names its notify class (Postfix `state->error_mask |= ...` before it). */
  private send(code: number, enhanced: string | null, text: string, errorClass?: MailErrorClass): Promise<void> {
    if (errorClass !== undefined) this.noteError(errorClass);
    return this.reply(reply(code, enhanced, text));
  }

  /** Write queued replies. */
  flush(): void {
    if (this.out.length === 0 || this.closed) return;
    const data = this.out.join('');
    this.out = [];
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(data);
  }

  /** Flush; when the peer does not read its replies, wait (bounded) before reading more. */
  private async flushAndWait(): Promise<void> {
    this.flush();
    const s = this.socket as Duplex & { writableLength: number };
    if (s.writableLength > 256 * 1024 && !s.destroyed) {
      const ok = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => done(false), this.timeoutMs);
        const done = (v: boolean): void => {
          clearTimeout(t);
          s.off('drain', onDrain);
          s.off('close', onClose);
          resolve(v);
        };
        const onDrain = (): void => done(true);
        const onClose = (): void => done(false);
        s.on('drain', onDrain);
        s.on('close', onClose);
      });
      if (!ok) throw new SessionEnd(s.destroyed ? 'lost connection' : 'timeout');
    }
  }

  // --- input ---

  private async readLine(): Promise<{ bytes: Buffer; truncated: boolean; bareLf: boolean }> {
    if (!this.reader.hasBuffered()) await this.flushAndWait();
    const r = await this.reader.readLine(this.timeoutMs);
    if (r.kind === 'eof') throw new SessionEnd('lost connection');
    if (r.kind === 'timeout') throw new SessionEnd('timeout');
    return r;
  }

  private async readChunk(max?: number): Promise<Buffer> {
    if (!this.reader.hasBuffered()) await this.flushAndWait();
    const r = await this.reader.readChunk(this.timeoutMs, max);
    if (r.kind === 'eof') throw new SessionEnd('lost connection');
    if (r.kind === 'timeout') throw new SessionEnd('timeout');
    return r.bytes;
  }

  // --- session ---

  /** Run the session to its end. Never throws. */
  async run(): Promise<void> {
    smtpdCounters.sessions++;
    this.raw.on('error', () => {});
    try {
      this.log.info(`connect from ${this.peer.namaddr}`);
      if (await this.start()) await this.loop();
    } catch (e) {
      await this.fail(e);
    }
    try {
      await this.finish();
    } catch (e) {
      smtpdCounters.exceptions++;
      this.log.warning(`internal error while closing session with ${this.peer.namaddr}: ${(e as Error).message}`);
    }
  }

  /** A read ended the session, or a bug. */
  private async fail(e: unknown): Promise<void> {
    if (e instanceof AccessHangup) {
      // access(5) HANGUP: no reply; the disconnect line follows (smtpd_check.c, SMTP_ERR_QUIET).
      this.out = [];
      this.socket.destroy();
      return;
    }
    if (e instanceof SessionEnd) {
      this.reason = e.reason;
      if (e.reason === 'timeout') {
        await this.send(SERVICE_NOT_AVAILABLE, '4.4.2', `${this.params.myhostname} Error: timeout exceeded`).catch(() => {});
      }
      return;
    }
    smtpdCounters.exceptions++;
    const msg = e instanceof Error ? (e.stack ?? e.message) : String(e);
    this.log.warning(`${this.queueId ?? 'NOQUEUE'}: internal error in ${this.where} from ${this.peer.namaddr}: ${msg.split('\n').slice(0, 3).join(' ')}`);
    this.log.info(`${this.queueId ?? 'NOQUEUE'}: reject: ${this.where} from ${this.peer.namaddr}: 421 4.3.0 ${this.params.myhostname} Server local data error`);
    // A bug in Postern, so a `software` error (Postfix's 421 for a local data error is `data`).
    this.noteError('software');
    const r = reply(SERVICE_NOT_AVAILABLE, '4.3.0', `${this.params.myhostname} Server local data error`);
    this.out.push(formatReply(r));
    for (const line of replyLines(r)) this.chatOut(line);
  }

  /** Greeting stage. Returns false when the session ends before the command loop. */
  private async start(): Promise<boolean> {
    const p = this.params;
    if (this.svc.tlsWrapper) {
      if (this.svc.tls === null) {
        this.log.warning(`Wrapper-mode request dropped from ${this.peer.namaddr} for service ${this.svc.serviceName}. TLS context initialization failed. For details see earlier warnings in your logs.`);
        return false;
      }
      if (!(await this.startTls())) return false;
    } else if (this.reader.hasBuffered()) {
      // The client spoke before our greeting (RFC 5321 4.3.1; RFC 2920 3.1 does not allow it).
      this.flagIllegalPipelining();
      if (p.smtpd_forbid_unauth_pipelining) {
        await this.send(TRANSACTION_FAILED, '5.5.0', 'Error: SMTP protocol synchronization');
        return false;
      }
    }
    // Client connection count and rate limits (anvil), except smtpd_client_event_limit_exceptions.
    if (!this.svc.limitExceptions.matches(this.peer.addr)) {
      this.anvilKey = this.svc.anvilKey(this.peer.addr);
      const { count, rate } = this.svc.anvil.connect(this.anvilKey, p.anvil_rate_time_unit * 1000);
      if (p.smtpd_client_connection_count_limit > 0 && count > p.smtpd_client_connection_count_limit) {
        this.log.warning(`Connection concurrency limit exceeded: ${count} from ${this.peer.namaddr} for service ${this.svc.serviceName}`);
        await this.send(SERVICE_NOT_AVAILABLE, '4.7.0', `${p.myhostname} Error: too many connections from ${this.peer.addr}`, 'policy');
        return false;
      }
      if (p.smtpd_client_connection_rate_limit > 0 && rate > p.smtpd_client_connection_rate_limit) {
        this.log.warning(`Connection rate limit exceeded: ${rate} from ${this.peer.namaddr} for service ${this.svc.serviceName}`);
        // Unlike the count limit, no error class in Postfix 3.7 (smtpd.c smtpd_proto()).
        await this.send(SERVICE_NOT_AVAILABLE, '4.7.0', `${p.myhostname} Error: too many connections from ${this.peer.addr}`);
        return false;
      }
    }
    for (const k of p.smtpd_discard_ehlo_keywords) this.discard.add(k.toLowerCase() as EhloKeyword);
    if (!p.smtpd_delay_reject) {
      const err = await this.svc.policy.checkClient(this.subject());
      if (err !== null) {
        this.accessDenied = err;
        this.noteError('policy');
        await this.reply(err);
        this.errorCount++;
        return true;
      }
    }
    await this.send(SERVICE_READY, null, p.smtpd_banner);
    return true;
  }

  private flagIllegalPipelining(): void {
    if (this.illegalPipelining) return;
    const b = this.reader.peekBuffered(100);
    this.log.info(`improper command pipelining after ${this.where} from ${this.peer.namaddr}: ${escapeBytes(b)}`);
    this.illegalPipelining = true;
  }

  private async loop(): Promise<void> {
    const p = this.params;
    for (;;) {
      if (this.hangup) return;
      if (this.errorCount >= p.smtpd_hard_error_limit) {
        this.reason = 'too many errors';
        await this.send(SERVICE_NOT_AVAILABLE, '4.7.0', `${p.myhostname} Error: too many errors`, 'protocol');
        return;
      }
      const line = await this.readLine();
      this.chatIn(hideAuthPayload(this.transcriptText(line.bytes)));
      if (line.truncated) {
        this.log.warning(`${this.peer.namaddr}: request longer than ${p.line_length_limit}: ${printable(line.bytes.subarray(0, 30).toString('latin1'))}...`);
      }
      if (line.bareLf) {
        const action = this.bareLfAction();
        if (action === 'reject') {
          this.log.info(Policy.whatsup(this.subject(), 'reject', 'bare <LF> received'));
          this.noteError('protocol');
          await this.reply(bareLfReply(p.smtpd_forbid_bare_newline_reject_code, p.myhostname));
          return;
        }
        if (action === 'note') this.notedBareLf = true;
      }
      let bytes = line.bytes;
      const nul = bytes.indexOf(0);
      if (nul >= 0) bytes = bytes.subarray(0, nul);
      let text: string;
      if (p.smtputf8_enable) {
        try {
          text = utf8Decoder.decode(bytes);
        } catch {
          await this.send(SYNTAX_ERROR, '5.5.2', 'Error: bad UTF-8 syntax', 'protocol');
          this.errorCount++;
          continue;
        }
      } else {
        text = bytes.toString('latin1');
      }
      const argv = tokenize(text);
      if (argv.length === 0) {
        await this.send(SYNTAX_ERROR, '5.5.2', 'Error: bad syntax', 'protocol');
        this.errorCount++;
        continue;
      }
      const verb = argv[0]!.text;
      if (this.svc.isNoopCommand(verb)) {
        await this.send(OK, '2.0.0', 'Ok');
        if (this.junkCmds++ > p.smtpd_junk_command_limit) this.errorCount++;
        continue;
      }
      const cmd: Command | undefined = findCommand(verb);
      this.stats.attempt(cmd?.name ?? null);
      if (cmd === undefined) {
        this.where = WHERE_UNKNOWN;
        if (isHeader(verb) || this.svc.isForbiddenCommand(verb)) {
          this.log.warning(`non-SMTP command from ${this.peer.namaddr}: ${escapeBytes(Buffer.from(text, p.smtputf8_enable ? 'utf8' : 'latin1')).slice(0, 100)}`);
          await this.send(SERVICE_CLOSING, '2.7.0', 'Error: I can break rules, too. Goodbye.');
          return;
        }
      }
      if (this.accessDenied !== null && cmd?.name !== 'QUIT') {
        if (/^[45]21$/.test(String(this.accessDenied.code))) {
          await this.reply(this.accessDenied);
          continue;
        }
        await this.send(BAD_SEQUENCE, '5.7.0', `Error: access denied for ${this.peer.namaddr}`);
        this.errorCount++;
        continue;
      }
      if (cmd === undefined) {
        await this.send(SYNTAX_ERROR, '5.5.2', 'Error: command not recognized', 'protocol');
        this.errorCount++;
        continue;
      }
      if (this.svc.tlsLevel === 'encrypt' && this.tls === null && !cmd.flags.preTls) {
        await this.send(AUTH_REQUIRED, '5.7.0', 'Must issue a STARTTLS command first');
        this.errorCount++;
        continue;
      }
      this.where = cmd.name;
      if ((this.protocol !== 'ESMTP' || cmd.flags.last) && !this.illegalPipelining && this.reader.hasBuffered()) {
        this.flagIllegalPipelining();
        if (p.smtpd_forbid_unauth_pipelining) {
          await this.send(TRANSACTION_FAILED, '5.5.0', 'Error: SMTP protocol synchronization');
          return;
        }
      }
      let ok: boolean;
      try {
        ok = await cmd.run(this, argv, text);
      } catch (e) {
        if (!(e instanceof ReplyError)) throw e;
        await this.reply(e.reply);
        ok = false;
      }
      if (ok) this.stats.success(cmd.name);
      else this.errorCount++;
      if (cmd.flags.junk && this.junkCmds++ > p.smtpd_junk_command_limit) this.errorCount++;
      if (cmd.name === 'QUIT') return;
    }
  }

  /** A line as the transcript keeps it: up to a NUL (Postfix keeps C strings), UTF-8 when enabled. */
  private transcriptText(bytes: Buffer): string {
    const nul = bytes.indexOf(0);
    const b = nul >= 0 ? bytes.subarray(0, nul) : bytes;
    return this.params.smtputf8_enable ? utf8Lenient.decode(b) : b.toString('latin1');
  }

  /**
   * What a bare-LF line does to this session (Postfix 3.9 smtpd.c bare_lf_mask): `reject` (reply
   * and log "bare <LF> received"), `note` (the disconnect line ends in ` notes=bare_lf`), or
   * nothing (normalize, yes, no, and every client in smtpd_forbid_bare_newline_exclusions, for which
   * Postfix turns detection off).
   */
  private bareLfAction(): 'reject' | 'note' | null {
    const action = bareNewlineAction(this.params.smtpd_forbid_bare_newline as BareNewlinePolicy);
    if (action === 'accept' || this.svc.bareLfExclusions.matches(this.peer.addr)) return null;
    return action;
  }

  /** Content with a bare LF: true when it must be rejected; notes it under `note`. */
  private contentBareLf(dr: DataReader): boolean {
    if (!dr.bareLf) return false;
    const action = this.bareLfAction();
    if (action === 'note') this.notedBareLf = true;
    return action === 'reject';
  }

  private bareLfPolicy(): BareNewlinePolicy {
    const v = this.params.smtpd_forbid_bare_newline as string;
    if (v === 'reject' && this.svc.bareLfExclusions.matches(this.peer.addr)) return 'normalize';
    return v as BareNewlinePolicy;
  }

  /**
   * End of session: anvil, the "X after CMD" line, the postmaster notice, TLS, transaction, the
   * connection, and `disconnect from` once the notice is queued.
   */
  private async finish(): Promise<void> {
    if (this.anvilKey !== null) this.svc.anvil.disconnect(this.anvilKey, this.params.anvil_rate_time_unit * 1000);
    if (this.reason !== null && this.where) {
      if (this.where === WHERE_DATA) {
        this.log.info(`${this.reason} after DATA (${this.actSize} bytes) from ${this.peer.namaddr}`);
      } else if (this.where === WHERE_BDAT) {
        this.log.info(`${this.reason} after BDAT (${this.actSize} bytes) from ${this.peer.namaddr}`);
      } else if (this.where !== WHERE_EOM || this.reason !== 'lost connection') {
        this.log.info(`${this.reason} after ${this.where} from ${this.peer.namaddr}`);
      }
    }
    this.chatReset(0);
    this.mailReset();
    this.flush();
    this.closed = true;
    this.reader.close();
    const s = this.socket;
    if (!s.destroyed) {
      s.end();
      const t = setTimeout(() => s.destroy(), 5000);
      t.unref();
      s.once('close', () => clearTimeout(t));
    }
    if (s !== this.raw && !this.raw.destroyed) this.raw.once('close', () => {});
    await Promise.all(this.notices);
    // Postfix 3.9 smtpd_format_cmd_stats(): aggregated notes after the counts.
    this.log.info(`disconnect from ${this.peer.namaddr}${this.stats.format()}${this.notedBareLf ? ' notes=bare_lf' : ''}`);
  }

  /** Drop the connection now (drain deadline). */
  destroy(): void {
    this.socket.destroy();
    this.raw.destroy();
  }

  // --- resets (Postfix helo_reset, mail_reset, rcpt_reset) ---

  private heloReset(): void {
    this.helo = null;
  }

  /** access(5) actions of the current transaction (Postfix saved_flags/saved_redirect/saved_bcc/prepend). */
  private readonly txnActions = {
    held: false,
    discarding: false,
    redirectTo: null as string | null,
    bccs: [] as string[],
    prepends: [] as string[],
  };
  private readonly accessActions: AccessActions = ((t) => ({
    get held() {
      return t.held;
    },
    get discarding() {
      return t.discarding;
    },
    hold: () => {
      t.held = true;
    },
    discard: () => {
      t.discarding = true;
    },
    redirect: (a: string) => {
      t.redirectTo = a;
    },
    bcc: (a: string) => {
      t.bccs.push(a);
    },
    prepend: (h: string) => {
      t.prepends.push(h);
    },
  }))(this.txnActions);

  private mailReset(): void {
    this.txnActions.held = false;
    this.txnActions.discarding = false;
    this.txnActions.redirectTo = null;
    this.txnActions.bccs = [];
    this.txnActions.prepends = [];
    if (this.txn !== null) {
      const t = this.txn;
      this.txn = null;
      t.abort().catch((e: unknown) => this.log.warning(`${this.queueId ?? 'NOQUEUE'}: cannot remove incomplete queue file: ${(e as Error).message}`));
    }
    this.queueId = null;
    this.sender = null;
    this.instance = '';
    this.mailParams = null;
    this.smtputf8 = false;
    this.actSize = 0;
    this.bdat = 'none';
    this.bdatReader = null;
    this.receivedLines = [];
  }

  private rcptReset(): void {
    this.recipient = null;
    this.recipients = [];
    this.rcptCount = 0;
    this.rcptOvershoot = 0;
  }

  // --- EHLO / HELO ---

  private keyword(k: EhloKeyword): boolean {
    return !this.discard.has(k);
  }

  /**
   * What HELO and EHLO share: the argument (501 without one), smtpd_helo_restrictions at once when
   * smtpd_delay_reject = no, then a reset of the session's HELO/MAIL/RCPT state. null: replied.
   */
  private async requireHeloName(verb: 'HELO' | 'EHLO', argv: readonly Token[]): Promise<string | null> {
    if (argv.length < 2) {
      await this.send(PARAM_SYNTAX_ERROR, null, `Syntax: ${verb} hostname`, 'protocol');
      return null;
    }
    const name = argv
      .slice(1)
      .map((t) => t.text)
      .join(' ');
    if (!this.params.smtpd_delay_reject) {
      const saved = this.helo;
      this.helo = name;
      const err = await this.svc.policy.checkHelo(this.subject());
      this.helo = saved;
      if (err !== null) {
        await this.reply(err);
        return null;
      }
    }
    this.heloReset();
    this.chatReset(this.params.smtpd_history_flush_threshold);
    this.mailReset();
    this.rcptReset();
    return sanitizeHelo(name);
  }

  async cmdHelo(argv: readonly Token[]): Promise<boolean> {
    const helo = await this.requireHeloName('HELO', argv);
    if (helo === null) return false;
    this.helo = helo;
    if (this.protocol !== 'ESMTP' && this.protocol !== 'SMTP') this.protocol = 'SMTP';
    await this.send(OK, null, this.params.myhostname);
    return true;
  }

  async cmdEhlo(argv: readonly Token[]): Promise<boolean> {
    const helo = await this.requireHeloName('EHLO', argv);
    if (helo === null) return false;
    this.helo = helo;
    this.protocol = 'ESMTP';
    const p = this.params;
    if (this.discard.size > 0 && !this.discard.has('silent-discard' as EhloKeyword)) {
      // Postfix str_ehlo_mask() order.
      const order = ['8BITMIME', 'AUTH', 'ETRN', 'PIPELINING', 'SIZE', 'VERP', 'VRFY', 'XCLIENT', 'XFORWARD', 'STARTTLS', 'ENHANCEDSTATUSCODES', 'DSN', 'SMTPUTF8', 'CHUNKING'];
      const names = order.filter((k) => this.discard.has(k.toLowerCase() as EhloKeyword));
      if (names.length > 0) this.log.info(`discarding EHLO keywords: ${names.join(' ')}`);
    }
    const lines = [p.myhostname];
    // RFC 1869 4.3; keyword order as Postfix smtpd.c ehlo_cmd().
    if (this.keyword('pipelining')) lines.push('PIPELINING');
    if (this.keyword('size')) lines.push(p.message_size_limit > 0 ? `SIZE ${p.message_size_limit}` : 'SIZE');
    if (this.keyword('vrfy') && !p.disable_vrfy_command) lines.push('VRFY');
    if (this.keyword('etrn')) lines.push('ETRN');
    if (this.keyword('starttls') && this.svc.tlsLevel !== 'none' && !this.svc.tlsWrapper && this.tls === null && this.svc.tls !== null) lines.push('STARTTLS');
    const mechs = this.saslMechanisms();
    if (this.keyword('auth') && mechs.length > 0 && !this.svc.saslException(this.peer.name, this.peer.addr)) {
      // RFC 4954 3; AUTH= for clients that know only the pre-RFC 2554 draft (broken_sasl_auth_clients).
      lines.push(`AUTH ${mechs.join(' ')}`);
      if (p.broken_sasl_auth_clients) lines.push(`AUTH=${mechs.join(' ')}`);
    }
    if (this.keyword('enhancedstatuscodes')) lines.push('ENHANCEDSTATUSCODES');
    if (this.keyword('8bitmime')) lines.push('8BITMIME');
    if (this.keyword('dsn')) lines.push('DSN');
    if (p.smtputf8_enable && this.keyword('smtputf8')) lines.push('SMTPUTF8');
    if (this.keyword('chunking')) lines.push('CHUNKING');
    await this.reply(reply(OK, null, ...lines));
    return true;
  }

  // --- STARTTLS (RFC 3207) ---

  async cmdStarttls(argv: readonly Token[]): Promise<boolean> {
    if (argv.length !== 1) {
      await this.send(PARAM_SYNTAX_ERROR, '5.5.4', 'Syntax: STARTTLS', 'protocol');
      return false;
    }
    if (this.tls !== null) {
      await this.send(TRANSACTION_FAILED, '5.5.1', 'Error: TLS already active', 'protocol');
      return false;
    }
    if (this.svc.tlsLevel === 'none' || this.svc.tlsWrapper || !this.keyword('starttls')) {
      await this.send(NOT_IMPLEMENTED, '5.5.1', 'Error: command not implemented', 'protocol');
      return false;
    }
    if (this.svc.tls === null) {
      // RFC 3207 4.
      await this.send(TEMPORARY_FAILURE, '4.7.0', 'TLS not available due to local problem', 'software');
      return false;
    }
    // smtpd_client_new_tls_session_rate_limit: refuse before the handshake burns CPU (smtpd.c).
    const rateKey = this.newTlsRateKey();
    if (rateKey !== null && this.svc.anvil.rate(rateKey, this.params.anvil_rate_time_unit * 1000) > this.params.smtpd_client_new_tls_session_rate_limit) {
      this.log.warning(`Refusing STARTTLS request from ${this.peer.namaddr} for service ${this.svc.serviceName}`);
      await this.send(TEMPORARY_FAILURE, '4.7.0', `Error: too many new TLS sessions from ${this.peer.namaddr}`, 'policy');
      return false;
    }
    await this.send(SERVICE_READY, '2.0.0', 'Ready to start TLS');
    // The reply goes out on the plain socket; whatever the client pipelined after STARTTLS is
    // thrown away (CVE-2011-0411), and the handshake starts in this same tick so no byte of it
    // can be read as plaintext.
    this.flush();
    this.heloReset();
    this.mailReset();
    this.rcptReset();
    // RFC 3207 4.2: forget what the client said before TLS, its login included (Postfix re-activates SASL).
    this.saslReset();
    return this.startTls();
  }

  /** The anvil key counting this client's new TLS sessions; null when unlimited or excepted. */
  private newTlsRateKey(): string | null {
    if (this.params.smtpd_client_new_tls_session_rate_limit <= 0 || this.svc.limitExceptions.matches(this.peer.addr)) return null;
    return `newtls:${this.svc.anvilKey(this.peer.addr)}`;
  }

  /** The TLS handshake (STARTTLS or wrappermode). Returns false when the session must end. */
  private async startTls(): Promise<boolean> {
    const tlsEngine = this.svc.tls!;
    const rateKey = this.newTlsRateKey();
    const unitMs = this.params.anvil_rate_time_unit * 1000;
    const limit = this.params.smtpd_client_new_tls_session_rate_limit;
    if (this.svc.tlsWrapper && this.tls === null && rateKey !== null && this.svc.anvil.rate(rateKey, unitMs) > limit) {
      this.log.warning(`Refusing TLS service request from ${this.peer.namaddr} for service ${this.svc.serviceName}`);
      return false;
    }
    const plain = this.reader.detach() as net.Socket;
    if (this.svc.tlsWrapper && this.tls === null) {
      // Wrappermode: what the client sent so far is its TLS handshake; give it back to the socket.
      const early = this.reader.peekBuffered(Number.MAX_SAFE_INTEGER);
      this.reader.discardBuffered();
      if (early.length > 0) plain.unshift(early);
    } else {
      // STARTTLS: plaintext pipelined after the command is dropped (CVE-2011-0411).
      this.reader.discardBuffered();
    }
    let session: TlsSession;
    try {
      session = await tlsEngine.upgrade(plain, { clientName: this.peer.name, clientAddr: this.peer.addr, log: this.log });
    } catch {
      // The TLS library logged why; the conversation is in an unknown state.
      throw new SessionEnd('lost connection');
    }
    this.tls = session;
    this.socket = session.socket;
    this.socket.on('error', () => {});
    this.reader.attach(session.socket);
    // A new (not resumed) session counts; over the limit the session ends (smtpd.c smtpd_start_tls()).
    if (rateKey !== null && !session.reused) {
      const rate = this.svc.anvil.event(rateKey, unitMs);
      if (rate > limit) {
        this.log.warning(`New TLS session rate limit exceeded: ${rate} from ${this.peer.namaddr} for service ${this.svc.serviceName}`);
        await this.send(SERVICE_NOT_AVAILABLE, '4.7.0', `${this.params.myhostname} Error: too many new TLS sessions from ${this.peer.namaddr}`, 'policy');
        return false;
      }
    }
    if (tlsEngine.requireCcert && !session.trusted) {
      const why = session.peerCert ? 'Client certificate not trusted' : 'No client certificate presented';
      this.log.info(`NOQUEUE: abort: TLS from ${this.peer.namaddr}: ${why}`);
      if (!this.svc.tlsWrapper) this.chatIn(this.transcriptText((await this.readLine()).bytes));
      await this.send(SERVICE_NOT_AVAILABLE, '4.7.1', `${this.params.myhostname} Error: ${why}`, 'policy');
      return true;
    }
    return true;
  }

  // --- AUTH, XCLIENT, XFORWARD ---

  /**
   * Mechanisms offered now: none unless smtpd_sasl_auth_enable; none before TLS with
   * smtpd_tls_auth_only (Postfix does not activate SASL then); else per security options.
   */
  private saslMechanisms(): readonly string[] {
    if (!this.params.smtpd_sasl_auth_enable || this.svc.userDb === null) return [];
    if (this.tls === null && this.svc.authOnly) return [];
    return this.svc.saslMechanisms(this.tls !== null);
  }

  private saslReset(): void {
    this.saslUsername = null;
    this.saslMethod = null;
    this.sasl = null;
  }

  /** `334 text` exactly (the space stays when the challenge is empty, as Postfix sends it). */
  private sendChallenge(text: string): void {
    this.out.push(`${AUTH_CONTINUE} ${text}\r\n`);
    this.chatOut(`${AUTH_CONTINUE} ${text}`);
  }

  /** AUTH (RFC 4954 4), as Postfix smtpd_sasl_auth_cmd() with the dovecot driver. */
  async cmdAuth(argv: readonly Token[]): Promise<boolean> {
    const p = this.params;
    if (!(await this.rateLimit('auth'))) return false;
    if (p.smtpd_helo_required && this.helo === null) {
      await this.send(BAD_SEQUENCE, '5.5.1', 'Error: send HELO/EHLO first', 'policy');
      return false;
    }
    const mechs = this.saslMechanisms();
    if (mechs.length === 0 || !this.keyword('auth')) {
      await this.send(BAD_SEQUENCE, '5.5.1', 'Error: authentication not enabled', 'protocol');
      return false;
    }
    if (this.sender !== null) {
      await this.send(BAD_SEQUENCE, '5.5.1', 'Error: MAIL transaction in progress', 'protocol');
      return false;
    }
    if (this.saslUsername !== null) {
      await this.send(BAD_SEQUENCE, '5.5.1', 'Error: already authenticated', 'protocol');
      return false;
    }
    if (argv.length < 2 || argv.length > 3) {
      await this.send(PARAM_SYNTAX_ERROR, '5.5.4', 'Syntax: AUTH mechanism', 'protocol');
      return false;
    }
    const db = this.svc.userDb!;
    this.sasl ??= new SaslServer(
      () => this.saslMechanisms(),
      async (user, password) => {
        const r = await db.verifyAsync(user, password);
        return { ok: r === 'ok', user: user.toLowerCase() };
      },
      () => this.svc.authFailureDelay(),
    );
    const sasl = this.sasl;
    const method = printable(argv[1]!.text);
    let step = await sasl.start(argv[1]!.text, argv.length === 3 ? argv[2]!.text : null);
    while (step.status === 'more') {
      this.sendChallenge(step.challenge);
      this.reader.setLineLimit(p.smtpd_sasl_response_limit);
      let line: Awaited<ReturnType<Session['readLine']>>;
      try {
        line = await this.readLine();
      } finally {
        this.reader.setLineLimit(p.line_length_limit);
      }
      const text = line.bytes.toString('latin1');
      // The client's answer to a challenge is a credential: kept as `[hidden]` (only `*` is shown).
      this.chatIn(text === '*' ? text : HIDDEN);
      if (line.truncated) {
        this.log.warning(`${this.peer.namaddr}: request longer than ${p.smtpd_sasl_response_limit}: ${printable(line.bytes.subarray(0, 30).toString('latin1'))}...`);
        await this.send(SYNTAX_ERROR, '5.5.6', 'SASL response limit exceeded');
        return false;
      }
      if (text === '*') {
        // RFC 4954 4: the client cancels.
        this.log.warning(`${this.peer.namaddr}: SASL ${method} authentication aborted`);
        await this.send(PARAM_SYNTAX_ERROR, '5.7.0', 'Authentication aborted');
        return false;
      }
      step = await sasl.next(text);
    }
    if (step.status === 'fail') {
      const reason = step.reason ?? '(reason unavailable)';
      this.log.warning(`${this.peer.namaddr}: SASL ${method.slice(0, 100)} authentication failed: ${reason}, sasl_username=${sasl.username === null ? '(unavailable)' : printable(sasl.username).slice(0, 100)}`);
      // RFC 4954 6.
      await this.send(AUTH_INVALID, '5.7.8', `Error: authentication failed: ${reason}`);
      return false;
    }
    // RFC 4954 6.
    await this.send(AUTH_SUCCEEDED, '2.7.0', 'Authentication successful');
    this.saslUsername = printable(step.username);
    this.saslMethod = method;
    return true;
  }

  async cmdNotAuthorized(): Promise<boolean> {
    await this.send(MAILBOX_UNAVAILABLE, '5.7.0', 'Error: insufficient authorization', 'policy');
    return false;
  }

  // --- MAIL ---

  async cmdMail(argv: readonly Token[], line: string): Promise<boolean> {
    const p = this.params;
    if (p.smtpd_helo_required && this.helo === null) {
      await this.send(BAD_SEQUENCE, '5.5.1', 'Error: send HELO/EHLO first', 'policy');
      return false;
    }
    if (this.sender !== null) {
      await this.send(BAD_SEQUENCE, '5.5.1', 'Error: nested MAIL command', 'protocol');
      return false;
    }
    if (this.bdat !== 'none') {
      await this.send(BAD_SEQUENCE, '5.5.1', 'Error: MAIL after BDAT', 'protocol');
      return false;
    }
    if (argv.length < 3 || argv[1]!.text.toLowerCase() !== 'from:') {
      await this.send(PARAM_SYNTAX_ERROR, '5.5.4', 'Syntax: MAIL FROM:<address>', 'protocol');
      return false;
    }
    if (!(await this.rateLimit('mail'))) return false;
    const arg = line.replace(/^\s*\S+/, '');
    let parsed: ReturnType<typeof parseMailFrom>;
    try {
      parsed = parseMailFrom(arg, { smtputf8_enable: p.smtputf8_enable && this.keyword('smtputf8') });
    } catch (e) {
      if (e instanceof ReplyError && e.reply.enhanced === '5.1.7' && !argv[2]!.error) {
        this.log.warning(`Illegal address syntax from ${this.peer.namaddr} in MAIL command: ${printable(argv[2]!.text)}`);
      }
      if (e instanceof ReplyError) this.noteError('protocol');
      throw e;
    }
    let params: MailParams;
    try {
      params = parseMailParams(parsed.params, {
        smtputf8_enable: p.smtputf8_enable && this.keyword('smtputf8'),
        chunking: this.keyword('chunking'),
        binarymime: false,
        dsn: this.keyword('dsn'),
      });
    } catch (e) {
      // A SIZE= past what a file can hold is a policy error in Postfix; other bad parameters are protocol errors.
      if (e instanceof ReplyError) this.noteError(e.reply.code === EXCEEDED_STORAGE ? 'policy' : 'protocol');
      throw e;
    }
    const sender = parsed.path.address;
    if (p.message_size_limit > 0 && params.size !== null && params.size > p.message_size_limit) {
      this.log.info(Policy.whatsup(this.subject({ sender }), 'reject', '552 5.3.4 Message size exceeds fixed limit'));
      await this.send(EXCEEDED_STORAGE, '5.3.4', 'Message size exceeds fixed limit', 'policy');
      return false;
    }
    this.smtputf8 = params.smtputf8;
    if (!p.smtpd_delay_reject) {
      const err = await this.svc.policy.checkMail(this.subject({ sender }));
      if (err !== null) {
        this.smtputf8 = false;
        await this.reply(err);
        return false;
      }
    }
    try {
      await this.svc.cleanup.checkSpace(this.log);
    } catch (e) {
      this.smtputf8 = false;
      if (e instanceof ReplyError) {
        this.log.info(Policy.whatsup(this.subject(), 'reject', `${e.reply.code} ${e.reply.enhanced} ${e.reply.lines.join(' ')}`));
        this.noteError('resource');
      }
      throw e;
    }
    this.arrival = new Date();
    this.sender = sender;
    const ms = this.arrival.getTime();
    // pid.sec.usec.seqno as Postfix; the sequence is per process, not per session, because one
    // Postern process serves many sessions at once and each instance must stay unique.
    this.instance = `${process.pid.toString(16)}.${Math.floor(ms / 1000).toString(16)}.${((ms % 1000) * 1000).toString(16)}.${(instanceSeq++).toString(16)}`;
    this.mailParams = params;
    if (!p.smtpd_delay_open_until_valid_rcpt) {
      if (!(await this.openQueueFile())) {
        this.mailReset();
        return false;
      }
    }
    await this.send(OK, '2.1.0', 'Ok');
    return true;
  }

  /** smtpd_client_message_rate_limit / smtpd_client_recipient_rate_limit (anvil). */
  private async rateLimit(kind: 'mail' | 'rcpt' | 'auth'): Promise<boolean> {
    const p = this.params;
    const limit = kind === 'mail' ? p.smtpd_client_message_rate_limit : kind === 'rcpt' ? p.smtpd_client_recipient_rate_limit : p.smtpd_client_auth_rate_limit;
    if (limit <= 0 || this.anvilKey === null) return true;
    const rate = this.svc.anvil.event(`${kind}:${this.anvilKey}`, p.anvil_rate_time_unit * 1000);
    if (rate <= limit) return true;
    if (kind === 'auth') {
      this.log.warning(`AUTH command rate limit exceeded: ${rate} from ${this.peer.namaddr} for service ${this.svc.serviceName}`);
      await this.send(MAILBOX_UNAVAILABLE_TEMP, '4.7.1', `Error: too many AUTH commands from ${this.peer.addr}`, 'policy');
    } else if (kind === 'mail') {
      await this.send(MAILBOX_UNAVAILABLE_TEMP, '4.7.1', `Error: too much mail from ${this.peer.addr}`, 'policy');
      this.log.warning(`Message delivery request rate limit exceeded: ${rate} from ${this.peer.namaddr} for service ${this.svc.serviceName}`);
    } else {
      this.log.warning(`Recipient address rate limit exceeded: ${rate} from ${this.peer.namaddr} for service ${this.svc.serviceName}`);
      await this.send(MAILBOX_UNAVAILABLE_TEMP, '4.7.1', `Error: too many recipients from ${this.peer.addr}`, 'policy');
    }
    return false;
  }

  /** Open the queue file and log `QID: client=...` (Postfix mail_open_stream()). */
  private async openQueueFile(): Promise<boolean> {
    try {
      this.txn = await this.svc.cleanup.open();
    } catch (e) {
      if (e instanceof ReplyError) {
        this.noteError(cleanupErrorClass(e));
        await this.reply(e.reply);
        return false;
      }
      throw e;
    }
    this.queueId = this.txn.queueId;
    // Postfix mail_open_stream(): the SASL login and the MAIL FROM AUTH= address (RFC 4954 5).
    let sasl = '';
    if (this.saslMethod !== null) sasl += `, sasl_method=${this.saslMethod}`;
    if (this.saslUsername !== null) sasl += `, sasl_username=${this.saslUsername}`;
    if (this.mailParams?.auth) sasl += `, sasl_sender=${this.mailParams.auth}`;
    this.log.info(`${this.queueId}: client=${this.peer.namaddr}${sasl}`);
    return true;
  }

  // --- RCPT ---

  async cmdRcpt(argv: readonly Token[], line: string): Promise<boolean> {
    const p = this.params;
    if (this.sender === null) {
      await this.send(BAD_SEQUENCE, '5.5.1', 'Error: need MAIL command', 'protocol');
      return false;
    }
    if (this.bdat !== 'none') {
      await this.send(BAD_SEQUENCE, '5.5.1', 'Error: RCPT after BDAT', 'protocol');
      return false;
    }
    if (argv.length < 3 || argv[1]!.text.toLowerCase() !== 'to:') {
      await this.send(PARAM_SYNTAX_ERROR, '5.5.4', 'Syntax: RCPT TO:<address>', 'protocol');
      return false;
    }
    if (!(await this.rateLimit('rcpt'))) return false;
    const arg = line.replace(/^\s*\S+/, '');
    let parsed: ReturnType<typeof parseRcptTo>;
    try {
      parsed = parseRcptTo(arg, { smtputf8: this.smtputf8 });
    } catch (e) {
      if (e instanceof ReplyError && e.reply.enhanced === '5.1.3' && !argv[2]!.error) {
        this.log.warning(`Illegal address syntax from ${this.peer.namaddr} in RCPT command: ${printable(argv[2]!.text)}`);
      }
      if (e instanceof ReplyError) this.noteError('protocol');
      throw e;
    }
    let rparams: ReturnType<typeof parseRcptParams>;
    try {
      rparams = parseRcptParams(parsed.params, { dsn: this.keyword('dsn') });
    } catch (e) {
      if (e instanceof ReplyError) this.noteError('protocol');
      throw e;
    }
    if (p.smtpd_recipient_limit > 0 && this.rcptCount >= p.smtpd_recipient_limit) {
      await this.send(INSUFFICIENT_STORAGE, '4.5.3', 'Error: too many recipients');
      // Postfix rcpt_cmd(): the first smtpd_recipient_overshoot_limit of these are not errors.
      if (this.rcptOvershoot++ < p.smtpd_recipient_overshoot_limit) return true;
      this.noteError('policy');
      return false;
    }
    const address = parsed.path.address;
    const err = await this.svc.policy.checkRcpt(this.subject({ recipient: address }));
    if (err !== null) {
      await this.reply(err);
      return false;
    }
    if (this.txn === null && !(await this.openQueueFile())) return false;
    this.rcptCount++;
    if (this.recipient === null) this.recipient = address;
    // RFC 3461 5.2.1: ORCPT as received, else the address as the client wrote it.
    const orcpt = rparams.orcpt !== null ? `${rparams.orcpt.type};${rparams.orcpt.address}` : `rfc822;${argv[2]!.text.replace(/^<(.*)>$/, '$1')}`;
    this.recipients.push({ address, notify: rparams.notify, orcpt });
    await this.send(OK, '2.1.5', 'Ok');
    return true;
  }

  // --- DATA (RFC 5321 4.1.1.4) ---

  async cmdData(argv: readonly Token[]): Promise<boolean> {
    if (this.bdat !== 'none') {
      await this.send(BAD_SEQUENCE, '5.5.1', 'Error: DATA after BDAT', 'protocol');
      return false;
    }
    if (this.rcptCount === 0) {
      if (this.sender === null) await this.send(BAD_SEQUENCE, '5.5.1', 'Error: need RCPT command', 'protocol');
      else await this.send(TRANSACTION_FAILED, '5.5.1', 'Error: no valid recipients');
      return false;
    }
    if (argv.length !== 1) {
      await this.send(PARAM_SYNTAX_ERROR, '5.5.4', 'Syntax: DATA', 'protocol');
      return false;
    }
    const err = await this.svc.policy.checkData(this.subject({ recipient: this.rcptCount > 1 ? null : this.recipient }));
    if (err !== null) {
      await this.reply(err);
      return false;
    }
    this.prepareReceived();
    await this.send(START_MAIL_INPUT, null, 'End data with <CR><LF>.<CR><LF>');
    this.where = WHERE_DATA;
    const dr = new DataReader({ bareNewline: this.bareLfPolicy() });
    let error: 'size' | 'write' | null = null;
    for (;;) {
      const chunk = await this.readChunk();
      const r = dr.push(chunk);
      if (r.content.length > 0 && error === null) {
        const limit = this.params.message_size_limit;
        if (limit > 0 && this.actSize + r.content.length > limit) {
          error = 'size';
          this.log.warning(`${this.queueId ?? 'NOQUEUE'}: queue file size limit exceeded`);
        } else {
          this.actSize += r.content.length;
          error = (await this.write(r.content)) ? null : 'write';
        }
      } else if (error !== null) {
        this.actSize += r.content.length;
      }
      if (r.done) {
        this.reader.unshift(r.rest);
        break;
      }
    }
    this.where = WHERE_EOM;
    const bareLf = this.contentBareLf(dr);
    return this.finishMessage(error, bareLf, false);
  }

  /** Write content to the transaction (waiting while the disk lags); false without one. */
  private async write(b: Buffer): Promise<boolean> {
    if (this.txn === null) return false;
    if (!this.txn.write(b)) await this.txn.drain();
    return true;
  }

  /** The Received: header for this message (built before the content; Postfix prepends it). */
  private prepareReceived(): void {
    const p = this.params;
    const tlsLines: string[] = [];
    if (this.tls !== null && p.smtpd_tls_received_header) {
      tlsLines.push(...this.svc.receivedTlsLines(this.tls));
    }
    this.receivedLines = receivedHeader({
      helo: this.helo,
      clientName: this.peer.name,
      rfcAddr: this.peer.rfcAddr,
      tlsLines,
      myhostname: p.myhostname,
      mailName: p.mail_name,
      withProtocol: this.withProtocol(),
      authenticatedSender: p.smtpd_sasl_authenticated_header ? this.saslUsername : null,
      queueId: this.queueId ?? 'NOQUEUE',
      recipient: this.rcptCount === 1 ? this.recipient : null,
      date: this.arrival,
    });
  }

  /** RFC 3848 protocol name for Received: (ESMTPS, UTF8SMTPS, ...). */
  private withProtocol(): string {
    const base = this.smtputf8 ? 'UTF8SMTP' : this.protocol;
    const s = this.tls !== null && this.protocol === 'ESMTP' ? 'S' : '';
    const a = this.saslUsername !== null && this.protocol === 'ESMTP' ? 'A' : '';
    return base + s + a;
  }

  /** Commit or report (Postfix common_post_message_handling()). */
  private async finishMessage(error: 'size' | 'write' | null, bareLf: boolean, isBdat: boolean): Promise<boolean> {
    const p = this.params;
    let ok = false;
    if (error === null && bareLf) {
      this.log.info(Policy.whatsup(this.subject(), 'reject', 'bare <LF> received'));
      this.noteError('protocol');
      await this.reply(bareLfReply(p.smtpd_forbid_bare_newline_reject_code, p.myhostname));
    } else if (error === 'size') {
      await this.send(EXCEEDED_STORAGE, '5.3.4', 'Error: message file too big', 'bounce');
    } else if (error === 'write' || this.txn === null) {
      await this.send(LOCAL_ERROR, '4.3.0', 'Error: queue file write error', 'resource');
    } else {
      const txn = this.txn;
      if (this.svc.policy.eod.length > 0) {
        const err = await this.svc.policy.checkEod(this.subject({ recipient: this.rcptCount > 1 ? null : this.recipient }));
        if (err !== null) {
          // The transaction ends here as after any end-of-data reply (RFC 5321 4.1.1.4): the queue
          // file is removed. Postfix 3.7 keeps the sender, so its next MAIL gets "nested MAIL
          // command" (a documented postern_only conversation).
          await this.reply(err);
          this.chatReset(p.smtpd_history_flush_threshold);
          this.mailReset();
          this.rcptReset();
          return false;
        }
      }
      const a = this.txnActions;
      const input: CleanupInput = {
        sender: this.sender ?? '',
        recipients: this.actionRecipients(),
        ret: this.mailParams?.ret ?? null,
        envid: this.mailParams?.envid ?? null,
        smtputf8: this.smtputf8,
        body: this.mailParams?.body ?? null,
        client: this.clientFacts(),
        receivedHeader: this.receivedLines.join('\r\n'),
        // Postfix cleanup_header_done_callback(): missing headers are added in a header rewriting
        // context, which a remote client has too once remote_header_rewrite_domain is set
        // (cleanup_envelope.c), and always with always_add_missing_headers.
        addMissingHeaders: this.svc.addMissingHeaders(this.peer.addr, this.saslUsername !== null) || p.remote_header_rewrite_domain !== '',
        hold: a.held,
        discard: a.discarding,
        prependHeaders: a.prepends,
      };
      try {
        const r = await txn.commit(input);
        this.txn = null;
        ok = true;
        this.errorCount = 0;
        this.transcript.forgive();
        this.junkCmds = 0;
        if (isBdat) await this.send(OK, '2.0.0', `Ok: ${this.actSize} bytes queued as ${r.queueId}`);
        else await this.send(OK, '2.0.0', `Ok: queued as ${r.queueId}`);
      } catch (e) {
        this.txn = null;
        if (!(e instanceof ReplyError)) throw e;
        this.noteError(cleanupErrorClass(e));
        await this.reply(e.reply);
      }
    }
    this.chatReset(p.smtpd_history_flush_threshold);
    this.mailReset();
    this.rcptReset();
    return ok;
  }

  /**
   * The envelope recipients after access(5) REDIRECT (every recipient becomes the target, its
   * ORCPT kept; Postfix cleanup_out_recipient()) and BCC (one more, NOTIFY=NEVER).
   */
  private actionRecipients(): EnvelopeRecipient[] {
    const a = this.txnActions;
    let out: EnvelopeRecipient[] = this.recipients;
    if (a.redirectTo !== null) {
      const first = out[0];
      out = [{ address: a.redirectTo, notify: first?.notify ?? null, orcpt: first?.orcpt ?? (first ? `rfc822;${first.address}` : null) }];
    }
    if (a.bccs.length > 0) {
      out = [...out];
      for (const b of a.bccs) if (!out.some((r) => r.address.toLowerCase() === b.toLowerCase())) out.push({ address: b, notify: 'NEVER', orcpt: null });
    }
    return out;
  }

  private clientFacts(): ClientFacts {
    const t = this.tls;
    return {
      name: this.peer.name,
      addr: this.peer.addr,
      port: this.peer.port,
      helo: this.helo,
      protocol: this.withProtocol(),
      tls: t === null ? null : { protocol: t.protocol, cipher: t.cipher, bits: t.bits, algBits: t.algBits },
      saslUsername: this.saslUsername,
      localAddr: this.raw.localAddress ?? '',
    };
  }

  // --- BDAT (RFC 3030) ---

  /** Read and drop a chunk, reply, and stay in (or leave) the BDAT error state (Postfix skip_bdat()). */
  private async skipBdat(size: number, last: boolean, r: Reply): Promise<boolean> {
    let left = size;
    while (left > 0) left -= (await this.readChunk(Math.min(left, 65536))).length;
    await this.reply(r);
    if (last) {
      this.mailReset();
      this.rcptReset();
    } else {
      this.bdat = 'error';
    }
    return false;
  }

  async cmdBdat(argv: readonly Token[], line: string): Promise<boolean> {
    const p = this.params;
    if (!this.keyword('chunking')) {
      await this.send(DOES_NOT_ACCEPT_MAIL, '5.5.1', 'Error: command not implemented', 'protocol');
      return false;
    }
    const last = argv.length === 3;
    if (argv.length < 2 || argv.length > 3 || !/^\d+$/.test(argv[1]!.text) || argv[1]!.text.length > 18 || (last && argv[2]!.text.toUpperCase() !== 'LAST')) {
      this.log.warning(`${this.queueId ?? 'NOQUEUE'}: malformed BDAT command syntax from ${this.peer.namaddr}: ${printable(line).slice(0, 100)}`);
      await this.send(DOES_NOT_ACCEPT_MAIL, '5.5.4', 'Syntax: BDAT count [LAST]', 'protocol');
      return false;
    }
    const size = Number(argv[1]!.text);
    if (size === 0 && !last) {
      this.log.warning(`${this.queueId ?? 'NOQUEUE'}: null BDAT request from ${this.peer.namaddr}`);
      return this.skipBdat(size, last, reply(USER_NOT_LOCAL, '5.7.1', 'Null BDAT request'));
    }
    if (this.bdat === 'error') return this.skipBdat(size, last, reply(USER_NOT_LOCAL, '5.0.0', `Discarded ${size} bytes after earlier error`));
    if (this.bdat === 'none') {
      if (this.rcptCount === 0) {
        if (this.sender === null) this.noteError('protocol');
        return this.skipBdat(size, last, this.sender === null ? reply(BAD_SEQUENCE, '5.5.1', 'Error: need RCPT command') : reply(TRANSACTION_FAILED, '5.5.1', 'Error: no valid recipients'));
      }
      const err = await this.svc.policy.checkData(this.subject({ recipient: this.rcptCount > 1 ? null : this.recipient }));
      if (err !== null) return this.skipBdat(size, last, err);
    }
    if (p.message_size_limit > 0 && this.actSize > p.message_size_limit - size) {
      this.log.warning(`${this.queueId ?? 'NOQUEUE'}: BDAT request from ${this.peer.namaddr} exceeds message size limit`);
      this.noteError('policy');
      return this.skipBdat(size, last, reply(EXCEEDED_STORAGE, '5.3.4', 'Chunk exceeds message size limit'));
    }
    if (this.bdat === 'none') {
      this.prepareReceived();
      this.bdatReader = new DataReader({ bareNewline: this.bareLfPolicy(), mode: 'bdat' });
    }
    const dr = this.bdatReader!;
    this.bdat = 'ok';
    this.where = WHERE_BDAT;
    let error: 'size' | 'write' | null = null;
    const take = async (content: Buffer): Promise<void> => {
      if (error !== null || content.length === 0) return;
      if (p.message_size_limit > 0 && this.actSize + content.length > p.message_size_limit) {
        error = 'size';
        this.log.warning(`${this.queueId ?? 'NOQUEUE'}: queue file size limit exceeded`);
        return;
      }
      this.actSize += content.length;
      if (!(await this.write(content))) error = 'write';
    };
    let left = size;
    while (left > 0) {
      const chunk = await this.readChunk(Math.min(left, 65536));
      left -= chunk.length;
      await take(dr.push(chunk).content);
    }
    const bareLf = this.contentBareLf(dr);
    if (last) {
      // A message that does not end in a line end gets one (Postfix stores whole lines).
      await take(dr.end());
      this.where = WHERE_EOM;
      return this.finishMessage(error, bareLf, true);
    }
    if (error !== null || bareLf) {
      await this.finishMessage(error, bareLf, true);
      this.bdat = 'error';
      return false;
    }
    await this.send(OK, '2.0.0', `Ok: ${size} bytes`);
    return true;
  }

  // --- RSET, NOOP, VRFY, ETRN, QUIT, HELP ---

  async cmdRset(argv: readonly Token[]): Promise<boolean> {
    if (argv.length !== 1) {
      await this.send(PARAM_SYNTAX_ERROR, '5.5.4', 'Syntax: RSET', 'protocol');
      return false;
    }
    this.chatReset(this.params.smtpd_history_flush_threshold);
    this.mailReset();
    this.rcptReset();
    await this.send(OK, '2.0.0', 'Ok');
    return true;
  }

  async cmdNoop(): Promise<boolean> {
    await this.send(OK, '2.0.0', 'Ok');
    return true;
  }

  async cmdVrfy(argv: readonly Token[]): Promise<boolean> {
    const p = this.params;
    if (p.disable_vrfy_command) {
      await this.send(NOT_IMPLEMENTED, '5.5.1', 'VRFY command is disabled', 'policy');
      return false;
    }
    let args = argv.slice(1).map((t) => t.text);
    let smtputf8 = false;
    if (p.smtputf8_enable && this.keyword('smtputf8') && args.length > 0 && args[args.length - 1]!.toUpperCase() === 'SMTPUTF8') {
      args = args.slice(0, -1);
      smtputf8 = true;
    }
    if (args.length < 1) {
      await this.send(PARAM_SYNTAX_ERROR, '5.5.4', `Syntax: VRFY address${p.smtputf8_enable ? ' [SMTPUTF8]' : ''}`, 'protocol');
      return false;
    }
    if (!(await this.rateLimit('rcpt'))) return false;
    const text = args.join(' ');
    let address: string;
    try {
      address = parseRcptTo(`TO:${text.startsWith('<') ? text : `<${text}>`}`, { smtputf8 }).path.address;
    } catch {
      await this.send(PARAM_SYNTAX_ERROR, '5.1.3', 'Bad recipient address syntax', 'protocol');
      return false;
    }
    const saved = this.smtputf8;
    if (smtputf8) this.smtputf8 = true;
    const err = await this.svc.policy.checkRcpt(this.subject({ recipient: address }));
    this.smtputf8 = saved;
    if (err !== null) {
      await this.reply(err);
      return false;
    }
    await this.send(CANNOT_VRFY, '2.0.0', argv[1]!.text);
    return true;
  }

  async cmdEtrn(argv: readonly Token[]): Promise<boolean> {
    if (this.params.smtpd_helo_required && this.helo === null) {
      await this.send(BAD_SEQUENCE, null, 'Error: send HELO/EHLO first', 'policy');
      return false;
    }
    if (this.sender !== null) {
      await this.send(BAD_SEQUENCE, null, 'Error: MAIL transaction in progress', 'protocol');
      return false;
    }
    if (argv.length !== 2) {
      await this.send(SYNTAX_ERROR, null, 'Syntax: ETRN domain', 'protocol');
      return false;
    }
    let site = argv[1]!.text;
    if (site.startsWith('@') || site.startsWith('#')) site = site.slice(1);
    // RFC 1985 5; as an extension an address literal in [] (Postfix).
    const literal = /^\[(?:IPv6:)?[0-9A-Fa-f:.]+\]$/.test(site);
    if (!literal && !/^[A-Za-z0-9_.-]+$/.test(site)) {
      await this.send(PARAM_SYNTAX_ERROR, null, 'Error: invalid parameter syntax', 'protocol');
      return false;
    }
    const err = await this.svc.policy.checkEtrn(this.subject(), site);
    if (err !== null) {
      await this.reply(err);
      return false;
    }
    if (!this.svc.etrnAllowed(site)) {
      this.log.warning(`reject: ETRN ${site.slice(0, 100)}... from ${this.peer.namaddr}`);
      await this.send(ETRN_REFUSED, null, `<${site}>: service unavailable`);
      return false;
    }
    try {
      await this.svc.etrn(site);
    } catch {
      this.log.warning('unable to talk to fast flush service');
      await this.send(ETRN_UNABLE, null, 'Unable to queue messages');
      return false;
    }
    await this.send(OK, null, 'Queuing started');
    return true;
  }

  async cmdQuit(): Promise<boolean> {
    await this.send(SERVICE_CLOSING, '2.0.0', 'Bye');
    // Make sure "250 queued" and "221" are out before anything else happens.
    this.flush();
    return true;
  }

  async cmdHelp(): Promise<boolean> {
    await this.send(HELP_MESSAGE, '2.0.0', helpText());
    return true;
  }
}


/**
 * `sendmail -bs`: an SMTP conversation on standard input/output (Postfix runs `smtpd -S`, which
 * hands each message to postdrop). Each accepted message becomes one maildrop file
 * (./maildrop.ts); the reply `250 2.0.0 Ok: queued as NAME` gives its maildrop name, and pickup
 * later gives it a queue id, as in Postfix.
 *
 * A minimal session from src/proto/smtp pieces: HELO, EHLO, MAIL (SIZE, BODY=7BIT/8BITMIME,
 * RET, ENVID, SMTPUTF8), RCPT (NOTIFY, ORCPT), DATA, RSET, NOOP, VRFY, ETRN, QUIT. No TLS, no
 * AUTH, no BDAT, no restrictions: the submitting user is local and is recorded by the file's owner.
 * Replies are Postfix 3.7's (observed with `sendmail -bs` against Postfix 3.7.11), except that
 * EHLO does not offer CHUNKING, which this session does not implement.
 *
 * No full name: Postfix's sendmail runs `smtpd -S` without its -F option or the user's GECOS
 * name, so a message without From: gets the bare sender address there, as here.
 *
 * Data in: untrusted bytes from stdin, through the bounded LineReader and the DataReader
 * (RFC 5321 4.1.1.4 end of data; dot-unstuffing). Out: replies on stdout, maildrop files.
 * RFCs: 5321, 1869/1870 (SIZE), 6152 (8BITMIME), 3461 (DSN), 6531 (SMTPUTF8), 2034.
 */
import type { Duplex, Readable } from 'node:stream';
import { mailDate, quote822Local } from '../cleanup/headers.js';
import type { Params } from '../config/types.js';
import { PosternError } from '../errors.js';
import { LineReader } from '../io/line-reader.js';
import { parseMailFrom, parseRcptTo } from '../proto/smtp/address.js';
import { DataReader } from '../proto/smtp/data-reader.js';
import { parseMailParams, parseRcptParams } from '../proto/smtp/esmtp-params.js';
import { formatReply, type Reply, ReplyError, reply } from '../proto/smtp/reply.js';
import type { EnvelopeRecipient } from '../queue/envelope.js';
import { type MaildropEnvelope, MaildropWriter } from './maildrop.js';

export interface StdioSmtpOptions {
  readonly input: Readable;
  readonly output: NodeJS.WritableStream;
  readonly params: Params;
  /** queue_directory/maildrop */
  readonly maildropDir: string;
}

export interface StdioSmtpResult {
  /** Maildrop names of the messages accepted, in order. */
  readonly queued: readonly string[];
}

interface Txn {
  sender: string;
  ret: 'FULL' | 'HDRS' | null;
  envid: string | null;
  body: '7BIT' | '8BITMIME' | null;
  smtputf8: boolean;
  recipients: EnvelopeRecipient[];
}

const OK = reply(250, '2.0.0', 'Ok');

/** Run the conversation until QUIT or end of input. */
export async function runStdioSmtp(o: StdioSmtpOptions): Promise<StdioSmtpResult> {
  const p = o.params;
  const myhostname = p.myhostname;
  const queued: string[] = [];
  const timeoutMs = Math.max(1, p.smtpd_timeout) * 1000;
  // LineReader only listens for data/end/close and pauses/resumes: a Readable is enough.
  const reader = new LineReader(o.input as unknown as Duplex, { lineLimit: p.line_length_limit });
  const send = (r: Reply): void => {
    o.output.write(formatReply(r));
  };
  let helo: string | null = null;
  let esmtp = false;
  let txn: Txn | null = null;

  send(reply(220, null, p.smtpd_banner));
  try {
    for (;;) {
      const got = await reader.readLine(timeoutMs);
      if (got.kind === 'eof') break;
      if (got.kind === 'timeout') {
        send(reply(421, '4.4.2', `${myhostname} Error: timeout exceeded`));
        break;
      }
      if (got.truncated) {
        send(reply(500, '5.5.2', 'Error: line too long'));
        continue;
      }
      const line = got.bytes.toString('utf8');
      const sp = line.search(/[ \t]/);
      const verb = (sp < 0 ? line : line.slice(0, sp)).toUpperCase();
      const arg = sp < 0 ? '' : line.slice(sp + 1).trim();
      try {
        switch (verb) {
          case 'HELO':
          case 'EHLO': {
            if (arg === '') {
              send(reply(501, '5.5.4', `Syntax: ${verb} hostname`));
              break;
            }
            helo = arg;
            esmtp = verb === 'EHLO';
            txn = null;
            if (verb === 'HELO') send(reply(250, null, myhostname));
            else {
              const lines = [myhostname, 'PIPELINING'];
              lines.push(p.message_size_limit > 0 ? `SIZE ${p.message_size_limit}` : 'SIZE');
              if (!p.disable_vrfy_command) lines.push('VRFY');
              lines.push('ETRN', 'ENHANCEDSTATUSCODES', '8BITMIME', 'DSN');
              if (p.smtputf8_enable) lines.push('SMTPUTF8');
              send(reply(250, null, ...lines));
            }
            break;
          }
          case 'MAIL': {
            if (txn !== null) throw new ReplyError(reply(503, '5.5.1', 'Error: nested MAIL command'));
            const parsed = parseMailFrom(arg, { smtputf8_enable: p.smtputf8_enable });
            const mp = parseMailParams(parsed.params, { smtputf8_enable: p.smtputf8_enable, chunking: false });
            if (mp.size !== null && p.message_size_limit > 0 && mp.size > p.message_size_limit) {
              throw new ReplyError(reply(552, '5.3.4', 'Message size exceeds fixed limit'));
            }
            txn = {
              sender: parsed.path.address,
              ret: mp.ret,
              envid: mp.envid,
              body: mp.body === 'BINARYMIME' ? null : mp.body,
              smtputf8: mp.smtputf8,
              recipients: [],
            };
            send(reply(250, '2.1.0', 'Ok'));
            break;
          }
          case 'RCPT': {
            if (txn === null) throw new ReplyError(reply(503, '5.5.1', 'Error: need MAIL command'));
            const parsed = parseRcptTo(arg, { smtputf8: txn.smtputf8 });
            if (parsed.path.address === '') throw new ReplyError(reply(501, '5.1.3', 'Bad recipient address syntax'));
            const rp = parseRcptParams(parsed.params);
            txn.recipients.push({
              address: parsed.path.address,
              notify: rp.notify === null || rp.notify === 'NEVER' ? rp.notify : [...rp.notify],
              orcpt: rp.orcpt === null ? null : `${rp.orcpt.type};${rp.orcpt.address}`,
            });
            send(reply(250, '2.1.5', 'Ok'));
            break;
          }
          case 'DATA': {
            if (arg !== '') throw new ReplyError(reply(501, '5.5.4', 'Syntax: DATA'));
            if (txn === null) throw new ReplyError(reply(503, '5.5.1', 'Error: need MAIL command'));
            if (txn.recipients.length === 0) throw new ReplyError(reply(503, '5.5.1', 'Error: need RCPT command'));
            const t = txn;
            txn = null;
            const result = await receiveData(o, reader, send, t, helo, esmtp, timeoutMs);
            if (result === 'eof') return { queued };
            if (result !== null) queued.push(result);
            break;
          }
          case 'RSET':
            txn = null;
            send(OK);
            break;
          case 'NOOP':
            send(OK);
            break;
          case 'VRFY':
            if (p.disable_vrfy_command) throw new ReplyError(reply(502, '5.5.1', 'VRFY command is disabled'));
            if (arg === '') throw new ReplyError(reply(501, '5.5.4', 'Syntax: VRFY address'));
            // RFC 5321 3.5.3: "cannot VRFY user, but will accept message".
            send(reply(252, '2.0.0', arg));
            break;
          case 'AUTH':
            send(reply(503, '5.5.1', 'Error: authentication not enabled'));
            break;
          case 'ETRN':
            send(reply(458, null, 'Unable to queue messages'));
            break;
          case 'QUIT':
            send(reply(221, '2.0.0', 'Bye'));
            return { queued };
          default:
            send(reply(500, '5.5.2', 'Error: command not recognized'));
        }
      } catch (err) {
        if (err instanceof ReplyError) send(err.reply);
        else throw err;
      }
    }
  } finally {
    reader.close();
  }
  return { queued };
}

/** DATA: 354, content into a maildrop file, then the final reply. Returns the name, null when refused, 'eof' on lost input. */
async function receiveData(
  o: StdioSmtpOptions,
  reader: LineReader,
  send: (r: Reply) => void,
  t: Txn,
  helo: string | null,
  esmtp: boolean,
  timeoutMs: number,
): Promise<string | null | 'eof'> {
  const p = o.params;
  let writer: MaildropWriter | null = null;
  let failed: Reply | null = null;
  try {
    writer = await MaildropWriter.create(o.maildropDir, { sizeLimit: p.message_size_limit });
  } catch {
    failed = reply(451, '4.3.0', 'Error: queue file write error');
  }
  send(reply(354, null, 'End data with <CR><LF>.<CR><LF>'));
  if (writer !== null) {
    // Postfix smtpd: Received: from HELO (client) by myhostname (mail_name) with PROTO id ID, then
    // `for <rcpt>; date` on the next line for one recipient, else `;` and the date alone there.
    const proto = `${t.smtputf8 ? 'UTF8' : ''}${esmtp ? 'ESMTP' : 'SMTP'}`;
    const by = `\tby ${p.myhostname} (${p.mail_name}) with ${proto} id ${writer.name}`;
    const date = mailDate(Date.now());
    const received =
      `Received: from ${helo ?? 'localhost'} (localhost [127.0.0.1])\r\n` +
      (t.recipients.length === 1 ? `${by}\r\n\tfor <${quote822Local(t.recipients[0]!.address)}>; ${date}\r\n` : `${by};\r\n\t${date}\r\n`);
    await writeOrFail(Buffer.from(received, 'utf8'));
  }
  async function writeOrFail(b: Buffer): Promise<void> {
    if (writer === null || failed !== null) return;
    try {
      await writer.write(b);
    } catch (err) {
      failed =
        err instanceof PosternError && err.code === 'too-big'
          ? reply(552, '5.3.4', 'Error: message file too big')
          : reply(451, '4.3.0', 'Error: queue file write error');
    }
  }
  const data = new DataReader({ bareNewline: 'normalize' });
  for (;;) {
    const got = await reader.readChunk(timeoutMs);
    if (got.kind !== 'chunk') {
      await writer?.abort();
      if (got.kind === 'timeout') send(reply(421, '4.4.2', `${p.myhostname} Error: timeout exceeded`));
      return 'eof';
    }
    const r = data.push(got.bytes);
    if (r.content.length > 0) await writeOrFail(r.content);
    if (r.done) {
      if (r.rest.length > 0) reader.unshift(r.rest);
      break;
    }
  }
  if (writer === null || failed !== null) {
    await writer?.abort();
    send(failed ?? reply(451, '4.3.0', 'Error: queue file write error'));
    return null;
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
    const name = await writer.commit(envelope);
    send(reply(250, '2.0.0', `Ok: queued as ${name}`));
    return name;
  } catch {
    await writer.abort();
    send(reply(451, '4.3.0', 'Error: queue file write error'));
    return null;
  }
}

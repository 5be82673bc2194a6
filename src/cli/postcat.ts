/**
 * `postern postcat [-bdehv] [-c config_dir] [-q] files...`: show a queued message, as Postfix's
 * postcat(1).
 *
 *   -q   the arguments are queue ids, looked up in maildrop, incoming, active, deferred, hold (and
 *        corrupt) in that order, as Postfix's postcat -q
 *   -e   the envelope (`*** ENVELOPE RECORDS queue/ID ***` ... `*** MESSAGE FILE END queue/ID ***`)
 *   -h   the header section, -b the body (from the first line that is not a header line, which is
 *        normally the empty line); without -b/-e/-h all three, as Postfix
 *
 * The envelope records are named as Postfix's postcat names them (message_size,
 * message_arrival_time, named_attribute: ..., sender, recipient, done_recipient for recipients the
 * state log marks done) so that the output reads the same; Postern's queue file holds fewer of
 * them. Without -q an argument is a path to a queue file or a maildrop file. Message text is shown
 * with LF line ends, including the header fields cleanup added (Received:, Message-Id:, ...).
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { loadConfig } from '../config/index.js';
import type { Params } from '../config/types.js';
import { strerror } from '../log/strerror.js';
import { MAILDROP_MAGIC, type MaildropFile, openMaildropFile } from '../pickup/maildrop.js';
import { type QueueName, queueDirPath } from '../queue/directories.js';
import type { EnvelopeRecipient } from '../queue/envelope.js';
import { QUEUE_FILE_MAGIC, type QueueFile, readMessage, readQueueFile } from '../queue/file.js';
import { isQueueId } from '../queue/id.js';
import { readStateLog } from '../queue/state-log.js';
import type { CliContext } from './context.js';
import { asctime20, getopt, toolLog } from './postqueue.js';

/** Postfix postcat -q's search order (corrupt/ last: Postern keeps bad files there). */
const SEARCH: readonly QueueName[] = ['maildrop', 'incoming', 'active', 'deferred', 'hold', 'corrupt'];

const USAGE = 'usage: postcat [-b (body text)] [-c config_dir] [-d (decimal record type)] [-e (envelope records)] [-h (header text)] [-q (access queue)] [-v] [file(s)...]';

interface Show {
  readonly env: boolean;
  readonly header: boolean;
  readonly body: boolean;
}

/** Postfix DSN_NOTIFY_* bits (global/dsn_mask.h). */
function notifyFlags(n: EnvelopeRecipient['notify']): number | null {
  if (n === null) return null;
  if (n === 'NEVER') return 1;
  let bits = 0;
  for (const k of n) bits |= k === 'SUCCESS' ? 2 : k === 'FAILURE' ? 4 : k === 'DELAY' ? 8 : 0;
  return bits;
}

/** Postfix DSN_RET_FULL 1, DSN_RET_HDRS 2. */
function retFlags(r: 'FULL' | 'HDRS' | null): number | null {
  return r === null ? null : r === 'FULL' ? 1 : 2;
}

/** asctime without the newline: `Wed Nov 25 12:40:34 2026`. */
function asctime(ms: number): string {
  return `${asctime20(Math.floor(ms / 1000))}${new Date(ms).getFullYear()}`;
}

const pad15 = (n: number): string => String(n).padStart(15, ' ');

/** Split message text into header section and body, as postcat's state machine does. */
function splitHeader(text: string): { header: string; body: string } {
  let pos = 0;
  let first = true;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    const line = text.slice(pos, nl < 0 ? text.length : nl);
    const isHeader = /^[\x21-\x39\x3b-\x7e]+:/.test(line) || (!first && /^[ \t]/.test(line));
    if (!isHeader) break;
    first = false;
    pos = nl < 0 ? text.length : nl + 1;
  }
  return { header: text.slice(0, pos), body: text.slice(pos) };
}

function withFinalNewline(s: string): string {
  return s === '' || s.endsWith('\n') ? s : `${s}\n`;
}

async function showQueueFile(out: NodeJS.WritableStream, qf: QueueFile, label: string, show: Show, queue_directory: string | null): Promise<void> {
  const env = qf.envelope;
  if (show.env) {
    out.write(`*** ENVELOPE RECORDS ${label} ***\n`);
    out.write(`message_size: ${pad15(env.size)} ${pad15(qf.contentOffset)} ${pad15(env.recipients.length)} ${pad15(0)} ${pad15(env.size)} ${pad15(0)}\n`);
    out.write(`message_arrival_time: ${asctime(env.arrivalTime)}\n`);
    if (env.envid !== null) out.write(`named_attribute: envelope_id=${env.envid}\n`);
    const ret = retFlags(env.ret);
    if (ret !== null) out.write(`named_attribute: ret_flags=${ret}\n`);
    out.write(`named_attribute: rewrite_context=${env.client === null ? 'local' : 'remote'}\n`);
    const c = env.client;
    if (c !== null) {
      out.write(`named_attribute: client_name=${c.name}\n`);
      out.write(`named_attribute: client_address=${c.addr}\n`);
      out.write(`named_attribute: client_port=${c.port}\n`);
      if (c.helo !== null) out.write(`named_attribute: helo_name=${c.helo}\n`);
      out.write(`named_attribute: protocol_name=${c.protocol}\n`);
      if (c.saslUsername !== null) out.write(`named_attribute: sasl_username=${c.saslUsername}\n`);
    }
    if (env.smtputf8) out.write('named_attribute: smtputf8=1\n');
    if (env.body !== null) out.write(`named_attribute: encoding=${env.body.toLowerCase()}\n`);
    out.write(`sender: ${env.sender}\n`);
    const records = queue_directory === null ? [] : await readStateLog(queue_directory, env.queueId, qf.sha256).catch(() => []);
    const done = new Set(records.flatMap((r) => (r.kind === 'done' ? [r.rcpt] : [])));
    env.recipients.forEach((r, i) => {
      const nf = notifyFlags(r.notify);
      if (nf !== null) out.write(`named_attribute: notify_flags=${nf}\n`);
      if (r.orcpt !== null) out.write(`named_attribute: dsn_orig_rcpt=${r.orcpt}\n`);
      if (r.original !== undefined) out.write(`original_recipient: ${r.original}\n`);
      out.write(`${done.has(i) ? 'done_recipient' : 'recipient'}: ${r.address}\n`);
    });
    out.write(`*** MESSAGE CONTENTS ${label} ***\n`);
  }
  if (show.header || show.body) {
    const text = (await readMessage(qf)).toString('utf8').replace(/\r\n/g, '\n');
    const { header, body } = splitHeader(text);
    if (show.header) out.write(header);
    if (show.body) out.write(withFinalNewline(body));
    else if (show.header && !header.endsWith('\n') && header !== '') out.write('\n');
  }
  if (show.env) {
    out.write(`*** HEADER EXTRACTED ${label} ***\n`);
    out.write(`*** MESSAGE FILE END ${label} ***\n`);
  }
}

async function showMaildrop(out: NodeJS.WritableStream, md: MaildropFile, label: string, show: Show): Promise<void> {
  const env = md.envelope;
  if (show.env) {
    out.write(`*** ENVELOPE RECORDS ${label} ***\n`);
    out.write(`message_arrival_time: ${asctime(env.time)}\n`);
    if (env.envid !== null) out.write(`named_attribute: envelope_id=${env.envid}\n`);
    const ret = retFlags(env.ret);
    if (ret !== null) out.write(`named_attribute: ret_flags=${ret}\n`);
    out.write('named_attribute: rewrite_context=local\n');
    if (env.fullName !== null) out.write(`sender_fullname: ${env.fullName}\n`);
    out.write(`sender: ${env.sender}\n`);
    for (const r of env.recipients) {
      const nf = notifyFlags(r.notify);
      if (nf !== null) out.write(`named_attribute: notify_flags=${nf}\n`);
      if (r.orcpt !== null) out.write(`named_attribute: dsn_orig_rcpt=${r.orcpt}\n`);
      out.write(`recipient: ${r.address}\n`);
    }
    out.write(`*** MESSAGE CONTENTS ${label} ***\n`);
  }
  if (show.header || show.body) {
    const parts: Buffer[] = [];
    for await (const chunk of md.content()) parts.push(chunk);
    const { header, body } = splitHeader(Buffer.concat(parts).toString('utf8').replace(/\r\n/g, '\n'));
    if (show.header) out.write(header);
    if (show.body) out.write(withFinalNewline(body));
  }
  if (show.env) {
    out.write(`*** HEADER EXTRACTED ${label} ***\n`);
    out.write(`*** MESSAGE FILE END ${label} ***\n`);
  }
}

/** What a file starts with: a queue file, a maildrop file, or neither. */
async function kindOf(file: string): Promise<'queue' | 'maildrop' | null> {
  const fh = await fsp.open(file, 'r');
  try {
    const buf = Buffer.alloc(16);
    const { bytesRead } = await fh.read(buf, 0, 16, 0);
    const head = buf.subarray(0, bytesRead);
    if (head.subarray(0, QUEUE_FILE_MAGIC.length).equals(QUEUE_FILE_MAGIC)) return 'queue';
    if (head.subarray(0, MAILDROP_MAGIC.length).equals(MAILDROP_MAGIC)) return 'maildrop';
    return null;
  } finally {
    await fh.close();
  }
}

export async function main(args: string[], ctx: CliContext): Promise<number> {
  let configDir = ctx.configDir;
  let byId = false;
  let env = false;
  let header = false;
  let body = false;
  const early = toolLog('postcat', ctx.stderr, null);
  const g = getopt(args, 'bc:defhoqrs:v');
  for (let o = g.next(); o !== null; o = g.next()) {
    switch (o.opt) {
      case 'b':
        body = true;
        break;
      case 'c':
        configDir = o.arg!;
        break;
      case 'e':
        env = true;
        break;
      case 'h':
        header = true;
        break;
      case 'q':
        byId = true;
        break;
      case 'd':
      case 'f':
      case 'o':
      case 'r':
      case 's':
      case 'v':
        break;
      default:
        ctx.stderr.write(`postcat: ${o.bad}\n`);
        early.fatal(USAGE);
        return 1;
    }
  }
  const names = g.rest();
  if (names.length === 0) {
    early.fatal(USAGE);
    return 1;
  }
  const show: Show = !env && !header && !body ? { env: true, header: true, body: true } : { env, header, body };

  let params: Params | null = null;
  if (byId) {
    try {
      params = (await loadConfig({ configDir, env: ctx.env })).params;
    } catch (err) {
      early.fatal(err instanceof Error ? err.message : String(err));
      return 1;
    }
  }
  const log = toolLog('postcat', ctx.stderr, params);
  try {
    for (const name of names) {
      if (params !== null) {
        if (!isQueueId(name)) {
          log.fatal(`bad mail queue ID: ${name}`);
          return 1;
        }
        const qdir = params.queue_directory;
        let found = false;
        let lastErr: unknown = null;
        for (const queue of SEARCH) {
          const file = path.join(queueDirPath(qdir, queue), name);
          try {
            if (queue === 'maildrop') {
              const md = await openMaildropFile(file);
              try {
                await showMaildrop(ctx.stdout, md, `${queue}/${name}`, show);
              } finally {
                await md.close();
              }
            } else {
              await showQueueFile(ctx.stdout, await readQueueFile(file, { verifyHash: false }), `${queue}/${name}`, show, qdir);
            }
            found = true;
            break;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
            lastErr = err;
            if ((err as { code?: unknown }).code === 'corrupt') {
              log.warning(`${queue}/${name}: input is not a valid queue file`);
              found = true;
              break;
            }
          }
        }
        if (!found) {
          log.fatal(`open queue file ${name}: ${lastErr === null ? 'No such file or directory' : strerror(lastErr)}`);
          return 1;
        }
        continue;
      }
      let kind: 'queue' | 'maildrop' | null;
      try {
        kind = await kindOf(name);
      } catch (err) {
        log.fatal(`open ${name}: ${strerror(err)}`);
        return 1;
      }
      try {
        if (kind === 'queue') await showQueueFile(ctx.stdout, await readQueueFile(name, { verifyHash: false }), name, show, null);
        else if (kind === 'maildrop') {
          const md = await openMaildropFile(name);
          try {
            await showMaildrop(ctx.stdout, md, name, show);
          } finally {
            await md.close();
          }
        } else log.warning(`${name}: input is not a valid queue file`);
      } catch (err) {
        if ((err as { code?: unknown }).code === 'corrupt') log.warning(`${name}: input is not a valid queue file`);
        else {
          log.fatal(`open ${name}: ${strerror(err)}`);
          return 1;
        }
      }
    }
    return 0;
  } finally {
    await log.close();
  }
}

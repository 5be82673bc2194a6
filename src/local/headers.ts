/**
 * Header work shared by the local and virtual agents: the lines they put in front of a delivered
 * message (Postfix global/mail_copy.c: `Return-Path:`, `X-Original-To:`, `Delivered-To:`), and the
 * Delivered-To: addresses already in a message (global/delivered_hdr.c), which local(8) uses to
 * break mail forwarding loops (RFC 9228 describes the field).
 */
import { quote822Local } from '../cleanup/headers.js';
import { openMessage, type QueueFile } from '../queue/file.js';

/** Postfix delivered_hdr_init() reads at most this many Delivered-To: fields. */
const DELIVERED_HDR_LIMIT = 1000;
/** Bytes of one header line kept while scanning (a Delivered-To: value longer than this is cut). */
const LINE_KEEP = 4096;

/** An address as delivered_hdr.c compares it: quote_822_local() form, case-folded (FOLD_ADDR_ALL). */
export function loopKey(address: string): string {
  return quote822Local(address).toLowerCase();
}

/**
 * The Delivered-To: values of the message's primary header section, loop-key form. Only the
 * first line of a folded field counts (as in Postfix); streams the header section only.
 */
export async function deliveredToAddresses(qf: QueueFile): Promise<Set<string>> {
  const found = new Set<string>();
  let line: Buffer[] = [];
  let kept = 0;
  const take = (l: Buffer): boolean => {
    // false = end of the header section
    let s = l.toString('utf8');
    if (s.endsWith('\r')) s = s.slice(0, -1);
    if (s === '') return false;
    const m = /^delivered-to:[ \t]*(.*)$/i.exec(s);
    if (m && found.size < DELIVERED_HDR_LIMIT) found.add(m[1]!.trimEnd().toLowerCase());
    return true;
  };
  const stream = openMessage(qf, { headersOnly: true });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let pos = 0;
      while (pos < chunk.length) {
        const nl = chunk.indexOf(0x0a, pos);
        const end = nl < 0 ? chunk.length : nl;
        if (kept < LINE_KEEP) {
          const piece = chunk.subarray(pos, Math.min(end, pos + LINE_KEEP - kept));
          line.push(piece);
          kept += piece.length;
        }
        if (nl < 0) break;
        if (!take(Buffer.concat(line))) return found;
        line = [];
        kept = 0;
        pos = nl + 1;
      }
    }
    if (kept > 0) take(Buffer.concat(line));
    return found;
  } finally {
    stream.destroy();
  }
}

export interface CopyHeaderOptions {
  /** Envelope sender ('' = null sender: `Return-Path: <>`). */
  readonly sender: string;
  /** Original recipient for X-Original-To: ('' or null = none, e.g. enable_original_recipient = no). */
  readonly origRcpt: string | null;
  /** Address for Delivered-To: (null = none). */
  readonly delivered: string | null;
}

/** The lines mail_copy() prepends, in its order (MAIL_COPY_RETURN_PATH, _ORIG_RCPT, _DELIVERED). */
export function copyHeaders(o: CopyHeaderOptions): string[] {
  const out = [`Return-Path: <${o.sender === '' ? '' : quote822Local(o.sender)}>`];
  if (o.origRcpt) out.push(`X-Original-To: ${quote822Local(o.origRcpt)}`);
  if (o.delivered !== null) out.push(`Delivered-To: ${quote822Local(o.delivered)}`);
  return out;
}

/**
 * The virtual delivery agent (Postfix virtual(8)) for recipients in virtual_mailbox_domains.
 *
 * Per recipient (the address case-folded): virtual_mailbox_maps gives the mailbox path relative
 * to virtual_mailbox_base (a trailing `/` means Maildir, else an mbox file); virtual_uid_maps and
 * virtual_gid_maps give the owner (`static:5000` or any table). Lookups follow Postfix's
 * mail_addr_find(): `user+ext@domain`, `user@domain`, then `@domain` (pattern tables see the full
 * address only). Outcomes and texts as virtual(8):
 *   - no mailbox: 5.1.1 `unknown user: "user@domain"`;
 *   - no uid/gid, or a uid below virtual_minimum_uid, or gid 0: deferred 4.3.5 `mail system
 *     configuration error`, with `warning: recipient x: bad uid N in virtual_uid_maps`;
 *   - Maildir: `delivered to maildir` / `maildir delivery failed: ...` (4.2.0 unless the error says
 *     otherwise: the base is the administrator's, so problems are retried);
 *   - mbox: `delivered to mailbox` / `delivery failed to mailbox PATH: ...`, virtual_mailbox_limit.
 * Return-Path:, X-Original-To: and Delivered-To: are added. virtual(8) has no Delivered-To: loop
 * check (only local(8) forwards mail), and neither has this agent.
 */
import * as path from 'node:path';
import { type LookupTable, openTable } from '../config/tables/index.js';
import type { Params } from '../config/types.js';
import type { Log, Logger } from '../log/index.js';
import { type MailboxChanges, mailboxChanges } from '../mailbox/changes.js';
import { MailboxError } from '../mailbox/errors.js';
import { deliverToMaildir } from '../mailbox/maildir.js';
import { appendToMbox, MboxError } from '../mailbox/mbox.js';
import type { DeliveryAgent, DeliveryRecipient, DeliveryRequest } from '../queue/delivery.js';
import { openMessage, type QueueFile } from '../queue/file.js';
import { splitAddr } from './agent.js';
import { copyHeaders } from './headers.js';
import { openRequest, since } from './request.js';
import { type LocalDeliveryStatus, makeStatus } from './status.js';

export interface VirtualAgentOptions {
  readonly params: Params;
  readonly log: Log;
  readonly configDir?: string;
  /** Logger service name; default `virtual`. */
  readonly service?: string;
  readonly changes?: MailboxChanges;
}

/** A table list as maps_create() builds it: tables in order; an unopenable one makes lookups fail. */
class Maps {
  private readonly tables: LookupTable[] = [];
  readonly error: string | null = null;

  constructor(
    readonly title: string,
    specs: readonly string[],
    configDir: string | undefined,
  ) {
    try {
      for (const s of specs) this.tables.push(openTable(s, configDir !== undefined ? { file: 'main.cf', line: 0, configDir } : undefined));
    } catch (err) {
      this.error = err instanceof Error ? err.message : String(err);
    }
  }

  /** mail_addr_find() for an address in a non-local domain: full, without extension, @domain. */
  find(address: string, delimiters: string): string | undefined {
    const at = address.lastIndexOf('@');
    const local = at < 0 ? address : address.slice(0, at);
    const domain = at < 0 ? '' : address.slice(at);
    const { user, extension } = splitAddr(local, delimiters);
    for (const t of this.tables) {
      const v = t.get(address);
      if (v !== undefined) return v;
      if (t.kind === 'pattern') continue;
      if (extension !== null) {
        const w = t.get(`${user}${domain}`);
        if (w !== undefined) return w;
      }
      if (domain !== '') {
        const d = t.get(domain);
        if (d !== undefined) return d;
      }
    }
    return undefined;
  }
}

export class VirtualAgent implements DeliveryAgent {
  private readonly params: Params;
  private readonly logger: Logger;
  private readonly mailboxes: Maps;
  private readonly uids: Maps;
  private readonly gids: Maps;
  private readonly changes: MailboxChanges;

  constructor(o: VirtualAgentOptions) {
    this.params = o.params;
    this.logger = o.log.logger(o.service ?? 'virtual');
    this.mailboxes = new Maps('virtual_mailbox_maps', o.params.virtual_mailbox_maps, o.configDir);
    this.uids = new Maps('virtual_uid_maps', o.params.virtual_uid_maps, o.configDir);
    this.gids = new Maps('virtual_gid_maps', o.params.virtual_gid_maps, o.configDir);
    this.changes = o.changes ?? mailboxChanges;
    for (const m of [this.mailboxes, this.uids, this.gids]) if (m.error !== null) this.logger.warning(`${m.title}: ${m.error}`);
  }

  async deliver(req: DeliveryRequest): Promise<readonly LocalDeliveryStatus[]> {
    const opened = await openRequest(req, req.transport);
    if ('failed' in opened) return opened.failed;
    const out: LocalDeliveryStatus[] = [];
    for (const rcpt of req.recipients) {
      const t0 = performance.now();
      let r: { dsn: string; reason: string };
      try {
        r = await this.one(req, opened.qf, rcpt);
      } catch (err) {
        // A bug, not a delivery outcome: retry later (CONVENTIONS "Errors").
        this.logger.warning(`${req.queueId}: virtual delivery to ${rcpt.address}: ${err instanceof Error ? err.message : String(err)}`);
        r = { dsn: '4.3.0', reason: 'virtual delivery error' };
      }
      out.push(makeStatus(rcpt.index, r.dsn, r.reason, req.transport, since(t0)));
    }
    return out;
  }

  private async one(req: DeliveryRequest, qf: QueueFile, rcpt: DeliveryRecipient): Promise<{ dsn: string; reason: string }> {
    const p = this.params;
    const user = rcpt.address.toLowerCase();
    const config = (warning: string): { dsn: string; reason: string } => {
      this.logger.warning(warning);
      return { dsn: '4.3.5', reason: 'mail system configuration error' };
    };
    if (!p.virtual_mailbox_base.startsWith('/')) return config(`do not specify relative pathname: virtual_mailbox_base = ${p.virtual_mailbox_base}`);
    if (this.mailboxes.error !== null) return config(`table ${this.mailboxes.title}: lookup ${user}: ${this.mailboxes.error}`);
    const mailboxRes = this.mailboxes.find(user, p.recipient_delimiter);
    if (mailboxRes === undefined) return { dsn: '5.1.1', reason: `unknown user: "${user}"` };
    const mailbox = `${p.virtual_mailbox_base}/${mailboxRes}`;

    const uidRes = this.uids.error === null ? this.uids.find(user, p.recipient_delimiter) : undefined;
    if (uidRes === undefined) return config(`recipient ${user}: not found in ${this.uids.title}`);
    const uid = atol(uidRes);
    if (uid < p.virtual_minimum_uid) return config(`recipient ${user}: bad uid ${uidRes} in ${this.uids.title}`);
    const gidRes = this.gids.error === null ? this.gids.find(user, p.recipient_delimiter) : undefined;
    if (gidRes === undefined) return config(`recipient ${user}: not found in ${this.gids.title}`);
    const gid = atol(gidRes);
    if (gid <= 0) return config(`recipient ${user}: bad gid ${gidRes} in ${this.gids.title}`);

    const prepend = copyHeaders({
      sender: req.sender,
      origRcpt: p.enable_original_recipient ? (rcpt.origAddress ?? rcpt.address) : null,
      delivered: rcpt.address,
    });
    const owner = { uid, gid };
    if (mailbox.endsWith('/')) {
      try {
        const res = await deliverToMaildir({
          maildir: path.normalize(mailbox),
          prepend,
          message: openMessage(qf),
          owner,
          defaultDsn: '4.2.0',
          changes: this.changes,
        });
        for (const w of res.warnings) this.logger.warning(w);
        return { dsn: '2.0.0', reason: 'delivered to maildir' };
      } catch (err) {
        if (!(err instanceof MailboxError)) throw err;
        if (err.errno === 'EACCES') {
          this.logger.warning(`maildir access problem for UID/GID=${uid}/${gid}: ${err.reason}`);
          this.logger.warning('perhaps you need to create the maildirs in advance');
        }
        return { dsn: err.dsn, reason: `maildir delivery failed: ${err.reason}` };
      }
    }
    try {
      await appendToMbox({
        file: mailbox,
        sender: req.sender,
        prepend,
        message: openMessage(qf),
        owner,
        defaultDsn: '4.2.0',
        requireUid: p.strict_mailbox_ownership && process.getuid?.() === 0 ? uid : null,
        sizeLimit: p.virtual_mailbox_limit,
        lock: { attempts: p.deliver_lock_attempts, delayMs: p.deliver_lock_delay * 1000, staleSeconds: p.stale_lock_time },
      });
      return { dsn: '2.0.0', reason: 'delivered to mailbox' };
    } catch (err) {
      if (!(err instanceof MailboxError)) throw err;
      if (err instanceof MboxError && err.problem === 'not-regular') {
        return config(`recipient ${rcpt.address}: destination ${mailbox} is not a regular file`);
      }
      if (err instanceof MboxError && err.problem === 'not-owner') {
        this.logger.warning('specify "strict_mailbox_ownership = no" to ignore mailbox ownership mismatch');
      }
      return { dsn: err.dsn, reason: `delivery failed to mailbox ${mailbox}: ${err.reason}` };
    }
  }
}

/** C atol(): the leading decimal integer (0 when there is none). */
function atol(s: string): number {
  const m = /^\s*([+-]?\d+)/.exec(s);
  return m ? Number.parseInt(m[1]!, 10) : 0;
}

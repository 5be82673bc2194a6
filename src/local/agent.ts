/**
 * The local delivery agent (Postfix local(8)) for recipients in mydestination.
 *
 * Per recipient, in Postfix's order (local/recipient.c deliver_switch()):
 *   1. a Delivered-To: field already naming the recipient: bounce 5.4.6 `mail forwarding loop for
 *      <addr>`;
 *   2. alias_maps, first with the full local part (`user+ext`), then without the extension;
 *      members are delivered in turn: local addresses recursively, other addresses, :include:
 *      members and members of lists with an `owner-` alias are forwarded (./forward.ts);
 *      `|command` and `/file` members only where allow_mail_to_commands / allow_mail_to_files
 *      name the expansion type (`alias`, `include`; `forward` is for .forward files), else 5.7.1
 *      `mail to command is restricted` / `mail to file is restricted`;
 *   3. a user in the passwd file: mailbox_command, else `$home/$home_mailbox` (Maildir when it
 *      ends in `/`, mbox otherwise), else `$mail_spool_directory/user` (Maildir when the spool
 *      directory ends in `/`);
 *   4. otherwise luser_relay, else `unknown user: "user"` (5.1.1); MAILER-DAEMON and postmaster
 *      without an alias are discarded with Postfix's `required alias not found` warning.
 *
 * recipient_delimiter extensions (`user+tag`) are looked up without the tag after the full form
 * fails; Delivered-To: keeps the full recipient address (frozen_delivered_to).
 *
 * ~/.forward files (forward_path) come before the mailbox (see dotforward()).
 *
 * Not done here (Postfix does them): mailbox_transport,
 * fallback_transport and *_transport_maps (hand-off to another transport needs qmgr), mailbox
 * locking other than dotlock, biff. Recipients that would need them are deferred with a warning.
 *
 * Runs as root (or the mail owner in tests); commands and files run with the rights of the alias
 * file's owner, of an :include: file's owner, or default_privs, never as root.
 */
import { constants, type Stats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Params } from '../config/types.js';
import type { Log, Logger } from '../log/index.js';
import { type MailboxChanges, mailboxChanges } from '../mailbox/changes.js';
import { ownerMay } from '../mailbox/dirs.js';
import { errText, MailboxError } from '../mailbox/errors.js';
import { deliverToMaildir } from '../mailbox/maildir.js';
import { appendToMbox, fromLine, MboxError } from '../mailbox/mbox.js';
import { ReplyError } from '../proto/smtp/reply.js';
import type { DeliveryAgent, DeliveryRecipient, DeliveryRequest } from '../queue/delivery.js';
import type { EnvelopeRecipient } from '../queue/envelope.js';
import { openMessage, type QueueFile } from '../queue/file.js';
import { AliasMapError, type AliasTable, openAliasMaps } from './aliases.js';
import { deliverToCommand } from './command.js';
import { LocalDomains } from './domains.js';
import { localExpand, localExpandChecked } from './expand.js';
import type { Resubmit } from './forward.js';
import { copyHeaders, deliveredToAddresses, loopKey } from './headers.js';
import { type PasswdEntry, type PasswdFile, passwdFile } from './passwd.js';
import { openRequest, since } from './request.js';
import { type LeafStatus, type LocalDeliveryStatus, makeStatus } from './status.js';
import { parseAddressList } from './tokens.js';

export interface LocalAgentOptions {
  readonly params: Params;
  readonly log: Log;
  /** Resubmits forwarded recipients through cleanup (see ./forward.ts). Without it they are deferred. */
  readonly resubmit?: Resubmit;
  /** passwd(5) file for user lookups; default /etc/passwd. */
  readonly passwdFile?: string;
  /** Directory relative table paths are read from. */
  readonly configDir?: string;
  /** Logger service name (the master.cf service); default `local`. */
  readonly service?: string;
  /** Change feed for new Maildir messages; default the process-wide one. */
  readonly changes?: MailboxChanges;
}

type ExpType = 'none' | 'alias' | 'include' | 'forward';

/** Whose rights |command and /file deliveries use (Postfix USER_ATTR); null = default_privs. */
interface Rights {
  readonly uid: number;
  readonly gid: number;
  readonly home: string | null;
  readonly shell: string | null;
  readonly logname: string | null;
}

/** Per-level delivery attributes (Postfix DELIVER_ATTR), copied on change. */
interface St {
  readonly level: number;
  readonly address: string;
  /** Original recipient for X-Original-To: and ORIGINAL_RECIPIENT ('' after list owner reset). */
  readonly origAddr: string;
  readonly sender: string;
  readonly delivered: string | null;
  readonly owner: string | null;
  readonly expType: ExpType;
  readonly expFrom: string | null;
  readonly local: string;
  readonly user: string;
  readonly extension: string | null;
  readonly domain: string;
  readonly unmatched: string | null;
  readonly notify: readonly string[] | 'NEVER' | null;
  readonly orcpt: string | null;
  readonly resetDsn: boolean;
  readonly rights: Rights | null;
}

interface ForwardGroup {
  readonly delivered: string;
  readonly sender: string;
  readonly resetDsn: boolean;
  readonly recipients: EnvelopeRecipient[];
}

/** Nesting bound beyond Postfix's alias level limit (100), against runaway luser_relay/:include: chains. */
const MAX_LEVEL = 300;

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

export class LocalAgent implements DeliveryAgent {
  /** @internal */ readonly params: Params;
  /** @internal */ readonly logger: Logger;
  /** @internal */ readonly aliases: readonly AliasTable[];
  /** @internal */ readonly domains: LocalDomains;
  /** @internal */ readonly passwd: PasswdFile;
  /** @internal */ readonly resubmit: Resubmit | null;
  /** @internal */ readonly changes: MailboxChanges;
  /** @internal */ readonly allowCommands: ReadonlySet<string>;
  /** @internal */ readonly allowFiles: ReadonlySet<string>;
  /** @internal */ readonly deliveredHeader: ReadonlySet<string>;

  constructor(o: LocalAgentOptions) {
    this.params = o.params;
    this.logger = o.log.logger(o.service ?? 'local');
    const warn = (t: string): void => this.logger.warning(t);
    this.aliases = openAliasMaps(o.params.alias_maps, { ...(o.configDir !== undefined ? { configDir: o.configDir } : {}), warn });
    this.domains = new LocalDomains(o.params.mydestination, o.configDir);
    for (const w of this.domains.warnings) warn(w);
    this.passwd = passwdFile(o.passwdFile ?? '/etc/passwd');
    this.resubmit = o.resubmit ?? null;
    this.changes = o.changes ?? mailboxChanges;
    const set = (l: readonly string[]): ReadonlySet<string> => new Set(l.map((s) => s.toLowerCase()));
    this.allowCommands = set(o.params.allow_mail_to_commands);
    this.allowFiles = set(o.params.allow_mail_to_files);
    this.deliveredHeader = set(o.params.prepend_delivered_header);
  }

  async deliver(req: DeliveryRequest): Promise<readonly LocalDeliveryStatus[]> {
    const relay = req.transport;
    const opened = await openRequest(req, relay);
    if ('failed' in opened) return opened.failed;
    const qf = opened.qf;
    let loop: Set<string>;
    try {
      loop = await deliveredToAddresses(qf);
    } catch (err) {
      return req.recipients.map((r) => makeStatus(r.index, '4.3.0', `error reading message: ${errText(err)}`, relay, 0));
    }
    const out: LocalDeliveryStatus[] = [];
    for (const rcpt of req.recipients) {
      out.push(await new Expansion(this, req, qf, loop, rcpt).run());
    }
    return out;
  }
}

/** The deliveries for one recipient of the request (Postfix's per-recipient dup filter scope). */
class Expansion {
  private readonly leaves: LeafStatus[] = [];
  private readonly dup = new Set<string>();
  private readonly forwards = new Map<string, ForwardGroup>();
  private readonly p: Params;
  private readonly log: Logger;

  constructor(
    private readonly a: LocalAgent,
    private readonly req: DeliveryRequest,
    private readonly qf: QueueFile,
    private readonly loop: ReadonlySet<string>,
    private readonly top: DeliveryRecipient,
  ) {
    this.p = a.params;
    this.log = a.logger;
  }

  async run(): Promise<LocalDeliveryStatus> {
    const t0 = performance.now();
    const st: St = {
      level: 0,
      address: this.top.address,
      origAddr: this.p.enable_original_recipient ? (this.top.origAddress ?? this.top.address) : '',
      sender: this.req.sender,
      delivered: null,
      owner: null,
      expType: 'none',
      expFrom: null,
      local: '',
      user: '',
      extension: null,
      domain: '',
      unmatched: null,
      notify: this.top.notify,
      orcpt: this.top.orcpt,
      resetDsn: false,
      rights: null,
    };
    try {
      await this.recipient(st);
    } catch (err) {
      // A bug, not a delivery outcome: retry later (CONVENTIONS "Errors").
      this.log.warning(`${this.req.queueId}: local delivery to ${this.top.address}: ${errText(err)}`);
      this.leaf(st, '4.3.0', 'local delivery error');
    }
    await this.finishForwards();
    return this.summary(since(t0));
  }

  // ---- outcomes -------------------------------------------------------------------------------

  private leaf(st: St, dsn: string, reason: string, action?: LeafStatus['action']): void {
    const a = action ?? (dsn.startsWith('2') ? 'delivered' : dsn.startsWith('4') ? 'deferred' : 'failed');
    this.leaves.push({ address: st.address, dsn, action: a, reason });
  }

  private summary(seconds: number): LocalDeliveryStatus {
    const relay = this.req.transport;
    const idx = this.top.index;
    const leaves = this.leaves;
    const expanded = leaves.length !== 1 || leaves[0]!.address.toLowerCase() !== this.top.address.toLowerCase();
    const withLeaves = (s: LocalDeliveryStatus): LocalDeliveryStatus => (expanded ? { ...s, expanded: [...leaves] } : s);
    const pick = leaves.find((l) => l.dsn.startsWith('4')) ?? leaves.find((l) => l.dsn.startsWith('5'));
    if (pick !== undefined) return withLeaves(makeStatus(idx, pick.dsn, pick.reason, relay, seconds));
    if (leaves.length === 0) return withLeaves(makeStatus(idx, '2.0.0', 'alias expanded', relay, seconds, 'expanded'));
    const first = leaves[0]!;
    if (!expanded) return makeStatus(idx, first.dsn, first.reason, relay, seconds, first.action);
    return withLeaves(makeStatus(idx, '2.0.0', leaves.length === 1 ? first.reason : 'alias expanded', relay, seconds, 'expanded'));
  }

  // ---- the delivery switch ----------------------------------------------------------------------

  /** local/recipient.c deliver_recipient(). */
  private async recipient(parent: St): Promise<void> {
    let st: St = { ...parent, level: parent.level + 1 };
    const dupKey = `recipient ${st.level} ${st.address.toLowerCase()}`;
    if (this.dup.has(dupKey)) return;
    this.dup.add(dupKey);
    if (st.level > MAX_LEVEL) {
      // Aliases stop at level 100 (below); this bounds luser_relay and :include: chains too.
      this.log.warning(`${this.req.queueId}: delivery nesting too deep for ${st.address}`);
      this.leaf(st, '5.4.6', `mail forwarding loop for ${st.address}`);
      return;
    }
    if (this.loop.has(loopKey(st.address))) {
      this.leaf(st, '5.4.6', `mail forwarding loop for ${st.address}`);
      return;
    }
    const folded = st.address.toLowerCase();
    const at = folded.lastIndexOf('@');
    if (at < 0) this.log.warning(`no @ in recipient address: ${folded}`);
    let local = at < 0 ? folded : folded.slice(0, at);
    const domain = at < 0 ? '' : folded.slice(at + 1);
    let { user, extension } = splitAddr(local, this.p.recipient_delimiter, this.p.owner_request_special);
    if (extension?.includes('/')) {
      this.log.warning(`${this.req.queueId}: address with illegal extension: ${local}`);
      extension = null;
      local = user;
    }
    st = { ...st, delivered: st.delivered ?? st.address, local, user, extension, domain, unmatched: extension };
    if (user === '') {
      this.leaf(st, '5.1.3', `null username in "${st.address}"`);
      return;
    }
    await this.deliverSwitch(st);
  }

  /** local/recipient.c deliver_switch(). */
  private async deliverSwitch(st0: St): Promise<void> {
    let st = st0;
    // \user: no alias or forward expansion.
    if (st.local.startsWith('\\')) {
      st = { ...st, address: st.address.slice(1), local: st.local.slice(1), user: st.user.slice(1) };
      if (!(await this.mailbox(st))) await this.unknown(st);
      return;
    }
    if (await this.alias({ ...st, unmatched: null }, st.local)) return;
    if (st.extension !== null) {
      const prop = this.p.propagate_unmatched_extensions.some((x) => x.toLowerCase() === 'alias');
      if (await this.alias({ ...st, unmatched: prop ? st.extension : null }, st.user)) return;
    }
    if (st.owner !== null && st.owner.toLowerCase() !== st.user) return this.indirect(st);
    if (st.expType === 'include') return this.indirect(st);
    if (this.p.require_home_directory) {
      let pw: PasswdEntry | null;
      try {
        pw = await this.a.passwd.getpwnam(st.user);
      } catch (err) {
        this.log.warning(`error looking up passwd info for ${st.user}: ${errText(err)}`);
        this.leaf(st, '4.0.0', 'user lookup error');
        return;
      }
      if (pw !== null) {
        try {
          await fsp.stat(pw.dir);
        } catch (err) {
          this.leaf(st, '4.3.0', `cannot access home directory ${pw.dir}: ${errText(err)}`);
          return;
        }
      }
    }
    // Delivery to a local user: ~/.forward first, then the mailbox.
    if (await this.dotforward(st)) return;
    if (!(await this.mailbox(st))) await this.unknown(st);
  }

  /**
   * local/dotforward.c deliver_dotforward(): true when a .forward file took the recipient.
   *
   * The first forward_path entry that expands without an unset name and exists is used. The file
   * must be a regular file owned by the recipient (or root) and not world writable, else Postfix's
   * warning and mailbox delivery. Its members are delivered with the recipient's rights (|command,
   * /file where allow_mail_to_commands / allow_mail_to_files name `forward`); other local users and
   * remote addresses are resubmitted (owner = the recipient). A user who lists herself (`\user` or
   * `user`) gets the copy in her mailbox: the second visit finds the file being expanded.
   */
  private async dotforward(st0: St): Promise<boolean> {
    if (this.p.forward_path.length === 0) return false;
    let pw: PasswdEntry | null;
    try {
      pw = await this.a.passwd.getpwnam(st0.user);
    } catch (err) {
      this.log.warning(`error looking up passwd info for ${st0.user}: ${errText(err)}`);
      this.leaf(st0, '4.0.0', 'user lookup error');
      return true;
    }
    if (pw === null) return false;
    let st: St = { ...st0, level: st0.level + 1, rights: toRights(pw), expType: 'forward', owner: st0.user };
    const delimiter = st.extension !== null ? (st.local[st.user.length] ?? null) : null;
    const attrs = {
      user: st.user,
      home: pw.dir,
      shell: pw.shell,
      recipient: st.address,
      extension: st.extension,
      domain: st.domain,
      local: st.local,
      recipient_delimiter: delimiter,
    };
    let found: { file: string; info: Stats } | null = null;
    for (const entry of this.p.forward_path) {
      const e = localExpandChecked(entry, attrs, this.p.forward_expansion_filter);
      if (e.undefinedUsed || e.value === '') continue;
      try {
        found = { file: e.value, info: await fsp.lstat(e.value) };
      } catch {
        continue;
      }
      const prop = this.p.propagate_unmatched_extensions.some((x) => x.toLowerCase() === 'forward');
      if (e.extensionMatched || !prop) st = { ...st, unmatched: null };
      break;
    }
    if (found === null) return false;
    const { file, info } = found;
    const key = `forward ${file}`;
    if (this.dup.has(key)) return this.dup.has(`forward-done ${file}`);
    this.dup.add(key);
    st = { ...st, expFrom: st.local };
    if (!info.isFile()) {
      this.log.warning(`file ${file} is not a regular file`);
      return false;
    }
    if (info.uid !== 0 && info.uid !== pw.uid) {
      this.log.warning(`file ${file} has bad owner uid ${info.uid}`);
      return false;
    }
    if ((info.mode & 0o002) !== 0) {
      this.log.warning(`file ${file} is world writable`);
      return false;
    }
    let text: string;
    try {
      // O_NOFOLLOW: the lstat above saw a regular file; a symlink swapped in since is refused.
      const fh = await fsp.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        text = await fh.readFile('utf8');
      } finally {
        await fh.close();
      }
    } catch (err) {
      this.log.warning(`cannot open file ${file}: ${errText(err)}`);
      return false;
    }
    // RFC 3461 5.2.7: SUCCESS is not passed on to the forwarding addresses.
    st = { ...st, notify: dropSuccess(st.notify) };
    let count = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith('#')) continue;
      count += await this.tokenString(st, line);
    }
    if (count === 0) return false;
    this.dup.add(`forward-done ${file}`);
    return true;
  }

  /** local/alias.c deliver_alias(): true when `name` is an alias (the expansion was delivered). */
  private async alias(st0: St, name: string): Promise<boolean> {
    let st: St = { ...st0, level: st0.level + 1 };
    if (st.expFrom !== null && st.expFrom === name) return false;
    if (st.level > 100) {
      this.log.warning(`alias database loop for ${name}`);
      this.leaf(st, '5.4.6', `alias database loop for ${name}`);
      return true;
    }
    for (const table of this.a.aliases) {
      let value: string | undefined;
      try {
        value = table.get(name);
      } catch (err) {
        this.log.warning(`${table.spec}: lookup of '${name}' failed${err instanceof AliasMapError ? `: ${err.message}` : ''}`);
        this.leaf(st, '4.3.0', 'alias database unavailable');
        return true;
      }
      if (value === undefined) continue;
      // Delivery rights: the alias file's owner, or default_privs when root owns it.
      let rights: Rights | null = null;
      const ownerUid = table.ownerUid;
      if (ownerUid !== null && ownerUid !== 0) {
        const pw = await this.a.passwd.getpwuid(ownerUid).catch(() => null);
        if (pw === null) {
          this.log.warning(`cannot find alias database owner for ${table.spec}`);
          this.leaf(st, '4.3.0', 'cannot find alias database owner');
          return true;
        }
        rights = toRights(pw);
      }
      st = { ...st, expType: 'alias', expFrom: name, rights };
      // Where problems go: an owner-name alias becomes the envelope sender (RFC 3461 5.2.7).
      if (this.p.owner_request_special) {
        const ownerRhs = this.lookupAny(`owner-${name}`);
        if (ownerRhs !== undefined) {
          const ownerAddr = this.canonical(this.p.expand_owner_alias ? (parseAddressList(ownerRhs)[0] ?? `owner-${name}`) : `owner-${name}`);
          st = { ...st, owner: ownerAddr, sender: ownerAddr, resetDsn: true, orcpt: null, origAddr: '' };
        }
      }
      // NOTIFY: SUCCESS is reported for the alias itself, not passed on (RFC 3461 5.2.7).
      st = { ...st, notify: dropSuccess(st.notify) };
      const count = await this.tokenString(st, value);
      if (count < 1) {
        this.log.warning(`no recipient in alias lookup result for ${name}`);
        this.leaf(st, '4.3.0', 'alias database unavailable');
      }
      return true;
    }
    return false;
  }

  /** maps_find() over alias_maps without the delivery side effects; undefined on any problem. */
  private lookupAny(name: string): string | undefined {
    for (const t of this.a.aliases) {
      try {
        const v = t.get(name);
        if (v !== undefined) return v;
      } catch {
        return undefined;
      }
    }
    return undefined;
  }

  /** local/token.c deliver_token_string(): returns how many members there were. */
  private async tokenString(st: St, text: string): Promise<number> {
    const members = parseAddressList(text);
    for (const m of members) await this.token(st, m);
    return members.length;
  }

  /** local/token.c deliver_token(). */
  private async token(st: St, member: string): Promise<void> {
    if (member.startsWith('/')) return this.file(st, member);
    if (member.startsWith('~')) {
      if (member[1] !== '/' || st.rights === null || st.rights.home === null) {
        this.log.warning(`${member[1] !== '/' ? 'bad home directory syntax' : 'unknown home directory'} for: ${member}`);
        this.leaf(st, '5.3.5', 'mail system configuration error');
        return;
      }
      return this.file(st, st.rights.home === '/' ? member.slice(1) : st.rights.home + member.slice(1));
    }
    if (member.startsWith('|')) {
      if (!this.allowed(this.a.allowCommands, st.expType)) {
        this.leaf(st, '5.7.1', 'mail to command is restricted');
        return;
      }
      return this.command(st, member.slice(1));
    }
    if (member.toLowerCase().startsWith(':include:')) return this.include(st, member.slice(':include:'.length));
    return this.resolve(st, member);
  }

  private allowed(set: ReadonlySet<string>, exp: ExpType): boolean {
    return exp !== 'none' && set.has(exp);
  }

  /** Qualify an address the way cleanup's canonicalisation would: append @$myorigin. */
  private canonical(addr: string): string {
    return addr.includes('@') ? addr : `${addr}@${this.p.myorigin}`;
  }

  /** local/resolve.c deliver_resolve_addr(): local domains recurse, others are forwarded. */
  private async resolve(st: St, member: string): Promise<void> {
    let addr = this.canonical(member);
    if (st.unmatched !== null && st.unmatched !== '') {
      const delim = st.local[st.user.length] ?? this.p.recipient_delimiter[0] ?? '+';
      const at = addr.lastIndexOf('@');
      addr = `${addr.slice(0, at)}${delim}${st.unmatched}${addr.slice(at)}`;
    }
    const domain = addr.slice(addr.lastIndexOf('@') + 1);
    const next: St = { ...st, address: addr };
    if (this.a.domains.has(domain)) return this.recipient(next);
    return this.indirect(next);
  }

  /** local/indirect.c + forward.c forward_append(): queue the address for resubmission. */
  private indirect(st: St): void {
    const key = `indirect ${st.address.toLowerCase()}`;
    if (this.dup.has(key)) return;
    this.dup.add(key);
    if (this.a.resubmit === null) {
      this.log.warning(`${this.req.queueId}: cannot forward to ${st.address}: no resubmission path configured`);
      this.leaf(st, '4.3.0', 'unable to forward message');
      return;
    }
    const delivered = st.delivered ?? st.address;
    const gkey = `${delivered}\0${st.sender}`;
    let g = this.forwards.get(gkey);
    if (!g) {
      g = { delivered, sender: st.sender, resetDsn: st.resetDsn, recipients: [] };
      this.forwards.set(gkey, g);
    }
    // forward_append(): the original recipient goes along (orig_to=, X-Original-To: of the copy).
    g.recipients.push({ address: st.address, notify: st.notify, orcpt: st.orcpt, ...(st.origAddr !== '' ? { original: st.origAddr } : {}) });
  }

  /** forward_finish(): send the forwarded copies unless something was deferred (then nothing is). */
  private async finishForwards(): Promise<void> {
    if (this.forwards.size === 0) return;
    const top = { address: this.top.address } as St;
    if (this.leaves.some((l) => l.dsn.startsWith('4'))) return;
    for (const g of this.forwards.values()) {
      try {
        const qid = await this.a.resubmit!({
          queueId: this.req.queueId,
          sender: g.sender,
          recipients: g.recipients,
          deliveredTo: this.a.deliveredHeader.has('forward') ? g.delivered : null,
          envelope: this.qf.envelope,
          resetDsn: g.resetDsn,
          message: () => openMessage(this.qf),
        });
        this.leaf(top, '2.0.0', `forwarded as ${qid}`, 'relayed');
      } catch (err) {
        if (err instanceof ReplyError && err.reply.code >= 500) {
          this.leaf(top, err.reply.enhanced ?? '5.3.0', err.reply.lines.join(' '));
        } else {
          this.log.warning(`${this.req.queueId}: forward to ${g.recipients.map((r) => r.address).join(', ')}: ${errText(err)}`);
          this.leaf(top, '4.3.0', 'unable to forward message');
        }
      }
    }
  }

  /** local/include.c deliver_include(). */
  private async include(st0: St, file: string): Promise<void> {
    const uidKey = st0.rights?.uid ?? 0;
    const key = `include ${uidKey} ${file}`;
    if (this.dup.has(key)) return;
    this.dup.add(key);
    let st: St = { ...st0, level: st0.level + 1, expFrom: st0.local };
    const config = (warning: string): void => {
      this.log.warning(warning);
      this.leaf(st, '5.3.5', 'mail system configuration error');
    };
    if (!file.startsWith('/')) return config(`:include:${file} uses a relative path`);
    let info: Awaited<ReturnType<typeof fsp.stat>>;
    try {
      info = await fsp.stat(file);
    } catch (err) {
      return config(`unable to lookup :include: file ${file}: ${errText(err)}`);
    }
    if (!info.isFile()) return config(`:include: file ${file} is not a regular file`);
    if ((info.mode & 0o002) !== 0) return config(`:include: file ${file} is world writable`);
    // Rights: an include file owned by an ordinary user runs with that user's rights.
    if (st.rights === null || st.rights.uid === 0) {
      if (info.uid !== 0) {
        const pw = await this.a.passwd.getpwuid(info.uid).catch(() => null);
        if (pw === null) {
          this.log.warning(`cannot find username for uid ${info.uid}`);
          this.log.warning(`${file}: cannot find :include: file owner username`);
          this.leaf(st, '4.3.5', 'mail system configuration error');
          return;
        }
        st = { ...st, rights: toRights(pw) };
      }
    }
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      return config(`cannot open include file ${file}: ${errText(err)}`);
    }
    st = { ...st, expType: 'include' };
    for (const line of text.split('\n')) {
      if (line.startsWith('#')) continue;
      await this.tokenString(st, line);
    }
  }

  /** local/file.c deliver_file(): append to /file/name in mbox format. */
  private async file(st: St, file: string): Promise<void> {
    if (!this.allowed(this.a.allowFiles, st.expType)) {
      this.leaf(st, '5.7.1', 'mail to file is restricted');
      return;
    }
    const key = `file ${st.rights?.uid ?? 0} ${file}`;
    if (this.dup.has(key)) return;
    this.dup.add(key);
    const rights = await this.runAs(st);
    if (rights === null) {
      this.leaf(st, '4.3.5', 'mail system configuration error');
      return;
    }
    const fail = (reason: string, dsn = '5.2.0'): void => this.leaf(st, dsn, `cannot append message to file ${file}: ${reason}`);
    if (isRoot() && !(await mayWrite(file, rights))) return fail('cannot open file: Permission denied');
    try {
      await appendToMbox({
        file,
        sender: st.sender,
        prepend: this.prepend(st, 'file'),
        message: openMessage(this.qf),
        owner: { uid: rights.uid, gid: rights.gid },
        defaultDsn: '5.2.0',
        refuseExecutable: true,
        allowNonRegular: true,
        lockMayFail: true,
        lock: this.lockOptions(),
      });
    } catch (err) {
      if (err instanceof MailboxError) return fail(err.reason, err.dsn);
      throw err;
    }
    this.leaf(st, '2.0.0', `delivered to file: ${file}`);
  }

  /** local/command.c deliver_command(). */
  private async command(st: St, cmd: string): Promise<void> {
    const rights = await this.runAs(st);
    const key = `command ${st.user}:${rights?.uid ?? 0} ${cmd}`;
    if (this.dup.has(key)) return;
    this.dup.add(key);
    if (rights === null) {
      this.leaf(st, '4.3.5', 'mail system configuration error');
      return;
    }
    const filter = new Set(this.p.command_expansion_filter);
    const censor = (v: string): string => [...v].map((c) => (filter.has(c) ? c : '_')).join('');
    const env: Record<string, string> = {};
    for (const name of this.p.export_environment) {
      const eq = name.indexOf('=');
      if (eq > 0) env[name.slice(0, eq)] = name.slice(eq + 1);
      else if (process.env[name] !== undefined) env[name] = process.env[name]!;
    }
    const set = (k: string, v: string | null | undefined): void => {
      if (v !== null && v !== undefined) env[k] = censor(v);
    };
    if (rights.home) set('HOME', rights.home);
    set('LOGNAME', st.user);
    set('USER', st.user);
    set('SENDER', st.sender);
    set('RECIPIENT', st.address);
    set('LOCAL', st.local);
    if (rights.shell) set('SHELL', rights.shell);
    if (st.domain) set('DOMAIN', st.domain);
    if (st.extension) set('EXTENSION', st.extension);
    if (st.origAddr) set('ORIGINAL_RECIPIENT', st.origAddr);
    const client = this.qf.envelope.client;
    if (client) {
      if (client.name) set('CLIENT_HOSTNAME', client.name);
      if (client.addr) set('CLIENT_ADDRESS', client.addr);
      if (client.helo) set('CLIENT_HELO', client.helo);
      if (client.protocol) set('CLIENT_PROTOCOL', client.protocol);
      if (client.saslUsername) set('SASL_USERNAME', client.saslUsername);
    }
    let cwd = '/';
    if (rights.home) {
      try {
        if ((await fsp.stat(rights.home)).isDirectory()) cwd = rights.home;
      } catch {
        cwd = '/';
      }
    }
    const root = isRoot();
    const outcome = await deliverToCommand({
      command: cmd,
      shell: this.p.local_command_shell,
      uid: root ? rights.uid : null,
      gid: root ? rights.gid : null,
      env,
      cwd,
      prepend: [fromLine(st.sender, new Date()), ...this.prepend(st, 'command')],
      message: openMessage(this.qf),
      timeLimitMs: this.p.command_time_limit * 1000,
    });
    this.leaf(st, outcome.dsn, outcome.reason);
  }

  /** The rights for |command and /file: the current ones, else default_privs; null if unusable. */
  private async runAs(st: St): Promise<Rights | null> {
    if (st.rights !== null && st.rights.uid !== 0) return st.rights;
    const pw = await this.a.passwd.getpwnam(this.p.default_privs).catch(() => null);
    if (pw === null || pw.uid === 0 || pw.gid === 0) {
      this.log.warning(`default_privs: ${pw === null ? `unknown user name: ${this.p.default_privs}` : 'privileged default user id'}`);
      return null;
    }
    return { uid: pw.uid, gid: pw.gid, home: st.rights?.home ?? null, shell: st.rights?.shell ?? null, logname: pw.name };
  }

  /** mail_copy() header lines for a delivery of type `kind` (prepend_delivered_header). */
  private prepend(st: St, kind: 'file' | 'command'): string[] {
    return copyHeaders({
      sender: st.sender,
      origRcpt: st.origAddr,
      delivered: this.a.deliveredHeader.has(kind) ? (st.delivered ?? st.address) : null,
    });
  }

  private lockOptions(): { attempts: number; delayMs: number; staleSeconds: number } {
    return { attempts: this.p.deliver_lock_attempts, delayMs: this.p.deliver_lock_delay * 1000, staleSeconds: this.p.stale_lock_time };
  }

  /** local/mailbox.c deliver_mailbox(): false when the user does not exist. */
  private async mailbox(st: St): Promise<boolean> {
    const key = `mailbox ${st.local}`;
    if (this.dup.has(key)) return true;
    this.dup.add(key);
    if (this.p.mailbox_transport !== '') {
      this.log.warning(`${this.req.queueId}: mailbox_transport = ${this.p.mailbox_transport} is not supported by Postern's local delivery`);
      this.leaf(st, '4.3.5', 'mail system configuration error');
      return true;
    }
    let pw: PasswdEntry | null;
    try {
      pw = await this.a.passwd.getpwnam(st.user);
    } catch (err) {
      this.log.warning(`error looking up passwd info for ${st.user}: ${errText(err)}`);
      this.leaf(st, '4.0.0', 'user lookup error');
      return true;
    }
    if (pw === null) return false;
    const rights = toRights(pw);
    const ust: St = { ...st, rights };
    if (this.p.mailbox_command !== '') {
      await this.command(ust, this.p.mailbox_command);
      return true;
    }
    const home = this.p.home_mailbox;
    const spool = this.p.mail_spool_directory;
    if (home !== '' && home.endsWith('/')) await this.maildir(ust, path.join(pw.dir, home));
    else if (home !== '') await this.mboxFile(ust, path.join(pw.dir, home));
    else if (spool !== '' && spool.endsWith('/')) await this.maildir(ust, path.join(spool, st.user));
    else await this.mboxFile(ust, path.join(spool, st.user));
    return true;
  }

  /** local/maildir.c deliver_maildir(). */
  private async maildir(st: St, dir: string): Promise<void> {
    const rights = st.rights!;
    try {
      const res = await deliverToMaildir({
        maildir: dir,
        prepend: copyHeaders({ sender: st.sender, origRcpt: st.origAddr, delivered: this.a.deliveredHeader.has('file') ? (st.delivered ?? st.address) : null }),
        message: openMessage(this.qf),
        owner: { uid: rights.uid, gid: rights.gid },
        defaultDsn: '5.2.0',
        changes: this.a.changes,
      });
      for (const w of res.warnings) this.log.warning(w);
    } catch (err) {
      if (!(err instanceof MailboxError)) throw err;
      if (err.errno === 'EACCES') {
        this.log.warning(`maildir access problem for UID/GID=${rights.uid}/${rights.gid}: ${err.reason}`);
        this.log.warning('perhaps you need to create the maildirs in advance');
      }
      this.leaf(st, err.dsn, `maildir delivery failed: ${err.reason}`);
      return;
    }
    this.leaf(st, '2.0.0', 'delivered to maildir');
  }

  /** local/mailbox.c deliver_mailbox_file(). */
  private async mboxFile(st: St, file: string): Promise<void> {
    const rights = st.rights!;
    try {
      await appendToMbox({
        file,
        sender: st.sender,
        prepend: copyHeaders({ sender: st.sender, origRcpt: st.origAddr, delivered: this.a.deliveredHeader.has('file') ? (st.delivered ?? st.address) : null }),
        message: openMessage(this.qf),
        owner: { uid: rights.uid, gid: rights.gid },
        defaultDsn: '5.2.0',
        requireUid: this.p.strict_mailbox_ownership && isRoot() ? rights.uid : null,
        sizeLimit: this.p.mailbox_size_limit,
        lock: this.lockOptions(),
      });
    } catch (err) {
      if (!(err instanceof MailboxError)) throw err;
      if (err instanceof MboxError && err.problem === 'not-owner') {
        this.log.warning('specify "strict_mailbox_ownership = no" to ignore mailbox ownership mismatch');
      }
      this.leaf(st, err.dsn, `cannot update mailbox ${file} for user ${st.user}. ${err.reason}`);
      return;
    }
    this.leaf(st, '2.0.0', 'delivered to mailbox');
  }

  /** local/unknown.c deliver_unknown(). */
  private async unknown(st: St): Promise<void> {
    const key = `deliver_unknown ${st.local}`;
    if (this.dup.has(key)) return;
    this.dup.add(key);
    if (this.p.fallback_transport !== '') {
      this.log.warning(`${this.req.queueId}: fallback_transport = ${this.p.fallback_transport} is not supported by Postern's local delivery`);
      this.leaf(st, '4.3.5', 'mail system configuration error');
      return;
    }
    if (this.p.luser_relay !== '') {
      const expanded = localExpand(this.p.luser_relay, {
        user: st.user,
        local: st.local,
        extension: st.extension,
        domain: st.domain,
        recipient: st.address,
        recipient_delimiter: this.p.recipient_delimiter,
        home: st.rights?.home,
        shell: st.rights?.shell,
      });
      const relayTo = parseAddressList(expanded)[0] ?? '';
      if (relayTo === '' || this.canonical(relayTo).toLowerCase() === st.address.toLowerCase()) {
        this.leaf(st, '5.1.1', `unknown user: "${st.user}"`);
        return;
      }
      return this.resolve({ ...st, unmatched: null }, relayTo);
    }
    if (st.user === 'mailer-daemon' || st.user === 'postmaster') {
      this.log.warning(`required alias not found: ${st.user}`);
      this.leaf(st, '2.0.0', 'discarded');
      return;
    }
    this.leaf(st, '5.1.1', `unknown user: "${st.user}"`);
  }
}

function toRights(pw: PasswdEntry): Rights {
  return { uid: pw.uid, gid: pw.gid, home: pw.dir, shell: pw.shell, logname: pw.name };
}

/** RFC 3461 5.2.7: SUCCESS is not passed on to alias members; SUCCESS alone becomes NEVER. */
function dropSuccess(n: readonly string[] | 'NEVER' | null): readonly string[] | 'NEVER' | null {
  if (n === null || n === 'NEVER') return n;
  const rest = n.filter((x) => x.toUpperCase() !== 'SUCCESS');
  return rest.length === 0 ? 'NEVER' : rest;
}

/**
 * Postfix split_addr(): user and extension at the first delimiter character. postmaster,
 * MAILER-DAEMON and (with `-` among the delimiters) owner-x / x-request are never split.
 */
export function splitAddr(local: string, delimiters: string, ownerRequestSpecial = true): { user: string; extension: string | null } {
  const none = { user: local, extension: null };
  if (delimiters === '') return none;
  const l = local.toLowerCase();
  if (l === 'postmaster' || l === 'mailer-daemon' || l === 'double-bounce') return none;
  if (delimiters.includes('-') && ownerRequestSpecial && (l.startsWith('owner-') || (l.length > 8 && l.endsWith('-request')))) return none;
  let i = 0;
  while (i < local.length && !delimiters.includes(local[i]!)) i++;
  if (i === 0 || i === local.length) return none;
  return { user: local.slice(0, i), extension: local.slice(i + 1) };
}

/** Would `rights` be allowed to append to (or create) `file`? The owner/group/other bits only. */
async function mayWrite(file: string, rights: Rights): Promise<boolean> {
  try {
    return ownerMay(await fsp.stat(file), rights, constants.W_OK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return false;
    try {
      return ownerMay(await fsp.stat(path.dirname(file)), rights, constants.W_OK | constants.X_OK);
    } catch {
      return false;
    }
  }
}

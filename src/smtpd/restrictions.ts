/**
 * smtpd access restrictions (Postfix smtpd_check.c, SMTPD_ACCESS_README): the lists
 * smtpd_client_restrictions, smtpd_helo_restrictions, smtpd_sender_restrictions,
 * smtpd_relay_restrictions, smtpd_recipient_restrictions, smtpd_data_restrictions,
 * smtpd_etrn_restrictions, evaluated left to right, first permit/reject wins, with
 * smtpd_delay_reject (client/helo/sender restrictions are applied at RCPT TO), restriction classes,
 * access tables (access(5) actions), warn_if_reject, defer_if_permit/defer_if_reject, and the
 * implicit reject_unlisted_recipient.
 *
 * Every reject is logged as Postfix's log_whatsup():
 *   `NOQUEUE: reject: RCPT from host[addr]: 554 5.7.1 <r>: Relay access denied; from=<s> to=<r> proto=ESMTP helo=<h>`
 * (fail2ban's postfix filter and pflogsumm parse it).
 *
 * At start, `Policy` refuses a configuration whose relay and recipient restrictions would make an
 * open relay, with Postfix's fatal text.
 */
import * as net from 'node:net';
import type { Params } from '../config/types.js';
import { type AccessOptions, accessLookup, type LookupTable, openTable } from '../config/tables/index.js';
import { expand } from '../config/expand.js';
import { buildMynetworks, type NetworkMatcher } from '../config/mynetworks.js';
import { PosternError } from '../errors.js';
import { BAD_SEQUENCE, DOMAIN_DOES_NOT_ACCEPT_MAIL, LOCAL_ERROR, MAILBOX_NAME_NOT_ALLOWED, MAILBOX_UNAVAILABLE, MAILBOX_UNAVAILABLE_TEMP } from '../proto/smtp/codes.js';
import { type Reply, reply } from '../proto/smtp/reply.js';
import type { AddressResolver } from './address-class.js';
import { expand6, type Peer, type Resolver, validHostname } from './peer.js';
import { queryPolicy } from './policy-client.js';
import type { MailErrorClass } from './transcript.js';

/** What a restriction may look at: the session's facts. */
export interface CheckSubject {
  readonly peer: Peer;
  readonly helo: string | null;
  readonly sender: string | null;
  readonly recipient: string | null;
  readonly protocol: string;
  readonly where: string;
  readonly queueId: string | null;
  readonly rcptCount: number;
  readonly tls: {
    readonly trusted: boolean;
    readonly peerCert: boolean;
    /** smtpd_tls_fingerprint_digest fingerprints `AA:BB:…` of the client certificate and its public key ('' without one). */
    readonly certFingerprint?: string;
    readonly pkeyFingerprint?: string;
    /** Client certificate subject CN, the reply name of check_ccert_access. */
    readonly peerCN?: string;
    readonly issuerCN?: string;
    /** `TLSv1.3`, the OpenSSL cipher name and its bits, for the policy protocol's encryption_* attributes. */
    readonly protocol?: string;
    readonly cipher?: string;
    readonly bits?: number;
  } | null;
  readonly saslUsername: string | null;
  /** The AUTH mechanism as the client named it (policy attribute sasl_method). */
  readonly saslMethod?: string | null;
  /** The size the client announced with MAIL FROM SIZE=, or the bytes received once DATA is in (Postfix act_size/msg_size). */
  readonly size?: number;
  /** Postfix's per-transaction `instance` (pid.sec.usec.seqno in hex, set at MAIL; '' before). */
  readonly instance?: string;
  /** The local end of the connection (policy attributes server_address, server_port). */
  readonly server?: { readonly addr: string; readonly port: number };
  readonly illegalPipelining: boolean;
  readonly smtputf8: boolean;
  /** defer_if_permit carried from earlier stages (Postfix defer_if_permit_client/helo/sender). */
  readonly deferFlags: DeferFlags;
  /** Where access(5) actions that act on the message go (absent: they are skipped). */
  readonly actions?: AccessActions;
  /** Note the class of an error reply for the postmaster transcript (Postfix state->error_mask). */
  noteError?(c: MailErrorClass): void;
  /** Log one line as this session. */
  info(text: string): void;
  warning(text: string): void;
}

/**
 * The access(5) actions Postfix delegates to cleanup, collected for the current transaction:
 * HOLD (queue to hold/), DISCARD (accept and drop), REDIRECT (all recipients become one), BCC
 * (one more recipient, NOTIFY=NEVER) and PREPEND (a header field above Received:).
 */
export interface AccessActions {
  readonly held: boolean;
  readonly discarding: boolean;
  hold(): void;
  discard(): void;
  redirect(address: string): void;
  bcc(address: string): void;
  prepend(header: string): void;
}

/** access(5) HANGUP: the session ends at once, without a reply (Postfix SMTP_ERR_QUIET). */
export class AccessHangup extends Error {
  constructor() {
    super('access table HANGUP');
  }
}

type DnsblAnswer = { readonly kind: 'none' } | { readonly kind: 'temp'; readonly why: string } | { readonly kind: 'listed'; readonly a: readonly string[]; readonly txt: readonly string[] };

/** The DNSBL query prefix of an address: reversed octets (IPv4) or reversed nibbles (IPv6). */
export function reverseForDnsbl(addr: string): string {
  if (!net.isIPv6(addr)) return addr.split('.').reverse().join('.');
  const hex = expand6(addr).replace(/:/g, '');
  return hex.split('').reverse().join('.');
}

/**
 * Postfix's DNSBL reply filter (ip_match.c): `127.0.0.2`, `127.0.0.[2..11]`, `127.0.[1;3;5].[10..20]`
 * — each octet a number, or a bracketed list of numbers and ranges.
 */
export function ipFilterMatch(filter: string, addr: string): boolean {
  const fo = filter.match(/\[[^\]]*\]|[^.[\]]+/g) ?? [];
  const ao = addr.split('.');
  if (fo.length !== 4 || ao.length !== 4) return false;
  return fo.every((f, i) => {
    const v = Number(ao[i]);
    const inner = /^\[(.*)\]$/.exec(f);
    if (inner === null) return /^\d+$/.test(f) && Number(f) === v;
    return inner[1]!.split(';').some((part) => {
      const r = /^(\d+)\.\.(\d+)$/.exec(part);
      if (r !== null) return v >= Number(r[1]) && v <= Number(r[2]);
      return /^\d+$/.test(part) && Number(part) === v;
    });
  });
}

/** `name: value`, as Postfix is_header() checks PREPEND text. */
function isHeaderText(text: string): boolean {
  const m = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/.exec(text);
  return m !== null;
}

export interface DeferFlags {
  client: Deferral | null;
  helo: Deferral | null;
  sender: Deferral | null;
}

interface Deferral {
  readonly code: number;
  readonly dsn: string;
  readonly text: string;
}

/** One restriction list parsed: names, with table specs opened once. */
type Restrictions = readonly string[];

type Status = 'dunno' | 'ok' | 'reject';

/** Long jump out of a restriction evaluation (Postfix reject_server_error/reject_dict_retry). */
class Abort extends Error {
  constructor(readonly status: Status) {
    super('restriction evaluation aborted');
  }
}

class Evaluation {
  recursion = 0;
  warnIfReject = 0;
  deferIfReject: Deferral | null = null;
  deferIfPermit: Deferral | null = null;
  reply: Reply | null = null;
  recipientMapChecked = false;
  senderMapChecked = false;
  constructor(readonly s: CheckSubject) {}
}

const NAME_CLIENT = 'Client host';
const NAME_HELO = 'Helo command';
const NAME_SENDER = 'Sender address';
const NAME_RECIPIENT = 'Recipient address';
const NAME_ETRN = 'Etrn command';
const NAME_DATA = 'Data command';
const NAME_EOD = 'End-of-data';

const CHECK_CLIENT_ACL = 'check_client_access';
const CHECK_HELO_ACL = 'check_helo_access';
const CHECK_SENDER_ACL = 'check_sender_access';
const CHECK_RECIP_ACL = 'check_recipient_access';
const CHECK_ETRN_ACL = 'check_etrn_access';
const CHECK_CCERT_ACL = 'check_ccert_access';
const NAME_CCERT = 'Client certificate';

/** Restrictions that make relay control safe (smtpd_check.c rcpt_required). */
const RELAY_REQUIRED = ['reject_unauth_destination', 'defer_unauth_destination', 'reject', 'defer', 'defer_if_permit', 'check_relay_domains'];

/** Postfix smtpd_dsn_fix(): address DSN codes are adjusted to what is being rejected. */
function dsnFix(status: string, replyClass: string): string {
  if (!/^\d\.1\.\d+$/.test(status)) return status;
  const micro = status.slice(4);
  const map: Record<string, [string, string]> = {
    '1': ['4.1.0', '4.1.1'],
    '2': ['4.1.8', '4.1.2'],
    '3': ['4.1.7', '4.1.3'],
    '4': ['4.1.0', '4.1.4'],
    '5': ['4.1.0', '4.1.5'],
    '6': ['4.1.0', '4.1.6'],
    '7': ['4.1.7', '4.1.3'],
    '8': ['4.1.8', '4.1.2'],
  };
  const [snd, rcpt] = map[micro] ?? ['4.1.0', '4.1.0'];
  if (replyClass === NAME_SENDER) return status[0] + snd.slice(1);
  if (replyClass === NAME_RECIPIENT) return status[0] + rcpt.slice(1);
  return `${status[0]}.0.0`;
}

/** Postfix dsn_split(): optional leading `X.Y.Z ` in access-table text. */
function dsnSplit(def: string, text: string): { dsn: string; text: string } {
  const m = /^([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)(.*)$/s.exec(text);
  if (m) return { dsn: m[1]!, text: m[2]! };
  return { dsn: def, text };
}

function splitList(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of value) {
    if (ch === '{') depth++;
    if (ch === '}') depth = Math.max(0, depth - 1);
    if (depth === 0 && /[\s,]/.test(ch)) {
      if (cur) out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur) out.push(cur);
  return out;
}

export interface PolicyOptions {
  readonly params: Params;
  readonly addresses: AddressResolver;
  readonly resolver: Resolver;
  /** Process-level warnings (unavailable tables, unknown restrictions at start). */
  readonly warn: (text: string) => void;
  /** The expanded value of a main.cf/master.cf setting outside the registry (restriction classes). */
  readonly setting?: (name: string) => string | undefined;
}

export class Policy {
  private readonly params: Params;
  private readonly addresses: AddressResolver;
  private readonly resolver: Resolver;
  private readonly tables = new Map<string, LookupTable | null>();
  private readonly classes = new Map<string, Restrictions>();
  private readonly mynetworks: NetworkMatcher;
  readonly client: Restrictions;
  readonly helo: Restrictions;
  readonly sender: Restrictions;
  readonly relay: Restrictions;
  readonly recipient: Restrictions;
  readonly data: Restrictions;
  /** smtpd_end_of_data_restrictions (END-OF-MESSAGE), empty when unset. */
  readonly eod: Restrictions;
  readonly etrn: Restrictions;
  private readonly accessOptions: AccessOptions;

  constructor(o: PolicyOptions) {
    this.params = o.params;
    this.addresses = o.addresses;
    this.resolver = o.resolver;
    this.mynetworks = buildMynetworks(o.params);
    this.accessOptions = {
      parentDomainMatchesSubdomains: o.params.parent_domain_matches_subdomains.map((s) => s.toLowerCase()).includes('smtpd_access_maps'),
      recipientDelimiter: o.params.recipient_delimiter,
      doubleBounceSender: o.params.double_bounce_sender,
    };
    const parse = (list: readonly string[]): Restrictions => {
      const out = list.flatMap((v) => splitList(v));
      for (let i = 0; i < out.length; i++) {
        const name = out[i]!;
        // check_policy_service names a server (inet:host:port, unix:path), not a table.
        if (name.toLowerCase() === 'check_policy_service') {
          i++;
          continue;
        }
        if (name.includes(':') && !this.tables.has(name)) this.openAccessTable(name, o.warn);
      }
      return Object.freeze(out);
    };
    this.client = parse(o.params.smtpd_client_restrictions);
    this.helo = parse(o.params.smtpd_helo_restrictions);
    this.sender = parse(o.params.smtpd_sender_restrictions);
    this.relay = parse(o.params.smtpd_relay_restrictions);
    this.recipient = parse(o.params.smtpd_recipient_restrictions);
    this.data = parse(o.params.smtpd_data_restrictions);
    this.eod = parse(o.params.smtpd_end_of_data_restrictions);
    this.etrn = parse(o.params.smtpd_etrn_restrictions);
    for (const name of o.params.smtpd_restriction_classes.flatMap((v) => splitList(v))) {
      const text = o.setting?.(name) ?? '';
      if (text.trim() === '') throw new PosternError('config', `restriction class \`${name}' needs a definition`);
      this.classes.set(name, parse([text]));
    }
    // People screw up the relay restrictions too often (smtpd_check.c): refuse an open relay.
    if (!this.hasRequired(this.recipient) && !this.hasRequired(this.relay)) {
      throw new PosternError(
        'config',
        `in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least one working instance of: ${RELAY_REQUIRED.slice(0, -1).join(', ')} or ${RELAY_REQUIRED[RELAY_REQUIRED.length - 1]}`,
      );
    }
  }

  // --- DNSBL (smtpd_check.c reject_rbl_addr/reject_rbl_domain/permit_dnswl_*) ----------------

  /** Answers per query for a minute (Postfix caches them in its process, ctable). */
  private readonly dnsblCache = new Map<string, { at: number; r: Promise<DnsblAnswer> }>();

  private dnsbl(query: string): Promise<DnsblAnswer> {
    const now = Date.now();
    const hit = this.dnsblCache.get(query);
    if (hit !== undefined && now - hit.at < 60_000) return hit.r;
    if (this.dnsblCache.size > 1000) this.dnsblCache.clear();
    const r: Promise<DnsblAnswer> = (async () => {
      if (this.resolver.dnsbl === undefined) return { kind: 'none' };
      try {
        const a = await this.resolver.dnsbl(query);
        return a === null ? { kind: 'none' } : { kind: 'listed', a: a.a, txt: a.txt };
      } catch (e) {
        return { kind: 'temp', why: (e as Error).message };
      }
    })();
    this.dnsblCache.set(query, { at: now, r });
    return r;
  }

  /** `zone[=filter]` + the reversed address or the domain: listed (and matching the filter)? */
  private async dnsxl(s: CheckSubject, zoneSpec: string, prefix: string): Promise<DnsblAnswer> {
    const eq = zoneSpec.indexOf('=');
    const zone = eq < 0 ? zoneSpec : zoneSpec.slice(0, eq);
    const filter = eq < 0 ? null : zoneSpec.slice(eq + 1);
    const query = `${prefix}.${zone}`;
    const ans = await this.dnsbl(query);
    if (ans.kind === 'temp') s.warning(`${query}: RBL lookup error: ${ans.why}`);
    if (ans.kind === 'listed' && filter !== null && !ans.a.some((a) => ipFilterMatch(filter, a))) return { kind: 'none' };
    return ans;
  }

  /** rbl_reject_reply(): rbl_reply_maps or default_rbl_reply, expanded; a bad code is 450 4.7.1. */
  private rblReply(ev: Evaluation, zoneSpec: string, txt: readonly string[], what: string, replyClass: string): Status {
    const zone = zoneSpec.split('=')[0]!;
    const tables = this.parameterTables('rbl_reply_maps', ev.s);
    const find = (k: string): string | undefined => {
      for (const t of tables) {
        const v = t.get(k);
        if (v !== undefined) return v;
      }
      return undefined;
    };
    // rbl_pagein(): TXT strings joined with " / ", at most 500 characters.
    let reason = '';
    for (const t of txt) {
      if (reason.length >= 500) break;
      reason += (reason === '' ? '' : ' / ') + t;
    }
    reason = reason.slice(0, 500);
    const attrs: Record<string, string> = {
      rbl_code: String(this.params.maps_rbl_reject_code),
      rbl_domain: zone,
      rbl_reason: reason,
      rbl_txt: reason,
      rbl_what: what,
      rbl_class: replyClass,
      client_address: ev.s.peer.addr,
      client_name: ev.s.peer.name,
    };
    // Values are data, never templates: `$` in a TXT record stays a `$`.
    const lookup = (n: string): string | undefined => (Object.hasOwn(attrs, n) ? attrs[n]!.replace(/\$/g, '$$$$') : undefined);
    let why = '';
    for (const template of [find(zoneSpec) ?? (zoneSpec !== zone ? find(zone) : undefined), this.params.default_rbl_reply]) {
      if (template === undefined) continue;
      try {
        why = expand(template, { lookup });
        break;
      } catch {
        ev.s.warning(`rbl_reject_reply: bad rbl reply template for domain ${zoneSpec}: ${template}`);
      }
    }
    const m = /^([45]\d\d) (.*)$/s.exec(why);
    if (m === null) {
      ev.s.warning(`rbl response code configuration error: ${why}`);
      return this.reject(ev, MAILBOX_UNAVAILABLE_TEMP, '4.7.1', 'Service unavailable');
    }
    const d = dsnSplit('4.7.1', m[2]!);
    return this.reject(ev, Number(m[1]), dsnFix(d.dsn, replyClass), d.text || 'Service unavailable');
  }

  private async rejectRblAddr(ev: Evaluation, zoneSpec: string, addr: string, replyClass: string): Promise<Status> {
    const ans = await this.dnsxl(ev.s, zoneSpec, reverseForDnsbl(addr));
    return ans.kind === 'listed' ? this.rblReply(ev, zoneSpec, ans.txt, addr, replyClass) : 'dunno';
  }

  /** find_dnsxl_domain(): address literals, numeric top labels and bad names are not looked up. */
  private static dnsblDomain(what: string): string | null {
    const at = what.lastIndexOf('@');
    const domain = at >= 0 ? what.slice(at + 1) : what;
    if (domain === '' || domain.startsWith('[')) return null;
    const last = domain.slice(domain.lastIndexOf('.') + 1);
    if (/^\d+$/.test(last) || !validHostname(domain)) return null;
    return domain;
  }

  private async rejectRblDomain(ev: Evaluation, zoneSpec: string, what: string, replyClass: string): Promise<Status> {
    const domain = Policy.dnsblDomain(what);
    if (domain === null) return 'dunno';
    const ans = await this.dnsxl(ev.s, zoneSpec, domain);
    // The reply names what was checked, a whole address for the sender and recipient (rbl_reject_reply(state, rbl, rbl_domain, what, ...)).
    return ans.kind === 'listed' ? this.rblReply(ev, zoneSpec, ans.txt, what, replyClass) : 'dunno';
  }

  /** permit_dnswl_client / permit_rhswl_client: OK when listed; a lookup error defers a later reject. */
  private async permitDnswl(ev: Evaluation, zoneSpec: string, prefix: string | null, what: string, replyClass: string): Promise<Status> {
    const s = ev.s;
    // Never open the relay: at RCPT only for destinations this server accepts anyway.
    if (s.where === 'RCPT' && s.recipient !== null && !this.permitAuthDestination(s.recipient)) return 'dunno';
    if (prefix === null) return 'dunno';
    const ans = await this.dnsxl(s, zoneSpec, prefix);
    if (ans.kind === 'listed') return 'ok';
    if (ans.kind === 'temp') return this.deferIf('reject', ev, MAILBOX_UNAVAILABLE_TEMP, '4.7.1', `<${what}>: ${replyClass} rejected: Service unavailable`);
    return 'dunno';
  }

  /**
   * check_policy_service (smtpd_check.c): the attributes of SMTPD_POLICY_README, the reply's
   * action judged as an access(5) result; a server that cannot be asked (after
   * smtpd_policy_service_try_limit attempts) gives smtpd_policy_service_default_action.
   */
  private async policyService(ev: Evaluation, server: string, replyName: string, replyClass: string, defAcl: string | null): Promise<Status> {
    const s = ev.s;
    const p = this.params;
    const where = s.where === 'BDAT' ? 'DATA' : s.where;
    const t = s.tls;
    const attrs: [string, string][] = [
      ['request', 'smtpd_access_policy'],
      ['protocol_state', where],
      ['protocol_name', s.protocol],
      ['client_address', s.peer.addr],
      ['client_name', s.peer.name],
      ['client_port', String(s.peer.port)],
      ['reverse_client_name', s.peer.reverseName],
      ['server_address', s.server?.addr ?? ''],
      ['server_port', String(s.server?.port ?? 0)],
      ['helo_name', s.helo ?? ''],
      ['sender', s.sender ?? ''],
      ['recipient', s.recipient ?? ''],
      ['recipient_count', where === 'DATA' || where === 'END-OF-MESSAGE' ? String(s.rcptCount) : '0'],
      ['queue_id', s.queueId ?? ''],
      ['instance', s.instance ?? ''],
      ['size', String(s.size ?? 0)],
      ['etrn_domain', where === 'ETRN' ? replyName : ''],
      ['stress', p.stress],
      ['sasl_method', s.saslUsername !== null ? (s.saslMethod ?? '') : ''],
      ['sasl_username', s.saslUsername ?? ''],
      ['sasl_sender', ''],
      // Subject and issuer only from a trusted certificate; fingerprints whenever one was sent (smtpd_check.c).
      ['ccert_subject', t?.trusted ? policyXtext(t.peerCN ?? '') : ''],
      ['ccert_issuer', t?.trusted ? policyXtext(t.issuerCN ?? '') : ''],
      ['ccert_fingerprint', t?.certFingerprint ?? ''],
      ['ccert_pubkey_fingerprint', t?.pkeyFingerprint ?? ''],
      ['encryption_protocol', t?.protocol ?? ''],
      ['encryption_cipher', t?.cipher ?? ''],
      ['encryption_keysize', String(t?.bits ?? 0)],
      ['policy_context', p.smtpd_policy_service_policy_context],
      ['compatibility_level', String(p.compatibility_level)],
      ['mail_version', '3.7.11'],
    ];
    let action: string | null = null;
    for (let attempt = 1; attempt <= p.smtpd_policy_service_try_limit && action === null; attempt++) {
      try {
        action = await queryPolicy(server, attrs, { queueDirectory: p.queue_directory, timeoutMs: p.smtpd_policy_service_timeout * 1000 });
      } catch (e) {
        s.warning(`problem talking to server ${server}: ${(e as Error).message}`);
        if (attempt < p.smtpd_policy_service_try_limit) await new Promise((r) => setTimeout(r, p.smtpd_policy_service_retry_delay * 1000));
      }
    }
    return this.tableResult(ev, server, action ?? p.smtpd_policy_service_default_action, replyName, replyClass, defAcl);
  }

  /** Table-list parameters read by restrictions (relay_clientcerts, ...), opened at first use. */
  private readonly paramTables = new Map<string, LookupTable[]>();

  private parameterTables(name: 'rbl_reply_maps' | 'relay_clientcerts' | 'smtpd_sender_login_maps', s: Pick<CheckSubject, 'warning'>): LookupTable[] {
    let list = this.paramTables.get(name);
    if (list === undefined) {
      list = [];
      for (const spec of this.params[name]) {
        try {
          list.push(openTable(spec));
        } catch (e) {
          s.warning(`${spec}: table unavailable: ${(e as Error).message}`);
        }
      }
      this.paramTables.set(name, list);
    }
    return list;
  }

  /** permit_tls_clientcerts: the public key, then the certificate fingerprint in relay_clientcerts (smtpd_check.c). */
  private relayCcertListed(s: CheckSubject): boolean {
    const tables = this.parameterTables('relay_clientcerts', s);
    for (const fp of [s.tls?.pkeyFingerprint ?? '', s.tls?.certFingerprint ?? '']) {
      if (fp === '') continue;
      if (tables.some((t) => t.get(fp) !== undefined)) return true;
    }
    return false;
  }

  /** The owners (SASL logins) of a sender address: address, then @domain (Postfix mail_addr_find()). */
  private senderOwners(sender: string, warn: (t: string) => void): string | undefined {
    const tables = this.parameterTables('smtpd_sender_login_maps', { warning: warn });
    const addr = sender.toLowerCase();
    const at = addr.lastIndexOf('@');
    const keys = at > 0 ? [addr, addr.slice(at)] : [addr];
    for (const key of keys) {
      for (const t of tables) {
        const v = t.get(key);
        if (v !== undefined) return v;
      }
    }
    return undefined;
  }

  /** reject_{authenticated,unauthenticated,known,}_sender_login_mismatch (smtpd_check.c). */
  private senderLoginMismatch(ev: Evaluation, name: string, sender: string): Status {
    const s = ev.s;
    if (this.params.smtpd_sender_login_maps.length === 0) return 'dunno';
    const owners = this.senderOwners(sender, (t) => s.warning(t));
    const authCheck = name === 'reject_sender_login_mismatch' || name === 'reject_authenticated_sender_login_mismatch' || name === 'reject_known_sender_login_mismatch';
    const unauthCheck = name !== 'reject_authenticated_sender_login_mismatch';
    if (s.saslUsername !== null) {
      if (!authCheck) return 'dunno';
      if (owners === undefined && name === 'reject_known_sender_login_mismatch') return 'dunno';
      const user = s.saslUsername.toLowerCase();
      const found = (owners ?? '').split(/[\s,]+/).some((o) => o !== '' && o.toLowerCase() === user);
      if (!found) return this.reject(ev, MAILBOX_NAME_NOT_ALLOWED, '5.7.1', `<${sender}>: Sender address rejected: not owned by user ${s.saslUsername}`);
      return 'dunno';
    }
    if (unauthCheck && owners !== undefined) return this.reject(ev, MAILBOX_NAME_NOT_ALLOWED, '5.7.1', `<${sender}>: Sender address rejected: not logged in`);
    return 'dunno';
  }

  private openAccessTable(spec: string, warn: (t: string) => void): void {
    try {
      this.tables.set(spec, openTable(spec));
    } catch (e) {
      // Postfix's words for a table it cannot open (dict_surrogate()); each lookup then fails.
      const msg = (e as Error).message;
      warn(`${spec} is unavailable. ${msg.startsWith(`${spec}: `) ? msg.slice(spec.length + 2) : msg}`);
      this.tables.set(spec, null);
    }
  }

  private hasRequired(list: Restrictions, depth = 0): boolean {
    if (depth > 100) return false;
    for (let i = 0; i < list.length; i++) {
      const r = list[i]!.toLowerCase();
      if (r === 'warn_if_reject' && i + 1 < list.length) {
        i++;
        continue;
      }
      if (r === 'permit') return false;
      if (RELAY_REQUIRED.includes(r)) return true;
      const cls = this.classes.get(list[i]!);
      if (cls !== undefined && this.hasRequired(cls, depth + 1)) return true;
    }
    return false;
  }

  // --- reply and logging ----------------------------------------------------------------------

  /** Postfix log_whatsup(). */
  static whatsup(s: CheckSubject, what: string, text: string, o: { sender?: string | null; recipient?: string | null } = {}): string {
    const sender = o.sender !== undefined ? o.sender : s.sender;
    const recipient = o.recipient !== undefined ? o.recipient : s.recipient;
    let line = `${s.queueId ?? 'NOQUEUE'}: ${what}: ${s.where} from ${s.peer.namaddr}: ${text};`;
    if (sender !== null) line += ` from=<${sender}>`;
    if (recipient !== null) line += ` to=<${recipient}>`;
    if (s.protocol) line += ` proto=${s.protocol}`;
    if (s.helo !== null) line += ` helo=<${s.helo}>`;
    return line;
  }

  /**
   * Postfix smtpd_check_reject(): the error class goes to the session's transcript even for a
   * warn_if_reject warning, and software, resource and data errors are never only warnings.
   */
  private reject(ev: Evaluation, code: number, dsn: string, text: string, errorClass: MailErrorClass = 'policy'): Status {
    const warnOnly = ev.warnIfReject > 0 && errorClass !== 'software' && errorClass !== 'resource' && errorClass !== 'data';
    ev.s.noteError?.(errorClass);
    let c = code;
    let d = dsn;
    if (c < 400 || c > 599) { // only 4yz/5yz rejects (RFC 5321 4.2.1)
      ev.s.warning(`SMTP reply code configuration error: ${c} ${d} ${text}`);
      c = MAILBOX_UNAVAILABLE_TEMP;
      d = '4.7.1';
      text = 'Service unavailable';
    }
    if (!/^[245]\.\d{1,3}\.\d{1,3}$/.test(d)) {
      ev.s.warning(`DSN detail code configuration error: ${c} ${d} ${text}`);
      c = MAILBOX_UNAVAILABLE_TEMP;
      d = '4.7.1';
      text = 'Service unavailable';
    }
    let full = `${c} ${d} ${text}`.slice(0, 510).replace(/[\x00-\x1f\x7f]/g, ' ');
    if (!warnOnly && ev.deferIfReject !== null && full[0] === '5') {
      const dr = ev.deferIfReject;
      ev.deferIfReject = null;
      return this.reject(ev, dr.code, dr.dsn, dr.text);
    }
    if (this.params.soft_bounce && full[0] === '5') full = `4${full.slice(1)}`;
    // The enhanced code's class follows the reply code.
    full = `${full.slice(0, 4)}${full[0]}${full.slice(5)}`;
    ev.s.info(Policy.whatsup(ev.s, warnOnly ? 'reject_warning' : 'reject', full));
    if (warnOnly) return 'dunno';
    const m = /^(\d{3}) (\d\.\d{1,3}\.\d{1,3}) ?(.*)$/s.exec(full)!;
    ev.reply = reply(Number(m[1]), m[2]!, m[3]!);
    return 'reject';
  }

  private serverError(ev: Evaluation): never {
    throw new Abort(this.reject(ev, LOCAL_ERROR, '4.3.5', 'Server configuration error', 'software'));
  }

  private deferIf(kind: 'permit' | 'reject', ev: Evaluation, code: number, dsn: string, text: string): Status {
    const d: Deferral = { code, dsn, text };
    if (kind === 'permit') {
      if (ev.deferIfPermit === null) ev.deferIfPermit = d;
    } else if (ev.deferIfReject === null) ev.deferIfReject = d;
    return 'dunno';
  }

  /** reject_tempfail_action / unknown_address_tempfail_action: defer, defer_if_permit, defer_if_reject. */
  private tempfail(action: string, ev: Evaluation, code: number, dsn: string, text: string): Status {
    if (action === 'defer') return this.reject(ev, code, dsn, text);
    if (action === 'defer_if_reject') return this.deferIf('reject', ev, code, dsn, text);
    return this.deferIf('permit', ev, code, dsn, text);
  }

  // --- tables ---------------------------------------------------------------------------------

  /** The opened table; null when it could not be opened (each lookup is then an error: unavailable()). */
  private table(spec: string): LookupTable | null {
    return this.tables.get(spec) ?? null;
  }

  /**
   * A lookup in a table that could not be opened (smtpd_check.c check_access() with maps->error):
   * the table "answers" 451 4.3.5 Server configuration error, judged like any access result, so the
   * reply names the address and its class as Postfix's does.
   */
  private unavailable(ev: Evaluation, spec: string, key: string, replyName: string, replyClass: string, defAcl: string | null): Promise<Status> {
    ev.s.warning(`${spec} lookup error for "${key}"`);
    return this.tableResult(ev, spec, '451 4.3.5 Server configuration error', replyName, replyClass, defAcl);
  }

  /** smtpd_check.c can_delegate_action(): not in ETRN, not before MAIL FROM. */
  private canDelegate(ev: Evaluation, table: string, action: string): boolean {
    if (ev.s.where === 'ETRN') {
      ev.s.warning(`access table ${table}: action ${action} is unavailable in smtpd_etrn_restrictions`);
      return false;
    }
    return this.notInClientHelo(ev, table, action);
  }

  /** smtpd_check.c not_in_client_helo(): with smtpd_delay_reject = no there is no transaction yet. */
  private notInClientHelo(ev: Evaluation, table: string, action: string): boolean {
    if (ev.s.sender === null) {
      ev.s.warning(`access table ${table}: with smtpd_delay_reject=no, action ${action} is always skipped in client or helo restrictions`);
      return false;
    }
    return true;
  }

  /** Postfix check_table_result(): interpret an access(5) value. */
  private async tableResult(ev: Evaluation, table: string, value: string, replyName: string, replyClass: string, defAcl: string | null): Promise<Status> {
    const m = /^(\S*)\s*(.*)$/s.exec(value)!;
    const cmd = m[1]!;
    const text = m[2]!;
    const CMD = cmd.toUpperCase();
    if (CMD === 'DUNNO') return 'dunno';
    if (CMD === 'REJECT') {
      const d = dsnSplit('5.7.1', text);
      return this.reject(ev, this.params.access_map_reject_code, dsnFix(d.dsn, replyClass), `<${replyName}>: ${replyClass} rejected: ${d.text || 'Access denied'}`);
    }
    if (CMD === 'DEFER') {
      const d = dsnSplit('4.7.1', text);
      return this.reject(ev, this.params.access_map_defer_code, dsnFix(d.dsn, replyClass), `<${replyName}>: ${replyClass} rejected: ${d.text || 'Access denied'}`);
    }
    if (CMD === 'INFO' || CMD === 'WARN') {
      ev.s.info(Policy.whatsup(ev.s, CMD.toLowerCase(), text));
      return 'dunno';
    }
    if (CMD === 'HANGUP') {
      // smtpd_check.c: shut the connection, log, no reply.
      ev.s.info(Policy.whatsup(ev.s, 'hangup', text));
      throw new AccessHangup();
    }
    if (CMD === 'FILTER') {
      // A content filter needs the smtp transport, which Postern does not have yet.
      ev.s.warning(`access table ${table}: action ${CMD} is not supported by this server; ignored`);
      return 'dunno';
    }
    const act = ev.s.actions;
    if (CMD === 'HOLD') {
      if (act === undefined || !this.canDelegate(ev, table, CMD) || act.held) return 'dunno';
      ev.s.info(Policy.whatsup(ev.s, 'hold', `<${replyName}>: ${replyClass} ${text || 'triggers HOLD action'}`));
      act.hold();
      return 'dunno';
    }
    if (CMD === 'DISCARD') {
      if (act === undefined || !this.canDelegate(ev, table, CMD)) return 'dunno';
      ev.s.info(Policy.whatsup(ev.s, 'discard', `<${replyName}>: ${replyClass} ${text || 'triggers DISCARD action'}`));
      act.discard();
      return 'ok';
    }
    if (CMD === 'REDIRECT' || CMD === 'BCC') {
      if (act === undefined || !this.canDelegate(ev, table, CMD)) return 'dunno';
      if (!text.includes('@')) {
        ev.s.warning(`access table ${table} entry "${replyName}" requires user@domain target`);
        return 'dunno';
      }
      ev.s.info(Policy.whatsup(ev.s, CMD.toLowerCase(), `<${replyName}>: ${replyClass} triggers ${CMD} ${text}`));
      if (CMD === 'REDIRECT') act.redirect(text);
      else act.bcc(text);
      return 'dunno';
    }
    if (CMD === 'PREPEND') {
      if (act === undefined || !this.notInClientHelo(ev, table, CMD)) return 'dunno';
      if (text === '' || !isHeaderText(text)) {
        ev.s.warning(`access table ${table} entry "${replyName}" requires header: text`);
        return 'dunno';
      }
      act.prepend(text);
      return 'dunno';
    }
    if (CMD === 'DEFER_IF_PERMIT' || CMD === 'DEFER_IF_REJECT') {
      const d = dsnSplit('4.7.1', text);
      return this.deferIf(CMD === 'DEFER_IF_PERMIT' ? 'permit' : 'reject', ev, this.params.access_map_defer_code, dsnFix(d.dsn, replyClass), `<${replyName}>: ${replyClass} rejected: ${d.text || 'Service unavailable'}`);
    }
    if (/^\d+$/.test(value)) return 'ok';
    if (cmd.length === 3 && text !== '' && /^[45]\d\d$/.test(cmd)) {
      const d = dsnSplit(`${cmd[0]}.7.1`, text);
      return this.reject(ev, Number(cmd), dsnFix(d.dsn, replyClass), `<${replyName}>: ${replyClass} rejected: ${d.text || 'Access denied'}`);
    }
    if (CMD === 'OK' || CMD === 'RELAY') return 'ok';
    if (value.includes(':')) {
      ev.s.warning(`access table ${table} has entry with lookup table: ${value}`);
      ev.s.warning('do not specify lookup tables inside SMTPD access maps');
      ev.s.warning('define a restriction class and specify its name instead.');
      this.serverError(ev);
    }
    if (ev.recursion > 100) {
      ev.s.warning(`access table ${table} entry ${value} causes unreasonable recursion`);
      this.serverError(ev);
    }
    const list = splitList(value);
    if (list.length === 0) {
      ev.s.warning(`access table ${table} entry ${value} has empty value`);
      return 'ok';
    }
    return this.generic(ev, list, replyName, replyClass, defAcl);
  }

  private async lookupDomain(ev: Evaluation, spec: string, domain: string, replyName: string, replyClass: string, defAcl: string | null): Promise<{ status: Status; found: boolean }> {
    const t = this.table(spec);
    if (t === null) return { status: await this.unavailable(ev, spec, domain, replyName, replyClass, defAcl), found: true };
    const v = accessLookup(t, 'domain', domain, this.accessOptions);
    if (v === undefined) return { status: 'dunno', found: false };
    return { status: await this.tableResult(ev, spec, v, replyName, replyClass, defAcl), found: true };
  }

  /** check_namadr_access(): the host name and its parents, then the address and its networks. */
  private async lookupNamAddr(ev: Evaluation, spec: string, name: string, addr: string, replyName: string, replyClass: string, defAcl: string | null): Promise<Status> {
    const t = this.table(spec);
    // check_namadr_access() asks for the name first (even "unknown", as seen with Postfix 3.7).
    if (t === null) return this.unavailable(ev, spec, name, replyName, replyClass, defAcl);
    const v = accessLookup(t, 'client', `${name}[${addr}]`, this.accessOptions);
    if (v === undefined) return 'dunno';
    return this.tableResult(ev, spec, v, replyName, replyClass, defAcl);
  }

  private async lookupMail(ev: Evaluation, spec: string, address: string, replyName: string, replyClass: string, defAcl: string | null): Promise<Status> {
    const t = this.table(spec);
    const r = this.addresses.resolve(address);
    if (t === null) return this.unavailable(ev, spec, r.address, replyName, replyClass, defAcl);
    const v = accessLookup(t, 'address', r.address, this.accessOptions);
    if (v === undefined) return 'dunno';
    const status = await this.tableResult(ev, spec, v, replyName, replyClass, defAcl);
    // Source-routed recipients are too suspicious for an OK (smtpd_check.c SUSPICIOUS()).
    if (status === 'ok' && replyClass === NAME_RECIPIENT && r.routed && !this.params.allow_untrusted_routing) return 'dunno';
    return status;
  }

  // --- individual restrictions ----------------------------------------------------------------

  private permitAuthDestination(recipient: string): boolean {
    const r = this.addresses.resolve(recipient);
    if (r.routed && !this.params.allow_untrusted_routing) return false;
    return r.class !== 'default';
  }

  private nonFqdn(ev: Evaluation, addr: string, replyName: string, replyClass: string): Status {
    const at = addr.lastIndexOf('@');
    const domain = at < 0 ? '' : addr.slice(at + 1);
    if (domain.startsWith('[') && domain.endsWith(']')) return 'dunno';
    const d = domain.endsWith('.') && !domain.endsWith('..') ? domain.slice(0, -1) : domain;
    if (d === '' || !validDomain(d, ev.s.smtputf8) || !d.includes('.')) {
      return this.reject(ev, this.params.non_fqdn_reject_code, '4.5.2', `<${replyName}>: ${replyClass} rejected: need fully-qualified address`);
    }
    return 'dunno';
  }

  private async unknownAddress(ev: Evaluation, addr: string, replyName: string, replyClass: string): Promise<Status> {
    const r = this.addresses.resolve(addr);
    if (r.class === 'local' || r.class === 'alias' || r.class === 'virtual') return 'dunno';
    if (r.domain === '' || (r.domain.startsWith('[') && r.domain.endsWith(']'))) return 'dunno';
    const isSender = replyClass === NAME_SENDER;
    let status: Awaited<ReturnType<Resolver['mailhost']>>;
    try {
      status = await this.resolver.mailhost(r.domain);
    } catch {
      status = 'tempfail';
    }
    if (status === 'ok') return 'dunno';
    if (status === 'nullmx') {
      return this.reject(ev, isSender ? MAILBOX_UNAVAILABLE : DOMAIN_DOES_NOT_ACCEPT_MAIL, isSender ? '4.7.27' : '4.1.10', `<${replyName}>: ${replyClass} rejected: Domain ${r.domain} does not accept mail (nullMX)`);
    }
    const dsn = isSender ? '4.1.8' : '4.1.2';
    if (status === 'notfound') {
      return this.reject(ev, this.params.unknown_address_reject_code, dsn, `<${replyName}>: ${replyClass} rejected: Domain not found`);
    }
    return this.tempfail(this.params.unknown_address_tempfail_action, ev, MAILBOX_UNAVAILABLE_TEMP, dsn, `<${replyName}>: ${replyClass} rejected: Domain not found`);
  }

  private checkRcptMaps(ev: Evaluation, address: string, replyClass: string): Status {
    const r = this.addresses.resolve(address);
    const unknown = this.addresses.unknownUser(r);
    if (unknown === null) return 'dunno';
    const codes = {
      local: this.params.unknown_local_recipient_reject_code,
      virtual: this.params.unknown_virtual_mailbox_reject_code,
      relay: this.params.unknown_relay_recipient_reject_code,
      alias: this.params.unknown_virtual_alias_reject_code,
    };
    const isSender = replyClass === NAME_SENDER;
    const suffix = unknown.codeParam === 'alias' || this.params.show_user_unknown_table_name ? ` in ${unknown.table}` : '';
    return this.reject(ev, codes[unknown.codeParam], isSender ? '5.1.0' : '5.1.1', `<${address}>: ${replyClass} rejected: User unknown${suffix}`, 'bounce');
  }

  private checkRecipientMaps(ev: Evaluation, recipient: string): Status {
    if (ev.recipientMapChecked) return 'dunno';
    if (ev.warnIfReject === 0) ev.recipientMapChecked = true;
    return this.checkRcptMaps(ev, recipient, NAME_RECIPIENT);
  }

  private checkSenderMaps(ev: Evaluation, sender: string): Status {
    if (ev.senderMapChecked) return 'dunno';
    if (ev.warnIfReject === 0) ev.senderMapChecked = true;
    return this.checkRcptMaps(ev, sender, NAME_SENDER);
  }

  private heloHostname(ev: Evaluation, helo: string, kind: 'invalid' | 'nonfqdn'): Status {
    if (helo.startsWith('[')) return this.heloAddress(ev, helo);
    const name = helo.endsWith('.') && !helo.endsWith('..') ? helo.slice(0, -1) : helo;
    if (kind === 'invalid') {
      if (!validHostname(name) && !(net.isIP(name) !== 0)) {
        return this.reject(ev, this.params.invalid_hostname_reject_code, '5.5.2', `<${helo}>: ${NAME_HELO} rejected: Invalid name`);
      }
      return 'dunno';
    }
    if (!validHostname(name) || !name.includes('.')) {
      return this.reject(ev, this.params.non_fqdn_reject_code, '5.5.2', `<${helo}>: ${NAME_HELO} rejected: need fully-qualified hostname`);
    }
    return 'dunno';
  }

  private heloAddress(ev: Evaluation, helo: string): Status {
    let a = helo.slice(1, helo.endsWith(']') ? -1 : undefined);
    if (/^ipv6:/i.test(a)) a = a.slice(5);
    if (!helo.endsWith(']') || net.isIP(a) === 0) {
      return this.reject(ev, this.params.invalid_hostname_reject_code, '5.5.2', `<${helo}>: ${NAME_HELO} rejected: invalid ip address`);
    }
    return 'dunno';
  }

  private async unknownHelo(ev: Evaluation, helo: string): Promise<Status> {
    if (helo.startsWith('[')) return this.heloAddress(ev, helo);
    let status: Awaited<ReturnType<Resolver['hostAddress']>>;
    try {
      status = await this.resolver.mailhost(helo);
    } catch {
      status = 'tempfail';
    }
    if (status === 'ok' || status === 'nullmx') return 'dunno';
    if (status === 'notfound') return this.reject(ev, this.params.unknown_hostname_reject_code, '4.7.1', `<${helo}>: ${NAME_HELO} rejected: Host not found`);
    return this.tempfail(this.params.reject_tempfail_action, ev, MAILBOX_UNAVAILABLE_TEMP, '4.7.1', `<${helo}>: ${NAME_HELO} rejected: Host not found`);
  }

  /** Postfix generic_checks(). */
  private async generic(ev: Evaluation, list: Restrictions, replyName: string, replyClass: string, defAcl: string | null): Promise<Status> {
    const s = ev.s;
    const saved = ev.recursion++;
    let status: Status = 'dunno';
    for (let i = 0; i < list.length; i++) {
      // After DISCARD nothing else is checked: the message is accepted and dropped (generic_checks()).
      if (ev.s.actions?.discarding === true) break;
      let name = list[i]!;
      let tableArg: string | null = null;
      const lname = name.toLowerCase();
      if (lname === 'warn_if_reject') {
        if (ev.warnIfReject === 0) ev.warnIfReject = ev.recursion;
        continue;
      }
      if (name.includes(':')) {
        if (defAcl === null) {
          s.warning(`specify one of (check_client_access, check_reverse_client_hostname_access, check_helo_access, check_sender_access, check_recipient_access, check_etrn_access) before ${replyClass} restriction "${name}"`);
          this.serverError(ev);
        }
        tableArg = name;
        name = defAcl;
      } else if (/^check_\w+_access$/.test(lname)) {
        const next = list[i + 1];
        if (next === undefined || !next.includes(':')) {
          s.warning(`restriction ${lname}: bad argument "${next ?? ''}": need maptype:mapname`);
          this.serverError(ev);
        }
        tableArg = next;
        i++;
      }
      const n = name.toLowerCase();
      switch (n) {
        case 'permit':
          status = 'ok';
          break;
        case 'defer':
          status = this.reject(ev, this.params.defer_code, '4.3.2', `<${replyName}>: ${replyClass} rejected: Try again later`);
          break;
        case 'reject':
          status = this.reject(ev, this.params.reject_code, '5.7.1', `<${replyName}>: ${replyClass} rejected: Access denied`);
          break;
        case 'reject_unauth_pipelining':
          if (s.illegalPipelining) status = this.reject(ev, BAD_SEQUENCE, '5.5.0', `<${replyName}>: ${replyClass} rejected: Improper use of SMTP command pipelining`, 'protocol');
          break;
        case 'defer_if_permit':
          status = this.deferIf('permit', ev, MAILBOX_UNAVAILABLE_TEMP, '4.7.0', `<${replyName}>: ${replyClass} rejected: defer_if_permit requested`);
          break;
        case 'defer_if_reject':
          status = this.deferIf('reject', ev, MAILBOX_UNAVAILABLE_TEMP, '4.7.0', `<${replyName}>: ${replyClass} rejected: defer_if_reject requested`);
          break;
        case 'sleep': {
          const arg = list[i + 1];
          if (arg === undefined || !/^\d+$/.test(arg)) {
            s.warning('restriction sleep must be followed by number');
            this.serverError(ev);
          }
          i++;
          await new Promise((r) => setTimeout(r, Number(arg) * 1000));
          break;
        }
        case 'reject_plaintext_session':
          if (s.tls === null) status = this.reject(ev, this.params.plaintext_reject_code, '4.7.1', 'Session encryption is required');
          break;
        // client
        case 'reject_unknown_client_hostname':
        case 'reject_unknown_client':
          if (s.peer.nameStatus !== 'ok') {
            status = this.reject(ev, s.peer.nameStatus === 'temp' ? MAILBOX_UNAVAILABLE_TEMP : this.params.unknown_client_reject_code, '4.7.25', `Client host rejected: cannot find your hostname, [${s.peer.addr}]`);
          }
          break;
        case 'reject_unknown_reverse_client_hostname':
          if (s.peer.reverseStatus !== 'ok') {
            status = this.reject(ev, s.peer.reverseStatus === 'perm' ? this.params.unknown_client_reject_code : MAILBOX_UNAVAILABLE_TEMP, '4.7.1', `Client host rejected: cannot find your reverse hostname, [${s.peer.addr}]`);
          }
          break;
        case 'permit_mynetworks':
          if (this.mynetworks.matches(s.peer.addr)) status = 'ok';
          break;
        case 'permit_sasl_authenticated':
          if (s.saslUsername !== null) status = 'ok';
          break;
        case 'permit_tls_all_clientcerts':
          if (s.tls?.trusted) status = 'ok';
          break;
        case 'permit_tls_clientcerts':
          // The fingerprint is checked even when the issuing CA is not trusted (smtpd_check.c).
          if (s.tls?.peerCert) {
            if (this.relayCcertListed(s)) status = 'ok';
          } else if (s.tls !== null && !this.params.smtpd_tls_ask_ccert) s.warning('permit_tls_clientcerts is requested, but "smtpd_tls_ask_ccert = no"');
          break;
        case CHECK_CCERT_ACL:
          // Certificate fingerprint, then public-key fingerprint; exact keys; reply name the subject CN.
          if (s.tls?.peerCert) {
            const t = this.table(tableArg!);
            if (t === null) {
              status = await this.unavailable(ev, tableArg!, s.tls.certFingerprint ?? '', s.tls.peerCN ?? '', NAME_CCERT, defAcl);
              break;
            }
            for (const fp of [s.tls.certFingerprint ?? '', s.tls.pkeyFingerprint ?? '']) {
              if (fp === '') continue;
              const v = t.get(fp);
              if (v === undefined) continue;
              status = await this.tableResult(ev, tableArg!, v, s.tls.peerCN ?? '', NAME_CCERT, defAcl);
              if (status !== 'dunno') break;
            }
          }
          break;
        case CHECK_CLIENT_ACL:
          status = await this.lookupNamAddr(ev, tableArg!, s.peer.name, s.peer.addr, s.peer.namaddr, NAME_CLIENT, defAcl);
          break;
        case 'check_reverse_client_hostname_access':
          status = await this.lookupNamAddr(ev, tableArg!, s.peer.reverseName, s.peer.addr, s.peer.reverseName, 'Unverified Client host', defAcl);
          if (status === 'ok') {
            s.warning(`restriction check_reverse_client_hostname_access returns OK for ${s.peer.reverseName}`);
            s.warning('this is not allowed for security reasons');
            s.warning('use DUNNO instead of OK if you want to make an exception');
            this.serverError(ev);
          }
          break;
        // helo
        case CHECK_HELO_ACL:
          if (s.helo !== null) status = (await this.lookupDomain(ev, tableArg!, s.helo, s.helo, NAME_HELO, defAcl)).status;
          break;
        case 'reject_invalid_helo_hostname':
        case 'reject_invalid_hostname':
          if (s.helo !== null) status = this.heloHostname(ev, s.helo, 'invalid');
          break;
        case 'reject_non_fqdn_helo_hostname':
        case 'reject_non_fqdn_hostname':
          if (s.helo !== null) status = this.heloHostname(ev, s.helo, 'nonfqdn');
          break;
        case 'reject_unknown_helo_hostname':
        case 'reject_unknown_hostname':
          if (s.helo !== null) status = await this.unknownHelo(ev, s.helo);
          break;
        // sender
        case CHECK_SENDER_ACL:
          if (s.sender !== null && s.sender !== '') status = await this.lookupMail(ev, tableArg!, s.sender, s.sender, NAME_SENDER, defAcl);
          if (s.sender === '') {
            const t = this.table(tableArg!);
            const key = this.params.smtpd_null_access_lookup_key;
            const v = t === null ? undefined : t.get(key);
            if (t === null) status = await this.unavailable(ev, tableArg!, key, '', NAME_SENDER, defAcl);
            else if (v !== undefined) status = await this.tableResult(ev, tableArg!, v, '', NAME_SENDER, defAcl);
          }
          break;
        case 'reject_unknown_sender_domain':
        case 'reject_unknown_address':
          if (s.sender) status = await this.unknownAddress(ev, s.sender, s.sender, NAME_SENDER);
          break;
        case 'reject_non_fqdn_sender':
          if (s.sender) status = this.nonFqdn(ev, s.sender, s.sender, NAME_SENDER);
          break;
        case 'reject_unlisted_sender':
          if (s.sender) status = this.checkSenderMaps(ev, s.sender);
          break;
        // SASL login vs sender (smtpd_sender_login_maps); reject_sender_login_mismatch = both checks.
        case 'reject_sender_login_mismatch':
        case 'reject_authenticated_sender_login_mismatch':
        case 'reject_known_sender_login_mismatch':
        case 'reject_unauthenticated_sender_login_mismatch':
          if (!this.params.smtpd_sasl_auth_enable) s.warning(`restriction \`${name}' ignored: no SASL support`);
          else if (s.sender) status = this.senderLoginMismatch(ev, name, s.sender);
          break;
        // recipient
        case CHECK_RECIP_ACL:
          if (s.recipient !== null) status = await this.lookupMail(ev, tableArg!, s.recipient, s.recipient, NAME_RECIPIENT, defAcl);
          break;
        case 'permit_auth_destination':
          if (s.recipient !== null && this.permitAuthDestination(s.recipient)) status = 'ok';
          break;
        case 'reject_unauth_destination':
          if (s.recipient !== null && !this.permitAuthDestination(s.recipient)) {
            status = this.reject(ev, this.params.relay_domains_reject_code, '5.7.1', `<${s.recipient}>: Relay access denied`);
          }
          break;
        case 'defer_unauth_destination':
          if (s.recipient !== null && !this.permitAuthDestination(s.recipient)) {
            status = this.reject(ev, this.params.relay_domains_reject_code - 100, '4.7.1', `<${s.recipient}>: Relay access denied`);
          }
          break;
        case 'check_relay_domains':
          if (s.recipient !== null) {
            if (this.addresses.relay.matches(s.peer.name) || this.permitAuthDestination(s.recipient)) status = 'ok';
            else status = this.reject(ev, this.params.relay_domains_reject_code, '5.7.1', `<${s.recipient}>: ${NAME_RECIPIENT} rejected: Relay access denied`);
          }
          break;
        case 'reject_unknown_recipient_domain':
          if (s.recipient) status = await this.unknownAddress(ev, s.recipient, s.recipient, NAME_RECIPIENT);
          break;
        case 'reject_non_fqdn_recipient':
          if (s.recipient) status = this.nonFqdn(ev, s.recipient, s.recipient, NAME_RECIPIENT);
          break;
        case 'check_recipient_maps':
        case 'reject_unlisted_recipient':
          if (s.recipient) status = this.checkRecipientMaps(ev, s.recipient);
          break;
        case 'reject_multi_recipient_bounce':
          if (s.sender === '' && s.rcptCount > (s.where !== 'RCPT' ? 1 : 0)) {
            status = this.reject(ev, MAILBOX_UNAVAILABLE, '5.5.3', `<${replyName}>: ${replyClass} rejected: Multi-recipient bounce`);
          }
          break;
        case CHECK_ETRN_ACL:
          status = (await this.lookupDomain(ev, tableArg!, replyName, replyName, NAME_ETRN, defAcl)).status;
          break;
        case 'check_policy_service': {
          const server = list[i + 1];
          if (server === undefined) {
            s.warning(`restriction ${n} requires server name argument`);
            this.serverError(ev);
          }
          i++;
          status = await this.policyService(ev, server!, replyName, replyClass, defAcl);
          break;
        }
        case 'reject_rbl_client':
        case 'reject_rbl':
        case 'reject_rhsbl_client':
        case 'reject_rhsbl_reverse_client':
        case 'reject_rhsbl_sender':
        case 'reject_rhsbl_helo':
        case 'reject_rhsbl_recipient':
        case 'permit_dnswl_client':
        case 'permit_rhswl_client': {
          const zone = list[i + 1];
          if (zone === undefined) {
            s.warning(`restriction ${n} requires domain name argument`);
            this.serverError(ev);
          }
          i++;
          if (n === 'reject_rbl_client' || n === 'reject_rbl') status = await this.rejectRblAddr(ev, zone!, s.peer.addr, NAME_CLIENT);
          else if (n === 'reject_rhsbl_client') status = s.peer.name !== 'unknown' ? await this.rejectRblDomain(ev, zone!, s.peer.name, NAME_CLIENT) : 'dunno';
          else if (n === 'reject_rhsbl_reverse_client') status = s.peer.reverseName !== 'unknown' ? await this.rejectRblDomain(ev, zone!, s.peer.reverseName, 'Unverified Client host') : 'dunno';
          else if (n === 'reject_rhsbl_sender') status = s.sender ? await this.rejectRblDomain(ev, zone!, s.sender, NAME_SENDER) : 'dunno';
          else if (n === 'reject_rhsbl_helo') status = s.helo !== null ? await this.rejectRblDomain(ev, zone!, s.helo, NAME_HELO) : 'dunno';
          else if (n === 'reject_rhsbl_recipient') status = s.recipient ? await this.rejectRblDomain(ev, zone!, s.recipient, NAME_RECIPIENT) : 'dunno';
          else if (n === 'permit_dnswl_client') status = await this.permitDnswl(ev, zone!, reverseForDnsbl(s.peer.addr), s.peer.addr, NAME_CLIENT);
          else status = s.peer.name !== 'unknown' ? await this.permitDnswl(ev, zone!, Policy.dnsblDomain(s.peer.name), s.peer.name, NAME_CLIENT) : 'dunno';
          break;
        }
        default: {
          const cls = this.classes.get(name);
          if (cls !== undefined) {
            status = await this.generic(ev, cls, replyName, replyClass, defAcl);
          } else {
            s.warning(`unknown smtpd restriction: "${name}"`);
            this.serverError(ev);
          }
        }
      }
      if (ev.warnIfReject >= ev.recursion) ev.warnIfReject = 0;
      if (status !== 'dunno') break;
      if (ev.deferIfPermit !== null && ev.deferIfReject !== null) break;
    }
    ev.recursion = saved;
    if (ev.warnIfReject >= ev.recursion) ev.warnIfReject = 0;
    return status;
  }

  private async run(ev: Evaluation, list: Restrictions, replyName: string, replyClass: string, defAcl: string | null): Promise<Status> {
    ev.recursion = 0;
    ev.warnIfReject = 0;
    ev.deferIfReject = null;
    if (list.length === 0) return 'dunno';
    try {
      return await this.generic(ev, list, replyName, replyClass, defAcl);
    } catch (e) {
      if (e instanceof Abort) return e.status;
      throw e;
    }
  }

  // --- the protocol stages (smtpd_check_client/helo/mail/rcpt/etrn/data) ----------------------

  async checkClient(s: CheckSubject): Promise<Reply | null> {
    const ev = new Evaluation(s);
    const st = await this.run(ev, this.client, s.peer.namaddr, NAME_CLIENT, CHECK_CLIENT_ACL);
    s.deferFlags.client = ev.deferIfPermit;
    return st === 'reject' ? ev.reply : null;
  }

  async checkHelo(s: CheckSubject): Promise<Reply | null> {
    if (s.helo === null) return null;
    const ev = new Evaluation(s);
    ev.deferIfPermit = s.deferFlags.client;
    const st = await this.run(ev, this.helo, s.helo, NAME_HELO, CHECK_HELO_ACL);
    s.deferFlags.helo = ev.deferIfPermit;
    return st === 'reject' ? ev.reply : null;
  }

  async checkMail(s: CheckSubject): Promise<Reply | null> {
    if (s.sender === null) return null;
    const ev = new Evaluation(s);
    ev.deferIfPermit = s.deferFlags.client ?? s.deferFlags.helo;
    let st = await this.run(ev, this.sender, s.sender, NAME_SENDER, CHECK_SENDER_ACL);
    s.deferFlags.sender = ev.deferIfPermit;
    if (this.params.smtpd_reject_unlisted_sender && st !== 'reject' && !ev.senderMapChecked && s.sender !== '' && s.actions?.discarding !== true) {
      st = this.checkSenderMaps(ev, s.sender);
    }
    return st === 'reject' ? ev.reply : null;
  }

  /**
   * RCPT TO (and VRFY): with smtpd_delay_reject the client, helo and sender restrictions first,
   * then relay and recipient restrictions (order: smtpd_relay_before_recipient_restrictions), the
   * pending defer_if_permit, and the implicit reject_unlisted_recipient.
   */
  async checkRcpt(s: CheckSubject): Promise<Reply | null> {
    const recipient = s.recipient;
    if (recipient === null) return null;
    // RFC 5321 4.5.1: "postmaster" is always accepted.
    if (recipient.toLowerCase() === 'postmaster') return null;
    if (this.params.smtpd_delay_reject) {
      const r = (await this.checkClient(s)) ?? (await this.checkHelo(s)) ?? (await this.checkMail(s));
      if (r !== null) return r;
    }
    const ev = new Evaluation(s);
    ev.deferIfPermit = s.deferFlags.sender;
    const lists = this.params.smtpd_relay_before_recipient_restrictions ? [this.relay, this.recipient] : [this.recipient, this.relay];
    let st: Status = 'dunno';
    for (const list of lists) {
      st = await this.run(ev, list, recipient, NAME_RECIPIENT, CHECK_RECIP_ACL);
      if (st === 'reject') break;
    }
    if (st !== 'reject' && ev.deferIfPermit !== null) {
      const d = ev.deferIfPermit;
      st = this.reject(ev, d.code, d.dsn, d.text);
    }
    if (this.params.smtpd_reject_unlisted_recipient && st !== 'reject' && !ev.recipientMapChecked && s.actions?.discarding !== true) {
      st = this.checkRecipientMaps(ev, recipient);
    }
    return st === 'reject' ? ev.reply : null;
  }

  async checkEtrn(s: CheckSubject, domain: string): Promise<Reply | null> {
    if (this.params.smtpd_delay_reject) {
      const r = (await this.checkClient(s)) ?? (await this.checkHelo(s));
      if (r !== null) return r;
    }
    const ev = new Evaluation(s);
    ev.deferIfPermit = s.deferFlags.client ?? s.deferFlags.helo;
    let st = await this.run(ev, this.etrn, domain, NAME_ETRN, CHECK_ETRN_ACL);
    if (st !== 'reject' && ev.deferIfPermit !== null) {
      const d = ev.deferIfPermit;
      st = this.reject(ev, d.code, d.dsn, d.text);
    }
    return st === 'reject' ? ev.reply : null;
  }

  /** DATA (and the first BDAT): smtpd_data_restrictions; no recipient is named when there are several. */
  checkData(s: CheckSubject): Promise<Reply | null> {
    return this.checkStage(s, this.data, 'DATA', NAME_DATA);
  }

  /**
   * After the final "." (or BDAT LAST), before the message is committed: smtpd_end_of_data_restrictions
   * (smtpd_check_eod()). No recipient is named when there are several; an earlier defer_if_permit
   * does not carry over.
   */
  checkEod(s: CheckSubject): Promise<Reply | null> {
    return this.checkStage(s, this.eod, 'END-OF-MESSAGE', NAME_EOD);
  }

  /** One restriction list with no default table, then a pending defer_if_permit (smtpd_check_data/eod()). */
  private async checkStage(s: CheckSubject, list: Restrictions, replyName: string, replyClass: string): Promise<Reply | null> {
    const ev = new Evaluation(s);
    let st = await this.run(ev, list, replyName, replyClass, null);
    if (st !== 'reject' && ev.deferIfPermit !== null) {
      const d = ev.deferIfPermit;
      st = this.reject(ev, d.code, d.dsn, d.text);
    }
    return st === 'reject' ? ev.reply : null;
  }
}

/** Postfix xtext_quote(s, ""): "+", controls, space and non-ASCII octets as +XX (the policy ccert_* values). */
function policyXtext(v: string): string {
  let out = '';
  for (const b of Buffer.from(v, 'utf8')) out += b > 0x20 && b < 0x7f && b !== 0x2b ? String.fromCharCode(b) : `+${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

/** A domain name as valid_hostname()/valid_utf8_hostname() accept it. */
function validDomain(d: string, utf8: boolean): boolean {
  if (utf8 && /[^\x00-\x7f]/.test(d)) {
    return d.split('.').every((l) => l.length > 0 && l.length <= 63);
  }
  return validHostname(d);
}


/**
 * SASL server side for SMTP AUTH (RFC 4954): the PLAIN (RFC 4616) and LOGIN mechanisms, with the
 * behaviour Postfix's dovecot driver and Dovecot's auth server show together (observed on
 * Postfix 3.7.11 + Dovecot 2.3.19, and xsasl_dovecot_server.c / Dovecot's mech-plain.c,
 * mech-login.c):
 *
 * - the mechanism must be one offered, else "Invalid authentication mechanism";
 * - a response must use only base64 characters (Postfix checks), then decode strictly (Dovecot
 *   checks), else "Invalid base64 data in initial response" / "... in continued response";
 *   an initial response `=` is an empty one (RFC 4954 4);
 * - PLAIN: `authzid NUL authcid NUL passwd`; an authzid other than empty or the authcid fails
 *   (no master-user logins); LOGIN: challenges `Username:` and `Password:`, an empty initial
 *   response is no initial response;
 * - a failed check of credentials waits `failureDelay` (Dovecot auth_failure_delay, 2 s) before
 *   the reply; protocol errors (bad base64, unknown mechanism) do not;
 * - `username` is the login name the last verdict named, kept across attempts as Postfix does
 *   (its failure log line shows `sasl_username=`); null when the verdict named none.
 *
 * "*" (cancel) and smtpd_sasl_response_limit are the SMTP server's: they never reach this module.
 * Passwords are never kept after the check and never logged.
 */

export const MECHANISMS: readonly string[] = ['PLAIN', 'LOGIN'];

/** What checks a login; `ok` with the canonical user name. */
export type Verifier = (authcid: string, password: string) => Promise<{ ok: boolean; user: string }>;

export type SaslStep =
  /** Send `334 <challenge>` (base64) and call next() with the client's line. */
  | { readonly status: 'more'; readonly challenge: string }
  | { readonly status: 'done'; readonly username: string }
  /** `reason` null prints as Postfix's "(reason unavailable)". */
  | { readonly status: 'fail'; readonly reason: string | null };

/** Postfix is_valid_base64(): only the base64 alphabet and '='. */
export function isBase64Text(s: string): boolean {
  return /^[A-Za-z0-9+/=]*$/.test(s);
}

/** Strict base64 (padding required, '=' only at the end), as Dovecot decodes; null if invalid. */
export function decodeBase64(s: string): Buffer | null {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(s)) return null;
  return Buffer.from(s, 'base64');
}

/** RFC 4616 2: `[authzid] NUL authcid NUL passwd`, each UTF-8; null unless exactly two NULs. */
export function parsePlain(data: Buffer): { authzid: string; authcid: string; password: string } | null {
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < data.length; i++) {
    if (data[i] === 0) {
      parts.push(data.subarray(start, i));
      start = i + 1;
    }
  }
  parts.push(data.subarray(start));
  if (parts.length !== 3) return null;
  return { authzid: parts[0]!.toString('utf8'), authcid: parts[1]!.toString('utf8'), password: parts[2]!.toString('utf8') };
}

const LOGIN_USER = Buffer.from('Username:').toString('base64');
const LOGIN_PASS = Buffer.from('Password:').toString('base64');

/** One client's SASL state (one per SMTP session). */
export class SaslServer {
  /** The user the last verdict named (see module comment). */
  username: string | null = null;
  private mech: 'PLAIN' | 'LOGIN' | null = null;
  private loginUser: string | null = null;

  constructor(
    private readonly offered: () => readonly string[],
    private readonly verify: Verifier,
    private readonly failureDelay: () => Promise<void>,
  ) {}

  /** AUTH mech [initial-response]. */
  async start(mechanism: string, initial: string | null): Promise<SaslStep> {
    const m = mechanism.toUpperCase();
    this.mech = null;
    this.loginUser = null;
    if (!this.offered().includes(m) || (m !== 'PLAIN' && m !== 'LOGIN')) return { status: 'fail', reason: 'Invalid authentication mechanism' };
    if (initial !== null && !isBase64Text(initial)) return { status: 'fail', reason: 'Invalid base64 data in initial response' };
    this.mech = m;
    let data: Buffer | null = null;
    if (initial !== null) {
      data = initial === '=' ? Buffer.alloc(0) : decodeBase64(initial);
      if (data === null) return this.verdict(null, 'Invalid base64 data in initial response', false);
    }
    if (m === 'PLAIN') {
      if (data === null) return { status: 'more', challenge: '' };
      return this.plain(data);
    }
    if (data === null || data.length === 0) return { status: 'more', challenge: LOGIN_USER };
    return this.loginName(data);
  }

  /** The client's response line (not "*"). */
  async next(response: string): Promise<SaslStep> {
    if (this.mech === null) return { status: 'fail', reason: null };
    if (!isBase64Text(response)) return { status: 'fail', reason: 'Invalid base64 data in continued response' };
    const data = decodeBase64(response);
    if (data === null) return this.verdict(null, 'Invalid base64 data in continued response', false);
    if (this.mech === 'PLAIN') return this.plain(data);
    if (this.loginUser === null) return this.loginName(data);
    const user = this.loginUser;
    this.loginUser = null;
    return this.check(user, data.toString('utf8'), '');
  }

  private async plain(data: Buffer): Promise<SaslStep> {
    const p = parsePlain(data);
    if (p === null) return this.verdict(null, null, true);
    return this.check(p.authcid, p.password, p.authzid);
  }

  private async loginName(data: Buffer): Promise<SaslStep> {
    const user = data.toString('utf8');
    if (user === '') return this.verdict('', null, true);
    this.loginUser = user;
    return { status: 'more', challenge: LOGIN_PASS };
  }

  private async check(authcid: string, password: string, authzid: string): Promise<SaslStep> {
    if (authcid === '') return this.verdict('', null, true);
    const r = await this.verify(authcid, password);
    // RFC 4616 2: authorizing as someone else needs a master user; Postern has none.
    if (r.ok && (authzid === '' || authzid.toLowerCase() === r.user)) {
      this.mech = null;
      this.username = r.user;
      return { status: 'done', username: r.user };
    }
    return this.verdict(r.user, null, true);
  }

  private async verdict(user: string | null, reason: string | null, delay: boolean): Promise<SaslStep> {
    this.mech = null;
    this.loginUser = null;
    this.username = user;
    if (delay) await this.failureDelay();
    return { status: 'fail', reason };
  }
}

/**
 * Why a mailbox write failed, in Postfix's words, with the RFC 3463 status Postfix derives from
 * the system error (global/mbox_open.c mbox_dsn()): EAGAIN/ESTALE 4.2.0 (try again), ENOSPC 4.3.0
 * (mail system full), EDQUOT/EFBIG 5.2.2 (mailbox full), anything else the caller's default
 * (local(8) Maildir 5.2.0, virtual(8) 4.2.0, ...).
 */
import { PosternError } from '../errors.js';
import { strerror } from '../log/strerror.js';

export class MailboxError extends PosternError {
  /** RFC 3463 status: 4.x.x = try again later, 5.x.x = give up. */
  readonly dsn: string;
  /** Postfix's text, e.g. `create maildir file /m/tmp/x: Permission denied`. */
  readonly reason: string;
  /** The system error code (ENOSPC, EACCES, ...), null when there was none. */
  readonly errno: string | null;
  constructor(dsn: string, reason: string, errno: string | null, options?: { cause?: unknown }) {
    super('mailbox', reason, options);
    this.dsn = dsn;
    this.reason = reason;
    this.errno = errno;
  }
}

export function errnoOf(err: unknown): string | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : null;
}

/** Postfix mbox_dsn(): the status for a system error, `def` when nothing more specific applies. */
export function mboxDsn(errno: string | null, def: string): string {
  if (errno === 'EAGAIN' || errno === 'ESTALE') return '4.2.0';
  if (errno === 'ENOSPC') return '4.3.0';
  if (errno === 'EDQUOT' || errno === 'EFBIG') return '5.2.2';
  return def;
}

const EXTRA_TEXT: Readonly<Record<string, string>> = {
  EDQUOT: 'Disk quota exceeded',
  ESTALE: 'Stale file handle',
};

/** strerror() as Postfix's %m prints it. */
export function errText(err: unknown): string {
  const code = errnoOf(err);
  if (code !== null && Object.hasOwn(EXTRA_TEXT, code)) return EXTRA_TEXT[code]!;
  return strerror(err);
}

/** A MailboxError for a failed system call: `${what}: %m` with mbox_dsn(errno, def). */
export function systemError(what: string, err: unknown, def: string): MailboxError {
  if (err instanceof MailboxError) return err;
  const code = errnoOf(err);
  return new MailboxError(mboxDsn(code, def), `${what}: ${errText(err)}`, code, { cause: err });
}

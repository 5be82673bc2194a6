/**
 * mailbox: the mailbox store — the only code that writes mailboxes (DESIGN 2, invariant 2).
 *
 * What it does: delivers a message into a Maildir (./maildir.ts: tmp/ → fsync → link into new/ →
 * fsync new/, Postfix's unique names) or appends it to a UNIX mbox file (./mbox.ts: dotlock,
 * `From ` line, `>From ` quoting, truncate back on error), creating missing Maildirs with mode
 * 0700 owned by the mailbox owner; and announces every new message as a MailboxChange on
 * `mailboxChanges` (./changes.ts) for imapd sessions. The Maildir index (UIDVALIDITY, UIDs,
 * flags, MODSEQ) belongs here too and is added by the IMAP work; delivery calls stay the same.
 *
 * Data in: header lines to prepend (Return-Path:, X-Original-To:, Delivered-To:, built by the
 * delivery agents) and the queued message as a byte stream (bounded memory: one 64 KiB batch).
 * Out: files under the mailbox paths the agents pass in; MailboxError (Postfix's texts and
 * RFC 3463 status) on failure — never a partial message in new/ or in an mbox.
 * Trusts: the paths (from main.cf and the passwd/virtual maps). Runs as root or as mail_owner; as
 * root it gives new files and directories to the mailbox owner and refuses Maildir tmp/ new/
 * directories that are symbolic links or owned by someone else.
 *
 * main.cf parameters: none directly; the agents pass deliver_lock_attempts, deliver_lock_delay,
 * stale_lock_time, mailbox_size_limit/virtual_mailbox_limit, strict_mailbox_ownership.
 */
export { type MailboxChange, type MailboxChangeKind, MailboxChanges, type MailboxListener, mailboxChanges } from './changes.js';
export { LfCopier } from './copy.js';
export { type MailboxOwner, makeDirs, ownerMay } from './dirs.js';
export { errText, MailboxError, mboxDsn } from './errors.js';
export {
  deliverToMaildir,
  ensureMaildir,
  type MaildirDelivered,
  type MaildirDeliveryOptions,
  maildirHostname,
  maildirName,
} from './maildir.js';
export { appendToMbox, asctime, type DotlockOptions, dotlock, fromLine, type MboxDeliveryOptions, MboxError, type MboxProblem } from './mbox.js';

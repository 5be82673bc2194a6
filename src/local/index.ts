/**
 * local: the delivery agents that end a message's trip on this host — local(8) for mydestination
 * (./agent.ts: aliases, :include:, |command, /file, passwd users' Maildir or mbox, luser_relay),
 * virtual(8) for virtual_mailbox_domains (./virtual.ts), discard(8) (./discard.ts) and
 * error(8)/retry (./error.ts).
 *
 * Data in: a DeliveryRequest from qmgr (../queue/delivery.ts); each agent opens the queue file
 * read-only and validates it. Out: one DeliveryStatus per recipient (LocalDeliveryStatus adds
 * `expanded` for alias expansions), never an exception. Agents log only `warning:` lines (as
 * Postfix's local/virtual processes do); the per-recipient `to=<...>, status=...` line is
 * qmgr's, written from the DeliveryStatus. Mailboxes are written only through ../mailbox.
 * Forwarded mail (aliases to other domains, :include: members, owner- lists) is resubmitted
 * through the `resubmit` function the caller supplies (./forward.ts cleanupResubmitter()).
 *
 * Trusts: main.cf, alias files (their owner's rights run commands), the passwd file, :include:
 * files (checked: absolute path, regular, not world-writable). Touches: mailboxes, /file targets,
 * spawns |command targets as default_privs or the alias/include owner, never as root.
 *
 * main.cf parameters: alias_maps, allow_mail_to_commands, allow_mail_to_files, command_time_limit,
 * command_expansion_filter, default_privs, deliver_lock_attempts, deliver_lock_delay,
 * enable_original_recipient, expand_owner_alias, export_environment, fallback_transport,
 * home_mailbox, local_command_shell, luser_relay, mail_spool_directory, mailbox_command,
 * mailbox_size_limit, mailbox_transport, mydestination, myorigin, owner_request_special,
 * prepend_delivered_header, propagate_unmatched_extensions, recipient_delimiter,
 * require_home_directory, stale_lock_time, strict_mailbox_ownership, virtual_gid_maps,
 * virtual_mailbox_base, virtual_mailbox_limit, virtual_mailbox_maps, virtual_minimum_uid,
 * virtual_uid_maps. (local_recipient_maps is smtpd's, at RCPT TO: ../smtpd/address-class.ts;
 * local(8) itself never consults it, as in Postfix.)
 * RFCs: 5322 (header fields), 3461 (NOTIFY/ORCPT on expansion), 3463 (status codes),
 * 9228 (Delivered-To:).
 */
export { LocalAgent, type LocalAgentOptions, splitAddr } from './agent.js';
export { type AliasTable, openAliasMaps, parseAliases } from './aliases.js';
export { DiscardAgent, type DiscardAgentOptions } from './discard.js';
export { ErrorAgent, type ErrorAgentOptions } from './error.js';
export { type CleanupResubmitOptions, cleanupResubmitter, type Resubmit, type ResubmitRequest } from './forward.js';
export { copyHeaders, deliveredToAddresses } from './headers.js';
export { type PasswdEntry, PasswdFile, parsePasswd, passwdFile } from './passwd.js';
export type { LeafStatus, LocalDeliveryStatus } from './status.js';
export { parseAddressList } from './tokens.js';
export { VirtualAgent, type VirtualAgentOptions } from './virtual.js';

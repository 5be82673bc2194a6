/**
 * Registry parameters Postern accepts (postconf shows them, `$name` references expand) but does not
 * act on yet, with the reason an admin reads when main.cf or master.cf sets one:
 * `main.cf, line N: Postern ignores parameter: name=value (reason)`. Only parameters whose setting
 * would change what Postfix does are listed; paths and process-model knobs that have no meaning in
 * one Postern process (daemon_directory, max_idle, ...) stay quiet.
 */
import { PARAMS } from './index.js';

const SMTP_CLIENT = 'the smtp client is not built yet: mail for remote destinations stays deferred';
const QMGR = 'not implemented by Postern\'s qmgr (no slow start, rate delay or dead-destination throttling yet)';

export const IGNORED: Readonly<Record<string, string>> = {
  // Every parameter of the smtp client (owner `smtp` in the registry: smtp_*, fallback_relay).
  ...Object.fromEntries(
    Object.entries(PARAMS)
      .filter(([, spec]) => spec.owner === 'smtp')
      .map(([name]) => [name, SMTP_CLIENT]),
  ),
  content_filter: 'content filters are reached through the smtp or lmtp client, which is not built yet',
  // qmgr scheduling.
  ...Object.fromEntries(
    [
      'in_flow_delay',
      'qmgr_message_recipient_limit',
      'qmgr_message_recipient_minimum',
      'qmgr_clog_warn_time',
      'default_destination_rate_delay',
      'default_destination_concurrency_failed_cohort_limit',
      'default_recipient_limit',
      'default_extra_recipient_limit',
      'transport_retry_time',
      'smtp_initial_destination_concurrency',
    ].map((n) => [n, QMGR]),
  ),
  hash_queue_depth: "Postern's queue directories are not hashed",
  hash_queue_names: "Postern's queue directories are not hashed",
  sender_canonical_maps: 'canonical address rewriting is not implemented',
  canonical_maps: 'canonical address rewriting is not implemented (smtpd only counts its keys as known recipients)',
  recipient_canonical_maps: 'canonical address rewriting is not implemented (smtpd only counts its keys as known recipients)',
  strict_rfc821_envelopes: 'envelope addresses are parsed as with the default (no)',
  bounce_template_file: 'bounces use the built-in (Postfix default) templates',
  remote_header_rewrite_domain: "incomplete addresses in remote mail's headers are not rewritten; a setting still makes cleanup add missing Message-Id:, Date: and From: headers to remote mail, as Postfix does",
  debug_peer_list: 'per-client verbose logging is not implemented',
  debug_peer_level: 'per-client verbose logging is not implemented',
  smtpd_log_access_permit_actions: 'permit actions are not logged',
  smtpd_authorized_xclient_hosts: 'XCLIENT is not implemented',
  smtpd_authorized_xforward_hosts: 'XFORWARD is not implemented',
};

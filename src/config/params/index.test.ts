import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PARAMS } from './index.js';

/** Repo root from dist/src/config/params/ (tests run compiled). */
const ROOT = join(import.meta.dirname, '..', '..', '..', '..');

function fixture(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(join(ROOT, 'test', 'fixtures', 'postconf-d-3.7.11.txt'), 'utf8').split('\n')) {
    const m = /^(\S+) =(?: (.*))?$/.exec(line);
    if (m !== null) out.set(m[1], m[2] ?? '');
  }
  return out;
}

/** Every registry default that differs from 3.7.11's `postconf -d`, and why (see index.ts's header). */
const EXCEPTIONS: Readonly<Record<string, string>> = {
  myhostname: 'host-derived at run time (os.hostname())',
  mynetworks: 'host-derived at run time from mynetworks_style',
  smtpd_forbid_unauth_pipelining: 'Postfix 3.9 default (yes)',
  smtpd_forbid_bare_newline: 'Postfix 3.9 default (normalize)',
  smtpd_client_ipv6_prefix_length: 'Postfix 3.8 parameter, absent from 3.7',
  fallback_relay: 'legacy name referenced by $fallback_relay, not listed by postconf -d',
  virtual_maps: 'legacy name referenced by $virtual_maps, not listed by postconf -d',
};

test('params: every registry default equals Postfix 3.7.11 postconf -d, except the listed ones', () => {
  const fx = fixture();
  const mismatched: string[] = [];
  for (const [name, spec] of Object.entries(PARAMS)) {
    if (Object.hasOwn(EXCEPTIONS, name)) continue;
    const want = fx.get(name);
    if (want !== spec.default) mismatched.push(`${name}: registry "${spec.default}" vs postconf -d "${want ?? '(absent)'}"`);
  }
  assert.deepEqual(mismatched, []);
});

test('params: each listed exception really differs from (or is absent in) postconf -d', () => {
  const fx = fixture();
  for (const name of Object.keys(EXCEPTIONS)) {
    assert.ok(Object.hasOwn(PARAMS, name), `${name} is in the registry`);
    const spec = PARAMS[name as keyof typeof PARAMS];
    assert.notEqual(fx.get(name), spec.default, `${name} is not an exception any more`);
  }
  assert.equal(PARAMS.smtpd_forbid_unauth_pipelining.default, 'yes');
  assert.equal(PARAMS.smtpd_forbid_bare_newline.default, 'normalize');
  assert.equal(PARAMS.smtpd_client_ipv6_prefix_length.default, '84');
});

test('params: enums list their values, time params carry the unit of their default', () => {
  for (const [name, spec] of Object.entries(PARAMS)) {
    if (spec.type === 'enum') assert.ok((spec.values ?? []).length > 1, `${name} lists its values`);
    if (spec.type === 'time') {
      const m = /([smhdw])$/.exec(spec.default);
      assert.ok(m !== null, `${name} default has a unit`);
      assert.equal(spec.unit, m?.[1], `${name} unit`);
    }
    assert.ok(spec.doc.length > 10 && !spec.doc.includes('\n'), `${name} has a one-line doc`);
  }
  assert.equal(PARAMS.maximal_queue_lifetime.unit, 'd');
  assert.equal(PARAMS.bounce_queue_lifetime.unit, 'd');
  assert.equal(PARAMS.delay_warning_time.unit, 'h');
  assert.deepEqual(PARAMS.smtpd_tls_security_level.values, ['', 'none', 'may', 'encrypt']);
});

test('params: the registry holds what issues 2, 3 and 4 name', () => {
  const needed = [
    'myhostname mydomain myorigin mydestination inet_interfaces inet_protocols mynetworks mynetworks_style relay_domains relayhost',
    'transport_maps alias_maps virtual_alias_maps virtual_mailbox_domains virtual_mailbox_maps virtual_mailbox_base home_mailbox',
    'recipient_delimiter message_size_limit queue_directory mail_owner syslog_name maillog_file compatibility_level',
    'smtp_tls_security_level smtp_tls_loglevel smtp_tls_ciphers smtp_tls_protocols smtp_tls_CAfile smtpd_tls_ask_ccert',
    'smtpd_tls_security_level smtpd_tls_loglevel smtpd_tls_cert_file smtpd_tls_key_file smtpd_tls_CAfile smtpd_tls_CApath',
    'smtpd_tls_ciphers smtpd_tls_exclude_ciphers smtpd_tls_protocols smtp_address_preference',
    'smtpd_client_restrictions smtpd_helo_restrictions smtpd_sender_restrictions smtpd_recipient_restrictions smtpd_relay_restrictions',
    'smtpd_data_restrictions smtpd_end_of_data_restrictions smtpd_recipient_limit smtpd_timeout smtpd_hard_error_limit',
    'smtpd_soft_error_limit smtpd_error_sleep_time smtpd_junk_command_limit smtpd_client_connection_count_limit',
    'smtpd_client_connection_rate_limit smtpd_client_ipv6_prefix_length smtpd_forbid_bare_newline smtpd_tls_wrappermode',
    'smtpd_tls_chain_files smtpd_tls_req_ccert smtpd_tls_mandatory_protocols smtpd_tls_mandatory_ciphers tls_server_sni_maps',
    'smtpd_tls_received_header smtpd_tls_auth_only disable_vrfy_command line_length_limit header_size_limit',
    'queue_run_delay qmgr_message_active_limit default_destination_concurrency_limit default_destination_recipient_limit',
    'minimal_backoff_time maximal_backoff_time maximal_queue_lifetime bounce_queue_lifetime delay_warning_time',
    'enable_long_queue_ids default_transport local_recipient_maps luser_relay allow_mail_to_commands allow_mail_to_files',
    'virtual_uid_maps virtual_gid_maps virtual_minimum_uid 2bounce_notice_recipient notify_classes',
  ]
    .join(' ')
    .split(' ');
  for (const name of needed) assert.ok(Object.hasOwn(PARAMS, name), `${name} missing`);
});

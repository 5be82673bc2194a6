// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${name}` is Postfix's macro syntax in these strings, not a template.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { PARAMS } from './params/index.js';
import { choices, parseBool, parseSize, parseTime, parseValue, splitList, ValueError } from './values.js';

test('values: lists split on whitespace and commas, keeping { } groups whole', () => {
  assert.deepEqual(splitList('a, b\tc,,d\n e'), ['a', 'b', 'c', 'd', 'e']);
  assert.deepEqual(splitList('check_client_access inline:{ 1.2.3.4=REJECT, x=OK }, permit'), ['check_client_access', 'inline:{ 1.2.3.4=REJECT, x=OK }', 'permit']);
  assert.deepEqual(splitList('CONNECT GET POST regexp:{{/^[^A-Z]/ Bogus}}'), ['CONNECT', 'GET', 'POST', 'regexp:{{/^[^A-Z]/ Bogus}}']);
  assert.deepEqual(splitList(''), []);
});

test('values: bool is yes or no, case-insensitive', () => {
  assert.equal(parseBool('biff', 'YES'), true);
  assert.equal(parseBool('biff', 'no'), false);
  assert.throws(() => parseBool('biff', 'true'), { message: 'invalid biff value "true": expected yes or no' });
});

test('values: time takes the parameter\'s default unit for a bare number', () => {
  assert.equal(parseTime('maximal_queue_lifetime', '5', 'd'), 5 * 86400);
  assert.equal(parseTime('maximal_queue_lifetime', '5h', 'd'), 5 * 3600);
  assert.equal(parseTime('smtpd_timeout', '300s', 's'), 300);
  assert.equal(parseTime('x', '2w', 's'), 2 * 604800);
  assert.equal(parseTime('x', '3m', 's'), 180);
  assert.throws(() => parseTime('smtpd_timeout', '10x', 's'), /^ValueError|invalid smtpd_timeout value "10x": bad time value or unit/);
  assert.throws(() => parseTime('smtpd_timeout', '-1s', 's'), /bad time value or unit/);
  assert.throws(() => parseTime('smtpd_timeout', '0', 's', 1), { message: 'invalid smtpd_timeout value "0": expected at least 1s' });
});

test('values: sizes are plain byte counts', () => {
  assert.equal(parseSize('message_size_limit', '10240000'), 10240000);
  assert.throws(() => parseSize('message_size_limit', '10M'), { message: 'invalid message_size_limit value "10M": expected a number of bytes (no unit)' });
});

test('values: every bad value gets its message', () => {
  const cases: [keyof typeof PARAMS, string, string][] = [
    ['smtpd_tls_security_level', 'maybe', 'invalid smtpd_tls_security_level value "maybe": expected none, may or encrypt'],
    ['smtp_tls_security_level', 'strict', 'invalid smtp_tls_security_level value "strict": expected none, may, encrypt, dane, dane-only, fingerprint, verify or secure'],
    ['smtpd_helo_required', 'maybe', 'invalid smtpd_helo_required value "maybe": expected yes or no'],
    ['smtpd_recipient_limit', 'lots', 'invalid smtpd_recipient_limit value "lots": expected a number'],
    ['smtpd_recipient_limit', '0', 'invalid smtpd_recipient_limit value "0": expected at least 1'],
    ['smtpd_client_ipv6_prefix_length', '129', 'invalid smtpd_client_ipv6_prefix_length value "129": expected at most 128'],
    ['message_size_limit', '-5', 'invalid message_size_limit value "-5": expected a number of bytes (no unit)'],
    ['smtp_address_preference', 'ipv5', 'invalid smtp_address_preference value "ipv5": expected ipv6, ipv4 or any'],
    ['inet_protocols', 'ipv4, ipx', 'invalid inet_protocols value "ipx": expected all, ipv4 or ipv6'],
    ['smtpd_forbid_bare_newline', 'maybe', 'invalid smtpd_forbid_bare_newline value "maybe": expected normalize, note, yes, reject or no'],
    ['alias_maps', 'hash:/etc/aliases /etc/aliases2', 'invalid alias_maps value "/etc/aliases2": expected type:table (for example texthash:/etc/postfix/file)'],
    ['notify_classes', 'resource, bogus', 'invalid notify_classes value "bogus": expected bounce, 2bounce, data, delay, policy, protocol, resource or software'],
  ];
  for (const [name, text, message] of cases) {
    assert.throws(() => parseValue(name, PARAMS[name], text), (e: unknown) => e instanceof ValueError && e.message === message, `${name} = ${text}`);
  }
});

test('values: enums accept their values; cipher grades ignore case; smtpd maps verify to encrypt with a warning', () => {
  assert.equal(parseValue('smtpd_tls_security_level', PARAMS.smtpd_tls_security_level, ''), '');
  assert.equal(parseValue('smtpd_tls_ciphers', PARAMS.smtpd_tls_ciphers, 'HIGH'), 'high');
  const w: string[] = [];
  assert.equal(parseValue('smtpd_tls_security_level', PARAMS.smtpd_tls_security_level, 'verify', (t) => w.push(t)), 'encrypt');
  assert.deepEqual(w, ['smtpd_tls_security_level: unsupported TLS level "verify", using "encrypt"']);
  assert.equal(choices(['', 'a']), 'a');
  assert.equal(parseValue('smtpd_forbid_bare_newline', PARAMS.smtpd_forbid_bare_newline, 'yes'), 'normalize');
  assert.equal(parseValue('smtpd_forbid_bare_newline', PARAMS.smtpd_forbid_bare_newline, 'Reject'), 'reject');
});

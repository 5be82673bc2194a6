import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { paramsFrom } from '../index.js';
import { type AccessKind, type AccessOptions, accessKeys, accessLookup, accessOptionsFrom, openTable } from './index.js';

const FIXTURES = join(import.meta.dirname, '..', '..', '..', '..', 'test', 'fixtures', 'tables');

const keys = (kind: AccessKind, key: string, opts: AccessOptions = {}): string[] => accessKeys(kind, key, opts).map((k) => k.key);

test('access: the access(5) EXAMPLE — 1.2.3.4 is OK, the rest of 1.2.3.0/24 is rejected', () => {
  const table = openTable(`hash:${join(FIXTURES, 'access')}`);
  assert.equal(accessLookup(table, 'client', '1.2.3.4'), 'OK');
  assert.equal(accessLookup(table, 'client', '1.2.3.5'), 'REJECT');
  assert.equal(accessLookup(table, 'client', 'host.example.com[1.2.3.77]'), 'REJECT');
  assert.equal(accessLookup(table, 'client', '1.2.4.1'), undefined);
  assert.equal(accessLookup(table, 'client', '::ffff:1.2.3.4'), 'OK');
});

test('access: email address order is user@domain, domain, parents, user@ (parent_domain_matches_subdomains default)', () => {
  assert.deepEqual(keys('address', 'user@sub.example.com'), ['user@sub.example.com', 'sub.example.com', 'example.com', 'com', 'user@']);
});

test('access: with .domain style (smtpd_access_maps not in parent_domain_matches_subdomains) parents are .example.com', () => {
  assert.deepEqual(keys('address', 'user@sub.example.com', { parentDomainMatchesSubdomains: false }), ['user@sub.example.com', 'sub.example.com', '.example.com', '.com', 'user@']);
  assert.deepEqual(keys('domain', 'a.b.example', { parentDomainMatchesSubdomains: false }), ['a.b.example', '.b.example', '.example']);
});

test('access: EMAIL ADDRESS EXTENSION order is user+foo@domain, user@domain, domain, user+foo@, user@', () => {
  assert.deepEqual(keys('address', 'user+foo@domain', { recipientDelimiter: '+' }), ['user+foo@domain', 'user@domain', 'domain', 'user+foo@', 'user@']);
  // A delimiter set (Postfix 2.11+): the first delimiter character found splits.
  assert.deepEqual(keys('address', 'a-b+c@d', { recipientDelimiter: '+-' }), ['a-b+c@d', 'a@d', 'd', 'a-b+c@', 'a@']);
  // No delimiter configured: no stripping.
  assert.deepEqual(keys('address', 'user+foo@domain'), ['user+foo@domain', 'domain', 'user+foo@']);
});

test('access: localparts Postfix never splits (postmaster, MAILER-DAEMON, owner-*, *-request, empty base)', () => {
  const o: AccessOptions = { recipientDelimiter: '+-' };
  for (const addr of ['MAILER-DAEMON@d', 'owner-list@d', 'list-request@d', '+foo@d', 'double-bounce@d']) {
    assert.equal(accessKeys('address', addr, o)[1]?.key, 'd', addr);
  }
  assert.equal(accessKeys('address', 'owner-list@d', { recipientDelimiter: '-', ownerRequestSpecial: false })[1]?.key, 'owner@d');
  // Only the whole localpart is special: postmaster+x is split like any other.
  assert.equal(accessKeys('address', 'postmaster+x@d', o)[1]?.key, 'postmaster@d');
});

test('access: the null sender <> and other keys without @ are looked up once', () => {
  assert.deepEqual(keys('address', '<>'), ['<>']);
});

test('access: domains try parents; numerical hostnames are looked up once', () => {
  assert.deepEqual(keys('domain', 'mail.example.com'), ['mail.example.com', 'example.com', 'com']);
  assert.deepEqual(keys('domain', '192.0.2.1'), ['192.0.2.1']);
  assert.deepEqual(keys('domain', ''), []);
});

test('access: client hostname and parents come before the address and its networks', () => {
  assert.deepEqual(keys('client', 'mail.example.com[192.0.2.77]'), ['mail.example.com', 'example.com', 'com', '192.0.2.77', '192.0.2', '192.0', '192']);
  assert.deepEqual(keys('client', 'unknown[192.0.2.77]'), ['unknown', '192.0.2.77', '192.0.2', '192.0', '192']);
});

test('access: IPv6 client networks truncate the compressed form at ":" (access(5) net:work:addr:ess)', () => {
  assert.deepEqual(keys('client', '2001:db8:1:2:3:4:5:6'), [
    '2001:db8:1:2:3:4:5:6',
    '2001:db8:1:2:3:4:5',
    '2001:db8:1:2:3:4',
    '2001:db8:1:2:3',
    '2001:db8:1:2',
    '2001:db8:1',
    '2001:db8',
    '2001',
  ]);
  // Canonical (inet_ntop) form first, as Postfix prints the client address.
  assert.deepEqual(keys('client', '[2001:DB8:0:0:0:0:0:1]'), ['2001:db8::1', '2001:db8:', '2001:db8', '2001']);
});

test('access: pattern tables see only the whole key, fixed tables also the partial keys', () => {
  const hash = openTable('inline:{ {example.com = REJECT domain}, {user@ = REJECT user}, {192.0.2 = REJECT net} }');
  const re = openTable('regexp:{ {/^example\\.com$/ REJECT re-domain}, {/^user@example\\.com$/ OK re-full} }');
  const cidr = openTable('cidr:{ {192.0.2.0/24 REJECT cidr} }');
  assert.equal(accessLookup(hash, 'address', 'user@sub.example.com'), 'REJECT domain');
  assert.equal(accessLookup(re, 'address', 'user@sub.example.com'), undefined);
  assert.equal(accessLookup(re, 'address', 'user@example.com'), 'OK re-full');
  assert.equal(accessLookup(hash, 'address', 'user@other.test'), 'REJECT user');
  assert.equal(accessLookup(cidr, 'client', 'host.example[192.0.2.9]'), 'REJECT cidr');
  assert.equal(accessLookup(hash, 'client', 'host.other[192.0.2.9]'), 'REJECT net');
  // A regexp table tried with the IPv4 network keys would match /^192/; it only sees the full address.
  const re2 = openTable('regexp:{ {/^192\\.0\\.2$/ never} }');
  assert.equal(accessLookup(re2, 'client', '192.0.2.9'), undefined);
});

test('access: several tables are searched key by key (every table for a key, then the next key)', () => {
  const first = openTable('inline:{ example.com=from-first }');
  const second = openTable('inline:{ user@example.com=from-second }');
  assert.equal(accessLookup([first, second], 'address', 'user@example.com'), 'from-second');
  assert.equal(accessLookup([first, second], 'address', 'other@example.com'), 'from-first');
});

test('access: DUNNO is returned like any value, so the caller stops searching shorter keys', () => {
  const t = openTable('inline:{ 1.2.3.4=DUNNO, 1.2.3=REJECT }');
  assert.equal(accessLookup(t, 'client', '1.2.3.4'), 'DUNNO');
  assert.equal(accessLookup(t, 'client', '1.2.3.5'), 'REJECT');
});

test('access: options come from main.cf parameters (parent_domain_matches_subdomains, recipient_delimiter, ...)', () => {
  const base = { recipient_delimiter: '+', owner_request_special: true, double_bounce_sender: 'double-bounce' };
  const dflt = accessOptionsFrom({ ...base, parent_domain_matches_subdomains: ['debug_peer_list', 'smtpd_access_maps'] });
  assert.deepEqual(keys('address', 'u+x@a.b', dflt), ['u+x@a.b', 'u@a.b', 'a.b', 'b', 'u+x@', 'u@']);
  const dotted = accessOptionsFrom({ ...base, parent_domain_matches_subdomains: [] });
  assert.deepEqual(keys('address', 'u+x@a.b', dotted), ['u+x@a.b', 'u@a.b', 'a.b', '.b', 'u+x@', 'u@']);
});

test('access: Postfix 3.7 defaults from a main.cf — parent domains match, no extension stripping', () => {
  const o = accessOptionsFrom(paramsFrom('recipient_delimiter = +\n'));
  assert.deepEqual(keys('address', 'u+x@a.b', o), ['u+x@a.b', 'u@a.b', 'a.b', 'b', 'u+x@', 'u@']);
  assert.deepEqual(keys('address', 'u+x@a.b', accessOptionsFrom(paramsFrom(''))), ['u+x@a.b', 'a.b', 'b', 'u+x@']);
});

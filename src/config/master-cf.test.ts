// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${name}` is Postfix's macro syntax in these strings, not a template.
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../errors.js';
import { formatMasterEntry, inetListen, parseMasterCf, resolvePort } from './master-cf.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const F = '/etc/postern/master.cf';

test('master.cf: fields, -o overrides in every spelling, continuation lines', () => {
  const text = [
    'smtp      inet  n       -       y       -       -       smtpd',
    'submission inet n - y - - smtpd -v',
    '  -o syslog_name=postfix/submission',
    '  -osmtpd_tls_security_level=encrypt',
    '  -o { smtpd_client_restrictions = permit_sasl_authenticated, reject }',
    'dovecot   unix  -       n       n       -       -       pipe',
    '  flags=DRhu user=vmail argv=/usr/lib/dovecot/deliver -d ${recipient} {a b}',
  ].join('\n');
  const [smtp, sub, dove] = parseMasterCf(text, F);
  assert.equal(smtp.name, 'smtp');
  assert.deepEqual(smtp.fields, ['n', '-', 'y', '-', '-']);
  assert.equal(smtp.command, 'smtpd');
  assert.equal(sub.line, 2);
  assert.deepEqual(sub.overrides, [
    { name: 'syslog_name', value: 'postfix/submission', line: 3 },
    { name: 'smtpd_tls_security_level', value: 'encrypt', line: 4 },
    { name: 'smtpd_client_restrictions', value: 'permit_sasl_authenticated, reject', line: 5 },
  ]);
  assert.deepEqual(sub.args, ['-v']);
  assert.deepEqual(dove.args, ['flags=DRhu', 'user=vmail', 'argv=/usr/lib/dovecot/deliver', '-d', '${recipient}', 'a b']);
});

test('master.cf: malformed entries name the file and line', () => {
  const bad: [string, RegExp][] = [
    ['smtp inet n - y - -', /line 1: bad field count/],
    ['smtp tcp n - y - - smtpd', /line 1: invalid type field "tcp"/],
    ['smtp inet x - y - - smtpd', /line 1: invalid private field "x"/],
    ['smtp inet n - y 1x - smtpd', /line 1: invalid wakeup field "1x"/],
    ['smtp inet n - y - many smtpd', /line 1: invalid maxproc field "many"/],
    ['# c\nsmtp inet n - y - - smtpd -o', /line 2: option -o requires/],
    ['smtp inet n - y - - smtpd\n  -o a=b\n  -o { c }', /line 3: -o c: missing '=' after attribute name/],
    ['smtp inet n - y - - smtpd -o novalue', /line 1: -o novalue: missing '=' after attribute name/],
  ];
  for (const [text, re] of bad) assert.throws(() => parseMasterCf(text, F), (e: unknown) => e instanceof ConfigError && re.test(e.message), text);
});

test('master.cf: service names resolve to listen addresses and ports', () => {
  const at = { file: F, line: 1 };
  assert.deepEqual(inetListen({ ...at, name: 'smtp' }), { host: null, port: 25 });
  assert.deepEqual(inetListen({ ...at, name: '25' }), { host: null, port: 25 });
  assert.deepEqual(inetListen({ ...at, name: 'submission' }), { host: null, port: 587 });
  assert.deepEqual(inetListen({ ...at, name: 'smtps' }), { host: null, port: 465 });
  assert.deepEqual(inetListen({ ...at, name: 'submissions' }), { host: null, port: 465 });
  assert.deepEqual(inetListen({ ...at, name: 'imaps' }), { host: null, port: 993 });
  assert.deepEqual(inetListen({ ...at, name: '127.0.0.1:2525' }), { host: '127.0.0.1', port: 2525 });
  assert.deepEqual(inetListen({ ...at, name: '[::1]:2525' }), { host: '::1', port: 2525 });
  assert.deepEqual(inetListen({ ...at, name: '192.0.2.1:smtp' }), { host: '192.0.2.1', port: 25 });
  assert.equal(resolvePort('imap'), 143);
  assert.throws(() => inetListen({ ...at, name: 'no-such-service-xyz' }), { message: `${F}, line 1: unknown service: no-such-service-xyz/tcp in "no-such-service-xyz"` });
  assert.throws(() => inetListen({ ...at, name: '70000' }), /unknown service: 70000\/tcp/);
});

test('master.cf: postconf -M and -Mf layout of the seed master.cf (as Postfix 3.7.11 prints it)', () => {
  const dir = join(ROOT, 'test', 'fixtures', 'config', 'seed');
  const entries = parseMasterCf(readFileSync(join(dir, 'master.cf'), 'utf8'), join(dir, 'master.cf'));
  assert.equal(entries.map((e) => formatMasterEntry(e)).join(''), readFileSync(join(dir, 'postconf-M.txt'), 'utf8'));
  assert.equal(entries.map((e) => formatMasterEntry(e, true)).join(''), readFileSync(join(dir, 'postconf-Mf.txt'), 'utf8'));
});

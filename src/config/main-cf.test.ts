// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${name}` is Postfix's macro syntax in these strings, not a template.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../errors.js';
import { editMainCf, parseMainCf } from './main-cf.js';

const F = '/etc/postern/main.cf';

test('main.cf: logical lines, continuation by leading whitespace, comments only as whole lines', () => {
  const text = [
    '# comment',
    'mydestination = $myhostname,',
    '# a comment inside the continuation does not end it',
    '',
    '   localhost # not a comment',
    '\tlocalhost.localdomain',
    'myhostname=mx.example.com   ',
    '  # indented comment line',
    'smtpd_banner = a    b',
  ].join('\n');
  const { settings, warnings } = parseMainCf(text, F);
  assert.deepEqual(warnings, []);
  const md = settings.get('mydestination');
  assert.equal(md?.value, '$myhostname,   localhost # not a comment\tlocalhost.localdomain');
  assert.equal(md?.line, 2);
  assert.equal(settings.get('myhostname')?.value, 'mx.example.com');
  assert.equal(settings.get('myhostname')?.line, 7);
  assert.equal(settings.get('smtpd_banner')?.value, 'a    b');
});

test('main.cf: CRLF line ends, a later definition wins with Postfix\'s warning', () => {
  const { settings, warnings } = parseMainCf('relayhost = [a]\r\nrelayhost = [b]\r\nrelayhost = [b]\r\n', F);
  assert.equal(settings.get('relayhost')?.value, '[b]');
  assert.equal(settings.get('relayhost')?.line, 3);
  assert.deepEqual(warnings, [`${F}, line 2: overriding earlier entry: relayhost=[a]`]);
});

test('main.cf: text before any parameter that starts with whitespace is dropped with a warning', () => {
  const { settings, warnings } = parseMainCf('  stray = 1\nbiff = no\n', F);
  assert.deepEqual([...settings.keys()], ['biff']);
  assert.deepEqual(warnings, [`${F}: logical line must not start with whitespace: "  stray = 1"`]);
});

test('main.cf: a line without = is a ConfigError naming file and line', () => {
  assert.throws(
    () => parseMainCf('biff = no\n\nthis is not a setting\n', F),
    (e: unknown) => e instanceof ConfigError && e.message === `${F}, line 3: missing '=' after attribute name: "this is not a setting"` && e.line === 3,
  );
  assert.throws(() => parseMainCf('= value\n', F), { message: `${F}, line 1: missing attribute name: "= value"` });
});

test('main.cf: postconf -e replaces a logical line in place, keeps comments, appends new names sorted', () => {
  const text = '# head\nmyhostname = old\nmydestination = a,\n  # kept comment\n  b\n# tail\nbiff = yes\n';
  const out = editMainCf(
    text,
    new Map([
      ['mydestination', '$myhostname, localhost'],
      ['zeta', '1'],
      ['alpha', '2'],
    ]),
  );
  assert.equal(out, '# head\nmyhostname = old\nmydestination = $myhostname, localhost\n  # kept comment\n# tail\nbiff = yes\nalpha = 2\nzeta = 1\n');
});

test('main.cf: postconf -X removes every definition with its continuation lines', () => {
  const out = editMainCf('a = 1\nbiff = yes\n  more\na = 2\nc = 3', new Map([['a', null], ['biff', null], ['nothere', null]]));
  assert.equal(out, 'c = 3\n');
});

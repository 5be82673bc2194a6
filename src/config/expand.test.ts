// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${name}` is Postfix's macro syntax in these strings, not a template.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { PosternError } from '../errors.js';
import { expand, parseCompatibilityLevel, referencedNames } from './expand.js';

function ctx(vars: Record<string, string>, undef: string[] = []) {
  return { lookup: (n: string) => (Object.hasOwn(vars, n) ? vars[n] : undefined), onUndefined: (n: string) => undef.push(n) };
}

test('expand: $name, ${name}, $(name) and $$', () => {
  const c = ctx({ a: 'A', b: '$a-$a', e: '' });
  assert.equal(expand('$a ${a} $(a) $$a $b [$e]', c), 'A A A $a A-A []');
  assert.equal(expand('x$a_y', c), 'x'); // `a_y` is the name, undefined
});

test('expand: recursive through several names; a $$ inside a value stays literal', () => {
  const c = ctx({ myhostname: 'mx.example.com', myorigin: '$myhostname', banner: '$myorigin ESMTP $$name' });
  assert.equal(expand('$banner', c), 'mx.example.com ESMTP $name');
});

test('expand: ${name?value} and ${name:value} with and without braces (Postfix 3.7 output)', () => {
  const c = ctx({ mail_name: 'Postfix', empty: '' });
  // Cases checked against `postconf -xh` 3.7.11.
  assert.equal(expand('${mail_name?{a b}:{c}}', c), 'a b');
  assert.equal(expand('${nope?x}', c), '');
  assert.equal(expand('${nope:{ y }}z', c), ' y z');
  assert.equal(expand('${mail_name?no brace}', c), 'no brace');
  assert.equal(expand('${empty?yes}${empty:no}', c), 'no');
  assert.equal(expand('${mail_name:fallback}', c), '');
  assert.equal(expand('${stress?{10}:{300}}s', c), '300s');
  assert.equal(expand('${stress?{10}:{300}}s', ctx({ stress: 'yes' })), '10s');
  assert.equal(expand('${name?{$mail_name}}', ctx({ name: 'x', mail_name: 'P' })), 'P');
});

test('expand: relational forms with numbers, strings and compatibility levels', () => {
  const c = ctx({ compatibility_level: '0', one: '1' });
  assert.equal(expand('${{$compatibility_level} <level {2} ? {subnet} : {host}}', c), 'subnet');
  assert.equal(expand('${{$compatibility_level} <level {2} ? {subnet} : {host}}', ctx({ compatibility_level: '3.6' })), 'host');
  assert.equal(expand('${{3.10} >level {3.9} ? {newer}}', c), 'newer');
  assert.equal(expand('${{1} < {10} ? {num} : {lex}}', c), 'num');
  assert.equal(expand('${{b} < {a} ? {yes} : {no}}', c), 'no');
  assert.equal(expand('${{abc}=={abc}}|${{a} != {a}}|', c), 'true||');
  assert.equal(expand('${{$one} == {1} ? {one} : {other}}', c), 'one');
});

test('expand: undefined names expand to nothing and are reported when used', () => {
  const undef: string[] = [];
  assert.equal(expand('a${nope}b$nope2${nope3?x}', ctx({}, undef)), 'ab');
  assert.deepEqual(undef, ['nope', 'nope2']);
});

test('expand: a reference loop fails with "unreasonable macro call nesting"', () => {
  const c = ctx({ myorigin: '$mydomain', mydomain: '$myorigin' });
  assert.throws(() => expand('$myorigin', c), (e: unknown) => e instanceof PosternError && /^unreasonable macro call nesting: "myorigin"$/.test(e.message));
  assert.throws(() => expand('$a', ctx({ a: 'x $a' })), /unreasonable macro call nesting: "a"/);
});

test('expand: syntax errors are reported with Postfix wording', () => {
  const c = ctx({});
  assert.throws(() => expand('$mail_name$ x', c), /^PosternError|empty macro name: "\$mail_name\$ x"/);
  assert.throws(() => expand('${abc', c), /truncated macro reference: "\$\{abc"/);
  assert.throws(() => expand('${{a} =~ {b}}', c), /"==" or "!=" or "<" or "<=" or ">=" or ">" expected/);
  assert.throws(() => expand('${{a} == b}', c), /"\{expression\}" expected/);
  assert.throws(() => expand('${{a} == {b} x}', c), /"\?" or ":" expected/);
  assert.throws(() => expand('${a b}', c), /attribute name syntax error/);
  assert.throws(() => expand('${{a} ==bogus {b}}', c), /bad operator suffix/);
  assert.throws(() => expand('${{x} <level {2}}', c), /bad compatibility level: "x"/);
  assert.throws(() => expand('${a?{x}y}', c), /":" expected/);
});

test('expand: referencedNames finds names in every branch, not $$ escapes', () => {
  assert.deepEqual(referencedNames('$a ${b?{$c}:{$d}} $$e ${{$f} == {1}} $(g)').sort(), ['a', 'b', 'c', 'd', 'f', 'g']);
});

test('expand: compatibility levels parse as N, N.N, N.N.N', () => {
  assert.deepEqual(parseCompatibilityLevel('3.6'), [3, 6, 0]);
  assert.deepEqual(parseCompatibilityLevel('2'), [2, 0, 0]);
  assert.equal(parseCompatibilityLevel('3.x'), null);
});

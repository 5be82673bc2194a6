import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { extractBraced, inlineRules, logicalLines, splitBraceList } from './text.js';

test('text: logical lines as postmap reads them (comments, blank lines, continuations, first line number)', () => {
  const warnings: string[] = [];
  const src = ['# header', 'a 1', '', '  # comment between', '   continued', 'b 2\r', '\t', 'c 3', '  more', '# tail'].join('\n');
  assert.deepEqual(logicalLines(`${src}\n`, 'f', warnings), [
    { text: 'a 1   continued', line: 2 },
    { text: 'b 2\r', line: 6 },
    { text: 'c 3  more', line: 8 },
  ]);
  assert.deepEqual(warnings, []);
  // No final newline: the last line still counts.
  assert.deepEqual(logicalLines('x y', 'f', warnings), [{ text: 'x y', line: 1 }]);
});

test('text: a logical line may not start with whitespace (Postfix warns and drops it)', () => {
  const warnings: string[] = [];
  const long = ` ${'x'.repeat(40)}`;
  assert.deepEqual(logicalLines(`${long}\n  and more\nkey value\n`, '/etc/postfix/t', warnings), [{ text: 'key value', line: 3 }]);
  assert.deepEqual(warnings, [`/etc/postfix/t: logical line must not start with whitespace: "${long.slice(0, 30)}..."`]);
});

test('text: brace lists split on commas and blanks but keep { } groups whole', () => {
  assert.deepEqual(splitBraceList('a, b  c,{d e, f},, {g {h i}} j'), ['a', 'b', 'c', '{d e, f}', '{g {h i}}', 'j']);
  assert.deepEqual(splitBraceList('  '), []);
});

test('text: extpar — braces stripped, errors in Postfix words', () => {
  assert.deepEqual(extractBraced('{ a b }', true), { text: 'a b' });
  assert.deepEqual(extractBraced('{ a b }', false), { text: ' a b ' });
  assert.equal(extractBraced('{a', true).error, `missing '}' in "{a"`);
  assert.equal(extractBraced('{a}b', true).error, `syntax error after '}' in "{a}b"`);
  assert.equal(extractBraced('a', true).error, `no '{' at start of text in "a"`);
});

test('text: inline rules become one rule per line', () => {
  assert.deepEqual(inlineRules('{ {/a/ b}, { /c d/ e f } }'), { lines: ['/a/ b', '/c d/ e f'] });
  assert.equal(inlineRules('{ {/a/ b}, {/x/ y }').error, `missing '}' in "{ {/a/ b}, {/x/ y }"`);
});

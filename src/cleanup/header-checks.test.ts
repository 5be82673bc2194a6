import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LookupTable } from '../config/tables/index.js';
import { HeaderChecks } from './header-checks.js';

/** A table answering exact keys. */
const table = (entries: Record<string, string>): LookupTable => ({ spec: 'test:table', get: (k) => entries[k] });
const field = (s: string): Buffer => Buffer.from(`${s}\r\n`, 'utf8');

test('header_checks: a folded field is looked up with its lines joined by LF', () => {
  const hc = new HeaderChecks([table({ 'Subject: a\n\tb': 'WARN folded' })], () => {});
  assert.equal(hc.check(Buffer.from('Subject: a\r\n\tb\r\n')), null);
  assert.deepEqual(hc.events, [{ action: 'warning', context: 'header', content: 'Subject: a\n\tb', text: 'folded' }]);
});

test('header_checks: REPLACE and PREPEND need header text; bad ones warn and keep the field', () => {
  const warnings: string[] = [];
  const hc = new HeaderChecks([table({ 'X-A: 1': 'REPLACE not a header', 'X-B: 1': 'PREPEND', 'X-C: 1': 'REPLACE X-C: 2', 'X-D: 1': 'FROB it' })], (w) => warnings.push(w));
  assert.equal(hc.check(field('X-A: 1')), null);
  assert.equal(hc.check(field('X-B: 1')), null);
  assert.deepEqual(hc.check(field('X-C: 1')), { drop: false, replace: 'X-C: 2' });
  assert.equal(hc.check(field('X-D: 1')), null);
  assert.deepEqual(warnings, [
    'bad REPLACE header text "not a header" in header_checks map -- need "headername: headervalue"',
    'PREPEND action without text in header_checks map',
    'unknown command in header_checks map: FROB it',
  ]);
});

test('header_checks: REJECT takes a DSN from its text (4.x.x defers); after REJECT or DISCARD nothing more is checked', () => {
  const hc = new HeaderChecks([table({ 'Subject: x': 'REJECT 4.7.0 later', 'X-After: 1': 'IGNORE' })], () => {});
  hc.check(field('Subject: x'));
  assert.equal(hc.reason, '4.7.0 later');
  assert.equal(hc.check(field('X-After: 1')), null, 'checks ended');
  const d = new HeaderChecks([table({ 'Subject: y': 'DISCARD', 'X-After: 1': 'IGNORE' })], () => {});
  d.check(field('Subject: y'));
  assert.equal(d.discard, true);
  assert.equal(d.check(field('X-After: 1')), null);
  const plain = new HeaderChecks([table({ 'Subject: z': 'REJECT' })], () => {});
  plain.check(field('Subject: z'));
  assert.equal(plain.reason, '5.7.1 message content rejected');
});

test('body_checks: an empty line matches nothing; a table that could not be opened is a lookup error', () => {
  const hc = new HeaderChecks([], () => {}, [table({ '': 'REJECT empty', 'x': 'IGNORE' })]);
  assert.equal(hc.checkBody(Buffer.alloc(0)), null);
  assert.equal(hc.reason, null);
  assert.deepEqual(hc.checkBody(Buffer.from('x')), { drop: true });
  const broken = new HeaderChecks([], () => {}, [null]);
  assert.equal(broken.checkBody(Buffer.from('anything')), null);
  assert.equal(broken.lookupError, true);
  assert.equal(broken.lookupErrorMap, 'body_checks');
});

import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BEGIN_MARKER, END_MARKER, paramsMarkdown, replaceParamsBlock } from './doc.js';
import { PARAMS } from './index.js';

/** Repo root from dist/src/config/params/. */
const ROOT = join(import.meta.dirname, '..', '..', '..', '..');

test('docs: the markdown has one row per parameter, grouped by daemon, pipes escaped', () => {
  const md = paramsMarkdown();
  const rows = md.split('\n').filter((l) => l.startsWith('| `'));
  assert.equal(rows.length, Object.keys(PARAMS).length);
  assert.ok(md.includes('### smtpd (SMTP server)\n\n| name | type | default | daemon | doc |\n|---|---|---|---|---|\n'));
  assert.ok(md.includes('| `smtpd_tls_security_level` | enum: (empty), none, may, encrypt | (empty) | smtpd |'));
  assert.ok(md.includes('| `maximal_queue_lifetime` | time (bare number: d) | `5d` | qmgr |'));
  for (const r of rows) assert.equal(r.replace(/\\\|/g, '').split('|').length, 7, r);
});

test('docs: replaceParamsBlock rewrites only the marked block', () => {
  const readme = `# T\n\nbefore\n${BEGIN_MARKER}\nold\n${END_MARKER}\nafter\n`;
  assert.equal(replaceParamsBlock(readme, 'NEW\n'), `# T\n\nbefore\n${BEGIN_MARKER}\nNEW\n${END_MARKER}\nafter\n`);
  assert.equal(replaceParamsBlock('no markers'), null);
  assert.equal(replaceParamsBlock(`${END_MARKER}${BEGIN_MARKER}`), null);
});

test('docs: README.md configuration section matches the registry (run `npm run docs` to update)', () => {
  let readme: string;
  try {
    readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  } catch {
    assert.fail('README.md is missing: add it with the params markers, then run `npm run docs`');
  }
  const expected = replaceParamsBlock(readme);
  assert.ok(expected !== null, `README.md has no ${BEGIN_MARKER} ... ${END_MARKER} block: add the markers and run \`npm run docs\``);
  assert.ok(expected === readme, 'README.md configuration section is out of date with the parameter registry: run `npm run docs`');
});

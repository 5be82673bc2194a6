import * as assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ConfigError } from '../../errors.js';
import { openTable } from './index.js';

const FIXTURES = join(import.meta.dirname, '..', '..', '..', '..', 'test', 'fixtures', 'tables');
const fixture = (name: string): string => join(FIXTURES, name);
let dir = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-tables-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, text: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, text);
  return p;
}

function throwsConfig(fn: () => unknown, file: string, line: number, detail: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.file, file);
    assert.equal(err.line, line);
    if (typeof detail === 'string') assert.equal(err.detail, detail);
    else assert.match(err.detail, detail);
    return true;
  });
}

test('tables: hash:, btree:, lmdb:, dbm:, cdb: and texthash: read the postmap text source', () => {
  for (const type of ['hash', 'btree', 'lmdb', 'dbm', 'sdbm', 'cdb', 'texthash', 'proxy:hash']) {
    const t = openTable(`${type}:${fixture('virtual')}`, undefined, { duplicates: 'warn' });
    assert.equal(t.kind, 'fixed');
    const cases: [string, string | undefined][] = [
      ['postmaster@example.com', 'admin@example.com'],
      ['POSTMASTER@Example.Com', 'admin@example.com'],
      // continuation lines join without the newline, keeping their leading blanks; comments inside are dropped
      ['info@example.com', 'alice@example.com,                          bob@example.com                          carol@example.com'],
      ['"two words"@example.com', 'quoted@example.com'],
      ['two words@example.com', undefined],
      ['escaped\\ key', 'value\\ kept'],
      ['@example.net', 'catchall@example.com'],
      ['trailing.example', 'value with trailing blanks'],
      ['novalue', undefined],
      ['alias:', 'this looks like an alias file'],
      ['===', 'equals'],
      ['nothere', undefined],
    ];
    for (const [key, want] of cases) assert.equal(t.get(key), want, `${type} ${key}`);
  }
});

test('tables: text source warnings use postmap wording (texthash adds "-- ignoring this line")', () => {
  const hash = openTable(`hash:${fixture('virtual')}`);
  const name = fixture('virtual');
  assert.deepEqual(hash.warnings, [
    `${name}, line 11: expected format: key whitespace value`,
    `${name}, line 12: record is in "key: value" format; is this an alias file?`,
    `${name}, line 13: duplicate entry: "info@example.com"`,
  ]);
  const th = openTable(`texthash:${name}`, undefined, { duplicates: 'warn' });
  assert.equal(th.warnings[0], `${name}, line 11: expected format: key whitespace value -- ignoring this line`);
});

test('tables: a texthash: duplicate is an error naming the table line (as Postfix daemons refuse the table)', () => {
  throwsConfig(() => openTable(`texthash:${fixture('virtual')}`), fixture('virtual'), 13, 'duplicate entry: "info@example.com"');
});

test('tables: -f style opening keeps key case', async () => {
  const p = await file('case', 'MixedCase value\n');
  assert.equal(openTable(`hash:${p}`).get('mixedcase'), 'value');
  const raw = openTable(`hash:${p}`, undefined, { fold: false });
  assert.equal(raw.get('mixedcase'), undefined);
  assert.equal(raw.get('MixedCase'), 'value');
});

test('tables: logical lines — leading whitespace at the start is dropped with a warning, unbalanced quotes ignored', async () => {
  const p = await file('odd', '   starts indented\n  # comment\nkey value\n"open quote value\n');
  const t = openTable(`hash:${p}`);
  assert.equal(t.get('key'), 'value');
  assert.deepEqual(t.warnings, [`${p}: logical line must not start with whitespace: "   starts indented"`, `${p}, line 4: unbalanced '"' in '"open quote value' -- ignoring this line`]);
});

test('tables: relative paths resolve against the config directory', async () => {
  await file('relative', 'a b\n');
  assert.equal(openTable('texthash:relative', { file: 'main.cf', line: 3, configDir: dir }).get('a'), 'b');
});

test('tables: inline: with key=value and { key = text with spaces }', () => {
  const t = openTable('inline:{ key=value, { Other = text with spaces }, empty= }');
  assert.equal(t.get('KEY'), 'value');
  assert.equal(t.get('other'), 'text with spaces');
  assert.equal(t.get('empty'), '');
  const q = openTable('inline:{ {x = text with spaces}, y=z }');
  assert.equal(q.get('x'), 'text with spaces');
  assert.equal(q.get('y'), 'z');
  assert.deepEqual([...q.entries()!], [
    ['x', 'text with spaces'],
    ['y', 'z'],
  ]);
});

test('tables: inline: syntax errors in Postfix words, at the parameter line', () => {
  const origin = { file: '/etc/postern/main.cf', line: 7 };
  const cases: [string, string][] = [
    ['inline:{a=b', 'bad syntax: "inline:{a=b"; need "inline:{name=value...}"'],
    ['inline:a=b', 'bad syntax: "inline:a=b"; need "inline:{name=value...}"'],
    ['inline:{}', 'bad syntax: "inline:{}"; need "inline:{name=value...}"'],
    ['inline:{ }', 'empty table: "inline:{ }"; need "inline:{name=value...}"'],
    ['inline:{ {a b = c d }, x=y }', `missing '=' after attribute name: "inline:{ {a b = c d }, x=y }"; need "inline:{name=value...}"`],
    ['inline:{ a=b=c, d= e }', `missing '=' after attribute name: "inline:{ a=b=c, d= e }"; need "inline:{name=value...}"`],
  ];
  for (const [spec, detail] of cases) throwsConfig(() => openTable(spec, origin), origin.file, origin.line, detail);
});

test('tables: static: answers every key, static:{ text } keeps inner blanks', () => {
  assert.equal(openTable('static:OK').get('anything'), 'OK');
  assert.equal(openTable('static:{ a b  c }').get('x'), 'a b  c');
  throwsConfig(() => openTable('static:{a b'), 'static:{a b', 0, `bad static:name syntax: missing '}' in "{a b"`);
  throwsConfig(() => openTable('static:'), 'static:', 0, 'open dictionary: expecting "type:name" form instead of "static:"');
});

test('tables: cidr: the cidr_table(5) example, negation, if/endif and skipped rules', () => {
  const t = openTable(`cidr:${fixture('client.cidr')}`);
  assert.equal(t.kind, 'pattern');
  const cases: [string, string | undefined][] = [
    ['192.168.1.1', 'OK'],
    ['192.168.1.2', 'REJECT'],
    ['2001:db8::1', 'OK'],
    ['2001:DB8:0::1', 'OK'],
    ['2001:db8::2', 'REJECT'],
    ['2001:db9::5', 'brackets-accepted'],
    ['11.0.0.1', 'not-ten'],
    ['172.16.1.5', 'not-ten'],
    ['10.1.1.1', undefined],
    ['fe80::1', undefined],
    ['[192.168.1.1]', undefined],
    ['::ffff:192.168.1.1', undefined],
    ['junk', undefined],
  ];
  for (const [key, want] of cases) assert.equal(t.get(key), want, key);
  const name = fixture('client.cidr');
  assert.deepEqual(t.warnings, [
    `cidr map ${name}, line 15: non-null host address bits in "172.16.5.5/12", perhaps you should use "172.16.0.0/12" instead: skipping this rule`,
    `cidr map ${name}, line 16: bad mask length in "1.2.3.4/33": skipping this rule`,
    `cidr map ${name}, line 17: bad address pattern: "1.2.3.x": skipping this rule`,
    `cidr map ${name}, line 18: no lookup result: skipping this rule`,
    `cidr map ${name}, line 19: ENDIF without IF: skipping this rule`,
    `cidr map ${name}, line 20: IF has no matching ENDIF`,
  ]);
  const block = openTable('cidr:{ {if 10.0.0.0/8}, {10.1.0.0/16 inner}, {endif}, {10.0.0.0/8 outer}, {if !10.0.0.0/8}, {0.0.0.0/0 other}, {endif} }');
  assert.equal(block.get('10.1.2.3'), 'inner');
  assert.equal(block.get('10.2.3.4'), 'outer');
  assert.equal(block.get('11.0.0.1'), 'other');
  assert.equal(block.get('::1'), undefined);
});

test('tables: regexp: the regexp_table(5) example, if/endif, substitution, and Postfix warnings', () => {
  const name = fixture('access.regexp');
  const t = openTable(`regexp:${name}`);
  assert.equal(t.kind, 'pattern');
  const cases: [string, string | undefined][] = [
    ['a@b@c', '550 Sender-specified routing rejected'],
    ['postmaster@example.com', 'OK'],
    ['list-outgoing@example.com', '550 Use list@example.com instead'],
    ['owner-list-outgoing@example.com', undefined],
    ['user+ext@example.com', 'extension ext of user costs $5'],
    ['casesensitive@x', undefined],
    ['CaseSensitive@x', 'case-matched'],
    ['123@abc.example', 'posix-classes'],
    ['x\\backslash', 'bracket-backslash-is-literal'],
    ['FOO.example', 'host=FOO'],
    ['ac', '[]'],
    ['abc', '[b]'],
    ['multi  line', 'joined-with-spaces'],
    ['neg-first', 'second-pattern'],
    ['neg-first-but-not-this', undefined],
    ['last', ''],
  ];
  for (const [key, want] of cases) assert.equal(t.get(key), want, key);
  const label = `regexp map ${name}`;
  assert.deepEqual(t.warnings, [
    `${label}, line 24: no replacement text: using empty string`,
    `${label}, line 25: no closing regexp delimiter "/": skipping this rule`,
    `${label}, line 26: unknown regexp option "q": skipping this rule`,
    `${label}, line 27: out of range replacement index "2": skipping this rule`,
    `${label}, line 28: $number found in negative match replacement text: skipping this rule`,
    'truncated macro reference: "${1"',
    `${label}, line 29: bad replacement syntax: skipping this rule`,
    `${label}, line 30: ignoring unrecognized request`,
    `${label}, line 31: ignoring ENDIF without matching IF`,
  ]);
});

test('tables: pcre: header checks with PCRE flags and escapes', () => {
  const t = openTable(`pcre:${fixture('header.pcre')}`);
  const cases: [string, string | undefined][] = [
    ['Subject:  Make Money Fast now', 'REJECT spam'],
    ['To: friend@public.com', 'REJECT'],
    ['To: friend@publicXcom', undefined],
    ['joe@example.org', 'user=joe domain=example.org'],
    ['X-Anchored: a.b*c', 'quoted-literal'],
    ['X-Anchored: aXbbc', undefined],
    ['lazy: abc123', 'lazy=abc digits=123'],
    ['ungreedy: abc123', 'ungreedy=abc12 digits=3'],
    ['x-extended\tyes', 'extended=yes'],
    ['x - extended yes', undefined],
    ['dollar\n', 'dollar-end'],
    ['dotall:\n', 'dotall'],
    ['nodot:\n', undefined],
    ['nodot:x', 'not-dotall'],
    ['if-block-inner', 'inner'],
    ['if-block-other', undefined],
  ];
  for (const [key, want] of cases) assert.equal(t.get(key), want, JSON.stringify(key));
  assert.deepEqual(t.warnings, []);
});

test('tables: regexp:{...} and pcre:{...} inline rules (Postfix 3.7)', () => {
  const t = openTable('pcre:{ {/^(a+)$/ got $1}, { !/^b/ not-b } }');
  assert.equal(t.get('aaa'), 'got aaa');
  assert.equal(t.get('c'), 'not-b');
  assert.equal(t.get('bcd'), undefined);
  throwsConfig(() => openTable('regexp:{ /foo/ bar }', { file: 'main.cf', line: 4 }), 'main.cf', 4, `regexp map: no '{' at start of text in "/foo/"`);
  throwsConfig(() => openTable('pcre:{ {/a/ b}, {/a++/ c} }', { file: 'main.cf', line: 9 }), 'main.cf', 9, /^pcre:\{\.\.\.\} rule 2: pcre pattern \/a\+\+\/: possessive quantifier "\+\+" is not supported/);
});

test('tables: a pattern JavaScript cannot match the same way is a ConfigError naming file and line', async () => {
  const p = await file('bad.pcre', '/ok/ fine\n# comment\n\n/(?i)mixed/ REJECT\n');
  throwsConfig(() => openTable(`pcre:${p}`), p, 4, /^pcre pattern \/\(\?i\)mixed\/: inline modifier "\(\?i\)" is not supported/);
  const r = await file('bad.regexp', '/^[0-9]+$/ ok\nif !/x\\d/\nendif\n');
  throwsConfig(() => openTable(`regexp:${r}`), r, 2, /^regexp pattern !\/x\\d\/: "\\d" is not supported/);
});

test('tables: unknown types, bad names and missing files', async () => {
  const origin = { file: '/etc/postern/main.cf', line: 12 };
  throwsConfig(() => openTable('ldap:/etc/postfix/ldap.cf', origin), origin.file, 12, 'unsupported dictionary type: ldap');
  throwsConfig(() => openTable('nosuch:x'), 'nosuch:x', 0, 'unsupported dictionary type: nosuch');
  throwsConfig(() => openTable('/etc/postfix/access', origin), origin.file, 12, 'open dictionary: expecting "type:name" form instead of "/etc/postfix/access"');
  const missing = join(dir, 'missing');
  for (const type of ['texthash', 'hash']) {
    throwsConfig(() => openTable(`${type}:${missing}`, origin), origin.file, 12, `open database ${missing}: No such file or directory`);
  }
  for (const type of ['cidr', 'regexp', 'pcre']) {
    throwsConfig(() => openTable(`${type}:${missing}`, origin), origin.file, 12, `open ${missing}: No such file or directory`);
  }
  await writeFile(`${missing}.db`, '');
  throwsConfig(
    () => openTable(`hash:${missing}`, origin),
    origin.file,
    12,
    new RegExp(`^open database ${missing}: No such file or directory \\(Postern reads the text source that postmap compiled into ${missing}\\.db`),
  );
});

import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, type TestContext, test } from 'node:test';
import { cliContext } from '../../test/harness/cli.js';
import { main } from './postmap.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'tables');
const BIN = join(ROOT, 'bin', 'postern.js');
const fixture = (name: string): string => join(FIXTURES, name);

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-postmap-'));
  await writeFile(join(dir, 'main.cf'), '');
  await writeFile(join(dir, 'master.cf'), '');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const { ctx, out, err } = cliContext(dir, { explicit: false });
  const code = await main(args, ctx);
  return { code, out: out.text(), err: err.text() };
}

test('postmap: -q prints the value and exits 0; a missing key prints nothing and exits 1', async () => {
  const found = await run(['-q', 'Postmaster@EXAMPLE.com', `hash:${fixture('virtual')}`]);
  assert.equal(found.code, 0);
  assert.equal(found.out, 'admin@example.com\n');
  const missing = await run(['-q', 'nobody@example.com', `hash:${fixture('virtual')}`]);
  assert.equal(missing.code, 1);
  assert.equal(missing.out, '');
  // The warnings postmap would print while reading the table go to stderr.
  assert.match(missing.err, /^postmap: warning: .*virtual, line 11: expected format: key whitespace value\n/);
});

test('postmap: without a type the default database type (hash) reads the text source', async () => {
  const r = await run(['-q', '1.2.3', fixture('access')]);
  assert.equal(r.code, 0);
  assert.equal(r.out, 'REJECT\n');
});

test('postmap: -q searches the tables in order and stops at the first that has the key', async () => {
  const r = await run(['-q', '192.168.1.1', `cidr:${fixture('client.cidr')}`, 'static:never']);
  assert.equal(r.out, 'OK\n');
  const s = await run(['-q', '10.1.1.1', `cidr:${fixture('client.cidr')}`, 'static:{ from static }']);
  assert.equal(s.out, 'from static\n');
  assert.equal(s.code, 0);
});

test('postmap: -q with regexp substitution and -f keeping key case', async () => {
  const r = await run(['-q', 'list-outgoing@example.com', `regexp:${fixture('access.regexp')}`]);
  assert.equal(r.out, '550 Use list@example.com instead\n');
  const folded = await run(['-q', 'KEY', 'inline:{key=v}']);
  assert.equal(folded.out, 'v\n');
  const raw = await run(['-f', '-q', 'KEY', 'inline:{key=v}']);
  assert.equal(raw.code, 1);
});

test('postmap: an empty result gets postmap\'s two warnings', async () => {
  const r = await run(['-q', 'a', 'inline:{ a= }']);
  assert.equal(r.code, 0);
  assert.equal(r.out, '\n');
  assert.equal(
    r.err,
    'postmap: warning: table inline:{ a= }: key a: empty string result is not allowed\npostmap: warning: table inline:{ a= } should return NO RESULT in case of NOT FOUND\n',
  );
});

// postmap -s prints in database (hash) order; Postern prints file order, so -s is not in the comparison below.
test('postmap: -s lists a fixed table in file order; pattern tables cannot be listed', async () => {
  const r = await run(['-s', `texthash:${fixture('access')}`]);
  assert.equal(r.code, 0);
  assert.equal(r.out, '1.2.3\tREJECT\n1.2.3.4\tOK\n');
  const re = await run(['-s', `regexp:${fixture('access.regexp')}`]);
  assert.equal(re.code, 1);
  assert.match(re.err, /postmap: fatal: table regexp:.*access\.regexp: sequence operation is not supported\n$/);
});

test('postmap: checking a table reports warnings, explains that no .db is built, exits 0', async () => {
  const r = await run([`hash:${fixture('access')}`]);
  assert.equal(r.code, 0);
  assert.equal(r.out, '');
  assert.equal(r.err, `postmap: Postern reads hash:${fixture('access')} from its text source ${fixture('access')}; no database file is built or needed\n`);
  const cidr = await run([`cidr:${fixture('client.cidr')}`]);
  assert.equal(cidr.code, 0);
  assert.equal(cidr.err.split('\n').filter((l) => l.startsWith('postmap: warning: cidr map')).length, 6);
});

test('postmap: a table Postern cannot use is fatal, exit 1', async () => {
  const p = join(dir, 'bad.pcre');
  await writeFile(p, '/ok/ fine\n/a++/ possessive\n');
  const r = await run([`pcre:${p}`]);
  assert.equal(r.code, 1);
  assert.equal(r.err, `postmap: fatal: ${p}, line 2: pcre pattern /a++/: possessive quantifier "++" is not supported (JavaScript RegExp would match it differently)\n`);
  const missing = await run(['-q', 'x', `texthash:${join(dir, 'nonexist')}`]);
  assert.equal(missing.code, 1);
  assert.equal(missing.err, `postmap: fatal: open database ${join(dir, 'nonexist')}: No such file or directory\n`);
  const type = await run(['-q', 'x', 'nosuch:/x']);
  assert.equal(type.err, 'postmap: fatal: unsupported dictionary type: nosuch\n');
});

test('postmap: usage errors as postmap prints them', async () => {
  const usage = 'postmap: fatal: usage: postmap [-bfFhimnNoprsuUvw] [-c config_dir] [-d key] [-q key] [map_type:]file...\n';
  assert.deepEqual(await run([]), { code: 1, out: '', err: usage });
  assert.deepEqual(await run(['-q']), { code: 1, out: '', err: usage });
  assert.deepEqual(await run(['-Z', 'x']), { code: 1, out: '', err: usage });
  assert.deepEqual(await run(['-q', 'a', '-s', 'x']), { code: 1, out: '', err: 'postmap: fatal: specify only one of -d -i -q or -s\n' });
  assert.deepEqual(await run(['-d', 'a', 'x']), { code: 1, out: '', err: 'postmap: fatal: Postern does not support deleting entries (-d): edit the text file instead\n' });
  // -c and the database-building options are accepted.
  const r = await run(['-c', dir, '-w', '-r', '-qa', 'inline:{a=b}']);
  assert.deepEqual(r, { code: 0, out: 'b\n', err: '' });
});

test('postmap: -q - answers each key from standard input as "key<TAB>value" (over the CLI)', () => {
  const r = spawnSync(process.execPath, [BIN, 'postmap', '-q', '-', `hash:${fixture('access')}`, 'inline:{ other=from-inline }'], {
    input: '1.2.3.4\nnothing\nother\n1.2.3\n',
    encoding: 'utf8',
  });
  assert.equal(r.status, 0);
  assert.equal(r.stdout, '1.2.3.4\tOK\nother\tfrom-inline\n1.2.3\tREJECT\n');
  const none = spawnSync(process.execPath, [BIN, 'postmap', '-q', '-', `hash:${fixture('access')}`], { input: 'x\n', encoding: 'utf8' });
  assert.equal(none.status, 1);
  assert.equal(none.stdout, '');
});

/** Both postmaps on the same table and input, from the fixtures directory (relative names, as an admin types them). */
function both(t: TestContext, args: string[], input?: string): { postfix: ReturnType<typeof spawnSync>; postern: ReturnType<typeof spawnSync> } | null {
  const opts = { cwd: FIXTURES, encoding: 'utf8' as const, env: { ...process.env, MAIL_CONFIG: dir }, ...(input === undefined ? {} : { input }) };
  const postfix = spawnSync('postmap', args, opts);
  if (postfix.error !== undefined) {
    if (process.env.CI === 'true') assert.fail(`postmap is required in CI: ${postfix.error.message}`);
    t.skip(`real postmap not installed (${postfix.error.message}); comparison skipped`);
    return null;
  }
  const postern = spawnSync(process.execPath, [BIN, 'postmap', ...args], opts);
  return { postfix, postern };
}

test('postmap: answers, warnings and exit codes are identical to real postmap on the fixture tables', (t) => {
  const batches: [string, string[]][] = [
    ['texthash:virtual', ['postmaster@example.com', 'POSTMASTER@EXAMPLE.COM', 'info@example.com', '"two words"@example.com', 'two words@example.com', 'escaped\\ key', '@example.net', 'trailing.example', 'novalue', 'alias:', '===', 'nothere']],
    ['cidr:client.cidr', ['192.168.1.1', '192.168.1.2', '2001:db8::1', '2001:DB8:0::1', '2001:db8::2', '2001:db9::5', '11.0.0.1', '10.1.1.1', '172.16.1.5', '172.16.2.2', '9.9.9.9', '[192.168.1.1]', '::ffff:192.168.1.1', 'fe80::1', 'junk']],
    [
      'regexp:access.regexp',
      ['a@b@c', 'postmaster@x', 'list-outgoing@example.com', 'owner-list-outgoing@example.com', 'user+ext@example.com', 'casesensitive@x', 'CaseSensitive@x', '123@abc.example', 'x.backslash', 'x\\backslash', 'foo.example', 'ac', 'abc', 'multi  line', 'neg-first', 'neg-first-but-not-this', 'last', 'nothing'],
    ],
    ['texthash:access', ['1.2.3', '1.2.3.4', '1.2.3.5']],
  ];
  for (const [table, keys] of batches) {
    const r = both(t, ['-q', '-', table], `${keys.join('\n')}\n`);
    if (r === null) return;
    assert.equal(r.postern.stdout, r.postfix.stdout, `${table} stdout`);
    assert.equal(r.postern.stderr, r.postfix.stderr, `${table} stderr`);
    assert.equal(r.postern.status, r.postfix.status, `${table} status`);
  }
  const singles: string[][] = [
    ['-q', 'user+ext@example.com', 'regexp:access.regexp'],
    ['-q', 'last', 'regexp:access.regexp'],
    ['-q', 'nothing', 'regexp:access.regexp'],
    ['-q', '172.16.1.9', 'cidr:client.cidr'],
    ['-q', 'x', 'static:{ a b  c }'],
    ['-q', 'AB', 'inline:{ {ab = c d }, x=y }'],
    ['-q', 'nope', 'inline:{ {ab = c d }, x=y }'],
    ['-q', 'a', 'inline:{ a= }'],
    ['-q', '1.2.3.4', 'cidr:{ {1.2.3.1/24 ok}, {1.2.0.0/16 sixteen} }'],
    ['-q', 'foo', 'regexp:{ {/foo/ bar}, { /x/ y } }'],
    ['-q', 'x', 'nosuch:/x'],
    ['-q', 'x', 'texthash:/nonexistent/table'],
  ];
  for (const args of singles) {
    const r = both(t, args);
    if (r === null) return;
    assert.equal(r.postern.stdout, r.postfix.stdout, `${args.join(' ')} stdout`);
    assert.equal(r.postern.stderr, r.postfix.stderr, `${args.join(' ')} stderr`);
    assert.equal(r.postern.status, r.postfix.status, `${args.join(' ')} status`);
  }
});

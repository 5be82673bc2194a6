// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${name}` is Postfix's macro syntax in these strings, not a template.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { cliContext } from '../../test/harness/cli.js';
import { PARAMS } from '../config/params/index.js';
import { main } from './postconf.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const SEED = join(ROOT, 'test', 'fixtures', 'config', 'seed');

/** Registry defaults that intentionally differ from Postfix 3.7.11 (see src/config/params/index.ts); mynetworks is computed from this host as Postfix does. */
const NOT_37 = new Set(['smtpd_forbid_unauth_pipelining', 'smtpd_forbid_bare_newline', 'smtpd_client_ipv6_prefix_length']);

async function run(args: string[], opts: { dir?: string; explicit?: boolean } = {}): Promise<{ code: number; out: string; err: string }> {
  const { ctx, out, err } = cliContext(opts.dir ?? '/nonexistent', { explicit: opts.explicit ?? false });
  const code = await main(args, ctx);
  return { code, out: out.text(), err: err.text() };
}

/** Real Postfix's postconf, or null (the test is skipped outside CI, fails in CI). */
function postconf(t: TestContext, args: string[]): { out: string; err: string } | null {
  const r = spawnSync('postconf', args, { encoding: 'utf8' });
  if (r.error !== undefined) {
    if (process.env.CI === 'true') assert.fail(`postconf is required in CI: ${r.error.message}`);
    t.skip(`real postconf not installed (${r.error.message}); comparison skipped`);
    return null;
  }
  return { out: r.stdout, err: r.stderr };
}

async function tempCopy(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-postconf-'));
  await cp(join(SEED, 'main.cf'), join(dir, 'main.cf'));
  await cp(join(SEED, 'master.cf'), join(dir, 'master.cf'));
  return dir;
}

test('postconf: -n shows every line of the seed main.cf with its value (golden)', async () => {
  const r = await run(['-n'], { dir: SEED });
  assert.equal(r.code, 0);
  assert.equal(r.err, '');
  assert.equal(r.out, await readFile(join(SEED, 'postconf-n.txt'), 'utf8'));
  const lines = (await readFile(join(SEED, 'main.cf'), 'utf8')).split('\n').filter((l) => /^[a-z]/.test(l));
  assert.equal(lines.length, 18);
  for (const l of lines) assert.ok(r.out.includes(`${l}\n`), l);
});

test('postconf: -c DIR adds config_directory to -n, as postconf does', async () => {
  const r = await run(['-c', SEED, '-n']);
  assert.ok(r.out.startsWith(`config_directory = ${SEED}\n`));
});

test('postconf: -d, -h, -x and selected names (golden)', async () => {
  assert.equal((await run(['-d', 'smtpd_timeout', 'maximal_queue_lifetime', 'smtpd_forbid_bare_newline'])).out, 'smtpd_timeout = ${stress?{10}:{300}}s\nmaximal_queue_lifetime = 5d\nsmtpd_forbid_bare_newline = normalize\n');
  assert.equal((await run(['-h', 'smtpd_tls_exclude_ciphers', 'smtpd_tls_ciphers'], { dir: SEED })).out, 'aNULL, MD5, EXPORT\nhigh\n');
  assert.equal((await run(['-hx', 'smtpd_timeout'], { dir: SEED })).out, '300s\n');
  const u = await run(['nosuchparam', 'smtpd_tls_loglevel'], { dir: SEED });
  assert.equal(u.out, 'smtpd_tls_loglevel = 1\n');
  assert.equal(u.err, 'postconf: warning: nosuchparam: unknown parameter\n');
  const all = await run([], { dir: SEED });
  assert.equal(all.out.split('\n').length - 1, Object.keys(PARAMS).length);
  assert.ok(all.out.includes('smtpd_tls_security_level = may\n'));
  assert.ok(all.out.includes('smtpd_recipient_limit = 1000\n'));
});

test('postconf: values print with whitespace normalised; unused names warn and are not shown', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'postern-postconf-'));
  try {
    await writeFile(join(dir, 'main.cf'), 'smtpd_banner = $myhostname    ESMTP\nmydestination = a,\n\tb\nmy_unused = 1\nmy_used = x\nmyorigin = $my_used\n');
    const r = await run(['-n'], { dir });
    assert.equal(r.out, 'my_used = x\nmydestination = a, b\nmyorigin = $my_used\nsmtpd_banner = $myhostname ESMTP\n');
    assert.equal(r.err, `postconf: warning: ${join(dir, 'main.cf')}: unused parameter: my_unused=1\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('postconf: -M, -Mf and -M service/type (golden)', async () => {
  assert.equal((await run(['-M'], { dir: SEED })).out, await readFile(join(SEED, 'postconf-M.txt'), 'utf8'));
  assert.equal((await run(['-Mf'], { dir: SEED })).out, await readFile(join(SEED, 'postconf-Mf.txt'), 'utf8'));
  const r = await run(['-M', 'submission/inet', 'nothere'], { dir: SEED });
  assert.equal(r.out, 'submission inet  n       -       y       -       -       smtpd -o syslog_name=postfix/submission -o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes -o {smtpd_client_restrictions=permit_sasl_authenticated, reject}\n');
  assert.equal(r.err, 'postconf: warning: unmatched request: "nothere"\n');
});

test('postconf: -e replaces in place and appends, -X removes, comments and order kept', async () => {
  const dir = await tempCopy();
  try {
    const path = join(dir, 'main.cf');
    await writeFile(path, '# top\nmyhostname = old.example\nmydestination = a,\n  # note\n  b\n# end\n');
    assert.equal((await run(['-e', 'myhostname = new.example', 'relayhost=[mx.example]:587', 'biff=no'], { dir })).code, 0);
    assert.equal(await readFile(path, 'utf8'), '# top\nmyhostname = new.example\nmydestination = a,\n  # note\n  b\n# end\nbiff = no\nrelayhost = [mx.example]:587\n');
    assert.equal((await run(['-X', 'mydestination', 'biff'], { dir })).code, 0);
    assert.equal(await readFile(path, 'utf8'), '# top\nmyhostname = new.example\n  # note\n# end\nrelayhost = [mx.example]:587\n');
    await writeFile(path, 'biff = no\n# last line without newline');
    await run(['-e', 'relayhost=[b]'], { dir });
    assert.equal(await readFile(path, 'utf8'), 'biff = no\n# last line without newline\nrelayhost = [b]\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('postconf: -e refuses a value Postern would reject and leaves main.cf unchanged', async () => {
  const dir = await tempCopy();
  try {
    const before = await readFile(join(dir, 'main.cf'), 'utf8');
    const r = await run(['-e', 'smtpd_tls_security_level=maybe'], { dir });
    assert.equal(r.code, 1);
    assert.equal(r.err, `postconf: fatal: invalid smtpd_tls_security_level value "maybe": expected none, may or encrypt; ${join(dir, 'main.cf')} not changed\n`);
    assert.equal(await readFile(join(dir, 'main.cf'), 'utf8'), before);
    assert.equal((await run(['-e', 'no equals sign'], { dir })).err, `postconf: fatal: missing '=' after attribute name: "no equals sign"\n`);
    assert.equal((await run(['-X', 'a=b'], { dir })).err, 'postconf: fatal: -X or -# requires parameter names without value\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('postconf: bad usage and a missing main.cf are fatal', async () => {
  assert.equal((await run(['-n'], { dir: '/nonexistent-postern' })).err, 'postconf: fatal: open /nonexistent-postern/main.cf: No such file or directory\n');
  const r = await run(['-q']);
  assert.equal(r.code, 1);
  assert.match(r.err, /^postconf: fatal: invalid option -- 'q'\nusage: /);
});

test('postconf: output equals Postfix 3.7 postconf on the same files (-n, -h, -x, -M, -Mf, names)', async (t) => {
  const cases = [['-n'], ['-h', 'smtpd_tls_ciphers', 'mynetworks'], ['-x', 'smtpd_banner', 'mydestination', 'myorigin', 'forward_path'], ['-M'], ['-Mf'], ['-M', 'submission/inet', 'relay'], ['nosuch', 'smtpd_tls_loglevel'], ['-n', 'myhostname', 'smtpd_tls_loglevel']];
  for (const args of cases) {
    const real = postconf(t, ['-c', SEED, ...args]);
    if (real === null) return;
    const ours = await run(['-c', SEED, ...args]);
    assert.equal(ours.out, real.out, `postconf ${args.join(' ')}`);
  }
  const real = postconf(t, ['-c', SEED, 'nosuch']);
  assert.equal((await run(['-c', SEED, 'nosuch'])).err, real?.err);
});

test('postconf: every registry parameter prints as Postfix 3.7 prints it (-d, effective, -x)', async (t) => {
  const names = Object.keys(PARAMS).filter((n) => !NOT_37.has(n));
  for (const mode of [['-d'], [], ['-x']]) {
    const real = postconf(t, ['-c', SEED, ...mode, ...names]);
    if (real === null) return;
    const ours = await run(['-c', SEED, ...mode, ...names]);
    assert.equal(ours.out, real.out, `postconf ${mode.join(' ')}`);
  }
});

test('postconf: -e and -X edit main.cf exactly as Postfix 3.7 postconf does', async (t) => {
  // (Ends with a newline: without one, Postfix 3.7 glues an appended line to the last line;
  // Postern starts a new line, see the -e test above.)
  const text = '# c1\nmyhostname = a\nmydestination = x,\n# c2\n  y\nbiff = yes\nmyhostname = b\n  cont\n# c3\n';
  const edits: string[][] = [
    // One new name only: 3.7 appends several in hash-table order, newer Postfix (and Postern) sorted.
    ['-e', 'myhostname=new', 'aa = 2'],
    ['-X', 'mydestination', 'myhostname'],
    ['-e', 'mydestination = $myhostname'],
  ];
  for (const args of edits) {
    const a = await mkdtemp(join(tmpdir(), 'postern-postconf-real-'));
    const b = await mkdtemp(join(tmpdir(), 'postern-postconf-ours-'));
    try {
      await writeFile(join(a, 'main.cf'), text);
      await writeFile(join(b, 'main.cf'), text);
      if (postconf(t, ['-c', a, ...args]) === null) return;
      await run(['-c', b, ...args]);
      assert.equal(await readFile(join(b, 'main.cf'), 'utf8'), await readFile(join(a, 'main.cf'), 'utf8'), args.join(' '));
    } finally {
      await rm(a, { recursive: true, force: true });
      await rm(b, { recursive: true, force: true });
    }
  }
});

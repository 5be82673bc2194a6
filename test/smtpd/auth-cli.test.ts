/**
 * `postern user` and `postern pw`: the passwd-file they write is what smtpd's user database reads
 * (and, where doveadm is installed, what Dovecot verifies).
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { UserDb } from '../../src/auth/index.js';
import { run as pw } from '../../src/cli/pw.js';
import { run as user } from '../../src/cli/user.js';
import { cliContext } from '../harness/cli.js';

const stdin = (text: string): { stdin: Readable } => ({ stdin: Readable.from([Buffer.from(text)]) });

describe('cli: postern user and postern pw', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'postern-authcli-'));
    writeFileSync(path.join(dir, 'main.cf'), `smtpd_sasl_path = users\nqueue_directory = ${path.join(dir, 'q')}\n`);
    writeFileSync(path.join(dir, 'master.cf'), '');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('cli: user add/passwd/del/list on the file smtpd_sasl_path names; smtpd\'s UserDb accepts the passwords', async () => {
    const file = path.join(dir, 'users');
    writeFileSync(file, '# managed by postern user\n');
    chmodSync(file, 0o604);
    const c = cliContext(dir);
    assert.equal(await user(['add', 'alice'], c.ctx, stdin('first pass\n')), 0, c.err.text());
    assert.equal(await user(['add', '-s', 'SSHA256', 'bob'], c.ctx, stdin('bobs\n')), 0, c.err.text());
    assert.equal(await user(['add', 'alice'], c.ctx, stdin('x\n')), 1);
    assert.match(c.err.text(), /postern user: fatal: .*users, line 2: user alice exists; use postern user passwd/);
    const db = UserDb.open(file, { defaultScheme: 'CRYPT', warn: (t) => assert.fail(t) });
    assert.equal(db.verify('alice', 'first pass'), 'ok');
    assert.equal(db.verify('bob', 'bobs'), 'ok');
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^# managed by postern user\nalice:\{SHA512-CRYPT\}\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}\nbob:\{SSHA256\}\S+\n$/);
    assert.ok(!text.includes('first pass'));
    assert.equal(await user(['passwd', 'alice'], c.ctx, stdin('second pass\n')), 0, c.err.text());
    assert.equal(db.verify('alice', 'second pass'), 'ok');
    assert.equal(await user(['del', 'bob'], c.ctx, stdin('')), 0, c.err.text());
    assert.equal(db.verify('bob', 'bobs'), 'unknown-user');
    c.out.clear();
    assert.equal(await user(['list'], c.ctx, stdin('')), 0);
    assert.equal(c.out.text(), 'alice\n');
    // Rewrites keep the file's mode.
    assert.equal(statSync(file).mode & 0o777, 0o604);
    assert.equal(await user(['passwd', 'nobody'], c.ctx, stdin('x\n')), 1);
    assert.equal(await user(['add', 'bad:name'], c.ctx, stdin('x\n')), 1);
    assert.equal(await user(['add', 'carol'], c.ctx, stdin('\n')), 1);
    assert.match(c.err.text(), /fatal: Empty password/);
  });

  it('cli: user add -f creates a new file with mode 0640', async () => {
    const file = path.join(dir, 'new-users');
    const c = cliContext(dir);
    assert.equal(await user(['add', '-f', file, 'dave'], c.ctx, stdin('d pass\n')), 0, c.err.text());
    assert.equal(statSync(file).mode & 0o777, 0o640);
    assert.equal(UserDb.open(file, { defaultScheme: 'CRYPT', warn: () => {} }).verify('dave', 'd pass'), 'ok');
  });

  it('cli: pw prints {SCHEME}hash; doveadm pw -t verifies it', async () => {
    const c = cliContext(dir);
    assert.equal(await pw(['-s', 'sha256-crypt', '-r', '6000'], c.ctx, stdin('p w\n')), 0, c.err.text());
    const hash = c.out.text().trim();
    assert.match(hash, /^\{SHA256-CRYPT\}\$5\$rounds=6000\$/);
    if (spawnSync('sh', ['-c', 'command -v doveadm']).status === 0) {
      const r = spawnSync('doveadm', ['pw', '-t', hash, '-p', 'p w'], { encoding: 'utf8' });
      assert.match(r.stdout + r.stderr, /\(verified\)/);
    }
    assert.equal(await pw(['-s', 'BLF-CRYPT'], c.ctx, stdin('x\n')), 1);
    assert.match(c.err.text(), /unknown scheme BLF-CRYPT; supported: PLAIN/);
  });
});

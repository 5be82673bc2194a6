import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parsePasswdFile, UserDb } from './passwd-file.js';
import { hashPassword } from './schemes.js';

describe('auth: passwd-file', () => {
  it('auth: passwd-file parsing: comments, blank lines, optional fields, bad lines with file and line', () => {
    const text = [
      '# users',
      '',
      'alice:{PLAIN}a:1000:1000::/home/alice:/bin/false:userdb_quota_rule=*:storage=1G',
      'bob:{PLAIN}b',
      ':nopass',
      'carol',
      'dave:',
      'Alice:{PLAIN}again',
      'eve smith:{PLAIN}x',
      'frank:{PLAIN}f\r',
    ].join('\n');
    const p = parsePasswdFile(text, '/etc/users');
    assert.deepEqual([...p.entries.keys()], ['alice', 'bob', 'frank']);
    assert.equal(p.entries.get('alice')!.line, 3);
    assert.deepEqual(p.entries.get('alice')!.rest, ['1000', '1000', '', '/home/alice', '/bin/false', 'userdb_quota_rule=*', 'storage=1G']);
    assert.equal(p.entries.get('frank')!.password, '{PLAIN}f');
    assert.deepEqual(p.warnings, [
      '/etc/users, line 5: empty user name; line skipped',
      '/etc/users, line 6: user carol has no password; line skipped',
      '/etc/users, line 7: user dave has no password; line skipped',
      '/etc/users, line 8: user Alice exists more than once; the first (line 3) is used',
      '/etc/users, line 9: user name "eve smith" contains white space; line skipped',
    ]);
  });

  it('auth: UserDb verifies, re-reads the file when it changes, and warns about unknown schemes with file:line', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-userdb-'));
    const file = path.join(dir, 'users');
    const warnings: string[] = [];
    try {
      writeFileSync(file, `alice:${hashPassword('SHA256-CRYPT', 'one')}\nzed:{SCRAM-SHA-256}xyz\nplain:bare\n`);
      const db = UserDb.open(file, { defaultScheme: 'PLAIN', warn: (t) => warnings.push(t) });
      assert.equal(db.verify('alice', 'one'), 'ok');
      assert.equal(db.verify('ALICE', 'one'), 'ok');
      assert.equal(db.verify('alice', 'two'), 'mismatch');
      assert.equal(db.verify('nobody', 'one'), 'unknown-user');
      assert.equal(db.verify('plain', 'bare'), 'ok');
      assert.equal(db.verify('zed', 'xyz'), 'unusable');
      assert.deepEqual(warnings, [`${file}, line 2: user zed: password scheme SCRAM-SHA-256: unknown password scheme SCRAM-SHA-256; authentication fails`]);
      // Same size, new content, mtime moved: the file is read again.
      writeFileSync(file, `alice:${hashPassword('SHA256-CRYPT', 'two')}\n`);
      const t = statSync(file).mtime.getTime() / 1000 + 5;
      utimesSync(file, t, t);
      assert.equal(db.verify('alice', 'two'), 'ok');
      assert.equal(db.size, 1);
      // The file disappears: the last contents stay in use, with a warning.
      rmSync(file);
      assert.equal(db.verify('alice', 'two'), 'ok');
      assert.match(warnings.at(-1)!, /cannot stat user database: No such file or directory; using the last contents read/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('auth: verifyAsync checks in a worker thread: same outcomes, and the event loop keeps running', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-userdb-'));
    const file = path.join(dir, 'users');
    try {
      writeFileSync(file, `alice:${hashPassword('SHA512-CRYPT', 'one', { rounds: 50000 })}\nzed:{NOPE}x\n`);
      const warnings: string[] = [];
      const db = UserDb.open(file, { defaultScheme: 'CRYPT', warn: (t) => warnings.push(t) });
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const ok = await db.verifyAsync('alice', 'one');
      clearInterval(timer);
      assert.equal(ok, 'ok');
      // 50000 rounds take far longer than a few milliseconds; timers fired meanwhile.
      assert.ok(ticks > 3, `ticks ${ticks}`);
      assert.equal(await db.verifyAsync('alice', 'two'), 'mismatch');
      assert.equal(await db.verifyAsync('bob', 'one'), 'unknown-user');
      assert.equal(await db.verifyAsync('zed', 'x'), 'unusable');
      assert.equal(warnings.length, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('auth: UserDb.open of a missing file throws PosternError auth', () => {
    assert.throws(() => UserDb.open('/nonexistent/users', { defaultScheme: 'CRYPT', warn: () => {} }), { code: 'auth', message: 'cannot read user database /nonexistent/users: No such file or directory' });
  });
});

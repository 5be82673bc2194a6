import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { hashPassword, SCHEMES, splitScheme, verifyPassword } from './schemes.js';

const noDoveadm = spawnSync('sh', ['-c', 'command -v doveadm']).status === 0 ? false : 'doveadm not installed (apt-get install dovecot-core)';

describe('auth: Dovecot password schemes', () => {
  it('auth: hashes made by doveadm pw verify (each scheme), a wrong password does not', { skip: noDoveadm }, () => {
    for (const scheme of ['SHA512-CRYPT', 'SHA256-CRYPT', 'SSHA256', 'SSHA512', 'SHA256', 'SHA512', 'SSHA', 'SHA1', 'PLAIN', 'SHA256.HEX', 'SSHA512.HEX']) {
      const r = spawnSync('doveadm', ['pw', '-s', scheme, '-p', 'pässwörd'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const hash = r.stdout.trim();
      assert.deepEqual(verifyPassword(hash, 'pässwörd', 'CRYPT'), { kind: 'ok' }, hash);
      assert.deepEqual(verifyPassword(hash, 'passwörd', 'CRYPT'), { kind: 'mismatch' }, hash);
    }
    // doveadm's CRYPT is bcrypt ($2y$): not supported, reported as such.
    const bcrypt = spawnSync('doveadm', ['pw', '-s', 'CRYPT', '-p', 'x'], { encoding: 'utf8' }).stdout.trim();
    assert.equal(verifyPassword(bcrypt, 'x', 'CRYPT').kind, 'unsupported', bcrypt);
  });

  it('auth: hashes made here are verified by doveadm pw -t', { skip: noDoveadm }, () => {
    for (const scheme of SCHEMES) {
      const hash = hashPassword(scheme, 'sécret 1');
      const r = spawnSync('doveadm', ['pw', '-t', hash, '-p', 'sécret 1'], { encoding: 'utf8' });
      assert.match(r.stdout + r.stderr, /\(verified\)/, `${scheme}: ${hash}`);
    }
  });

  it('auth: every scheme round-trips, with explicit rounds for SHA-crypt', () => {
    for (const scheme of SCHEMES) {
      const hash = hashPassword(scheme, 'pw');
      assert.ok(hash.startsWith(`{${scheme}}`), hash);
      assert.equal(verifyPassword(hash, 'pw', 'PLAIN').kind, 'ok', hash);
      assert.equal(verifyPassword(hash, 'pW', 'PLAIN').kind, 'mismatch', hash);
    }
    const r = hashPassword('SHA512-CRYPT', 'pw', { rounds: 6000 });
    assert.match(r, /^\{SHA512-CRYPT\}\$6\$rounds=6000\$/);
    assert.equal(verifyPassword(r, 'pw', 'PLAIN').kind, 'ok');
  });

  it('auth: a bare password uses the default scheme (CRYPT for a $6$ hash, PLAIN text)', () => {
    assert.equal(verifyPassword('$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5', 'Hello world!', 'CRYPT').kind, 'ok');
    assert.equal(verifyPassword('secret', 'secret', 'PLAIN').kind, 'ok');
    assert.deepEqual(splitScheme('{sha512-crypt}$6$x', 'PLAIN'), { scheme: 'SHA512-CRYPT', value: '$6$x' });
  });

  it('auth: unknown and unusable schemes are reported, never thrown', () => {
    assert.deepEqual(verifyPassword('{BLF-CRYPT}$2y$05$abc', 'x', 'CRYPT'), { kind: 'unsupported', detail: 'unknown password scheme BLF-CRYPT' });
    assert.equal(verifyPassword('{CRYPT}abJnggxhB/yWI', 'x', 'CRYPT').kind, 'unsupported');
    assert.equal(verifyPassword('{SHA512-CRYPT}$5$abc$def', 'x', 'CRYPT').kind, 'unsupported');
    assert.equal(verifyPassword('{SHA256}not*base64', 'x', 'CRYPT').kind, 'unsupported');
    assert.equal(verifyPassword('{SSHA256}AAAA', 'x', 'CRYPT').kind, 'unsupported');
    assert.throws(() => hashPassword('MD5-CRYPT', 'x'), /unknown password scheme MD5-CRYPT/);
  });
});

import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { isShaCrypt, shaCrypt } from './sha-crypt.js';

// Test vectors from Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512" (the spec's own list).
const SPEC: readonly [string, string, string][] = [
  ['$5$saltstring', 'Hello world!', '$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5'],
  ['$5$rounds=10000$saltstringsaltstring', 'Hello world!', '$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA'],
  ['$5$rounds=5000$toolongsaltstring', 'This is just a test', '$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5'],
  ['$5$rounds=10$roundstoolow', 'the minimum number is still observed', '$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC'],
  ['$6$saltstring', 'Hello world!', '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1'],
  ['$6$rounds=10000$saltstringsaltstring', 'Hello world!', '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.'],
  ['$6$rounds=5000$toolongsaltstring', 'This is just a test', '$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0'],
  ['$6$rounds=10$roundstoolow', 'the minimum number is still observed', '$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.'],
];

const noOpenssl = spawnSync('sh', ['-c', 'command -v openssl']).status === 0 ? false : 'openssl not installed';

describe('auth: SHA-crypt', () => {
  for (const [setting, pw, want] of SPEC) {
    it(`auth: SHA-crypt spec vector ${setting}`, () => {
      assert.equal(shaCrypt(pw, setting), want);
      // A full hash works as the setting (how a stored hash is verified).
      assert.equal(shaCrypt(pw, want), want);
    });
  }

  it('auth: SHA-crypt matches openssl passwd -5 / -6 (UTF-8, empty and long passwords, short salt)', { skip: noOpenssl }, () => {
    for (const pw of ['secret', 'pässwörd €', 'x', 'a'.repeat(200)]) {
      for (const [opt, prefix] of [
        ['-5', '$5$'],
        ['-6', '$6$'],
      ] as const) {
        for (const salt of ['ab', 'saltsaltsaltsalt']) {
          const r = spawnSync('openssl', ['passwd', opt, '-salt', salt, '-stdin'], { input: `${pw}\n`, encoding: 'utf8' });
          assert.equal(r.status, 0, r.stderr);
          const want = r.stdout.trim();
          assert.equal(shaCrypt(pw, `${prefix}${salt}`), want, `${opt} ${salt} ${pw.slice(0, 10)}`);
        }
      }
    }
  });

  it('auth: isShaCrypt and settings it refuses', () => {
    assert.equal(isShaCrypt('$6$x$y'), true);
    assert.equal(isShaCrypt('$1$x$y'), false);
    assert.throws(() => shaCrypt('x', '$2y$05$abc'), /not a SHA-crypt setting/);
  });
});

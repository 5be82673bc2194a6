import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeBase64, isBase64Text, parsePlain, SaslServer } from './index.js';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

function server(mechs = ['PLAIN', 'LOGIN']): { s: SaslServer; delays: () => number } {
  let delays = 0;
  const s = new SaslServer(
    () => mechs,
    async (user, pw) => ({ ok: user.toLowerCase() === 'alice' && pw === 'sëcret', user: user.toLowerCase() }),
    async () => {
      delays++;
    },
  );
  return { s, delays: () => delays };
}

describe('sasl: PLAIN and LOGIN', () => {
  it('sasl: PLAIN decoding (RFC 4616): authzid, authcid, password; anything but two NULs is invalid', () => {
    assert.deepEqual(parsePlain(Buffer.from('\0alice\0pw')), { authzid: '', authcid: 'alice', password: 'pw' });
    assert.deepEqual(parsePlain(Buffer.from('admin\0alice\0p\u00e4w')), { authzid: 'admin', authcid: 'alice', password: 'päw' });
    assert.equal(parsePlain(Buffer.from('alice\0pw')), null);
    assert.equal(parsePlain(Buffer.from('a\0b\0c\0d')), null);
    assert.equal(parsePlain(Buffer.alloc(0)), null);
  });

  it('sasl: base64 as Postfix (alphabet) and Dovecot (strict padding) check it', () => {
    assert.equal(isBase64Text('YWJj+/=='), true);
    assert.equal(isBase64Text('YW Jj'), false);
    assert.equal(isBase64Text(''), true);
    assert.deepEqual(decodeBase64('YWJj'), Buffer.from('abc'));
    assert.deepEqual(decodeBase64(''), Buffer.alloc(0));
    assert.equal(decodeBase64('abc'), null);
    assert.equal(decodeBase64('YW=j'), null);
    assert.equal(decodeBase64('='), null);
    assert.equal(decodeBase64('YWJjZA'), null);
    assert.deepEqual(decodeBase64('YWJjZA=='), Buffer.from('abcd'));
  });

  it('sasl: PLAIN with and without an initial response; authzid must be empty or the user', async () => {
    const { s, delays } = server();
    assert.deepEqual(await s.start('plain', b64('\0Alice\0sëcret')), { status: 'done', username: 'alice' });
    assert.deepEqual(await s.start('PLAIN', null), { status: 'more', challenge: '' });
    assert.deepEqual(await s.next(b64('alice\0alice\0sëcret')), { status: 'done', username: 'alice' });
    assert.deepEqual(await s.start('PLAIN', b64('bob\0alice\0sëcret')), { status: 'fail', reason: null });
    assert.equal(s.username, 'alice');
    assert.deepEqual(await s.start('PLAIN', '='), { status: 'fail', reason: null });
    assert.equal(s.username, null);
    assert.equal(delays(), 2);
  });

  it('sasl: LOGIN challenges Username:/Password:, an empty initial response is none, an empty name fails', async () => {
    const { s } = server();
    assert.deepEqual(await s.start('LOGIN', null), { status: 'more', challenge: 'VXNlcm5hbWU6' });
    assert.deepEqual(await s.next(b64('alice')), { status: 'more', challenge: 'UGFzc3dvcmQ6' });
    assert.deepEqual(await s.next(b64('sëcret')), { status: 'done', username: 'alice' });
    assert.deepEqual(await s.start('LOGIN', '='), { status: 'more', challenge: 'VXNlcm5hbWU6' });
    assert.deepEqual(await s.next(''), { status: 'fail', reason: null });
    assert.equal(s.username, '');
    assert.deepEqual(await s.start('LOGIN', b64('alice')), { status: 'more', challenge: 'UGFzc3dvcmQ6' });
    assert.deepEqual(await s.next(b64('nope')), { status: 'fail', reason: null });
    assert.equal(s.username, 'alice');
  });

  it('sasl: protocol errors: unknown or filtered mechanism, bad base64; the last user name stays (Postfix quirk)', async () => {
    const { s, delays } = server(['LOGIN']);
    await s.start('LOGIN', b64('alice'));
    await s.next(b64('wrong'));
    assert.equal(s.username, 'alice');
    assert.deepEqual(await s.start('PLAIN', b64('\0alice\0sëcret')), { status: 'fail', reason: 'Invalid authentication mechanism' });
    assert.deepEqual(await s.start('CRAM-MD5', null), { status: 'fail', reason: 'Invalid authentication mechanism' });
    assert.deepEqual(await s.start('LOGIN', 'a b'), { status: 'fail', reason: 'Invalid base64 data in initial response' });
    assert.equal(s.username, 'alice');
    await s.start('LOGIN', null);
    assert.deepEqual(await s.next('!!'), { status: 'fail', reason: 'Invalid base64 data in continued response' });
    assert.equal(s.username, 'alice');
    await s.start('LOGIN', null);
    assert.deepEqual(await s.next('='), { status: 'fail', reason: 'Invalid base64 data in continued response' });
    assert.equal(s.username, null);
    assert.equal(delays(), 1);
  });
});

import * as assert from 'node:assert/strict';
import * as tls from 'node:tls';
import { describe, it } from 'node:test';
import { paramsFrom } from '../config/index.js';
import { cipherBits, cipherList, smtpdCipherPolicy } from './ciphers.js';

describe('tls: cipher lists (reference 1.5)', () => {
  it('tls: seed main.cf with ask_ccert gives the list Postfix 3.7.11 logged (golden)', () => {
    const p = paramsFrom(['smtpd_tls_ciphers = high', 'smtpd_tls_exclude_ciphers = aNULL, MD5, EXPORT', 'smtpd_tls_ask_ccert = yes', ''].join('\n'));
    const list = cipherList(smtpdCipherPolicy(p, { mandatory: false, askClientCert: p.smtpd_tls_ask_ccert }), p);
    assert.equal(list, 'aNULL:-aNULL:HIGH:@STRENGTH:!aNULL:!MD5:!EXPORT:!aNULL');
    // Node (OpenSSL 3) accepts it, with and without the level-0 suffix.
    tls.createSecureContext({ ciphers: list });
    tls.createSecureContext({ ciphers: `${list}:@SECLEVEL=0` });
  });

  it('tls: each grade uses its tls_*_cipherlist (3.7 defaults)', () => {
    const p = paramsFrom('');
    const grade = (g: string): string => cipherList({ grade: g, exclude: [] }, p);
    assert.equal(grade('high'), 'aNULL:-aNULL:HIGH:@STRENGTH');
    assert.equal(grade('medium'), 'aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH');
    assert.equal(grade('MEDIUM'), 'aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH');
    assert.equal(grade('low'), 'aNULL:-aNULL:HIGH:MEDIUM:LOW:+RC4:@STRENGTH');
    assert.equal(grade('export'), 'aNULL:-aNULL:HIGH:MEDIUM:LOW:EXPORT:+RC4:@STRENGTH');
    assert.equal(grade('null'), 'eNULL:!aNULL');
    const custom = paramsFrom('tls_high_cipherlist = ECDHE+AESGCM\n');
    assert.equal(cipherList({ grade: 'high', exclude: ['CBC'] }, custom), 'ECDHE+AESGCM:!CBC');
  });

  it('tls: mandatory level adds the mandatory grade and exclusions after the plain ones (1.6)', () => {
    const p = paramsFrom(
      [
        'smtpd_tls_ciphers = medium',
        'smtpd_tls_mandatory_ciphers = high',
        'smtpd_tls_exclude_ciphers = RC4',
        'smtpd_tls_mandatory_exclude_ciphers = 3DES, SHA1:CAMELLIA',
        '',
      ].join('\n'),
    );
    assert.equal(cipherList(smtpdCipherPolicy(p, { mandatory: true, askClientCert: true }), p), 'aNULL:-aNULL:HIGH:@STRENGTH:!RC4:!3DES:!SHA1:!CAMELLIA:!aNULL');
    assert.equal(cipherList(smtpdCipherPolicy(p, { mandatory: false, askClientCert: false }), p), 'aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!RC4');
  });

  for (const tok of ['!RC4', '+RC4', '-RC4', '@STRENGTH']) {
    it(`tls: exclusion "${tok}" is refused with Postfix's warning text`, () => {
      assert.throws(() => cipherList({ grade: 'high', exclude: ['MD5', tok] }, paramsFrom('')), {
        code: 'tls-cipher-exclusion',
        message: `invalid unary '!+-@' in cipher exclusion: ${tok}`,
      });
    });
  }

  it('tls: an unknown grade is refused', () => {
    assert.throws(() => cipherList({ grade: 'ultra', exclude: [] }, paramsFrom('')), { code: 'tls-cipher-grade', message: 'invalid cipher grade: "ultra"' });
  });

  const bits: [string, number, number][] = [
    ['TLS_AES_256_GCM_SHA384', 256, 256],
    ['TLS_AES_128_GCM_SHA256', 128, 128],
    ['TLS_AES_128_CCM_8_SHA256', 128, 128],
    ['TLS_CHACHA20_POLY1305_SHA256', 256, 256],
    ['ECDHE-RSA-AES128-GCM-SHA256', 128, 128],
    ['ECDHE-RSA-AES256-GCM-SHA384', 256, 256],
    ['ECDHE-ECDSA-CHACHA20-POLY1305', 256, 256],
    ['ECDHE-RSA-AES256-SHA', 256, 256],
    ['DES-CBC3-SHA', 112, 168],
    ['ECDHE-RSA-DES-CBC3-SHA', 112, 168],
    ['CAMELLIA256-SHA', 256, 256],
    ['ARIA128-GCM-SHA256', 128, 128],
    ['RC4-SHA', 128, 128],
    ['SEED-SHA', 128, 128],
    ['NULL-SHA256', 0, 0],
    ['DES-CBC-SHA', 56, 56],
  ];
  for (const [name, b, a] of bits) {
    it(`tls: cipher ${name} has ${b}/${a} bits`, () => {
      assert.deepEqual(cipherBits(name), { bits: b, algBits: a });
    });
  }
});

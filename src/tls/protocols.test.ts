import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { protocolRange } from './protocols.js';

describe('tls: protocolRange', () => {
  const cases: [string, string, string, boolean][] = [
    // value, min, max, legacy (needs @SECLEVEL=0)
    ['', 'TLSv1', 'TLSv1.3', true],
    ['!SSLv2, !SSLv3', 'TLSv1', 'TLSv1.3', true],
    ['!SSLv2:!SSLv3:!TLSv1', 'TLSv1.1', 'TLSv1.3', true],
    ['!SSLv2 !SSLv3 !TLSv1 !TLSv1.1', 'TLSv1.2', 'TLSv1.3', false],
    ['>=TLSv1', 'TLSv1', 'TLSv1.3', true],
    ['>=TLSv1.2', 'TLSv1.2', 'TLSv1.3', false],
    ['>=tlsv1.2', 'TLSv1.2', 'TLSv1.3', false],
    ['<=TLSv1.2', 'TLSv1', 'TLSv1.2', true],
    ['>=TLSv1.1 <=TLSv1.2', 'TLSv1.1', 'TLSv1.2', true],
    ['>=0303', 'TLSv1.2', 'TLSv1.3', false],
    ['>=0x0304', 'TLSv1.3', 'TLSv1.3', false],
    ['>=None <=None', 'TLSv1', 'TLSv1.3', true],
    ['TLSv1.2 TLSv1.3', 'TLSv1.2', 'TLSv1.3', false],
    ['TLSv1.3', 'TLSv1.3', 'TLSv1.3', false],
    ['>=TLSv1.2, !TLSv1.3', 'TLSv1.2', 'TLSv1.2', false],
  ];
  for (const [value, min, max, legacy] of cases) {
    it(`tls: protocols "${value}" ⇒ ${min}..${max}`, () => {
      const r = protocolRange(value);
      assert.deepEqual([r.minVersion, r.maxVersion, r.legacy], [min, max, legacy]);
      assert.deepEqual(r.notes, []);
    });
  }

  it('tls: protocols accept the registry list form', () => {
    const r = protocolRange(['!SSLv2', '!SSLv3', '!TLSv1']);
    assert.deepEqual([r.minVersion, r.maxVersion], ['TLSv1.1', 'TLSv1.3']);
  });

  it('tls: protocols with a hole keep the lower contiguous range, as OpenSSL', () => {
    const r = protocolRange('!TLSv1.1');
    assert.deepEqual([r.minVersion, r.maxVersion], ['TLSv1', 'TLSv1']);
    assert.equal(r.notes.length, 2);
    assert.match(r.notes[0]!, /^TLSv1\.2 is not used: the enabled protocols must form one contiguous range \(TLSv1 to TLSv1\)$/);
  });

  it('tls: protocols SSLv3 cannot be enabled and says so', () => {
    const r = protocolRange('SSLv3, TLSv1');
    assert.deepEqual([r.minVersion, r.maxVersion], ['TLSv1', 'TLSv1']);
    assert.deepEqual(r.notes, ['SSLv3 cannot be enabled: the TLS library does not support it']);
  });

  it('tls: protocols with only SSL versions are refused', () => {
    assert.throws(() => protocolRange('SSLv2 SSLv3'), { code: 'tls-protocols', message: /^Invalid TLS protocol list "SSLv2 SSLv3": no protocol/ });
    assert.throws(() => protocolRange('>=TLSv1.3 <=TLSv1.2'), { code: 'tls-protocols' });
  });

  for (const bad of ['TLSv1.4', '!SSLv4', '>=TLSv9', '>=SSLv2', 'foo', '>=0x0305']) {
    it(`tls: protocols "${bad}" is invalid with Postfix's wording`, () => {
      assert.throws(() => protocolRange(bad), { code: 'tls-protocols', message: `Invalid TLS protocol list "${bad}"` });
    });
  }
});

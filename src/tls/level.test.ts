import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { paramsFrom } from '../config/index.js';
import { Log } from '../log/index.js';
import { tlsLogMask, TLS_LOG_NONE, TLS_LOG_SUMMARY, TLS_LOG_UNTRUSTED, TLS_LOG_VERBOSE } from './log-level.js';
import { smtpdTlsLevel } from './level.js';

describe('tls: smtpd security level (reference 1.1, 1.3)', () => {
  const cases: [string, string][] = [
    ['', 'none'],
    ['smtpd_use_tls = yes', 'may'],
    ['smtpd_enforce_tls = yes', 'encrypt'],
    ['smtpd_use_tls = yes\nsmtpd_enforce_tls = yes', 'encrypt'],
    ['smtpd_tls_security_level = none\nsmtpd_use_tls = yes', 'none'],
    ['smtpd_tls_security_level = may\nsmtpd_enforce_tls = yes', 'may'],
    ['smtpd_tls_security_level = encrypt', 'encrypt'],
    ['smtpd_tls_wrappermode = yes', 'encrypt'],
    ['smtpd_tls_wrappermode = yes\nsmtpd_tls_security_level = none', 'encrypt'],
    ['smtpd_tls_wrappermode = yes\nsmtpd_tls_security_level = may', 'encrypt'],
  ];
  for (const [cf, want] of cases) {
    it(`tls: level for ${JSON.stringify(cf)} is ${want}`, () => {
      const log = Log.memory();
      assert.equal(smtpdTlsLevel(paramsFrom(`${cf}\n`), log.logger('smtpd')), want);
      assert.deepEqual(log.lines, []);
    });
  }

  for (const level of ['fingerprint', 'verify', 'secure']) {
    it(`tls: client-only level ${level} runs as encrypt with Postfix's warning`, () => {
      const log = Log.memory();
      const p = { ...paramsFrom(''), smtpd_tls_security_level: level } as unknown as Parameters<typeof smtpdTlsLevel>[0];
      assert.equal(smtpdTlsLevel(p, log.logger('smtpd')), 'encrypt');
      assert.equal(log.lines.length, 1);
      assert.match(log.lines[0]!, new RegExp(`smtpd\\[\\d+\\]: warning: smtpd_tls_security_level: unsupported TLS level "${level}", using "encrypt"$`));
    });
  }

  it('tls: dane is not a server level', () => {
    const p = { ...paramsFrom(''), smtpd_tls_security_level: 'dane' } as unknown as Parameters<typeof smtpdTlsLevel>[0];
    assert.throws(() => smtpdTlsLevel(p), { code: 'tls-level', message: 'Invalid TLS level "dane"' });
  });
});

describe('tls: loglevel mask (P tls_misc.c tls_log_mask)', () => {
  it('tls: numbers and names map to Postfix levels', () => {
    assert.equal(tlsLogMask('smtpd_tls_loglevel', 0), TLS_LOG_NONE);
    assert.equal(tlsLogMask('smtpd_tls_loglevel', 1) & TLS_LOG_SUMMARY, TLS_LOG_SUMMARY);
    assert.equal(tlsLogMask('smtpd_tls_loglevel', 1) & TLS_LOG_VERBOSE, 0);
    assert.equal(tlsLogMask('smtpd_tls_loglevel', 2) & TLS_LOG_VERBOSE, TLS_LOG_VERBOSE);
    assert.equal(tlsLogMask('smtpd_tls_loglevel', 'routine'), tlsLogMask('smtpd_tls_loglevel', 1));
    assert.equal(tlsLogMask('smtpd_tls_loglevel', 'debug'), tlsLogMask('smtpd_tls_loglevel', 2));
    assert.equal(tlsLogMask('smtpd_tls_loglevel', 7), tlsLogMask('smtpd_tls_loglevel', 4));
    assert.equal(tlsLogMask('smtpd_tls_loglevel', 'Summary, untrusted'), TLS_LOG_SUMMARY | TLS_LOG_UNTRUSTED);
  });

  it('tls: unknown loglevel words are warned about', () => {
    const warnings: string[] = [];
    assert.equal(tlsLogMask('smtpd_tls_loglevel', 'summary loud', (t) => warnings.push(t)), TLS_LOG_SUMMARY);
    assert.deepEqual(warnings, ['unknown smtpd_tls_loglevel value "loud" in "summary loud"']);
  });
});

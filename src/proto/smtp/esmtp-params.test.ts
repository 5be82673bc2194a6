import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { PosternError } from '../../errors.js';
import {
  EsmtpParams,
  parseMailParams,
  parseRcptParams,
  uxtextDecode,
  uxtextEncode,
  xtextDecode,
  xtextEncode,
} from './esmtp-params.js';
import { formatReply, ReplyError } from './reply.js';

const ON = { smtputf8_enable: true, chunking: true };

function mail(words: string, opts: Parameters<typeof parseMailParams>[1] = ON) {
  return parseMailParams(EsmtpParams.fromWords(words.split(' ').filter(Boolean)), opts);
}
function rcpt(words: string, opts: Parameters<typeof parseRcptParams>[1] = {}) {
  return parseRcptParams(EsmtpParams.fromWords(words.split(' ').filter(Boolean)), opts);
}
function replyOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof ReplyError) return formatReply(e.reply).trimEnd();
    throw e;
  }
  return 'ok';
}

test('esmtp-params: MAIL parameters accepted as Postfix accepts them', () => {
  assert.deepEqual(mail(''), { size: null, body: null, smtputf8: false, ret: null, envid: null, auth: null });
  assert.deepEqual(mail('SIZE=1000 BODY=8bitmime SMTPUTF8 RET=hdrs ENVID=abc+2Bx AUTH=user+40x'), {
    size: 1000,
    body: '8BITMIME',
    smtputf8: true,
    ret: 'HDRS',
    envid: 'abc+x',
    auth: 'user+40x',
  });
  assert.equal(mail('size=10 SIZE=20').size, 20, 'repeated SIZE: last wins');
  assert.equal(mail('BODY=7bit BODY=8BITMIME').body, '8BITMIME', 'repeated BODY: last wins');
  assert.equal(mail('ENVID=a=b').envid, 'a=b', 'Postfix accepts "=" in xtext');
  assert.equal(mail('AUTH=<> AUTH=x').auth, 'x', 'AUTH=<> is not remembered');
  assert.equal(mail('SIZE=0').size, 0);
});

// Each row: parameters → Postfix 3.7.11's reply (observed with postfix-ref on loopback).
const MAIL_ERRORS: [string, string][] = [
  ['SIZE=abc', '501 5.5.4 Bad message size syntax'],
  ['SIZE=', '501 5.5.4 Bad message size syntax'],
  ['SIZE=-1', '501 5.5.4 Bad message size syntax'],
  ['SIZE=10 SIZE=x', '501 5.5.4 Bad message size syntax'],
  ['SIZE=99999999999999999999999', '552 5.3.4 Message size exceeds file system imposed limit'],
  ['SIZE', '555 5.5.4 Unsupported option: SIZE'],
  ['size=10 FOO=bar', '555 5.5.4 Unsupported option: FOO=bar'],
  ['foo=Bar', '555 5.5.4 Unsupported option: foo=Bar'],
  ['BODY', '555 5.5.4 Unsupported option: BODY'],
  ['BODY=QUOTED', '555 5.5.4 Unsupported option: BODY=QUOTED'],
  ['SMTPUTF8=yes', '555 5.5.4 Unsupported option: SMTPUTF8=yes'],
  ['RET=FULL RET=HDRS', '501 5.5.4 Bad RET parameter syntax'],
  ['RET=', '501 5.5.4 Bad RET parameter syntax'],
  ['RET=NONE', '501 5.5.4 Bad RET parameter syntax'],
  ['ENVID=a+0Ab', '501 5.5.4 Bad ENVID parameter syntax'],
  ['ENVID=a+zz', '501 5.5.4 Bad ENVID parameter syntax'],
  ['ENVID=', '501 5.5.4 Bad ENVID parameter syntax'],
  ['ENVID=a ENVID=b', '501 5.5.4 Bad ENVID parameter syntax'],
  ['AUTH=x AUTH=<>', '503 5.5.4 Error: multiple AUTH= options'],
  ['XVERP', '555 5.5.4 Unsupported option: XVERP'],
  ['FOO=x SIZE=abc', '555 5.5.4 Unsupported option: FOO=x'],
  ['SIZE=abc FOO=x', '501 5.5.4 Bad message size syntax'],
];

test('esmtp-params: MAIL parameter errors give Postfix 3.7 replies, first bad parameter wins', () => {
  for (const [words, expected] of MAIL_ERRORS) assert.equal(replyOf(() => mail(words)), expected, words);
});

test('esmtp-params: ENVID longer than 100 characters is refused (RFC 3461 4.4)', () => {
  assert.equal(mail(`ENVID=${'a'.repeat(100)}`).envid, 'a'.repeat(100));
  assert.equal(replyOf(() => mail(`ENVID=${'a'.repeat(101)}`)), '501 5.5.4 Bad ENVID parameter syntax');
});

test('esmtp-params: SMTPUTF8 is an unsupported option when smtputf8_enable = no', () => {
  assert.equal(
    replyOf(() => mail('SMTPUTF8', { smtputf8_enable: false, chunking: true })),
    '555 5.5.4 Unsupported option: SMTPUTF8',
  );
});

test('esmtp-params: BODY=BINARYMIME only with CHUNKING (RFC 3030 3); Postfix 3.7 never accepts it', () => {
  assert.equal(mail('BODY=binarymime').body, 'BINARYMIME');
  assert.equal(
    replyOf(() => mail('BODY=BINARYMIME', { smtputf8_enable: true, chunking: false })),
    '555 5.5.4 Unsupported option: BODY=BINARYMIME',
  );
  assert.equal(
    replyOf(() => mail('BODY=BINARYMIME', { smtputf8_enable: true, chunking: true, binarymime: false })),
    '555 5.5.4 Unsupported option: BODY=BINARYMIME',
  );
});

test('esmtp-params: DSN parameters refused when DSN is discarded from EHLO', () => {
  const off = { smtputf8_enable: true, chunking: true, dsn: false };
  assert.equal(replyOf(() => mail('RET=FULL', off)), '501 5.7.1 DSN support is disabled');
  assert.equal(replyOf(() => mail('ENVID=x', off)), '501 5.7.1 DSN support is disabled');
  assert.equal(replyOf(() => rcpt('NOTIFY=NEVER', { dsn: false })), '501 5.7.1 DSN support is disabled');
  assert.equal(replyOf(() => rcpt('ORCPT=rfc822;a', { dsn: false })), '501 5.7.1 DSN support is disabled');
});

test('esmtp-params: AUTH= value is kept raw with non-printables replaced', () => {
  assert.equal(mail('AUTH=a\x01b').auth, 'a?b');
});

test('esmtp-params: a plain Map works too (keywords upper-cased)', () => {
  const m = new Map<string, string | null>([
    ['size', '5'],
    ['SMTPUTF8', null],
  ]);
  assert.deepEqual(parseMailParams(m, ON).size, 5);
  assert.equal(
    replyOf(() => parseMailParams(new Map([['foo', 'x']]), ON)),
    '555 5.5.4 Unsupported option: FOO=x',
  );
});

test('esmtp-params: RCPT NOTIFY and ORCPT accepted as Postfix accepts them', () => {
  assert.deepEqual(rcpt(''), { notify: null, orcpt: null });
  assert.deepEqual(rcpt('NOTIFY=delay,success ORCPT=rfc822;a+40b'), {
    notify: ['SUCCESS', 'DELAY'],
    orcpt: { type: 'rfc822', address: 'a@b' },
  });
  assert.equal(rcpt('NOTIFY=never').notify, 'NEVER');
  assert.deepEqual(rcpt('NOTIFY=,FAILURE,,').notify, ['FAILURE']);
  assert.deepEqual(rcpt('NOTIFY=FAILURE,FAILURE').notify, ['FAILURE']);
  assert.deepEqual(rcpt('ORCPT=utf-8;a\\x{40}b\\x{E9}').orcpt, { type: 'utf-8', address: 'a@bé' });
  assert.deepEqual(rcpt('ORCPT=UTF-8;caf\u00e9@x').orcpt, { type: 'UTF-8', address: 'café@x' });
  assert.deepEqual(rcpt('ORCPT=x-foo;abc').orcpt, { type: 'x-foo', address: 'abc' });
});

const RCPT_ERRORS: [string, string][] = [
  ['NOTIFY=NEVER,SUCCESS', '501 5.5.4 Error: Bad NOTIFY parameter syntax'],
  ['NOTIFY=NEVER NOTIFY=NEVER', '501 5.5.4 Error: Bad NOTIFY parameter syntax'],
  ['NOTIFY=', '501 5.5.4 Error: Bad NOTIFY parameter syntax'],
  ['NOTIFY=,', '501 5.5.4 Error: Bad NOTIFY parameter syntax'],
  ['NOTIFY=FAILURE,foo', '501 5.5.4 Error: Bad NOTIFY parameter syntax'],
  ['NOTIFY', '555 5.5.4 Unsupported option: NOTIFY'],
  ['ORCPT=rfc822', '501 5.5.4 Error: Bad ORCPT parameter syntax'],
  ['ORCPT=;x', '501 5.5.4 Error: Bad ORCPT parameter syntax'],
  ['ORCPT=rfc822;a+4', '501 5.5.4 Error: Bad ORCPT parameter syntax'],
  ['ORCPT=x-foo;abc ORCPT=rfc822;a', '501 5.5.4 Error: Bad ORCPT parameter syntax'],
  ['XYZ', '555 5.5.4 Unsupported option: XYZ'],
  ['SIZE=10', '555 5.5.4 Unsupported option: SIZE=10'],
];

test('esmtp-params: RCPT parameter errors give Postfix 3.7 replies', () => {
  for (const [words, expected] of RCPT_ERRORS) assert.equal(replyOf(() => rcpt(words)), expected, words);
});

test('esmtp-params: ORCPT with an encoded CR/LF, NUL or over 500 characters is refused (stricter than Postfix)', () => {
  for (const v of ['rfc822;a+0D+0Ab', 'rfc822;a+00b', 'utf-8;a\\x{A}b', 'utf-8;a\\x{}b', `rfc822;${'a'.repeat(494)}`]) {
    assert.equal(replyOf(() => rcpt(`ORCPT=${v}`)), '501 5.5.4 Error: Bad ORCPT parameter syntax', v);
  }
  assert.equal(rcpt(`ORCPT=rfc822;${'a'.repeat(493)}`).orcpt?.address.length, 493);
});

test('xtext: RFC 3461 4 examples and edge cases', () => {
  assert.equal(xtextEncode('a+b=c d'), 'a+2Bb+3Dc+20d');
  assert.equal(xtextEncode('é'), '+C3+A9');
  assert.equal(xtextDecode('a+2Bb+3dc'), 'a+b=c');
  assert.equal(xtextDecode('+C3+A9'), 'é');
  assert.equal(xtextDecode('plain'), 'plain');
  assert.throws(() => xtextDecode('a+2'), PosternError);
  assert.throws(() => xtextDecode('a+G0'), PosternError);
  assert.throws(() => xtextDecode('+C3'), PosternError, 'not UTF-8');
});

test('xtext: decode(encode(s)) === s for any string; encoded form is pure xchar/hexchar', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme' }), (s) => {
      const e = xtextEncode(s);
      assert.match(e, /^(?:[!-*,-<>-~]|\+[0-9A-F]{2})*$/);
      assert.equal(xtextDecode(e), s);
    }),
  );
});

test('uxtext: RFC 6533 utf-8-addr-xtext round trip', () => {
  assert.equal(uxtextEncode('a+b=c\\d é'), 'a\\x{2B}b\\x{3D}c\\x{5C}d\\x{20}é');
  assert.equal(uxtextEncode('é', { ascii: true }), '\\x{E9}');
  assert.throws(() => uxtextDecode('a\\x{D800}'), PosternError);
  assert.throws(() => uxtextDecode('a\\x{110000}'), PosternError);
  assert.throws(() => uxtextDecode('a\\x{41'), PosternError);
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme' }), fc.boolean(), (s, ascii) => {
      assert.equal(uxtextDecode(uxtextEncode(s, { ascii })), s);
    }),
  );
});

test('esmtp-params: arbitrary parameter words give a value or a ReplyError, never another exception', () => {
  fc.assert(
    fc.property(fc.array(fc.string({ maxLength: 30 }), { maxLength: 6 }), (words) => {
      for (const f of [() => mail(words.join(' ')), () => rcpt(words.join(' '))]) {
        try {
          f();
        } catch (e) {
          assert.ok(e instanceof ReplyError, String(e));
        }
      }
    }),
  );
});

import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { PosternError } from '../../errors.js';
import * as codes from './codes.js';
import { formatReply, isPermanent, isPositive, isTransient, ReplyError, reply, replyLines, replyText, softBounce } from './reply.js';

test('reply: single line with enhanced code', () => {
  assert.equal(formatReply(reply(250, '2.1.0', 'Ok')), '250 2.1.0 Ok\r\n');
});

test('reply: multiline repeats the enhanced code on every line, "-" on all but the last', () => {
  const r = reply(550, '5.7.1', 'first', 'second', 'last');
  assert.equal(formatReply(r), '550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 last\r\n');
});

test('reply: EHLO-style multiline without enhanced code', () => {
  const r = reply(250, null, 'mx.example.test', 'PIPELINING', 'SIZE 10240000');
  assert.equal(formatReply(r), '250-mx.example.test\r\n250-PIPELINING\r\n250 SIZE 10240000\r\n');
});

test('reply: 354 without enhanced code, as Postfix', () => {
  assert.equal(formatReply(reply(codes.START_MAIL_INPUT, null, 'End data with <CR><LF>.<CR><LF>')), '354 End data with <CR><LF>.<CR><LF>\r\n');
});

test('reply: no text gives the bare code', () => {
  assert.equal(formatReply(reply(250, null)), '250\r\n');
  assert.equal(formatReply(reply(250, '2.0.0')), '250 2.0.0\r\n');
});

test('reply: CR/LF inside text splits lines instead of injecting a reply', () => {
  const r = reply(550, '5.1.1', 'bad\r\n250 2.0.0 Ok: injected', 'x\ny');
  assert.deepEqual(r.lines, ['bad', '250 2.0.0 Ok: injected', 'x', 'y']);
  assert.equal(formatReply(r), '550-5.1.1 bad\r\n550-5.1.1 250 2.0.0 Ok: injected\r\n550-5.1.1 x\r\n550 5.1.1 y\r\n');
});

test('reply: other control characters become "?"', () => {
  assert.deepEqual(reply(501, '5.5.4', 'a\x00b\x1bc\x7fd\te').lines, ['a?b?c?d\te']);
});

test('reply: invalid reply codes and mismatched enhanced codes are programming errors', () => {
  for (const c of [199, 600, 260, 250.5, Number.NaN]) assert.throws(() => reply(c, null, 'x'), PosternError);
  assert.throws(() => reply(550, '4.7.1', 'x'), PosternError);
  assert.throws(() => reply(250, '2.01.0', 'x'), PosternError);
  assert.throws(() => reply(250, '2.1', 'x'), PosternError);
  assert.throws(() => reply(354, '3.0.0', 'x'), PosternError);
  assert.doesNotThrow(() => reply(550, '5.123.999', 'x'));
});

test('reply: replyText joins lines for log records', () => {
  assert.equal(replyText(reply(554, '5.7.1', '<r@x>: Relay access denied')), '554 5.7.1 <r@x>: Relay access denied');
  assert.equal(replyText(reply(250, null, 'a', 'b')), '250 a b');
  assert.deepEqual(replyLines(reply(250, null, 'a', 'b')), ['250-a', '250 b']);
});

test('reply: classes and soft_bounce', () => {
  assert.ok(isPositive(reply(250, null)));
  assert.ok(isTransient(reply(451, '4.3.0', 'x')));
  assert.ok(isPermanent(reply(550, '5.1.1', 'x')));
  const soft = softBounce(reply(554, '5.7.1', 'Relay access denied'));
  assert.equal(formatReply(soft), '454 4.7.1 Relay access denied\r\n');
  const r = reply(451, '4.3.0', 'x');
  assert.equal(softBounce(r), r);
});

test('reply: ReplyError carries the reply and a readable message', () => {
  const e = new ReplyError(reply(501, '5.1.7', 'Bad sender address syntax'));
  assert.ok(e instanceof Error);
  assert.equal(e.reply.code, 501);
  assert.equal(e.message, '501 5.1.7 Bad sender address syntax');
  assert.equal(e.name, 'ReplyError');
});

test('codes: constants carry the RFC values', () => {
  assert.equal(codes.SERVICE_READY, 220);
  assert.equal(codes.SERVICE_NOT_AVAILABLE, 421);
  assert.equal(codes.PARAMS_NOT_RECOGNIZED, 555);
  assert.equal(codes.E_BAD_SENDER_SYNTAX, '5.1.7');
  assert.equal(codes.E_BAD_RECIPIENT_SYNTAX, '5.1.3');
});

test('reply: formatReply cleans a hand-built Reply too', () => {
  const r = { code: 250, enhanced: null, lines: ['ok\r\n250 injected'] };
  assert.equal(formatReply(r), '250-ok\r\n250 250 injected\r\n');
  assert.equal(formatReply({ code: 250, enhanced: '2.0.0', lines: [] }), '250 2.0.0\r\n');
});

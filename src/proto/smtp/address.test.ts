import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  formatPath,
  isIPv4Literal,
  isIPv6Literal,
  isValidHostname,
  parseMailFrom,
  parseRcptTo,
  quoteLocalPart,
  smtpWords,
} from './address.js';
import { EsmtpParams } from './esmtp-params.js';
import { formatReply, ReplyError } from './reply.js';

function replyOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof ReplyError) return formatReply(e.reply).trimEnd();
    throw e;
  }
  return 'ok';
}

const BAD_SENDER = '501 5.1.7 Bad sender address syntax';
const BAD_RCPT = '501 5.1.3 Bad recipient address syntax';
const MAIL_SYNTAX = '501 5.5.4 Syntax: MAIL FROM:<address>';
const RCPT_SYNTAX = '501 5.5.4 Syntax: RCPT TO:<address>';

// MAIL arguments (text after "MAIL") → [address or reply]. Every row was checked against
// Postfix 3.7.11 (postfix-ref, loopback) unless marked "Postern is stricter".
const MAIL_CASES: [string, string][] = [
  [' FROM:<a@b.example>', 'a@b.example'],
  [' FROM: <a@b.example>', 'a@b.example'],
  [' from:a@b.example', 'a@b.example'],
  ['  FROM:<a@b.example>   SIZE=10', 'a@b.example'],
  [' FROM :<a@b.example>', MAIL_SYNTAX],
  [' FROM:', MAIL_SYNTAX],
  ['', MAIL_SYNTAX],
  [' TO:<a@b.example>', MAIL_SYNTAX],
  [' FROM:<>', ''],
  [' FROM:<""> ', ''],
  [' FROM:<a@b.example', BAD_SENDER],
  [' FROM:<@x.example,@y.example:a@b.example>', 'a@b.example'],
  [' FROM:<"a b"@b.example>', 'a b@b.example'],
  [' FROM:<"a\\"b"@c.example>', 'a"b@c.example'],
  [' FROM:<a@[1.2.3.4]>', 'a@[1.2.3.4]'],
  [' FROM:<a@[IPv6:2001:db8::1]>', 'a@[IPv6:2001:db8::1]'],
  [' FROM:<a@[ipv6:::1]>', 'a@[ipv6:::1]'],
  [' FROM:<a@[IPv6:::ffff:1.2.3.4]>', 'a@[IPv6:::ffff:1.2.3.4]'],
  [' FROM:<a@[IPv6:2001:db8::zz]>', BAD_SENDER],
  [' FROM:<a@[300.1.1.1]>', BAD_SENDER],
  [' FROM:<a@[0.1.2.3]>', BAD_SENDER],
  [' FROM:<a@[1.2.3]>', BAD_SENDER],
  [' FROM:<a@[foo:bar]>', BAD_SENDER],
  [' FROM:<a@1.2.3.4>', BAD_SENDER],
  [' FROM:<a@123>', BAD_SENDER],
  [' FROM:<a@b.example.>', 'a@b.example.'],
  [' FROM:<a@b..c>', BAD_SENDER],
  [' FROM:<a@>', BAD_SENDER],
  [' FROM:<-a@b.example>', BAD_SENDER],
  [' FROM:<a..b@c.example>', 'a..b@c.example'],
  [' FROM:<a@b_c.example>', 'a@b_c.example'],
  [' FROM:<a@-b.example>', BAD_SENDER],
  [' FROM:<postmaster>', 'postmaster'],
  [' FROM:<a b@c.example>', BAD_SENDER],
  [' FROM:<a@b.example>x', BAD_SENDER],
  [' FROM:<a@bü.example>', BAD_SENDER],
  [' FROM:<a@bü.example> SMTPUTF8', 'a@bü.example'],
  [' FROM:<ü@b.example>', 'ü@b.example'],
  // Postern is stricter than Postfix 3.7 (which accepts these):
  [' FROM:<a\x01b@c.example>', BAD_SENDER],
  [' FROM:<"a\x01b"@c.example>', BAD_SENDER],
  [' FROM:<a\x7fb@c.example>', BAD_SENDER],
  [' FROM:<a\rb@c.example>', BAD_SENDER],
  [' FROM:<a\nb@c.example>', BAD_SENDER],
  [' FROM:<a\x00b@c.example>', BAD_SENDER],
  [' FROM:<a\u0085b@c.example>', BAD_SENDER],
  [' FROM:<a\ufffdb@c.example>', BAD_SENDER],
  [' FROM:<@b.example>', BAD_SENDER],
  [' FROM:<""@b.example>', BAD_SENDER],
  [' FROM:<a@b@c.example>', BAD_SENDER],
  [' FROM:<<a@b.example>>', BAD_SENDER],
  [' FROM:<a@b.example (comment)>', BAD_SENDER],
];

test('address: MAIL FROM acceptance and replies follow Postfix 3.7', () => {
  for (const [arg, expected] of MAIL_CASES) {
    let got: string;
    try {
      got = parseMailFrom(arg).path.address;
    } catch (e) {
      if (!(e instanceof ReplyError)) throw e;
      got = formatReply(e.reply).trimEnd();
    }
    assert.equal(got, expected, JSON.stringify(arg));
  }
});

const RCPT_CASES: [string, string][] = [
  [' TO:<a@example.test>', 'a@example.test'],
  [' TO: a@example.test', 'a@example.test'],
  [' TO:<>', BAD_RCPT],
  [' TO:<"">', BAD_RCPT],
  [' FROM:<a@example.test>', RCPT_SYNTAX],
  [' TO:', RCPT_SYNTAX],
  [' TO:<Postmaster>', 'Postmaster'],
  [' TO:<@a.example,@b.example:u@d.example>', 'u@d.example'],
  [' TO:@a.example:u@d.example', 'u@d.example'],
  [' TO:<u@d.example\r\nRCPT TO:<x@y.example>>', BAD_RCPT],
];

test('address: RCPT TO acceptance and replies follow Postfix 3.7', () => {
  for (const [arg, expected] of RCPT_CASES) {
    let got: string;
    try {
      got = parseRcptTo(arg).path.address;
    } catch (e) {
      if (!(e instanceof ReplyError)) throw e;
      got = formatReply(e.reply).trimEnd();
    }
    assert.equal(got, expected, JSON.stringify(arg));
  }
});

test('address: non-ASCII domain in RCPT is flagged, or refused when the transaction has no SMTPUTF8', () => {
  const r = parseRcptTo(' TO:<a@bü.example>');
  assert.equal(r.path.utf8, true);
  assert.equal(replyOf(() => parseRcptTo(' TO:<a@bü.example>', { smtputf8: false })), BAD_RCPT);
  assert.equal(parseRcptTo(' TO:<a@bü.example>', { smtputf8: true }).path.domain, 'bü.example');
  // Non-ASCII local part: accepted and flagged (Postfix strict_smtputf8 = no).
  assert.equal(parseRcptTo(' TO:<ü@b.example>', { smtputf8: false }).path.utf8, true);
  assert.equal(parseRcptTo(' TO:<a@b.example>').path.utf8, false);
  // An emoji (astral code point) in a local part is fine; a domain without a valid A-label form is not.
  assert.equal(parseRcptTo(' TO:<\u{1f600}@b.example>').path.localPart, '\u{1f600}');
  assert.equal(replyOf(() => parseRcptTo(' TO:<a@b\u00fc%.example>')), BAD_RCPT);
  assert.equal(replyOf(() => parseRcptTo(` TO:<a@${'\u00fc'.repeat(70)}.example>`)), BAD_RCPT, 'A-label longer than 63');
});

test('address: SMTPUTF8 in MAIL counts only with smtputf8_enable', () => {
  assert.equal(replyOf(() => parseMailFrom(' FROM:<a@bü.example> SMTPUTF8', { smtputf8_enable: false })), BAD_SENDER);
  assert.equal(parseMailFrom(' FROM:<a@bü.example> smtputf8').path.utf8, true);
});

test('address: allow_min_user permits a leading "-"', () => {
  assert.equal(parseRcptTo(' TO:<-a@b.example>', { allow_min_user: true }).path.address, '-a@b.example');
  assert.equal(replyOf(() => parseRcptTo(' TO:<-a@b.example>')), BAD_RCPT);
});

test('address: Path parts and parameters in order', () => {
  const m = parseMailFrom(' FROM:<"x y"@[IPv6:::1]> size=10 BODY=8BITMIME size=20 <c@d>');
  assert.deepEqual(m.path, { address: 'x y@[IPv6:::1]', localPart: 'x y', domain: '[IPv6:::1]', utf8: false });
  assert.ok(m.params instanceof EsmtpParams);
  assert.deepEqual(
    (m.params as EsmtpParams).list.map((p) => p.text),
    ['size=10', 'BODY=8BITMIME', 'size=20', '<c@d>'],
  );
  assert.equal(m.params.get('SIZE'), '20');
  assert.equal(m.params.get('BODY'), '8BITMIME');
  const n = parseMailFrom(' FROM:<> SMTPUTF8');
  assert.deepEqual(n.path, { address: '', localPart: '', domain: '', utf8: false });
  assert.equal(n.params.get('SMTPUTF8'), null);
  assert.ok(n.params.has('SMTPUTF8'));
});

test('address: words split as Postfix smtpd_token() does', () => {
  const w = (s: string) => smtpWords(s).map((x) => (x.error ? `!${x.text}` : x.text));
  assert.deepEqual(w(' FROM:<a b@c> X=1'), ['FROM:', '<a b@c>', 'X=1']);
  assert.deepEqual(w(' FROM:"a b"@c'), ['FROM:', '"a b"@c']);
  assert.deepEqual(w(' FROM:<"a>b"@c>'), ['FROM:', '<"a>b"@c>']);
  assert.deepEqual(w(' FROM:<a<b>c>'), ['FROM:', '<a<b>c>']);
  assert.deepEqual(w(' FROM :x'), ['FROM', ':x']);
  assert.deepEqual(w(' XFROM:<a>'), ['XFROM:<a>']);
  assert.deepEqual(w(' FROM:<a'), ['FROM:', '!<a']);
  assert.deepEqual(w('\tTO:\t<a>\t'), ['TO:', '<a>']);
});

test('address: literal and host name validators', () => {
  for (const ok of ['::1', '::', '2001:db8::1', '1:2:3:4:5:6:7:8', '::ffff:1.2.3.4', '1:2:3:4:5:6:1.2.3.4', 'fe80::1:2', '1::', '1::1.2.3.4', '1:2:3:4::1.2.3.4']) {
    assert.ok(isIPv6Literal(ok), ok);
  }
  for (const bad of ['', '1', ':1', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::', '1:2:3:4:5:6:7::', '::1.2.3', '1.2.3.4::', 'fe80::1%eth0', '::1.2.3.4:1', '1::v4', 'v4::1', '1:::2', '1:2:3:4:5::1.2.3.4', '::0.1.2.3', '::256.1.1.1']) {
    assert.ok(!isIPv6Literal(bad), bad);
  }
  assert.ok(isIPv4Literal('0.0.0.0'));
  assert.ok(isIPv4Literal('255.255.255.255'));
  assert.ok(!isIPv4Literal('256.1.1.1'));
  assert.ok(!isIPv4Literal('1.2.3.4.5'));
  assert.ok(!isIPv4Literal('1.2.3.1234'));
  assert.ok(isValidHostname('a-b.c_d.example'));
  assert.ok(!isValidHostname('a-.example'));
  assert.ok(!isValidHostname(`${'a'.repeat(64)}.example`));
  assert.ok(isValidHostname(`${'a'.repeat(63)}.example`));
  assert.ok(!isValidHostname(`${'a.'.repeat(127)}ab`));
  assert.ok(!isValidHostname('1.2.3.4'));
  assert.ok(!isValidHostname('a..b'));
});

test('address: quoteLocalPart/formatPath make the internal form wire-safe again', () => {
  assert.equal(quoteLocalPart('a.b'), 'a.b');
  assert.equal(quoteLocalPart('a b'), '"a b"');
  assert.equal(quoteLocalPart('a"b\\c'), '"a\\"b\\\\c"');
  assert.equal(quoteLocalPart('a..b'), '"a..b"');
  assert.equal(quoteLocalPart('ü'), 'ü');
  const p = parseMailFrom(' FROM:<"a \\"q\\" b"@x.example>').path;
  assert.equal(formatPath(p), '<"a \\"q\\" b"@x.example>');
  assert.equal(parseMailFrom(` FROM:${formatPath(p)}`).path.address, p.address);
  assert.equal(formatPath(parseMailFrom(' FROM:<>').path), '<>');
  assert.equal(formatPath(parseRcptTo(' TO:<postmaster>').path), '<postmaster>');
});

test('address: arbitrary arguments give a Path or a ReplyError; accepted paths have no controls', () => {
  const chars = fc.constantFrom(...'<>"\\@:., ;[]()aZ09-_+=\r\n\x00\x7fé\u{1f600}'.split(''), 'IPv6:', 'FROM:', 'TO:');
  const arg = fc.array(chars, { maxLength: 40 }).map((a) => a.join(''));
  fc.assert(
    fc.property(fc.oneof(arg, fc.string(), arg.map((s) => ` FROM:<${s}>`), arg.map((s) => ` TO:<${s}>`)), (s) => {
      for (const f of [parseMailFrom, parseRcptTo]) {
        try {
          const m = f(s);
          assert.doesNotMatch(m.path.address, /[\x00-\x1f\x7f-\x9f]/);
          assert.equal(m.path.address, m.path.domain === '' ? m.path.localPart : `${m.path.localPart}@${m.path.domain}`);
          assert.equal(m.path.utf8, /[^\x00-\x7f]/.test(m.path.address));
        } catch (e) {
          assert.ok(e instanceof ReplyError, String(e));
          assert.equal(e.reply.code, 501);
        }
      }
    }),
    { numRuns: 2000 },
  );
});

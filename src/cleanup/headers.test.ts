import * as assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { fieldValue, fromField, HeaderPass, headerNameLength, LineEnds, mailDate, messageIdFor, quote822Local } from './headers.js';

function runPass(input: Buffer, cuts: number[], limit = 102400, drop: string[] = ['bcc', 'content-length', 'resent-bcc', 'return-path']) {
  const out: Buffer[] = [];
  const pass = new HeaderPass({ header_size_limit: limit, dropHeaders: new Set(drop), out: (b) => out.push(Buffer.from(b)) });
  let pos = 0;
  for (const c of [...cuts.filter((x) => x > 0 && x < input.length)].sort((a, b) => a - b)) {
    pass.push(input.subarray(pos, c));
    pos = c;
  }
  pass.push(input.subarray(pos));
  pass.end();
  return { out: Buffer.concat(out), pass };
}

function runLineEnds(input: Buffer, cuts: number[], replace = true): Buffer {
  const le = new LineEnds(replace);
  const out: Buffer[] = [];
  let pos = 0;
  for (const c of [...cuts.filter((x) => x > 0 && x < input.length)].sort((a, b) => a - b)) {
    out.push(Buffer.from(le.push(input.subarray(pos, c))));
    pos = c;
  }
  out.push(le.push(input.subarray(pos)), le.end());
  return Buffer.concat(out);
}

describe('cleanup/headers', () => {
  test('cleanup: bare LF becomes CRLF and a stray CR becomes a space (cleanup_replace_stray_cr_lf)', () => {
    assert.equal(runLineEnds(Buffer.from('a\nb\r\nc\rd\r\n'), []).toString(), 'a\r\nb\r\nc d\r\n');
    assert.equal(runLineEnds(Buffer.from('a\r'), []).toString(), 'a ');
    assert.equal(runLineEnds(Buffer.from('c\rd\r\n'), [], false).toString(), 'c\rd\r\n');
    // A CR at a chunk end followed by LF in the next chunk is a line end, not stray.
    assert.equal(runLineEnds(Buffer.from('ab\r\ncd\r\n'), [3]).toString(), 'ab\r\ncd\r\n');
    assert.equal(runLineEnds(Buffer.from('ab\r\rcd\r\n'), [3]).toString(), 'ab  cd\r\n');
  });

  test('cleanup: line-end repair gives the same bytes however the input is split', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', 'b', '\r', '\n', '\r\n', '.'), { maxLength: 40 }), fc.array(fc.nat(60), { maxLength: 6 }), (parts, cuts) => {
        const input = Buffer.from(parts.join(''));
        const whole = runLineEnds(input, []);
        assert.deepEqual(runLineEnds(input, cuts), whole);
        // Canonical: every LF has its CR, every CR its LF.
        const s = whole.toString('latin1');
        assert.equal(s.replace(/\r\n/g, '').includes('\r') || s.replace(/\r\n/g, '').includes('\n'), false);
      }),
    );
  });

  test('cleanup: header names follow Postfix is_header (obsolete space before colon allowed)', () => {
    assert.equal(headerNameLength(Buffer.from('Subject: x')), 7);
    assert.equal(headerNameLength(Buffer.from('Subject : x')), 7);
    assert.equal(headerNameLength(Buffer.from(': x')), 0);
    assert.equal(headerNameLength(Buffer.from(' Subject: x')), 0);
    assert.equal(headerNameLength(Buffer.from('Sub ject: x')), 0);
    assert.equal(headerNameLength(Buffer.from('Süb: x')), 0);
    assert.equal(headerNameLength(Buffer.from('no colon here')), 0);
  });

  test('cleanup: header pass drops message_drop_headers, counts Received:, finds the header end', () => {
    const msg = 'Received: from a\r\nReceived: from b\r\n\tby c\r\nBcc: secret@example.org\r\nReturn-Path: <x@y>\r\nSubject: hi\r\n\r\nBcc: not a header any more\r\n';
    const { out, pass } = runPass(Buffer.from(msg), []);
    assert.equal(out.toString(), 'Received: from a\r\nReceived: from b\r\n\tby c\r\nSubject: hi\r\n\r\nBcc: not a header any more\r\n');
    assert.equal(pass.facts.received, 2);
    assert.equal(pass.headerEnd, out.indexOf('\r\n\r\n') + 2);
    assert.ok(pass.facts.seen.has('received'));
  });

  test('cleanup: a header longer than header_size_limit is cut there and its excess discarded', () => {
    const long = `X-Long: ${'a'.repeat(300)}\r\n\t${'b'.repeat(300)}\r\nSubject: kept\r\n\r\nbody\r\n`;
    const { out, pass } = runPass(Buffer.from(long), [50, 150, 350], 100);
    const text = out.toString();
    assert.ok(pass.truncated);
    assert.equal(text, `X-Long: ${'a'.repeat(92)}\r\nSubject: kept\r\n\r\nbody\r\n`);
  });

  test('cleanup: header_size_limit cuts as Postfix 3.7 does: before the crossing line (nice cut) or at the limit (unkind cut)', () => {
    // Golden: what Postfix 3.7.11 delivered for these headers with header_size_limit = 102400.
    const b19 = `\t${'b'.repeat(5000)}\r\n`.repeat(19);
    const t1 = `X-Big: ${'a'.repeat(3000)}\r\n${b19}\t${'c'.repeat(5000)}\r\n\tshort\r\nX-After: yes\r\n\r\n`;
    assert.equal(runPass(Buffer.from(t1), [4096, 70000]).out.toString(), `X-Big: ${'a'.repeat(3000)}\r\n${b19}X-After: yes\r\n\r\n`);
    const t2 = `X-One: ${'d'.repeat(150000)}\r\n\tshort2\r\nX-After: yes\r\n\r\n`;
    assert.equal(runPass(Buffer.from(t2), [1000, 102399, 102401]).out.toString(), `X-One: ${'d'.repeat(102393)}\r\nX-After: yes\r\n\r\n`);
    const t3 = `X-Two: ${'e'.repeat(100000)}\r\n\t${'f'.repeat(1000)}\r\n\tshort3\r\nX-After: yes\r\n\r\n`;
    const r3 = runPass(Buffer.from(t3), [50000]);
    assert.equal(r3.out.toString(), t3);
    assert.equal(r3.pass.truncated, false);
  });

  test('cleanup: a body line longer than header_size_limit right after the headers is kept whole', () => {
    const body = 'z'.repeat(500);
    const { out, pass } = runPass(Buffer.from(`Subject: s\r\n${body}\r\nmore\r\n`), [20, 300], 100);
    assert.equal(out.toString(), `Subject: s\r\n${body}\r\nmore\r\n`);
    assert.equal(pass.headerEnd, 'Subject: s\r\n'.length);
  });

  test('cleanup: header processing gives the same output however the input is split', () => {
    const line = fc.constantFrom('Subject: x', 'Received: from h', '\tcontinued', ' more', 'Bcc: b@c', 'X-Y: ' + 'q'.repeat(70), '', 'body text', 'Message-ID: <m@x>');
    fc.assert(
      fc.property(fc.array(line, { maxLength: 12 }), fc.array(fc.nat(400), { maxLength: 8 }), fc.integer({ min: 20, max: 200 }), (lines, cuts, limit) => {
        const input = Buffer.from(lines.map((l) => `${l}\r\n`).join(''));
        const a = runPass(input, [], limit);
        const b = runPass(input, cuts, limit);
        assert.deepEqual(b.out, a.out);
        assert.equal(b.pass.headerEnd, a.pass.headerEnd);
        assert.equal(b.pass.facts.received, a.pass.facts.received);
      }),
    );
  });

  test('cleanup: a message without a final line end gets one; a header-only message ends at its end', () => {
    const a = runPass(Buffer.from('Subject: x'), []);
    assert.equal(a.out.toString(), 'Subject: x\r\n');
    assert.equal(a.pass.headerEnd, a.out.length);
    const b = runPass(Buffer.from('Subject: x\r\n\r\nbody'), []);
    assert.equal(b.out.toString(), 'Subject: x\r\n\r\nbody\r\n');
    const c = runPass(Buffer.from(''), []);
    assert.equal(c.out.length, 0);
    assert.equal(c.pass.headerEnd, 0);
  });

  test('cleanup: Message-ID values are kept as Postfix logs them', () => {
    const { pass } = runPass(Buffer.from('Message-ID:\r\n <abc@example.org>\r\nResent-Message-Id: <r@x>\r\n\r\n'), []);
    assert.deepEqual(pass.facts.ids, [
      { resent: false, value: '<abc@example.org>' },
      { resent: true, value: '<r@x>' },
    ]);
    assert.equal(pass.facts.firstMessageId, '<abc@example.org>');
    assert.ok(pass.facts.resent);
    assert.equal(fieldValue(Buffer.from('Message-ID: <a@b>\r\n\t(comment)\r\n')), '<a@b>\n\t(comment)');
  });

  test('cleanup: Message-ID format is <YYYYMMDDhhmmss.QUEUEID@myhostname> (long ids: <QUEUEID@myhostname>)', () => {
    const t = Date.UTC(2026, 10, 25, 6, 7, 17, 500);
    assert.equal(messageIdFor('9260421CADA', t, 'mx.example.test', false), '<20261125060717.9260421CADA@mx.example.test>');
    assert.equal(messageIdFor('4fJ9Qs0bdqz1v', t, 'mx.example.test', true), '<4fJ9Qs0bdqz1v@mx.example.test>');
  });

  test('cleanup: Date: is RFC 5322 local time with numeric zone and zone name, two-digit day', () => {
    const d = mailDate(Date.UTC(2026, 10, 5, 6, 7, 17));
    assert.match(d, /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4} \([^)]+\)$/);
    if (new Date().getTimezoneOffset() === 0 && (process.env.TZ ?? 'UTC') === 'UTC') assert.equal(d, 'Thu, 05 Nov 2026 06:07:17 +0000 (UTC)');
  });

  test('cleanup: From: is the sender with its local part quoted when needed, MAILER-DAEMON for <>', () => {
    assert.equal(quote822Local('john.doe@example.org'), 'john.doe@example.org');
    assert.equal(quote822Local('john doe@example.org'), '"john doe"@example.org');
    assert.equal(quote822Local('a..b@example.org'), '"a..b"@example.org');
    assert.equal(quote822Local('"x y"@example.org'), '"x y"@example.org');
    assert.equal(fromField('', 'alice@example.org', null), 'From: alice@example.org\r\n');
    assert.equal(fromField('', '', null), 'From: MAILER-DAEMON\r\n');
    assert.equal(fromField('Resent-', 'alice@example.org', 'Alice Liddell'), 'Resent-From: Alice Liddell <alice@example.org>\r\n');
    assert.equal(fromField('', 'alice@example.org', 'Liddell, Alice'), 'From: "Liddell, Alice" <alice@example.org>\r\n');
  });
});

import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type BareNewlinePolicy, bareLfReply, bareNewlineAction, DataReader } from './data-reader.js';
import { formatReply } from './reply.js';

interface Run {
  content: Buffer;
  done: boolean;
  rest: Buffer;
  reader: DataReader;
}

/** Feed `input` cut at `cuts` (offsets), collecting content and everything after the end. */
function run(input: Buffer, cuts: number[] = [], opts: { bareNewline?: BareNewlinePolicy; replaceStrayCr?: boolean } = {}): Run {
  const reader = new DataReader({ bareNewline: opts.bareNewline ?? 'normalize', replaceStrayCr: opts.replaceStrayCr ?? false });
  const points = [...new Set(cuts.map((c) => Math.min(c, input.length)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, input.length]) {
    chunks.push(input.subarray(prev, p));
    prev = p;
  }
  const content: Buffer[] = [];
  const rest: Buffer[] = [];
  let done = false;
  for (const c of chunks) {
    const r = reader.push(c);
    content.push(r.content);
    if (r.done) {
      assert.ok(!done || r.content.length === 0);
      done = true;
      rest.push(r.rest);
    } else {
      assert.equal(r.rest.length, 0);
    }
  }
  return { content: Buffer.concat(content), done, rest: Buffer.concat(rest), reader };
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const s = (x: Buffer): string => x.toString('latin1');

/**
 * A deliberately simple reference: split into lines at LF, then apply RFC 5321 4.5.2 and the
 * Postfix 3.9 rules line by line.
 */
function reference(input: Buffer, replaceStrayCr = false) {
  const text = s(input);
  let out = '';
  let prevBareLf = false;
  let pos = 0;
  let longest = 0;
  let bareLf = false;
  let bareCr = false;
  for (;;) {
    const lf = text.indexOf('\n', pos);
    if (lf < 0) return { done: false, content: out, end: -1, longest, bareLf, bareCr };
    const crlf = lf > pos && text[lf - 1] === '\r';
    let line = text.slice(pos, crlf ? lf - 1 : lf);
    const next = lf + 1;
    if (line === '.') {
      if (crlf && !prevBareLf) return { done: true, content: out, end: next, longest, bareLf, bareCr };
      // lone dot next to a bare LF: dropped
    } else {
      if (line.startsWith('.')) line = line.slice(1);
      if (line.includes('\r')) bareCr = true;
      if (replaceStrayCr) line = line.replaceAll('\r', ' ');
      out += `${line}\r\n`;
    }
    longest = Math.max(longest, crlf ? lf - 1 - pos : lf - pos);
    if (!crlf) bareLf = true;
    prevBareLf = !crlf;
    pos = next;
  }
}

/** The only end of data: the first "\r\n.\r\n", or ".\r\n" at the very start. */
function referenceEnd(input: Buffer): number {
  if (s(input.subarray(0, 3)) === '.\r\n') return 3;
  const i = s(input).indexOf('\r\n.\r\n');
  return i < 0 ? -1 : i + 5;
}

test('data-reader: plain message ends at CRLF.CRLF, rest is the pipelined command', () => {
  const r = run(b('Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n'));
  assert.equal(s(r.content), 'Subject: x\r\n\r\nbody\r\n');
  assert.ok(r.done);
  assert.equal(s(r.rest), 'QUIT\r\n');
  assert.equal(r.reader.bytes, 20);
  assert.equal(r.reader.wireBytes, 23);
  assert.equal(r.reader.lines, 3);
  assert.equal(r.reader.longestLine, 10);
  assert.ok(!r.reader.bareLf && !r.reader.bareCr && !r.reader.nul && !r.reader.eightBit);
});

test('data-reader: ".<CRLF>" as the very first line is an empty message', () => {
  const r = run(b('.\r\nRSET\r\n'));
  assert.ok(r.done);
  assert.equal(r.content.length, 0);
  assert.equal(s(r.rest), 'RSET\r\n');
});

test('data-reader: dot-unstuffing (RFC 5321 4.5.2)', () => {
  const r = run(b('..\r\n...x\r\n.y\r\nz.\r\n.\r\n'));
  assert.equal(s(r.content), '.\r\n..x\r\ny\r\nz.\r\n');
  assert.ok(r.done);
});

// Postfix 3.7.11 with smtpd_forbid_bare_newline = normalize (exclusions empty) stored exactly
// "A B C D . E . F  G" lines for this input (observed with postfix-ref; cleanup replaced the
// stray CRs by spaces).
test('data-reader: SMTP smuggling sequences never end the message (observed Postfix 3.9 semantics)', () => {
  const input = b('Subject: t\r\n\r\nA\r\n.\nB\n.\nC\n.\r\nD\r\n..\r\nE\r.\rF\r\r\nG\r\n.\r\n');
  for (const policy of ['normalize', 'note', 'yes', 'reject', 'no'] as const) {
    const r = run(input, [], { bareNewline: policy, replaceStrayCr: true });
    assert.ok(r.done, policy);
    assert.equal(s(r.content), 'Subject: t\r\n\r\nA\r\nB\r\nC\r\nD\r\n.\r\nE . F \r\nG\r\n', policy);
    assert.ok(r.reader.bareLf && r.reader.bareCr);
  }
  const keep = run(input);
  assert.equal(s(keep.content), 'Subject: t\r\n\r\nA\r\nB\r\nC\r\nD\r\n.\r\nE\r.\rF\r\r\nG\r\n');
});

test('data-reader: each smuggling sequence, alone and split at every byte, does not end the data', () => {
  for (const seq of ['\n.\n', '\r\n.\n', '\n.\r\n', '\r.\r', '\r.\r\n', '\n.\r\r\n', '\r\n.\r\r\n', '\r\n.\r.\r\n']) {
    const input = b(`x${seq}MAIL FROM:<evil@example>\r\n`);
    for (let cut = 0; cut <= input.length; cut++) {
      const r = run(input, [cut]);
      assert.ok(!r.done, JSON.stringify(seq));
      assert.ok(!s(r.content).includes('\r\n.\r\n'));
    }
    const ended = run(b(`x${seq}MAIL FROM:<evil@example>\r\n.\r\nNEXT`));
    assert.ok(ended.done);
    assert.equal(s(ended.rest), 'NEXT');
    assert.ok(s(ended.content).includes('MAIL FROM:<evil@example>\r\n'));
  }
});

test('data-reader: bare LF lines are stored as CRLF and flagged', () => {
  const r = run(b('a\nb\r\nc\n\r\n.\r\n'));
  assert.equal(s(r.content), 'a\r\nb\r\nc\r\n\r\n');
  assert.ok(r.reader.bareLf);
  assert.ok(!r.reader.bareCr);
  assert.ok(r.done);
});

test('data-reader: NUL, 8-bit and line length counters', () => {
  const r = run(b(`a\x00b\r\n\xe9\r\n${'x'.repeat(1200)}\r\n.\r\n`));
  assert.ok(r.reader.nul && r.reader.eightBit);
  assert.equal(r.reader.longestLine, 1200);
  const partial = new DataReader({ bareNewline: 'normalize' });
  partial.push(b('y'.repeat(5000)));
  assert.equal(partial.longestLine, 5000, 'a line in progress counts');
  assert.equal(partial.bytes, 5000);
});

test('data-reader: content is returned as it arrives, at most two bytes held back', () => {
  const r = new DataReader({ bareNewline: 'normalize' });
  assert.equal(s(r.push(b('abc\r')).content), 'abc');
  assert.equal(s(r.push(b('\n.')).content), '\r\n');
  assert.equal(s(r.push(b('\r')).content), '');
  const last = r.push(b('\nX'));
  assert.equal(s(last.content), '');
  assert.ok(last.done);
  assert.equal(s(last.rest), 'X');
  // After the end, further input is returned untouched.
  const after = r.push(b('more'));
  assert.ok(after.done);
  assert.equal(s(after.rest), 'more');
  assert.equal(after.content.length, 0);
});

test('data-reader: a long message without line ends never accumulates', () => {
  const r = new DataReader({ bareNewline: 'normalize' });
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let out = 0;
  for (let i = 0; i < 64; i++) out += r.push(chunk).content.length;
  assert.equal(out, 64 * 64 * 1024);
});

test('data-reader: policy actions and the Postfix 3.9 bare LF reply', () => {
  assert.equal(bareNewlineAction('reject'), 'reject');
  assert.equal(bareNewlineAction('note'), 'note');
  for (const p of ['normalize', 'yes', 'no'] as const) assert.equal(bareNewlineAction(p), 'accept');
  assert.equal(formatReply(bareLfReply(550, 'mx.example.test')), '550 5.5.2 mx.example.test Error: bare <LF> received\r\n');
});

// --- Property tests ------------------------------------------------------------------------------

/** Bytes biased towards the interesting ones. */
const smtpByte = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(0x0d, 0x0a, 0x2e) },
  { weight: 3, arbitrary: fc.constantFrom(0x61, 0x20, 0x00, 0xe9) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
);
const smtpBytes = fc.array(smtpByte, { maxLength: 200 }).map((a) => Buffer.from(a));
const cuts = fc.array(fc.nat({ max: 220 }), { maxLength: 12 });

test('data-reader: random chunkings of the same input give identical output', () => {
  fc.assert(
    fc.property(smtpBytes, cuts, fc.boolean(), (input, cutAt, replace) => {
      const whole = run(input, [], { replaceStrayCr: replace });
      const split = run(input, cutAt, { replaceStrayCr: replace });
      const bytewise = run(input, Array.from({ length: input.length }, (_, i) => i), { replaceStrayCr: replace });
      for (const r of [split, bytewise]) {
        assert.deepEqual(r.content, whole.content);
        assert.equal(r.done, whole.done);
        assert.deepEqual(r.rest, whole.rest);
        for (const k of ['bytes', 'wireBytes', 'lines', 'longestLine', 'bareLf', 'bareCr', 'nul', 'eightBit'] as const) {
          assert.equal(r.reader[k], whole.reader[k], k);
        }
      }
    }),
    { numRuns: 500 },
  );
});

test('data-reader: end detection equals the reference (first CRLF.CRLF) and content equals a line-by-line reference', () => {
  fc.assert(
    fc.property(smtpBytes, cuts, fc.boolean(), (input, cutAt, replace) => {
      const r = run(input, cutAt, { replaceStrayCr: replace });
      const end = referenceEnd(input);
      assert.equal(r.done, end >= 0);
      const ref = reference(input, replace);
      assert.equal(ref.done, end >= 0);
      if (end >= 0) {
        assert.equal(ref.end, end);
        assert.equal(s(r.content), ref.content);
        assert.deepEqual(r.rest, input.subarray(end));
        assert.equal(r.reader.wireBytes, end);
        assert.equal(r.reader.bytes, r.content.length);
        assert.equal(r.reader.longestLine, ref.longest);
        assert.equal(r.reader.bareLf, ref.bareLf);
        assert.equal(r.reader.bareCr, ref.bareCr);
        const consumed = input.subarray(0, end);
        assert.equal(r.reader.nul, consumed.includes(0));
        assert.equal(r.reader.eightBit, consumed.some((x) => x >= 0x80));
      } else {
        // Not finished: what came out is the reference for the complete lines plus a prefix of the rest.
        assert.ok(s(r.content).startsWith(ref.content));
        assert.ok(r.reader.wireBytes >= input.length - 2);
      }
    }),
    { numRuns: 1000 },
  );
});

test('data-reader: a terminated message never ends early, whatever is smuggled inside', () => {
  const smuggle = fc.constantFrom('\n.\n', '\r\n.\n', '\n.\r\n', '\r.\r', '.\n', '\n.', '\r\n.\r');
  const piece = fc.oneof(smuggle, fc.string({ maxLength: 10 }));
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 20 }), cuts, (pieces, cutAt) => {
      const body = pieces.join('');
      const input = b(`${body}\r\n.\r\nQUIT\r\n`);
      // Only the final CRLF.CRLF is a real end; everything before it is content.
      fc.pre(referenceEnd(input) === input.length - 6);
      const r = run(input, cutAt);
      assert.ok(r.done);
      assert.equal(s(r.rest), 'QUIT\r\n');
    }),
    { numRuns: 1000 },
  );
});

test('data-reader: arbitrary bytes never throw', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), cuts, (bytes, cutAt) => {
      run(Buffer.from(bytes), cutAt);
    }),
    { numRuns: 500 },
  );
});

// --- BDAT mode -----------------------------------------------------------------------------------

function runBdat(input: Buffer, cutAt: number[], replaceStrayCr = false): { content: string; reader: DataReader } {
  const reader = new DataReader({ bareNewline: 'normalize', mode: 'bdat', replaceStrayCr });
  const points = [...new Set(cutAt.map((c) => Math.min(c, input.length)))].sort((x, y) => x - y);
  let prev = 0;
  let out = '';
  for (const p of [...points, input.length]) {
    const r = reader.push(input.subarray(prev, p));
    assert.ok(!r.done);
    out += s(r.content);
    prev = p;
  }
  out += s(reader.end());
  return { content: out, reader };
}

test('data-reader: BDAT mode keeps dots, never ends, normalizes bare LF and closes the last line', () => {
  const r = runBdat(b('.\r\n..\r\na\nb\r\n.\r\nlast'), []);
  assert.equal(r.content, '.\r\n..\r\na\r\nb\r\n.\r\nlast\r\n');
  assert.ok(r.reader.bareLf);
  assert.equal(r.reader.bytes, r.content.length);
  const cr = runBdat(b('x\r'), []);
  assert.equal(cr.content, 'x\r\r\n');
  assert.ok(cr.reader.bareCr);
  assert.equal(runBdat(b('x\r'), [], true).content, 'x \r\n');
  assert.equal(runBdat(b(''), []).content, '');
  assert.equal(runBdat(b('a\r\n'), []).content, 'a\r\n');
});

test('data-reader: BDAT mode output is independent of chunking and equals line-wise normalization', () => {
  fc.assert(
    fc.property(smtpBytes, cuts, fc.boolean(), (input, cutAt, replace) => {
      const r = runBdat(input, cutAt, replace);
      const lines = s(input).split('\n');
      const last = lines.pop()!;
      let expected = lines.map((l) => `${(l.endsWith('\r') ? l.slice(0, -1) : l).replace(/\r/g, replace ? ' ' : '\r')}\r\n`).join('');
      if (last !== '') expected += `${last.replace(/\r/g, replace ? ' ' : '\r')}\r\n`;
      assert.equal(r.content, expected);
      assert.equal(r.reader.wireBytes, input.length);
      assert.equal(r.reader.bytes, expected.length);
    }),
    { numRuns: 500 },
  );
});

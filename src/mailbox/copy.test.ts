import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { LfCopier } from './copy.js';

function run(quote: boolean, chunks: readonly Buffer[]): string {
  const c = new LfCopier(quote);
  const out: Buffer[] = [];
  for (const ch of chunks) c.push(ch, out);
  c.end(out);
  return Buffer.concat(out).toString('latin1');
}

/** The reference: whole-string transformation. */
function reference(quote: boolean, text: string): string {
  if (text === '') return '';
  let s = text.replace(/\r\n/g, '\n');
  if (quote) s = s.replace(/(^|\n)From /g, '$1>From ');
  return s.endsWith('\n') ? s : `${s}\n`;
}

test('mailbox copy: CRLF becomes LF, a lone CR stays, the last line is ended', () => {
  assert.equal(run(false, [Buffer.from('a\r\nb\rc\r\nlast')]), 'a\nb\rc\nlast\n');
  assert.equal(run(false, [Buffer.from('a\r'), Buffer.from('\nb\r\n')]), 'a\nb\n');
  assert.equal(run(false, [Buffer.from('a\r')]), 'a\r\n');
  assert.equal(run(false, []), '');
});

test('mailbox copy: mbox quoting puts > before lines starting "From " even across chunk boundaries', () => {
  assert.equal(run(true, [Buffer.from('From me\r\nx From y\r\nFrom')]), '>From me\nx From y\nFrom\n');
  assert.equal(run(true, [Buffer.from('a\r\nFr'), Buffer.from('om b\r\n')]), 'a\n>From b\n');
  assert.equal(run(true, [Buffer.from('a\r\nF'), Buffer.from('r'), Buffer.from('o'), Buffer.from('m'), Buffer.from(' b\r\n')]), 'a\n>From b\n');
  assert.equal(run(true, [Buffer.from('Fromage\r\n')]), 'Fromage\n');
  assert.equal(run(false, [Buffer.from('From me\r\n')]), 'From me\n');
});

test('mailbox copy: any chunking gives the same bytes as the whole message (property)', () => {
  const alphabet = fc.constantFrom('a', ' ', '\r', '\n', 'F', 'r', 'o', 'm', '\r\n', 'From ', '>');
  fc.assert(
    fc.property(fc.array(alphabet, { maxLength: 60 }), fc.array(fc.nat(20), { maxLength: 10 }), fc.boolean(), (parts, cuts, quote) => {
      const text = parts.join('');
      const buf = Buffer.from(text, 'latin1');
      const chunks: Buffer[] = [];
      let pos = 0;
      for (const c of cuts) {
        const end = Math.min(buf.length, pos + c);
        chunks.push(buf.subarray(pos, end));
        pos = end;
      }
      chunks.push(buf.subarray(pos));
      assert.equal(run(quote, chunks), reference(quote, text));
    }),
    { numRuns: 500 },
  );
});

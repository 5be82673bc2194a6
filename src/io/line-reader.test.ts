import * as assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { LineReader, type LineResult } from './line-reader.js';

function text(r: LineResult): string {
  assert.equal(r.kind, 'line');
  return r.kind === 'line' ? r.bytes.toString('latin1') : '';
}

describe('io/line-reader', () => {
  it('line-reader: splits CRLF lines across chunk boundaries', async () => {
    const s = new PassThrough();
    const r = new LineReader(s, { lineLimit: 100 });
    s.write('EHLO a.ex');
    s.write('ample\r');
    s.write('\nNOOP\r\nQU');
    assert.equal(text(await r.readLine(1000)), 'EHLO a.example');
    assert.equal(text(await r.readLine(1000)), 'NOOP');
    assert.equal(r.hasBuffered(), true);
    assert.equal(r.peekBuffered(10).toString(), 'QU');
    s.write('IT\r\n');
    const q = await r.readLine(1000);
    assert.equal(text(q), 'QUIT');
    assert.equal(q.kind === 'line' && q.bareLf, false);
    assert.equal(r.hasBuffered(), false);
  });

  it('line-reader: a bare LF ends a line and is reported', async () => {
    const s = new PassThrough();
    const r = new LineReader(s, { lineLimit: 100 });
    s.write('NOOP\nRSET\r\r\n');
    const a = await r.readLine(1000);
    assert.equal(text(a), 'NOOP');
    assert.equal(a.kind === 'line' && a.bareLf, true);
    const b = await r.readLine(1000);
    assert.equal(text(b), 'RSET');
    assert.equal(b.kind === 'line' && b.bareLf, false);
  });

  it('line-reader: an over-long line is cut at the limit and the rest skipped', async () => {
    const s = new PassThrough();
    const r = new LineReader(s, { lineLimit: 10 });
    s.write('NOOP ' + 'a'.repeat(30));
    s.write('b'.repeat(5000));
    s.write('\r\nQUIT\r\n');
    const a = await r.readLine(1000);
    assert.equal(text(a), 'NOOP aaaaa');
    assert.equal(a.kind === 'line' && a.truncated, true);
    assert.equal(text(await r.readLine(1000)), 'QUIT');
  });

  it('line-reader: the limit counts the line terminator as Postfix does', async () => {
    const s = new PassThrough();
    const r = new LineReader(s, { lineLimit: 5 });
    s.write('NOOP\r\nNOOPS\r\nNOOP\nNOOPS\n');
    const a = await r.readLine(1000);
    assert.equal(text(a), 'NOOP');
    assert.equal(a.kind === 'line' && a.truncated, false);
    const b = await r.readLine(1000);
    assert.equal(text(b), 'NOOPS');
    assert.equal(b.kind === 'line' && b.truncated, true);
    const c = await r.readLine(1000);
    assert.equal(c.kind === 'line' && !c.truncated && c.bareLf, true);
    const d = await r.readLine(1000);
    assert.equal(d.kind === 'line' && d.truncated, true);
  });

  it('line-reader: times out and reports EOF', async () => {
    const s = new PassThrough();
    const r = new LineReader(s, { lineLimit: 100 });
    s.write('partial');
    assert.equal((await r.readLine(30)).kind, 'timeout');
    s.end();
    assert.equal((await r.readLine(1000)).kind, 'eof');
  });

  it('line-reader: raw chunks, unshift and limits for BDAT', async () => {
    const s = new PassThrough();
    const r = new LineReader(s, { lineLimit: 100 });
    s.write('BDAT 5\r\nhelloNOOP\r\n');
    assert.equal(text(await r.readLine(1000)), 'BDAT 5');
    const c = await r.readChunk(1000, 5);
    assert.equal(c.kind === 'chunk' && c.bytes.toString(), 'hello');
    const d = await r.readChunk(1000);
    assert.equal(d.kind === 'chunk' && d.bytes.toString(), 'NOOP\r\n');
    r.unshift(Buffer.from('RSET\r\n'));
    assert.equal(text(await r.readLine(1000)), 'RSET');
  });

  it('line-reader: discardBuffered drops pipelined plaintext and attach reads the new stream', async () => {
    const plain = new PassThrough();
    const r = new LineReader(plain, { lineLimit: 100 });
    plain.write('STARTTLS\r\nMAIL FROM:<evil@example>\r\n');
    assert.equal(text(await r.readLine(1000)), 'STARTTLS');
    const old = r.detach();
    assert.equal(old, plain);
    assert.equal(r.discardBuffered(), 'MAIL FROM:<evil@example>\r\n'.length);
    const wrapped = new PassThrough();
    r.attach(wrapped);
    wrapped.write('EHLO tls.example\r\n');
    assert.equal(text(await r.readLine(1000)), 'EHLO tls.example');
    // Bytes that reach the old stream after detach are never read as commands.
    plain.write('RCPT TO:<x@y>\r\n');
    assert.equal((await r.readLine(30)).kind, 'timeout');
  });

  it('line-reader: pauses the socket when unread input reaches the high-water mark', async () => {
    const s = new PassThrough();
    const r = new LineReader(s, { lineLimit: 10, highWaterMark: 64 });
    s.write(Buffer.alloc(100, 0x41));
    await new Promise((res) => setImmediate(res));
    assert.equal(s.isPaused(), true);
    s.write('\r\n');
    const a = await r.readLine(1000);
    assert.equal(a.kind === 'line' && a.truncated, true);
    assert.equal(s.isPaused(), false);
  });
});

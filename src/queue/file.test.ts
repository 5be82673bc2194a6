import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { HeaderInsert, QueueEnvelope } from './envelope.js';
import { END_RECORD_LENGTH, openMessage, QUEUE_FILE_MAGIC, QueueFileWriter, readMessage, readQueueFile } from './file.js';

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-qfile-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

function envelope(queueId: string, content: Buffer, headerEnd: number, inserts: HeaderInsert[] = []): QueueEnvelope {
  return {
    version: 1,
    queueId,
    arrivalTime: 1_795_000_000_000,
    sender: 'alice@example.org',
    recipients: [
      { address: 'bob@example.test', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;bob@example.test' },
      { address: 'carol@example.test', notify: null, orcpt: null },
    ],
    ret: 'HDRS',
    envid: 'QQ314159',
    smtputf8: false,
    body: '8BITMIME',
    client: {
      name: 'mail.example.org',
      addr: '2001:db8::25',
      port: 41234,
      helo: 'mail.example.org',
      protocol: 'ESMTPS',
      tls: { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', bits: 256, algBits: 256 },
      saslUsername: null,
      localAddr: '2001:db8::1',
    },
    messageId: '<1@example.org>',
    contentLength: content.length,
    headerEnd,
    inserts,
    size: content.length + inserts.reduce((n, i) => n + Buffer.byteLength(i.text), 0),
  };
}

const CONTENT = Buffer.from('Subject: hi\r\nMessage-ID: <1@example.org>\r\n\r\nbody line 1\r\nbody line 2\r\n');
const HEADER_END = CONTENT.indexOf('\r\n\r\n') + 2;

async function makeFile(name: string, content = CONTENT, inserts: HeaderInsert[] = []): Promise<string> {
  const file = path.join(tmp, name);
  const { writer } = await QueueFileWriter.create(file);
  // Several writes, as content arrives.
  for (let i = 0; i < content.length; i += 7) writer.write(content.subarray(i, i + 7));
  await writer.finish(envelope(name, content, HEADER_END, inserts));
  return file;
}

describe('queue/file', () => {
  test('queue file: a written file validates and gives back its envelope and message', async () => {
    const file = await makeFile('4516420F32');
    const qf = await readQueueFile(file);
    assert.equal(qf.envelope.queueId, '4516420F32');
    assert.deepEqual(qf.envelope.recipients[0], { address: 'bob@example.test', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;bob@example.test' });
    assert.equal(qf.envelope.client?.addr, '2001:db8::25');
    assert.equal(qf.fileSize, (await fsp.stat(file)).size);
    assert.ok(qf.fileSize > QUEUE_FILE_MAGIC.length + CONTENT.length + END_RECORD_LENGTH);
    assert.deepEqual(await readMessage(qf), CONTENT);
    assert.match(qf.sha256, /^[0-9a-f]{64}$/);
  });

  test('queue file: inserts are spliced into the message; headersOnly stops at the header end', async () => {
    const received = 'Received: from mail.example.org\r\n\tby mx.example.test; Wed, 25 Nov 2026 06:07:17 +0000 (UTC)\r\n';
    const date = 'Date: Wed, 25 Nov 2026 06:07:17 +0000 (UTC)\r\n';
    const file = await makeFile('4516420F33', CONTENT, [
      { at: 0, text: received },
      { at: HEADER_END, text: date },
    ]);
    const qf = await readQueueFile(file);
    const head = CONTENT.subarray(0, HEADER_END).toString();
    const body = CONTENT.subarray(HEADER_END).toString();
    assert.equal((await readMessage(qf)).toString(), received + head + date + body);
    assert.equal((await readMessage(qf, { headersOnly: true })).toString(), received + head + date);
    assert.equal(qf.envelope.size, (received + head + date + body).length);
    const chunks: Buffer[] = [];
    for await (const c of openMessage(qf)) chunks.push(c as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), received + head + date + body);
  });

  test('queue file: a file truncated anywhere is detected as corrupt', async () => {
    const file = await makeFile('4516420F34');
    const whole = await fsp.readFile(file);
    for (const cut of [0, 1, 15, 16, 40, whole.length - END_RECORD_LENGTH - 1, whole.length - END_RECORD_LENGTH, whole.length - 1]) {
      const f = path.join(tmp, `trunc-${cut}`);
      await fsp.writeFile(f, whole.subarray(0, cut));
      await assert.rejects(readQueueFile(f), { code: 'corrupt' }, `cut at ${cut}`);
      await assert.rejects(readQueueFile(f, { verifyHash: false }), { code: 'corrupt' }, `cut at ${cut}, structure only`);
    }
  });

  test('queue file: garbage, appended bytes and a flipped content bit are detected as corrupt', async () => {
    const file = await makeFile('4516420F35');
    const whole = await fsp.readFile(file);
    const cases: [string, Buffer][] = [
      ['garbage', Buffer.from('this is not a queue file at all, just some text that is long enough '.repeat(3))],
      ['appended', Buffer.concat([whole, Buffer.from('x')])],
      ['magic', Buffer.concat([Buffer.from('POSTERN QUEUE 2\n'), whole.subarray(16)])],
    ];
    const flipped = Buffer.from(whole);
    flipped[QUEUE_FILE_MAGIC.length + 3]! ^= 0x20;
    cases.push(['flipped', flipped]);
    for (const [name, bytes] of cases) {
      const f = path.join(tmp, `bad-${name}`);
      await fsp.writeFile(f, bytes);
      await assert.rejects(readQueueFile(f), { code: 'corrupt' }, name);
    }
  });

  test('queue file: a valid file under another queue id name is corrupt (misplaced file)', async () => {
    const file = await makeFile('4516420F36');
    const other = path.join(tmp, '4516420F37');
    await fsp.copyFile(file, other);
    await assert.rejects(readQueueFile(other), { code: 'corrupt', message: /queue id 4516420F36/ });
  });

  test('queue file: an envelope of the wrong shape is corrupt even with a matching hash', async () => {
    const file = path.join(tmp, 'shape');
    const { writer } = await QueueFileWriter.create(file);
    writer.write(CONTENT);
    const env = { ...envelope('shape', CONTENT, HEADER_END), recipients: [{ address: 42 }] } as unknown as QueueEnvelope;
    await writer.finish(env);
    await assert.rejects(readQueueFile(file), { code: 'corrupt', message: /recipients/ });
  });

  test('queue file: a missing file is an I/O error, not corruption', async () => {
    await assert.rejects(readQueueFile(path.join(tmp, 'nope')), { code: 'ENOENT' });
  });

  test('queue file: a large file is streamed through the writer and read back in bounded pieces', async () => {
    const file = path.join(tmp, 'big');
    const { writer } = await QueueFileWriter.create(file);
    const line = Buffer.from(`${'x'.repeat(998)}\r\n`);
    const chunk = Buffer.concat(Array.from({ length: 64 }, () => line)); // 64000 bytes
    let maxPending = 0;
    for (let i = 0; i < 160; i++) {
      writer.write(chunk);
      maxPending = Math.max(maxPending, writer.pendingBytes);
      if (writer.pendingBytes > 256 * 1024) await writer.drain();
    }
    const total = 160 * chunk.length;
    await writer.finish({ ...envelope('big', Buffer.alloc(0), 0), contentLength: total, headerEnd: 0, size: total });
    assert.ok(maxPending <= 256 * 1024 + chunk.length, `pending ${maxPending}`);
    const qf = await readQueueFile(file);
    let n = 0;
    let biggest = 0;
    for await (const c of openMessage(qf)) {
      n += (c as Buffer).length;
      biggest = Math.max(biggest, (c as Buffer).length);
    }
    assert.equal(n, total);
    assert.ok(biggest <= 64 * 1024);
  });
});

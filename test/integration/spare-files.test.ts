/**
 * Spare queue files (src/queue/spare.ts) in a running server: a delivered message's file goes to
 * spare/ and the next SMTP transaction's queue file is written into it. What the user gets must
 * not change: each message delivered exactly as sent, nothing of an earlier message in a later one,
 * big messages' files removed as before.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { maildirFiles, makeTestDir, SENDER, Server, sleep, writeConfig } from '../crash/server.js';
import { sendMail } from '../crash/smtp-client.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function deliver(server: Server, subject: string, body: string): Promise<string> {
  const o = await sendMail({
    host: '127.0.0.1',
    port: server.config.port,
    helo: 'client.example.test',
    sender: SENDER,
    recipients: ['u0@example.test'],
    message: `Subject: ${subject}\r\n\r\n${body}\r\n`,
  });
  assert.equal(o.kind, 'queued', JSON.stringify(o));
  const id = (o as { queueId: string }).queueId;
  await server.waitForLog(new RegExp(`${id}: removed`));
  return id;
}

describe('spare queue files', () => {
  it('spare: the next message is written into the file of the last one delivered; each arrives exactly as sent; a big one is unlinked', async () => {
    const dir = makeTestDir('postern-spare-');
    dirs.push(dir);
    const server = new Server(await writeConfig(dir, { users: 1 }));
    const spare = path.join(server.config.queueDir, 'spare');
    try {
      await server.ready();
      await deliver(server, 'first', 'A'.repeat(20_000));
      const kept = fs.readdirSync(spare);
      assert.equal(kept.length, 1, `spare/: ${kept.join(' ')}`);
      await sleep(100);
      await deliver(server, 'second', 'b');
      assert.deepEqual(fs.readdirSync(spare), kept, 'the same file (inode) went round: taken, published, delivered, kept');
      await sleep(100);
      await deliver(server, 'big', 'C'.repeat(300_000));
      assert.deepEqual(fs.readdirSync(spare), [], 'the big message reused the spare file, then its file was unlinked');
      const bodies = maildirFiles(path.join(server.config.mailBase, 'u0'))
        .map((f) => fs.readFileSync(f, 'latin1'))
        .map((m) => `${/^Subject: (.*)$/m.exec(m)?.[1]} ${m.slice(m.indexOf('\n\n') + 2)}`)
        .sort();
      assert.deepEqual(bodies, [`big ${'C'.repeat(300_000)}\n`, `first ${'A'.repeat(20_000)}\n`, 'second b\n']);
    } finally {
      await server.stop();
    }
    assert.equal((await server.exited).code, 0, server.stderr);
  });
});

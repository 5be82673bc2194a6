/**
 * `postern run` runs qmgr and its delivery agents in a worker thread that writes its own log
 * lines to maillog_file (src/qmgr/thread-client.ts). What an admin sees must not change: the
 * lines of one message in their Postfix order, and after logrotate (rename + SIGHUP) the qmgr's
 * lines as well as smtpd's going to the new file, none to the renamed one.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { makeTestDir, SENDER, Server, writeConfig } from '../crash/server.js';
import { sendMail } from '../crash/smtp-client.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function queued(server: Server): Promise<string> {
  const o = await sendMail({
    host: '127.0.0.1',
    port: server.config.port,
    helo: 'client.example.test',
    sender: SENDER,
    recipients: ['u0@example.test'],
    message: 'Subject: thread\r\n\r\nbody\r\n',
  });
  assert.equal(o.kind, 'queued', JSON.stringify(o));
  return (o as { queueId: string }).queueId;
}

/** The program and text of each line about `id` (time stamps and pids out). */
function linesOf(text: string, id: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.includes(` ${id}: `))
    .map((l) => l.replace(/^.*? postfix\/(\w+)\[\d+\]: /, '$1: ').replace(/delay=[\d.]+, delays=[\d./]+, dsn/, 'delay=D, dsn'));
}

describe('qmgr in its worker thread', () => {
  it('qmgr: the worker thread logs each message as Postfix does, and after logrotate (rename, SIGHUP) writes to the new maillog_file too', async () => {
    const dir = makeTestDir('postern-qthread-');
    dirs.push(dir);
    const server = new Server(await writeConfig(dir, { users: 1 }));
    try {
      await server.ready();
      const first = await queued(server);
      await server.waitForLog(new RegExp(`${first}: removed`));
      assert.deepEqual(
        linesOf(fs.readFileSync(server.config.logFile, 'utf8'), first).map((l) => l.replace(/^(\w+): .*?(from=|message-id=|to=|removed|client=).*$/, '$1 $2')),
        ['smtpd client=', 'cleanup message-id=', 'qmgr from=', 'virtual to=', 'qmgr removed'],
      );

      const rotated = `${server.config.logFile}.1`;
      fs.renameSync(server.config.logFile, rotated);
      process.kill(server.pid, 'SIGHUP');
      const until = Date.now() + 10_000;
      while (!(fs.existsSync(server.config.logFile) && /reload -- version/.test(fs.readFileSync(server.config.logFile, 'utf8')))) {
        assert.ok(Date.now() < until, 'no reload line in the new maillog_file');
        await new Promise((r) => setTimeout(r, 50));
      }
      const second = await queued(server);
      const fresh = (): string => fs.readFileSync(server.config.logFile, 'utf8');
      const end = Date.now() + 20_000;
      while (!fresh().includes(`${second}: removed`)) {
        assert.ok(Date.now() < end, `no "${second}: removed" in the new file:\n${fresh()}\nold:\n${fs.readFileSync(rotated, 'utf8')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(
        linesOf(fresh(), second).map((l) => l.split(' ')[0]),
        ['smtpd:', 'cleanup:', 'qmgr:', 'virtual:', 'qmgr:'],
      );
      assert.deepEqual(linesOf(fs.readFileSync(rotated, 'utf8'), second), [], 'nothing about the new message in the renamed file');
      assert.equal(fs.readdirSync(path.join(server.config.mailBase, 'u0', 'new')).length, 2);
    } finally {
      await server.stop();
    }
    assert.equal((await server.exited).code, 0, server.stderr);
  });
});

import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { MailboxError } from './errors.js';
import { appendToMbox, asctime, dotlock, MboxError } from './mbox.js';

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-mbox-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

async function* chunks(...parts: string[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.from(p);
}

const LOCK = { attempts: 3, delayMs: 20, staleSeconds: 500 };
const WHEN = new Date(2026, 10, 5, 6, 7, 8);

test('mbox: asctime() is the C library format with a space-padded day', () => {
  assert.equal(asctime(WHEN), 'Thu Nov  5 06:07:08 2026');
});

test('mbox: append writes From_ line, headers, >From-quoted body and a blank line; a second message follows', async () => {
  const file = path.join(tmp, 'bob');
  await appendToMbox({
    file,
    sender: 'alice@example.org',
    prepend: ['Return-Path: <alice@example.org>', 'Delivered-To: bob@example.test'],
    message: chunks('Subject: one\r\n\r\nFrom the start\r\nend'),
    defaultDsn: '5.2.0',
    lock: LOCK,
    now: () => WHEN,
  });
  await appendToMbox({ file, sender: '', prepend: [], message: chunks('Subject: two\r\n\r\nx\r\n'), defaultDsn: '5.2.0', lock: LOCK, now: () => WHEN });
  assert.equal(
    await fsp.readFile(file, 'utf8'),
    'From alice@example.org  Thu Nov  5 06:07:08 2026\nReturn-Path: <alice@example.org>\nDelivered-To: bob@example.test\nSubject: one\n\n>From the start\nend\n\n' +
      'From MAILER-DAEMON  Thu Nov  5 06:07:08 2026\nSubject: two\n\nx\n\n',
  );
  assert.equal((await fsp.stat(file)).mode & 0o777, 0o600);
  await assert.rejects(fsp.stat(`${file}.lock`), { code: 'ENOENT' });
});

test('mbox: a held dotlock makes the delivery wait, then fail with 4.2.0 "unable to create lock file"', async () => {
  const file = path.join(tmp, 'locked');
  await fsp.writeFile(`${file}.lock`, '');
  const t0 = Date.now();
  await assert.rejects(appendToMbox({ file, sender: 'a@b', prepend: [], message: chunks('x\r\n'), defaultDsn: '5.2.0', lock: LOCK }), (err: unknown) => {
    assert.ok(err instanceof MailboxError);
    assert.equal(err.dsn, '4.2.0');
    assert.equal(err.reason, `unable to create lock file ${file}.lock: File exists`);
    return true;
  });
  assert.ok(Date.now() - t0 >= 2 * LOCK.delayMs * 0.75, 'retried');
  await assert.rejects(fsp.stat(file), { code: 'ENOENT' });
});

test('mbox: a stale dotlock is removed and the delivery proceeds', async () => {
  const file = path.join(tmp, 'stale');
  await fsp.writeFile(`${file}.lock`, '');
  await appendToMbox({ file, sender: 'a@b', prepend: [], message: chunks('x\r\n'), defaultDsn: '5.2.0', lock: { ...LOCK, staleSeconds: -1 } });
  assert.match(await fsp.readFile(file, 'utf8'), /^From a@b {2}.*\nx\n\n$/);
});

test('mbox: over the size limit the write fails with 5.2.2 File too large and the file is truncated back', async () => {
  const file = path.join(tmp, 'limited');
  await fsp.writeFile(file, 'From old  Thu Nov  5 06:07:08 2026\nold\n\n', { mode: 0o600 });
  const before = await fsp.readFile(file, 'utf8');
  await assert.rejects(
    appendToMbox({ file, sender: 'a@b', prepend: [], message: chunks(`Subject: big\r\n\r\n${'y'.repeat(5000)}\r\n`), defaultDsn: '5.2.0', sizeLimit: 1000, lock: LOCK }),
    (err: unknown) => {
      assert.ok(err instanceof MailboxError);
      assert.equal(err.dsn, '5.2.2');
      assert.equal(err.reason, 'error writing message: File too large');
      return true;
    },
  );
  assert.equal(await fsp.readFile(file, 'utf8'), before);
});

test('mbox: a symbolic link, a directory, a device or an executable file (file deliveries) is refused', async () => {
  const target = path.join(tmp, 'target');
  await fsp.writeFile(target, '');
  const link = path.join(tmp, 'link');
  await fsp.symlink(target, link);
  const base = { sender: 'a@b', prepend: [], defaultDsn: '5.2.0', lock: LOCK };
  await assert.rejects(appendToMbox({ ...base, file: link, message: chunks('x\r\n') }), { reason: 'file is a symbolic link' });
  await assert.rejects(appendToMbox({ ...base, file: tmp, message: chunks('x\r\n') }), { dsn: '5.2.0', reason: 'cannot open file: Is a directory' });
  await assert.rejects(
    appendToMbox({ ...base, file: '/dev/null', message: chunks('x\r\n') }),
    (err: unknown) => err instanceof MboxError && err.problem === 'not-regular' && err.reason === 'destination /dev/null is not a regular file',
  );
  const exe = path.join(tmp, 'exe');
  await fsp.writeFile(exe, '', { mode: 0o700 });
  await assert.rejects(appendToMbox({ ...base, file: exe, refuseExecutable: true, message: chunks('x\r\n') }), { dsn: '5.7.1', reason: 'file is executable' });
  assert.equal(await fsp.readFile(target, 'utf8'), '');
});

test('mbox: /dev/null is accepted for file deliveries (no lock, no fsync)', async () => {
  const r = await appendToMbox({ file: '/dev/null', sender: 'a@b', prepend: [], message: chunks('x\r\n'), defaultDsn: '5.2.0', allowNonRegular: true, lock: LOCK });
  assert.ok(r.size > 0);
});

test('mbox: concurrent appends to one file never interleave', async () => {
  const file = path.join(tmp, 'busy');
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      appendToMbox({ file, sender: 'a@b', prepend: [], message: chunks(`Subject: ${i}\r\n\r\n`, `${String(i).repeat(3000)}\r\n`), defaultDsn: '5.2.0', lock: LOCK }),
    ),
  );
  const msgs = (await fsp.readFile(file, 'utf8')).split(/^From a@b {2}.*\n/m).slice(1);
  assert.equal(msgs.length, 20);
  for (const m of msgs) {
    const n = /^Subject: (\d+)\n\n/.exec(m)![1]!;
    assert.equal(m, `Subject: ${n}\n\n${n.repeat(3000)}\n\n`);
  }
});

test('mbox: dotlock() creates and reports an unwritable directory with the caller\'s status', async () => {
  const lock = await dotlock(path.join(tmp, 'x'), LOCK, '5.2.0');
  assert.equal(lock, path.join(tmp, 'x.lock'));
  await assert.rejects(dotlock(path.join(tmp, 'nodir', 'x'), LOCK, '4.2.0'), { dsn: '4.2.0', reason: `unable to create lock file ${path.join(tmp, 'nodir', 'x')}.lock: No such file or directory` });
});

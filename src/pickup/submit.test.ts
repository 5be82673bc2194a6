import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { type DurableFs, nodeFs } from '../io/durable.js';
import { MAILDROP_NAME_RE, MaildropWriter, openMaildropFile } from './maildrop.js';
import { EX_DATAERR, EX_USAGE, parseNotifyOption, type SubmitOptions, SubmitError, submit } from './submit.js';

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-submit-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

let seq = 0;
async function dropDir(): Promise<string> {
  seq += 1;
  const d = path.join(tmp, `maildrop${seq}`);
  await fsp.mkdir(d);
  return d;
}

function opts(dir: string, o: Partial<SubmitOptions> = {}): SubmitOptions {
  return {
    maildropDir: dir,
    sender: 'alice',
    fullName: null,
    recipientArgs: ['bob@example.test'],
    extract: false,
    dotEnds: true,
    notify: null,
    ret: null,
    envid: null,
    body: null,
    smtputf8: false,
    line_length_limit: 2048,
    message_size_limit: 10240000,
    header_size_limit: 102400,
    uid: 1000,
    ...o,
  };
}

/** Feed `chunks` as separate reads (line ends may fall anywhere). */
function input(...chunks: string[]): Readable {
  return Readable.from(chunks.map((c) => Buffer.from(c, 'utf8')));
}

async function content(dir: string, name: string): Promise<string> {
  const md = await openMaildropFile(path.join(dir, name));
  try {
    const parts: Buffer[] = [];
    for await (const c of md.content()) parts.push(c);
    return Buffer.concat(parts).toString('utf8');
  } finally {
    await md.close();
  }
}

describe('pickup/submit: sendmail input into a maildrop file', () => {
  test('submit: a message becomes one durable maildrop file, CRLF lines, envelope as given', async () => {
    const dir = await dropDir();
    const r = await submit(input('Subject: hi\n\nhello\n'), opts(dir, { fullName: 'Alice A', notify: ['SUCCESS'], ret: 'HDRS', envid: 'E1', now: 1_700_000_000_000 }));
    assert.match(r.name, MAILDROP_NAME_RE);
    assert.deepEqual(await fsp.readdir(dir), [r.name]);
    const st = await fsp.stat(path.join(dir, r.name));
    assert.equal(st.mode & 0o777, 0o644, 'pickup (mail_owner) must be able to read it');
    assert.equal(await content(dir, r.name), 'Subject: hi\r\n\r\nhello\r\n');
    const md = await openMaildropFile(path.join(dir, r.name));
    await md.close();
    assert.deepEqual(md.envelope, {
      version: 1,
      time: 1_700_000_000_000,
      sender: 'alice',
      fullName: 'Alice A',
      recipients: [{ address: 'bob@example.test', notify: ['SUCCESS'], orcpt: null }],
      ret: 'HDRS',
      envid: 'E1',
      smtputf8: false,
      body: null,
    });
  });

  test('submit: leading From_ lines go, trailing CRs go, a lone dot ends the input', async () => {
    const dir = await dropDir();
    const r = await submit(input('From alice Mon Jan  1 00:00:00 2024\r\n>From x\nSubject: a\r\r\n\r\n..two dots stay\n', '.\nafter the dot\n'), opts(dir));
    assert.equal(await content(dir, r.name), 'Subject: a\r\n\r\n..two dots stay\r\n');
  });

  test('submit: -i (dotEnds false) keeps a lone dot as content; a last line without LF is kept', async () => {
    const dir = await dropDir();
    const r = await submit(input('Subject: a\n\n.\nend'), opts(dir, { dotEnds: false }));
    assert.equal(await content(dir, r.name), 'Subject: a\r\n\r\n.\r\nend\r\n');
  });

  test('submit: a From_ line after the first line is content', async () => {
    const dir = await dropDir();
    const r = await submit(input('Subject: a\n\nFrom here\n'), opts(dir));
    assert.equal(await content(dir, r.name), 'Subject: a\r\n\r\nFrom here\r\n');
  });

  test('submit: long lines pass in pieces; a dot that ends a long line does not end the input', async () => {
    const dir = await dropDir();
    const long = `${'x'.repeat(20)}.`;
    const r = await submit(input('S: a\n\n', long.slice(0, 7), long.slice(7), '\nmore\n'), opts(dir, { line_length_limit: 10 }));
    assert.equal(await content(dir, r.name), `S: a\r\n\r\n${long}\r\nmore\r\n`);
  });

  test('submit: -t takes To/Cc/Bcc (folded too) and adds the command-line recipients; the body is not searched', async () => {
    const dir = await dropDir();
    const msg = 'To: a@x.test,\n  "B B" <b@x.test>\nCc: c@x.test\nBcc: d@x.test\nSubject: s\n\nTo: not@x.test\n';
    const r = await submit(input(msg), opts(dir, { extract: true, recipientArgs: ['e@x.test'] }));
    assert.deepEqual(r.recipients, ['e@x.test', 'a@x.test', 'b@x.test', 'c@x.test', 'd@x.test']);
    // Content untouched: cleanup removes Bcc: (message_drop_headers) when pickup queues it.
    assert.match(await content(dir, r.name), /\r\nBcc: d@x\.test\r\n/);
  });

  test('submit: -t stops at the first non-header line', async () => {
    const dir = await dropDir();
    const r = await submit(input('To: a@x.test\nthis is body\nCc: b@x.test\n'), opts(dir, { extract: true, recipientArgs: [] }));
    assert.deepEqual(r.recipients, ['a@x.test']);
  });

  test('submit: no recipient is EX_USAGE with Postfix\'s text and leaves no file', async () => {
    const dir = await dropDir();
    await assert.rejects(submit(input('Subject: x\n\n'), opts(dir, { recipientArgs: [] })), (err: unknown) => {
      assert.ok(err instanceof SubmitError);
      assert.equal(err.exitCode, EX_USAGE);
      assert.equal(err.message, 'alice(1000): Recipient addresses must be specified on the command line or via the -t option');
      return true;
    });
    await assert.rejects(submit(input('Subject: x\n\n'), opts(dir, { recipientArgs: [], extract: true })), /No recipient addresses found in message header/);
    assert.deepEqual(await fsp.readdir(dir), []);
  });

  test('submit: a message over message_size_limit is EX_DATAERR and leaves no file', async () => {
    const dir = await dropDir();
    await assert.rejects(submit(input('x'.repeat(100), '\n'), opts(dir, { message_size_limit: 50 })), (err: unknown) => {
      assert.ok(err instanceof SubmitError);
      assert.equal(err.exitCode, EX_DATAERR);
      assert.equal(err.message, 'alice(1000): message file too big');
      return true;
    });
    assert.deepEqual(await fsp.readdir(dir), []);
  });

  test('submit: an unwritable maildrop is EX_TEMPFAIL', async () => {
    await assert.rejects(submit(input('x\n'), opts(path.join(tmp, 'no-such-dir'))), (err: unknown) => err instanceof SubmitError && err.exitCode === 75 && /error writing queue file: No such file or directory/.test(err.message));
  });

  test('submit: -N values as Postfix accepts them', () => {
    assert.deepEqual(parseNotifyOption('delay,success'), ['SUCCESS', 'DELAY']);
    assert.deepEqual(parseNotifyOption('never'), 'NEVER');
    assert.equal(parseNotifyOption('never,success'), null);
    assert.equal(parseNotifyOption('sometimes'), null);
  });
});

describe('pickup/maildrop: the file format refuses anything incomplete', () => {
  async function oneFile(): Promise<{ dir: string; file: string }> {
    const dir = await dropDir();
    const r = await submit(input('Subject: t\n\nbody\n'), opts(dir));
    return { dir, file: path.join(dir, r.name) };
  }

  test('maildrop: a truncated file, a flipped byte, garbage appended are refused as corrupt', async () => {
    const { file } = await oneFile();
    const good = await fsp.readFile(file);
    for (const bad of [good.subarray(0, good.length - 10), Buffer.concat([good, Buffer.from('x')]), Buffer.from(good).fill(0x41, 20, 21)]) {
      await fsp.writeFile(file, bad);
      await assert.rejects(openMaildropFile(file), (err: unknown) => (err as { code?: string }).code === 'corrupt');
    }
  });

  test('maildrop: a symbolic link is refused (ELOOP), a file with two links is corrupt', async () => {
    const { dir, file } = await oneFile();
    const link = path.join(dir, 'AAAAAAAAAAAAAAAAAAAAA');
    await fsp.symlink(file, link);
    await assert.rejects(openMaildropFile(link), (err: unknown) => (err as NodeJS.ErrnoException).code === 'ELOOP');
    await fsp.unlink(link);
    await fsp.link(file, link);
    await assert.rejects(openMaildropFile(file), /file has 2 links/);
  });

  test('maildrop: commit syncs the file, renames it into place, then syncs the directory (durable before exit 0)', async () => {
    const dir = await dropDir();
    const calls: string[] = [];
    const fs: DurableFs = {
      ...nodeFs,
      async syncFile(fh) {
        calls.push('syncFile');
        return nodeFs.syncFile(fh);
      },
      async rename(a, b) {
        calls.push(`rename ${path.basename(a)} ${path.basename(b)}`);
        return nodeFs.rename(a, b);
      },
      async syncDir(d) {
        calls.push(`syncDir ${d === dir}`);
        return nodeFs.syncDir(d);
      },
    };
    const w = await MaildropWriter.create(dir, { fs });
    await w.write(Buffer.from('x\r\n'));
    const env = { version: 1, time: 0, sender: '', fullName: null, recipients: [{ address: 'r@x', notify: null, orcpt: null }], ret: null, envid: null, smtputf8: false, body: null } as const;
    await w.commit(env);
    assert.deepEqual(calls, ['syncFile', `rename ${w.name}.tmp ${w.name}`, 'syncDir true']);
  });

  test('maildrop: abort removes the temporary file; nothing is visible before commit', async () => {
    const dir = await dropDir();
    const w = await MaildropWriter.create(dir);
    await w.write(Buffer.from('x\r\n'));
    assert.deepEqual(await fsp.readdir(dir), [`${w.name}.tmp`]);
    await w.abort();
    assert.deepEqual(await fsp.readdir(dir), []);
  });
});

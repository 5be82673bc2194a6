import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { mountTmpfs, unmount } from '../../test/harness/scratch.js';
import { type MailboxChange, MailboxChanges } from './changes.js';
import { MailboxError } from './errors.js';
import { type DurableFs, type FileRef, nodeFs } from '../io/durable.js';
import { deliverToMaildir, ensureMaildir, maildirHostname, maildirName } from './maildir.js';

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-maildir-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

async function* chunks(...parts: string[]): AsyncGenerator<Buffer> {
  for (const p of parts) yield Buffer.from(p);
}

const MSG = 'Subject: hello\r\nFrom: a@example.org\r\n\r\nbody line\r\nFrom here\r\n';
const isRoot = process.getuid?.() === 0;

test('maildir: delivery creates the Maildir, writes headers + LF message into new/, leaves tmp/ empty', async () => {
  const md = path.join(tmp, 'u1', 'Maildir');
  const changes = new MailboxChanges();
  const seen: MailboxChange[] = [];
  changes.on((c) => seen.push(c));
  const res = await deliverToMaildir({
    maildir: `${md}/`,
    prepend: ['Return-Path: <a@example.org>', 'Delivered-To: bob@example.test'],
    message: chunks(MSG.slice(0, 10), MSG.slice(10)),
    defaultDsn: '5.2.0',
    changes,
  });
  assert.equal(res.mailbox, md);
  assert.deepEqual(await fsp.readdir(path.join(md, 'tmp')), []);
  assert.deepEqual(await fsp.readdir(path.join(md, 'cur')), []);
  const files = await fsp.readdir(path.join(md, 'new'));
  assert.deepEqual(files, [res.file]);
  const body = await fsp.readFile(path.join(md, 'new', res.file), 'utf8');
  assert.equal(body, 'Return-Path: <a@example.org>\nDelivered-To: bob@example.test\nSubject: hello\nFrom: a@example.org\n\nbody line\nFrom here\n');
  assert.equal(res.size, Buffer.byteLength(body));
  // Postfix's name: sec.V<dev hex>I<ino hex>M<usec>.host
  const st = await fsp.stat(path.join(md, 'new', res.file), { bigint: true });
  assert.match(res.file, new RegExp(`^\\d+\\.V${st.dev.toString(16)}I${st.ino.toString(16)}M\\d{1,6}\\.${maildirHostname().replace(/[\\.]/g, '\\$&')}$`));
  for (const d of ['', 'tmp', 'new', 'cur']) assert.equal((await fsp.stat(path.join(md, d))).mode & 0o777, 0o700, `mode of ${d || 'Maildir'}`);
  assert.equal((await fsp.stat(path.join(md, 'new', res.file))).mode & 0o777, 0o600);
  assert.deepEqual(seen, [{ mailbox: md, kind: 'added', files: [res.file], uids: [], modseq: null }]);
});

test('maildir: names follow Postfix %lu.V%lxI%lxM%lu.%s and hostnames are escaped', () => {
  assert.equal(maildirName({ sec: 1700000000, usec: 42 }, 0x803n, 0xabcdefn, 'mx'), '1700000000.V803IabcdefM42.mx');
  assert.equal(maildirHostname('a/b:c'), 'a\\057b\\072c');
});

test('maildir: 100 concurrent deliveries into one Maildir give 100 distinct complete files', async () => {
  const md = path.join(tmp, 'many');
  const n = 100;
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      deliverToMaildir({ maildir: md, prepend: [`X-N: ${i}`], message: chunks(`Subject: ${i}\r\n\r\nmsg ${i}\r\n`), defaultDsn: '5.2.0', changes: new MailboxChanges() }),
    ),
  );
  const files = (await fsp.readdir(path.join(md, 'new'))).sort();
  assert.equal(new Set(results.map((r) => r.file)).size, n);
  assert.deepEqual(files, results.map((r) => r.file).sort());
  assert.deepEqual(await fsp.readdir(path.join(md, 'tmp')), []);
  const bodies = new Set(await Promise.all(files.map((f) => fsp.readFile(path.join(md, 'new', f), 'utf8'))));
  for (let i = 0; i < n; i++) assert.ok(bodies.has(`X-N: ${i}\nSubject: ${i}\n\nmsg ${i}\n`), `message ${i}`);
});

test('maildir: a read error removes the tmp/ file and reports Postfix\'s text; nothing reaches new/', async () => {
  const md = path.join(tmp, 'readerr');
  async function* failing(): AsyncGenerator<Buffer> {
    yield Buffer.from('Subject: x\r\n\r\npartial');
    throw Object.assign(new Error('EIO'), { code: 'EIO' });
  }
  await assert.rejects(deliverToMaildir({ maildir: md, prepend: [], message: failing(), defaultDsn: '5.2.0' }), (err: unknown) => {
    assert.ok(err instanceof MailboxError);
    assert.equal(err.reason, 'error reading message: Input/output error');
    assert.equal(err.dsn, '5.3.0');
    return true;
  });
  assert.deepEqual(await fsp.readdir(path.join(md, 'new')), []);
  assert.deepEqual(await fsp.readdir(path.join(md, 'tmp')), []);
});

test('maildir: an unwritable Maildir gives "create maildir file ...: Permission denied" with the caller\'s default status', { skip: isRoot ? 'root ignores permissions' : false }, async () => {
  const md = path.join(tmp, 'ro');
  await fsp.mkdir(path.join(md, 'tmp'), { recursive: true });
  await fsp.chmod(path.join(md, 'tmp'), 0o500);
  await assert.rejects(deliverToMaildir({ maildir: md, prepend: [], message: chunks(MSG), defaultDsn: '4.2.0' }), (err: unknown) => {
    assert.ok(err instanceof MailboxError);
    assert.equal(err.dsn, '4.2.0');
    assert.match(err.reason, /^create maildir file .*\/tmp\/.*: Permission denied$/);
    return true;
  });
});

test('maildir: as root, files and new directories are given to the mailbox owner', { skip: isRoot ? false : 'needs root' }, async () => {
  await fsp.mkdir(path.join(tmp, 'owned'));
  await fsp.chown(path.join(tmp, 'owned'), 1234, 2345);
  const md = path.join(tmp, 'owned', 'user', 'Maildir');
  const res = await deliverToMaildir({ maildir: md, prepend: [], message: chunks(MSG), owner: { uid: 1234, gid: 2345 }, defaultDsn: '5.2.0' });
  for (const p of [path.join(tmp, 'owned'), md, path.join(md, 'new'), path.join(md, 'tmp'), path.join(md, 'new', res.file)]) {
    const st = await fsp.stat(p);
    assert.deepEqual([st.uid, st.gid], [1234, 2345], p);
  }
});

test('maildir: as root, concurrent first deliveries into a new Maildir all succeed (none sees a not-yet-chowned directory)', { skip: isRoot ? false : 'needs root' }, async () => {
  for (let round = 0; round < 5; round++) {
    const base = path.join(tmp, `race-${round}`);
    await fsp.mkdir(base);
    await fsp.chown(base, 1234, 2345);
    const md = path.join(base, 'box');
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => deliverToMaildir({ maildir: md, prepend: [], message: chunks(`Subject: ${i}\r\n\r\nx\r\n`), owner: { uid: 1234, gid: 2345 }, defaultDsn: '4.2.0' })),
    );
    const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    assert.deepEqual(failed, [], `round ${round}`);
    assert.equal((await fsp.readdir(path.join(md, 'new'))).length, 12);
  }
});

test('maildir: as root, no Maildir is created where its owner could not create it (a home of /nonexistent)', { skip: isRoot ? false : 'needs root' }, async () => {
  const parent = path.join(tmp, 'rootonly');
  await fsp.mkdir(parent, { mode: 0o755 });
  const md = path.join(parent, 'nonexistent', 'Maildir');
  await assert.rejects(deliverToMaildir({ maildir: md, prepend: [], message: chunks(MSG), owner: { uid: 1234, gid: 2345 }, defaultDsn: '5.2.0' }), (err: unknown) => {
    assert.ok(err instanceof MailboxError);
    assert.equal(err.errno, 'EACCES');
    assert.equal(err.dsn, '5.2.0');
    return true;
  });
  assert.deepEqual(await fsp.readdir(parent), []);
});

test('maildir: as root, a tmp/ that is a symbolic link or owned by someone else is refused', { skip: isRoot ? false : 'needs root' }, async () => {
  const md = path.join(tmp, 'evil');
  await fsp.mkdir(path.join(md, 'new'), { recursive: true });
  await fsp.mkdir(path.join(md, 'cur'));
  const elsewhere = path.join(tmp, 'elsewhere');
  await fsp.mkdir(elsewhere);
  await fsp.symlink(elsewhere, path.join(md, 'tmp'));
  await fsp.chown(path.join(md, 'new'), 1234, 2345);
  await assert.rejects(deliverToMaildir({ maildir: md, prepend: [], message: chunks(MSG), owner: { uid: 1234, gid: 2345 }, defaultDsn: '5.2.0' }), (err: unknown) => {
    assert.ok(err instanceof MailboxError);
    assert.equal(err.errno, 'EACCES');
    assert.match(err.reason, /^create maildir file .*: Permission denied$/);
    return true;
  });
  assert.deepEqual(await fsp.readdir(elsewhere), []);
  assert.deepEqual(await fsp.readdir(path.join(md, 'new')), []);
});

test('maildir: disk full (tmpfs) reports 4.3.0 "No space left on device" and leaves new/ and tmp/ empty', async (t) => {
  const mnt = path.join(tmp, 'tiny');
  if (!(await mountTmpfs(t, mnt, 'size=256k'))) return;
  try {
    const md = path.join(mnt, 'Maildir');
    const big = `Subject: big\r\n\r\n${'x'.repeat(998)}\r\n`.repeat(400); // ~400 KB > 256 KiB
    await assert.rejects(deliverToMaildir({ maildir: md, prepend: ['Delivered-To: a@b'], message: chunks(big), defaultDsn: '4.2.0' }), (err: unknown) => {
      assert.ok(err instanceof MailboxError);
      assert.equal(err.dsn, '4.3.0');
      assert.equal(err.reason, 'error writing message: No space left on device');
      return true;
    });
    assert.deepEqual(await fsp.readdir(path.join(md, 'new')), []);
    assert.deepEqual(await fsp.readdir(path.join(md, 'tmp')), []);
    // Space is back once the big one is gone: a small message goes through.
    const ok = await deliverToMaildir({ maildir: md, prepend: [], message: chunks(MSG), defaultDsn: '4.2.0' });
    assert.deepEqual(await fsp.readdir(path.join(md, 'new')), [ok.file]);
  } finally {
    unmount(mnt);
  }
});

/**
 * A DurableFs over the real one that records, in order, the calls one Maildir delivery makes
 * (paths relative to the Maildir; `file`/`other` says whether a descriptor call is on the file
 * opened in tmp/), and holds the fsync of new/ until `release()`.
 */
function durabilityFs(md: string, o: { failSyncFile?: boolean; failSyncDir?: boolean } = {}) {
  const events: string[] = [];
  const rel = (p: string): string => path.relative(md, p).replace(/[^/]+$/, (n) => (n.includes('.') ? 'NAME' : n));
  let opened: FileRef | null = null;
  const on = (fh: FileRef): string => (fh === opened ? 'file' : 'other');
  let release!: () => void;
  const held = new Promise<void>((r) => {
    release = r;
  });
  const eio = (call: string): Error => Object.assign(new Error(`EIO: i/o error, ${call}`), { code: 'EIO' });
  const fs: DurableFs = {
    ...nodeFs,
    async open(file, flags, mode) {
      const fh = await nodeFs.open(file, flags, mode);
      opened ??= fh;
      events.push(`open ${rel(file)}`);
      return fh;
    },
    async write(fh, data, position) {
      // Consecutive writes count once: how many depends on the write batch size, not on durability.
      if (events.at(-1) !== `write ${on(fh)}`) events.push(`write ${on(fh)}`);
      return nodeFs.write(fh, data, position);
    },
    async syncFile(fh) {
      events.push(`syncFile ${on(fh)}`);
      if (o.failSyncFile) throw eio('fdatasync');
      return nodeFs.syncFile(fh);
    },
    async close(fh) {
      events.push(`close ${on(fh)}`);
      return nodeFs.close(fh);
    },
    async link(from, to) {
      events.push(`link ${rel(from)} ${rel(to)}`);
      return nodeFs.link(from, to);
    },
    async rename(from, to) {
      events.push(`rename ${rel(from)} ${rel(to)}`);
      return nodeFs.rename(from, to);
    },
    async unlink(file) {
      events.push(`unlink ${rel(file)}`);
      return nodeFs.unlink(file);
    },
    async syncDir(dir) {
      events.push(`syncDir ${rel(dir)}`);
      if (path.resolve(dir) === path.join(md, 'new')) await held;
      if (o.failSyncDir) throw eio('fsync');
      await nodeFs.syncDir(dir);
      events.push(`synced ${rel(dir)}`);
    },
  };
  return { fs, events, release };
}

/** Waits until `event` is recorded, then a while longer: a delivery not waiting for the held sync would finish. */
async function settleAfter(events: readonly string[], event: string): Promise<void> {
  const end = Date.now() + 5000;
  while (!events.includes(event)) {
    if (Date.now() > end) throw new Error(`no ${event}: ${events.join(', ')}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 50));
}

test('maildir: durability order: write, fsync the file, link it into new/, fsync new/, and only then remove tmp/ and report the message delivered', async () => {
  const md = path.join(tmp, 'durable');
  await ensureMaildir(md, null);
  const { fs, events, release } = durabilityFs(md);
  const changes = new MailboxChanges();
  changes.on(() => events.push('change'));
  // Larger than one 64 KiB write batch: every write comes before the fsync.
  const big = `Subject: big\r\n\r\n${'x'.repeat(998)}\r\n`.repeat(200);
  const delivery = deliverToMaildir({ maildir: md, prepend: ['Delivered-To: bob@example.test'], message: chunks(big.slice(0, 70_000), big.slice(70_000)), defaultDsn: '5.2.0', changes, fs }).then((r) => {
    events.push('delivered');
    return r;
  });
  await settleAfter(events, 'syncDir new');
  // While new/ is not yet synced, the message is in new/ but not reported, announced or out of tmp/.
  assert.deepEqual(events, ['open tmp/NAME', 'write file', 'syncFile file', 'close file', 'link tmp/NAME new/NAME', 'syncDir new']);
  release();
  const res = await delivery;
  assert.deepEqual(events, ['open tmp/NAME', 'write file', 'syncFile file', 'close file', 'link tmp/NAME new/NAME', 'syncDir new', 'synced new', 'unlink tmp/NAME', 'change', 'delivered']);
  assert.deepEqual(await fsp.readdir(path.join(md, 'new')), [res.file]);
  assert.deepEqual(await fsp.readdir(path.join(md, 'tmp')), []);
});

test('maildir: a failed fsync of the file or of new/ is not reported delivered, leaves nothing in new/ or tmp/ and announces nothing', async () => {
  for (const fail of ['failSyncFile', 'failSyncDir'] as const) {
    const md = path.join(tmp, `durable-${fail}`);
    await ensureMaildir(md, null);
    const { fs, events, release } = durabilityFs(md, { [fail]: true });
    release();
    const changes = new MailboxChanges();
    changes.on(() => events.push('change'));
    await assert.rejects(deliverToMaildir({ maildir: md, prepend: [], message: chunks(MSG), defaultDsn: '5.2.0', changes, fs }), (err: unknown) => {
      assert.ok(err instanceof MailboxError, fail);
      assert.match(err.reason, /: Input\/output error$/, fail);
      return true;
    });
    assert.deepEqual(await fsp.readdir(path.join(md, 'new')), [], fail);
    assert.deepEqual(await fsp.readdir(path.join(md, 'tmp')), [], fail);
    assert.ok(!events.includes('change'), fail);
    // The file is never linked into new/ before its data is synced.
    if (fail === 'failSyncFile') assert.ok(!events.some((e) => e.startsWith('link ')), events.join('\n'));
  }
});

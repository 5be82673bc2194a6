/**
 * `postern run` as a process: binds, logs, reloads on SIGHUP, stops on SIGTERM, drops privileges,
 * and `npm start`'s embedded configuration. Every child is stopped by pid in `finally`.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { connects, freePort } from '../harness/net.js';
import { PosternProcess } from '../harness/run.js';

const IS_ROOT = process.getuid?.() === 0;

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

async function tempDir(): Promise<string> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'postern-run-'));
  // Searchable by mail_owner after the privilege drop (mkdtemp makes 0700).
  await fs.promises.chmod(dir, 0o755);
  return dir;
}

function writeConfig(dir: string, mainCf: string, masterCf: string): void {
  fs.writeFileSync(path.join(dir, 'main.cf'), mainCf);
  fs.writeFileSync(path.join(dir, 'master.cf'), masterCf);
}

const MAIN = 'compatibility_level = 3.6\nalias_maps =\nmyhostname = mx.example.test\ninet_interfaces = loopback-only\ninet_protocols = all\nmaillog_file = /dev/stdout\nmail_owner = nobody\n';

function uidOf(pid: number): { uid: number; gid: number; groups: string } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => (status.split('\n').find((l) => l.startsWith(`${name}:`)) ?? '').slice(name.length + 1).trim();
  return { uid: Number(field('Uid').split(/\s+/)[0]), gid: Number(field('Gid').split(/\s+/)[0]), groups: field('Groups') };
}

describe('postern run', () => {
  test('run: binds IPv4 and IPv6 separately, logs "daemon started", and exits 0 on SIGTERM', async () => {
    const dir = await tempDir();
    const port = await freePort();
    writeConfig(dir, MAIN, `${port} inet n - n - - smtpd\n`);
    const r = new PosternProcess(['-c', dir, 'run'], dir);
    try {
      await r.waitLine(/^daemon started -- version postern-[^,]+, configuration /);
      assert.ok(r.masterLines().some((l) => new RegExp(`^daemon started -- version postern-[^ ,]+, configuration ${esc(dir)}$`).test(l)), r.stdout);
      assert.ok(await connects('127.0.0.1', port));
      assert.ok(await connects('::1', port));
      r.child.kill('SIGTERM');
      assert.equal(await r.exited, 0);
      assert.ok(r.masterLines().includes('terminating on signal 15'));
      assert.equal(r.stderr, '');
      assert.equal(await connects('127.0.0.1', port), false);
    } finally {
      r.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('run: SIGINT stops as SIGTERM does', async () => {
    const dir = await tempDir();
    const port = await freePort();
    writeConfig(dir, MAIN, `127.0.0.1:${port} inet n - n - - smtpd\n`);
    const r = new PosternProcess(['run', '-c', dir], dir);
    try {
      await r.waitLine(/^daemon started/);
      r.child.kill('SIGINT');
      assert.equal(await r.exited, 0);
      assert.ok(r.masterLines().includes('terminating on signal 2'));
    } finally {
      r.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('run: a port in use is fatal: "fatal: bind ADDR port N: Address already in use", exit 1', async () => {
    const dir = await tempDir();
    const port = await freePort();
    writeConfig(dir, MAIN, `${port} inet n - n - - smtpd\n`);
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen({ host: '127.0.0.1', port }, resolve));
    const r = new PosternProcess(['-c', dir, 'run'], dir);
    try {
      assert.equal(await r.exited, 1);
      assert.ok(r.masterLines().includes(`fatal: bind 127.0.0.1 port ${port}: Address already in use`), r.stdout);
      assert.match(r.stderr, new RegExp(`^postern: fatal: bind 127\\.0\\.0\\.1 port ${port}: Address already in use\\n$`));
      assert.equal(await connects('::1', port), false);
    } finally {
      holder.close();
      r.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('run: a bad main.cf value exits 1 with "file, line N: ..." on stderr', async () => {
    const dir = await tempDir();
    writeConfig(dir, `${MAIN}smtpd_tls_security_level = maybe\n`, '');
    const r = new PosternProcess(['-c', dir, 'run'], dir);
    try {
      assert.equal(await r.exited, 1);
      assert.match(r.stderr, new RegExp(`^postern: fatal: ${esc(dir)}/main\\.cf, line 8: .*smtpd_tls_security_level.*\\n$`));
      assert.equal(r.stdout, '');
    } finally {
      r.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('run: an unknown option prints the usage and exits 1', async () => {
    const dir = await tempDir();
    const r = new PosternProcess(['run', '--bogus'], dir);
    try {
      assert.equal(await r.exited, 1);
      assert.match(r.stderr, /unknown option "--bogus"/);
      assert.match(r.stderr, /usage: postern \[-c config_dir\] run \[--embedded\]/);
    } finally {
      r.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('run: SIGHUP reloads (new service bound, "reload" logged); a bad edit keeps the old configuration with a warning', async () => {
    const dir = await tempDir();
    const p1 = await freePort();
    const p2 = await freePort();
    writeConfig(dir, `${MAIN}unknown_thing = 1\n`, `${p1} inet n - n - - smtpd\n`);
    const r = new PosternProcess(['-c', dir, 'run'], dir);
    try {
      await r.waitLine(/^daemon started/);
      // config warnings go through the master's logger
      assert.ok(r.masterLines().some((l) => /^warning: .*unknown_thing/.test(l)), r.stdout);
      writeConfig(dir, MAIN, `${p1} inet n - n - - smtpd\n127.0.0.1:${p2} inet n - n - - smtpd\n`);
      r.child.kill('SIGHUP');
      await r.waitLine(new RegExp(`^service "127\\.0\\.0\\.1:${p2}": listening on 127\\.0\\.0\\.1 port ${p2}$`));
      assert.ok(r.masterLines().some((l) => new RegExp(`^reload -- version postern-[^ ,]+, configuration ${esc(dir)}$`).test(l)), r.stdout);
      assert.ok(await connects('127.0.0.1', p2));

      fs.writeFileSync(path.join(dir, 'main.cf'), `${MAIN}default_process_limit = lots\n`);
      r.child.kill('SIGHUP');
      await r.waitLine(/keeping the old configuration$/);
      assert.ok(r.masterLines().some((l) => new RegExp(`^warning: ${esc(dir)}/main\\.cf, line 8: .*default_process_limit.*; keeping the old configuration$`).test(l)), r.stdout);
      assert.ok(await connects('127.0.0.1', p1));
      assert.ok(await connects('127.0.0.1', p2));
      assert.equal(r.child.exitCode, null, 'still running');
      r.child.kill('SIGTERM');
      assert.equal(await r.exited, 0);
    } finally {
      r.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('run: started as root, binds first and then runs as mail_owner with only its primary group', { skip: !IS_ROOT && 'needs root' }, async () => {
    const dir = await tempDir();
    const port = await freePort();
    writeConfig(dir, MAIN, `${port} inet n - n - - smtpd\n`);
    const r = new PosternProcess(['-c', dir, 'run'], dir);
    try {
      await r.waitLine(/^daemon started/);
      const ids = uidOf(r.pid);
      assert.deepEqual(ids, { uid: 65534, gid: 65534, groups: '65534' });
      assert.ok(await connects('127.0.0.1', port));
      assert.ok(await connects('::1', port));
      // reload still works unprivileged (config readable, ports kept)
      r.child.kill('SIGHUP');
      await r.waitLine(/^reload -- version/);
      await new Promise((res) => setTimeout(res, 200));
      assert.ok(!r.masterLines().some((l) => l.includes('keeping the old configuration')), r.stdout);
      assert.ok(await connects('::1', port));
      r.child.kill('SIGTERM');
      assert.equal(await r.exited, 0);
    } finally {
      r.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('run: mail_owner = root is refused as Postfix does', { skip: !IS_ROOT && 'needs root' }, async () => {
    const dir = await tempDir();
    const port = await freePort();
    writeConfig(dir, MAIN.replace('mail_owner = nobody', 'mail_owner = root'), `${port} inet n - n - - smtpd\n`);
    const r = new PosternProcess(['-c', dir, 'run'], dir);
    try {
      assert.equal(await r.exited, 1);
      assert.ok(r.masterLines().includes(`fatal: file ${dir}/main.cf: parameter mail_owner: user root has privileged user ID`), r.stdout);
      assert.equal(await connects('127.0.0.1', port), false);
    } finally {
      r.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('postern run --embedded (npm start)', () => {
  test('run: --embedded writes ./var/etc once, creates ./var data directories, keeps an edited master.cf, binds 127.0.0.1 and ::1', async () => {
    const cwd = await tempDir();
    const port = await freePort();
    // An admin's master.cf (also keeps this test off the fixed embedded ports 2525...).
    fs.mkdirSync(path.join(cwd, 'var', 'etc'), { recursive: true });
    const mine = `# mine\n${port} inet n - n - - smtpd\n`;
    fs.writeFileSync(path.join(cwd, 'var', 'etc', 'master.cf'), mine);
    const r = new PosternProcess(['run', '--embedded'], cwd);
    try {
      await r.waitLine(/^daemon started/);
      assert.ok(r.masterLines().some((l) => l.endsWith(`configuration ${path.join(cwd, 'var', 'etc')}`)));
      assert.equal(fs.readFileSync(path.join(cwd, 'var', 'etc', 'master.cf'), 'utf8'), mine);
      const mainCf = fs.readFileSync(path.join(cwd, 'var', 'etc', 'main.cf'), 'utf8');
      assert.match(mainCf, new RegExp(`^queue_directory = ${path.join(cwd, 'var', 'queue')}$`, 'm'));
      for (const d of ['queue', 'data', 'mail']) assert.ok(fs.statSync(path.join(cwd, 'var', d)).isDirectory());
      if (IS_ROOT) {
        assert.equal(fs.statSync(path.join(cwd, 'var', 'queue')).uid, 65534, 'data directories handed to mail_owner');
        assert.equal(uidOf(r.pid).uid, 65534);
      }
      assert.ok(await connects('127.0.0.1', port));
      assert.ok(await connects('::1', port));
      assert.ok(r.stdout.includes(` postfix/master[${r.pid}]: `), 'log on stdout (maillog_file = /dev/stdout)');
      r.child.kill('SIGTERM');
      assert.equal(await r.exited, 0);

      // Second start: main.cf (edited by the admin) is not overwritten.
      fs.writeFileSync(path.join(cwd, 'var', 'etc', 'main.cf'), `${mainCf}# edited\n`);
      const again = new PosternProcess(['run', '--embedded'], cwd);
      try {
        await again.waitLine(/^daemon started/);
        assert.equal(fs.readFileSync(path.join(cwd, 'var', 'etc', 'main.cf'), 'utf8'), `${mainCf}# edited\n`);
        again.child.kill('SIGTERM');
        assert.equal(await again.exited, 0);
      } finally {
        again.kill();
      }
    } finally {
      r.kill();
      fs.rmSync(cwd, { recursive: true, force: true });
    }
  });
});

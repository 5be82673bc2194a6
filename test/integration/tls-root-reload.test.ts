/**
 * The Let's Encrypt case on a real server: `postern run` started as root, running as mail_owner
 * (nobody) after the drop, with fullchain.pem/privkey.pem under a root-only directory (live/ and
 * archive/ mode 0700, the key 0600, as certbot leaves them). A renewal (new archive files, live/
 * symlinks swapped) and a SIGHUP must both bring the new certificate into use, read through the
 * master's root reader; a broken file keeps the certificate in use; the reader refuses files the
 * configuration does not name. SIGHUP also reopens maillog_file, which root created, as nobody.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { RootReader } from '../../src/master/root-reader.js';
import { IS_ROOT, makeTestDir, Server, sleep, writeConfig } from '../crash/server.js';
import { SmtpClient } from '../harness/smtp-client.js';
import { makePki, type Pki, skipWithoutOpenssl } from '../tls/pki.js';

const skip = IS_ROOT ? skipWithoutOpenssl() : 'needs root: the test is about reading root-only keys after the privilege drop';
const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups.reverse()) c();
});

/** certbot's layout under a fresh root-only directory; `renew(n, which)` writes archive files n and swaps the links. */
function letsEncrypt(pki: Pki): { cert: string; key: string; etcDir: string; renew(n: number, chain: string, key: string): void } {
  const top = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-le-'));
  cleanups.push(() => fs.rmSync(top, { recursive: true, force: true }));
  const archive = path.join(top, 'archive', 'mx.example.test');
  const live = path.join(top, 'live', 'mx.example.test');
  fs.mkdirSync(archive, { recursive: true, mode: 0o700 });
  fs.mkdirSync(live, { recursive: true, mode: 0o700 });
  for (const d of [top, path.join(top, 'archive'), path.join(top, 'live'), archive, live]) fs.chmodSync(d, 0o700);
  const link = (name: string, target: string): void => {
    const tmp = path.join(live, `.${name}.new`);
    fs.symlinkSync(target, tmp);
    fs.renameSync(tmp, path.join(live, name));
  };
  const renew = (n: number, chain: string, key: string): void => {
    fs.writeFileSync(path.join(archive, `fullchain${n}.pem`), chain, { mode: 0o644 });
    fs.writeFileSync(path.join(archive, `privkey${n}.pem`), key, { mode: 0o600 });
    link('privkey.pem', `../../archive/mx.example.test/privkey${n}.pem`);
    link('fullchain.pem', `../../archive/mx.example.test/fullchain${n}.pem`);
  };
  renew(1, pki.read('fullchain.pem'), pki.read('srv.key'));
  // The configuration directory: root's alone (the root reader trusts nothing else).
  const etcDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-etc-'));
  fs.chmodSync(etcDir, 0o755);
  cleanups.push(() => fs.rmSync(etcDir, { recursive: true, force: true }));
  return { cert: path.join(live, 'fullchain.pem'), key: path.join(live, 'privkey.pem'), etcDir, renew };
}

/** The CN of the certificate a STARTTLS handshake gets now. */
async function servedCn(port: number): Promise<string> {
  const c = await SmtpClient.connect(port);
  try {
    await c.read();
    await c.cmd('EHLO client.example.test');
    assert.match(await c.cmd('STARTTLS'), /^220 2\.0\.0 Ready to start TLS/);
    const s = await c.startTls({ rejectUnauthorized: false, servername: 'mx.example.test' });
    const cn = s.getPeerCertificate().subject?.CN;
    return Array.isArray(cn) ? cn.join(',') : (cn ?? '');
  } finally {
    c.close();
  }
}

async function until(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** Uid of a running process, from /proc. */
function uidOf(pid: number): number {
  const m = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]);
}

describe('smtpd: root-only certificates after the privilege drop', { skip }, () => {
  it('tls: a renewed root-only Let\'s Encrypt key is loaded on file change and on SIGHUP by the server running as nobody; a broken renewal keeps the old one', async () => {
    const pki = makePki();
    cleanups.push(() => pki.remove());
    const le = letsEncrypt(pki);
    const dir = makeTestDir('postern-rootkey-');
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const cfg = await writeConfig(dir, {
      qmgr: false,
      mainCf: ['smtpd_tls_security_level = may', `smtpd_tls_cert_file = ${le.cert}`, `smtpd_tls_key_file = ${le.key}`].join('\n'),
    });
    for (const f of ['main.cf', 'master.cf']) {
      fs.renameSync(path.join(dir, f), path.join(le.etcDir, f));
      fs.chownSync(path.join(le.etcDir, f), 0, 0);
      fs.chmodSync(path.join(le.etcDir, f), 0o644);
    }
    const server = new Server({ ...cfg, dir: le.etcDir });
    try {
      await server.ready();
      assert.notEqual(uidOf(server.pid), 0, 'the server runs as mail_owner');
      const liveDir = fs.statSync(path.dirname(le.key));
      assert.equal(liveDir.uid, 0);
      assert.equal(liveDir.mode & 0o077, 0, 'live/ is root-only, as certbot makes it');
      assert.equal(await servedCn(cfg.port), 'mx.example.test');

      // Renewal: certbot writes archive/*2.pem and swaps the live/ links; the watch sees it.
      le.renew(2, pki.read('fullchain2.pem'), pki.read('srv2.key'));
      await until('the renewed certificate', 15_000, async () => (await servedCn(cfg.port)) === 'mx2.example.test');
      assert.doesNotMatch(server.log(), /cannot reload TLS keys/);

      // A renewal that left a broken certificate: the one in use stays, with a warning.
      le.renew(3, '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n', pki.read('srv.key'));
      await until('the reload warning', 15_000, async () => /warning: cannot reload TLS keys and certificates: .*keeping the previous ones/.test(server.log()));
      assert.equal(await servedCn(cfg.port), 'mx2.example.test');

      // SIGHUP with the broken files: the new configuration's TLS engine cannot load them; TLS stays.
      process.kill(server.pid, 'SIGHUP');
      await until('the SIGHUP warning', 15_000, async () => /cannot initialize the server-side TLS engine: .*keeping the previous TLS settings/.test(server.log()));
      assert.equal(await servedCn(cfg.port), 'mx2.example.test');

      // A good renewal, then SIGHUP (a certbot deploy hook's `postern reload`): read as root again.
      le.renew(4, pki.read('fullchain.pem'), pki.read('srv.key'));
      process.kill(server.pid, 'SIGHUP');
      await until('the certificate after SIGHUP', 15_000, async () => (await servedCn(cfg.port)) === 'mx.example.test');
      // The log file was opened by root at start: SIGHUP reopens it as nobody (logrotate).
      assert.doesNotMatch(server.log(), /warning: reopen/);
      assert.equal(fs.statSync(cfg.logFile).uid, uidOf(server.pid));
      assert.doesNotMatch(server.log(), /Permission denied/);
      assert.doesNotMatch(server.log(), /TLS not available|No server certs/);
    } finally {
      await server.stop();
    }
  });

  it('root reader: serves only the TLS files the root-owned configuration names', async () => {
    const pki = makePki();
    cleanups.push(() => pki.remove());
    const le = letsEncrypt(pki);
    fs.writeFileSync(path.join(le.etcDir, 'main.cf'), `smtpd_tls_cert_file = ${le.cert}\nsmtpd_tls_key_file = ${le.key}\n`);
    const reader = RootReader.start(le.etcDir);
    try {
      assert.equal((await reader.read(le.key)).toString(), pki.read('srv.key'));
      await assert.rejects(reader.read('/etc/shadow'), { code: 'EACCES', message: /not a TLS file of the configuration/ });
      await assert.rejects(reader.read(`${path.dirname(le.key)}/../mx.example.test/privkey.pem`), { code: 'EACCES' });
      // A configuration another user could change is not trusted (wait out the one-second cache).
      fs.chmodSync(path.join(le.etcDir, 'main.cf'), 0o666);
      await sleep(1100);
      await assert.rejects(reader.read(le.key), { code: 'EACCES', message: /can be changed by a user other than root/ });
    } finally {
      reader.close();
    }
  });
});

/**
 * SmtpdTls over real loopback sockets: a TCP server upgrades each connection as smtpd does after
 * STARTTLS (or at accept in wrappermode); Node's TLS client and `openssl s_client` connect to it.
 * Certificates come from a PKI made by openssl for this run (./pki.ts).
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import { renameSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { paramsFrom } from '../../src/config/index.js';
import { ConfigError } from '../../src/errors.js';
import { Log, type MemoryLog } from '../../src/log/index.js';
import { SmtpdTls, type TlsSession, TlsUnavailableError } from '../../src/tls/index.js';
import { makePki, type Pki, skipWithoutOpenssl } from './pki.js';

const skip = skipWithoutOpenssl();

type Outcome = { ok: true; session: TlsSession } | { ok: false; error: Error };

interface Harness {
  readonly port: number;
  readonly log: MemoryLog;
  /** Outcome of the next upgrade, in connection order. */
  next(): Promise<Outcome>;
  close(): Promise<void>;
}

/** A TCP server that upgrades every connection and then echoes what the client sends. */
async function serve(t: SmtpdTls, log: MemoryLog = Log.memory()): Promise<Harness> {
  const outcomes: Promise<Outcome>[] = [];
  const waiters: (() => void)[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    const p = t.upgrade(sock, { clientName: 'localhost', clientAddr: sock.remoteAddress ?? '', log: log.logger('smtpd', { id: 4242 }) }).then(
      (session): Outcome => {
        session.socket.on('error', () => {});
        session.socket.on('data', (d: Buffer) => session.socket.write(d));
        return { ok: true, session };
      },
      (error: Error): Outcome => ({ ok: false, error }),
    );
    outcomes.push(p);
    waiters.shift()?.();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  let consumed = 0;
  return {
    port: (server.address() as net.AddressInfo).port,
    log,
    async next() {
      while (outcomes.length <= consumed) await new Promise<void>((r) => waiters.push(r));
      return outcomes[consumed++]!;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function connect(port: number, o: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...o }, () => resolve(s));
    s.on('error', reject);
  });
}

/** `openssl s_client` against the port; `script` may write to its stdin; resolves at exit. */
function sClient(port: number, args: readonly string[], script?: (stdin: NodeJS.WritableStream, output: () => string) => Promise<void>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.stdin.on('error', () => {});
    const killer = setTimeout(() => p.kill(), 10_000);
    p.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, out });
    });
    if (script) script(p.stdin, () => out).then(() => p.stdin.end(), () => p.stdin.end());
    else p.stdin.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function served(s: tls.TLSSocket): string {
  const cn = s.getPeerCertificate().subject?.CN;
  return Array.isArray(cn) ? cn.join(',') : (cn ?? '');
}

async function echo(s: tls.TLSSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    s.once('data', (d: Buffer) => resolve(d.toString()));
    s.once('error', reject);
    s.write(text);
  });
}

const SUMMARY_TAIL = '(?: key-exchange X25519)? server-signature RSA-PSS \\(2048 bits\\) server-digest SHA256';

describe('tls: SmtpdTls over loopback sockets', { skip }, () => {
  let pki: Pki;
  let seedCf: string;
  before(() => {
    pki = makePki();
    // The seed admin's settings (reference sample main.cf), with this run's files.
    seedCf = [
      'smtpd_tls_security_level = may',
      `smtpd_tls_cert_file = ${pki.file('fullchain.pem')}`,
      `smtpd_tls_key_file = ${pki.file('srv.key')}`,
      `smtpd_tls_CAfile = ${pki.file('root.pem')}`,
      'smtpd_tls_ask_ccert = yes',
      'smtpd_tls_loglevel = 1',
      'smtpd_tls_ciphers = high',
      'smtpd_tls_exclude_ciphers = aNULL, MD5, EXPORT',
      'smtpd_tls_protocols = !SSLv2, !SSLv3',
      '',
    ].join('\n');
  });
  after(() => pki?.remove());

  async function start(extra = '', log: MemoryLog = Log.memory(), opts = { watch: false }): Promise<{ t: SmtpdTls; h: Harness }> {
    const t = await SmtpdTls.create(paramsFrom(`${seedCf}${extra}\n`), log.logger('smtpd'), opts);
    return { t, h: await serve(t, log) };
  }

  it('tls: Anonymous, Trusted and Untrusted summary lines with ask_ccert (seed main.cf)', async () => {
    const { t, h } = await start();
    try {
      assert.equal(t.level, 'may');
      assert.equal(t.available, true);
      assert.equal(t.askCcert, true);
      assert.equal(t.cipherListText, 'aNULL:-aNULL:HIGH:@STRENGTH:!aNULL:!MD5:!EXPORT:!aNULL');

      const anon = await connect(h.port);
      const a = await h.next();
      assert.ok(a.ok);
      assert.equal(a.session.summaryWord, 'Anonymous');
      assert.equal(a.session.protocol, 'TLSv1.3');
      assert.equal(a.session.cipher, 'TLS_AES_256_GCM_SHA384');
      assert.deepEqual([a.session.bits, a.session.algBits], [256, 256]);
      assert.equal(a.session.peerCert, false);
      assert.equal(a.session.sni, null);
      assert.equal(served(anon), 'mx.example.test');
      assert.equal(await echo(anon, 'ping'), 'ping');
      anon.destroy();

      const trusted = await connect(h.port, { cert: pki.read('cli.pem'), key: pki.read('cli.key') });
      const b = await h.next();
      assert.ok(b.ok);
      assert.equal(b.session.summaryWord, 'Trusted');
      assert.equal(b.session.trusted, true);
      assert.equal(b.session.peerCN, 'client.example.test');
      assert.equal(b.session.issuerCN, 'Postern Test Root CA');
      assert.deepEqual(b.session.clientSignature, { name: 'RSA-PSS', curve: null, bits: 2048, digest: 'SHA256' });
      // fingerprint with smtpd_tls_fingerprint_digest (md5 at compatibility_level 0, as Postfix)
      const der = new crypto.X509Certificate(pki.read('cli.pem')).raw;
      assert.equal(b.session.peerCertFingerprint, crypto.createHash('md5').update(der).digest('hex').toUpperCase().match(/../g)!.join(':'));
      trusted.destroy();

      const untrusted = await connect(h.port, { cert: pki.read('self.pem'), key: pki.read('self.key') });
      const c = await h.next();
      assert.ok(c.ok);
      assert.equal(c.session.summaryWord, 'Untrusted');
      assert.equal(c.session.verifyError, 'DEPTH_ZERO_SELF_SIGNED_CERT');
      untrusted.destroy();

      const lines = h.log.texts();
      assert.equal(lines.length, 3, lines.join('\n'));
      assert.match(lines[0]!, new RegExp(`^Anonymous TLS connection established from localhost\\[127\\.0\\.0\\.1\\]: TLSv1\\.3 with cipher TLS_AES_256_GCM_SHA384 \\(256/256 bits\\)${SUMMARY_TAIL}$`));
      assert.match(
        lines[1]!,
        new RegExp(`^Trusted TLS connection established from localhost\\[127\\.0\\.0\\.1\\]: TLSv1\\.3 with cipher TLS_AES_256_GCM_SHA384 \\(256/256 bits\\)${SUMMARY_TAIL} client-signature RSA-PSS \\(2048 bits\\) client-digest SHA256$`),
      );
      assert.match(lines[2]!, /^Untrusted TLS connection established from localhost\[127\.0\.0\.1\]: .* client-signature RSA-PSS \(2048 bits\) client-digest SHA256$/);
    } finally {
      await h.close();
      t.close();
    }
  });

  it('tls: TLS 1.2 summary ends at the bits; ECDSA chain file signs with ECDSA (prime256v1)', async () => {
    const { t, h } = await start(`smtpd_tls_chain_files = ${pki.file('rsa-chain.pem')}, ${pki.file('ec.pem')}\nsmtpd_tls_cert_file =\nsmtpd_tls_key_file =`);
    try {
      const s12 = await connect(h.port, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' });
      const a = await h.next();
      assert.ok(a.ok);
      assert.equal(a.session.protocol, 'TLSv1.2');
      assert.equal(a.session.cipher, 'ECDHE-RSA-AES128-GCM-SHA256');
      assert.equal(a.session.serverSignature, null);
      s12.destroy();
      const ec = await connect(h.port, { sigalgs: 'ecdsa_secp256r1_sha256' });
      const b = await h.next();
      assert.ok(b.ok);
      assert.deepEqual(b.session.serverSignature, { name: 'ECDSA', curve: 'prime256v1', bits: 0, digest: 'SHA256' });
      assert.equal(new crypto.X509Certificate(ec.getPeerCertificate().raw).publicKey.asymmetricKeyType, 'ec');
      ec.destroy();
      const lines = h.log.texts();
      assert.equal(lines[0], 'Anonymous TLS connection established from localhost[127.0.0.1]: TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits)');
      assert.match(lines[1]!, / server-signature ECDSA \(prime256v1\) server-digest SHA256$/);
    } finally {
      await h.close();
      t.close();
    }
  });

  it('tls: loglevel 2 logs the setup line and the cipher list before the summary', async () => {
    const { t, h } = await start('smtpd_tls_loglevel = 2');
    try {
      const s = await connect(h.port, { cert: pki.read('cli.pem'), key: pki.read('cli.key') });
      assert.ok((await h.next()).ok);
      s.destroy();
      const lines = h.log.texts();
      assert.equal(lines[0], 'setting up TLS connection from localhost[127.0.0.1]');
      assert.equal(lines[1], 'localhost[127.0.0.1]: TLS cipher list "aNULL:-aNULL:HIGH:@STRENGTH:!aNULL:!MD5:!EXPORT:!aNULL"');
      assert.equal(lines[2], 'subject=/O=Client Org/CN=client.example.test');
      assert.equal(lines[3], 'issuer=/O=Postern Test/CN=Postern Test Root CA');
      assert.match(lines[4]!, /^localhost\[127\.0\.0\.1\]: subject_CN=client\.example\.test, issuer=Postern Test Root CA, fingerprint=([0-9A-F]{2}:){15}[0-9A-F]{2}, pkey_fingerprint=([0-9A-F]{2}:){15}[0-9A-F]{2}$/);
      assert.match(lines[5]!, /^Trusted TLS connection established from localhost\[127\.0\.0\.1\]: /);
    } finally {
      await h.close();
      t.close();
    }
  });

  it('tls: fullchain cert file is served as a chain and the CAfile names go in the CertificateRequest', async () => {
    const { t, h } = await start();
    try {
      const r = await sClient(h.port, ['-showcerts', '-CAfile', pki.file('root.pem')]);
      assert.ok((await h.next()).ok);
      assert.equal(r.out.match(/-----BEGIN CERTIFICATE-----/g)?.length, 2, r.out);
      assert.match(r.out, /Verify return code: 0 \(ok\)/);
      assert.match(r.out, /Acceptable client certificate CA names\n(?:.*\n)*?O = Postern Test, CN = Postern Test Root CA\n/);
    } finally {
      await h.close();
      t.close();
    }
  });

  it('tls: TLSv1.1 works with the default >=TLSv1 (SECLEVEL 0) and is refused with >=TLSv1.2', async () => {
    const legacyArgs = ['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0'];
    {
      const { t, h } = await start();
      try {
        const r = await sClient(h.port, legacyArgs);
        const o = await h.next();
        assert.ok(o.ok, r.out);
        assert.equal(o.session.protocol, 'TLSv1.1');
        assert.match(r.out, /Protocol\s*: TLSv1\.1/);
      } finally {
        await h.close();
        t.close();
      }
    }
    const { t, h } = await start('smtpd_tls_protocols = >=TLSv1.2');
    try {
      assert.deepEqual([t.protocols?.minVersion, t.protocols?.maxVersion], ['TLSv1.2', 'TLSv1.3']);
      const r = await sClient(h.port, legacyArgs);
      assert.notEqual(r.code, 0);
      const o = await h.next();
      assert.ok(!o.ok);
      assert.equal((o.error as { code?: string }).code, 'tls-handshake');
      const lines = h.log.texts();
      assert.equal(lines[0], 'SSL_accept error from localhost[127.0.0.1]: -1');
      assert.match(lines[1]!, /^warning: TLS library problem: error:0A000102:SSL routines::unsupported protocol:[^:]*statem_srvr\.c:\d+:$/);
    } finally {
      await h.close();
      t.close();
    }
  });

  it('tls: client-initiated renegotiation is refused (openssl s_client R)', async () => {
    const { t, h } = await start();
    try {
      const r = await sClient(h.port, ['-tls1_2'], async (stdin, output) => {
        await until('handshake', () => output().includes('Verify return code'));
        stdin.write('R\n');
        await until('renegotiation attempt', () => output().includes('RENEGOTIATING'));
        await sleep(300);
        stdin.write('hello\n');
        await sleep(300);
      });
      assert.ok((await h.next()).ok);
      assert.match(r.out, /no renegotiation/);
      assert.doesNotMatch(r.out, /^hello$/m);
    } finally {
      await h.close();
      t.close();
    }
  });

  it('tls: tls_server_sni_maps picks the certificate per name, parent domains with a leading dot', async () => {
    writeFileSync(pki.file('sni'), `other.example.test ${pki.file('other.pem')}\n.wild.example.test ${pki.file('other.pem')}\n`);
    const { t, h } = await start(`tls_server_sni_maps = texthash:${pki.file('sni')}`);
    try {
      const a = await connect(h.port, { servername: 'other.example.test' });
      const oa = await h.next();
      assert.ok(oa.ok);
      assert.equal(served(a), 'other.example.test');
      assert.equal(oa.session.sni, 'other.example.test');
      a.destroy();

      const b = await connect(h.port, { servername: 'a.wild.example.test' });
      assert.ok((await h.next()).ok);
      assert.equal(served(b), 'other.example.test');
      b.destroy();

      const c = await connect(h.port, { servername: 'unknown.example.test' });
      const oc = await h.next();
      assert.ok(oc.ok);
      assert.equal(served(c), 'mx.example.test');
      assert.equal(oc.session.sni, 'unknown.example.test');
      c.destroy();

      const d = await connect(h.port);
      const od = await h.next();
      assert.ok(od.ok);
      assert.equal(served(d), 'mx.example.test');
      assert.equal(od.session.sni, null);
      d.destroy();

      const lines = h.log.texts();
      assert.match(lines[0]!, /^Anonymous TLS connection established from localhost\[127\.0\.0\.1\] to other\.example\.test: TLSv1\.3 /);
      assert.match(lines[1]!, / from localhost\[127\.0\.0\.1\] to a\.wild\.example\.test: /);
      assert.equal(lines[2], 'TLS SNI unknown.example.test from localhost[127.0.0.1] not matched, using default chain');
      assert.match(lines[3]!, / from localhost\[127\.0\.0\.1\] to unknown\.example\.test: /);
      assert.match(lines[4]!, / from localhost\[127\.0\.0\.1\]: TLSv1\.3 /);
    } finally {
      await h.close();
      t.close();
    }
  });

  it('tls: a changed certificate file is reloaded; open sessions keep working; a broken file keeps the old one', async () => {
    // Let's Encrypt layout: live/*.pem are symlinks into archive/, replaced on renewal.
    const le = pki.file('le');
    mkdirSync(path.join(le, 'archive'), { recursive: true });
    mkdirSync(path.join(le, 'live'), { recursive: true });
    writeFileSync(path.join(le, 'archive/fullchain1.pem'), pki.read('fullchain.pem'));
    writeFileSync(path.join(le, 'archive/privkey1.pem'), pki.read('srv.key'));
    symlinkSync('../archive/fullchain1.pem', path.join(le, 'live/fullchain.pem'));
    symlinkSync('../archive/privkey1.pem', path.join(le, 'live/privkey.pem'));
    const swap = (name: string, target: string): void => {
      const tmp = path.join(le, `live/.${name}.new`);
      symlinkSync(target, tmp);
      renameSync(tmp, path.join(le, `live/${name}`));
    };
    const log = Log.memory();
    const t = await SmtpdTls.create(
      paramsFrom(`${seedCf}smtpd_tls_cert_file = ${path.join(le, 'live/fullchain.pem')}\nsmtpd_tls_key_file = ${path.join(le, 'live/privkey.pem')}\n`),
      log.logger('smtpd'),
      { debounceMs: 100 },
    );
    const h = await serve(t, log);
    try {
      const old = await connect(h.port);
      assert.ok((await h.next()).ok);
      assert.equal(served(old), 'mx.example.test');

      writeFileSync(path.join(le, 'archive/fullchain2.pem'), pki.read('fullchain2.pem'));
      writeFileSync(path.join(le, 'archive/privkey2.pem'), pki.read('srv2.key'));
      swap('privkey.pem', '../archive/privkey2.pem');
      swap('fullchain.pem', '../archive/fullchain2.pem');
      await until('the renewed certificate', async () => {
        const s = await connect(h.port);
        await h.next();
        const cn = served(s);
        s.destroy();
        return cn === 'mx2.example.test';
      });
      assert.equal(await echo(old, 'still here'), 'still here');

      writeFileSync(path.join(le, 'archive/fullchain3.pem'), '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n');
      swap('fullchain.pem', '../archive/fullchain3.pem');
      await until('the reload warning', () => log.texts().some((l) => l.startsWith('warning: cannot reload TLS keys and certificates: ')));
      const after = await connect(h.port);
      assert.ok((await h.next()).ok);
      assert.equal(served(after), 'mx2.example.test');
      after.destroy();
      assert.equal(await echo(old, 'and still'), 'and still');
      old.destroy();
      assert.equal(await t.reload(), false);
    } finally {
      await h.close();
      t.close();
    }
  });

  it('tls: failed handshakes log SSL_accept errors as Postfix (lost connection, HTTP, timeout)', async () => {
    const { t, h } = await start('smtpd_starttls_timeout = 1s');
    try {
      const plain = (): Promise<net.Socket> =>
        new Promise((resolve) => {
          const s = net.connect(h.port, '127.0.0.1', () => resolve(s));
          s.on('error', () => {});
        });
      (await plain()).end();
      assert.equal(((await h.next()) as { ok: false; error: Error }).ok, false);

      (await plain()).end('GET / HTTP/1.0\r\n\r\n');
      assert.equal((await h.next()).ok, false);

      const silent = await plain();
      const started = Date.now();
      const o = await h.next();
      assert.equal(o.ok, false);
      assert.ok(Date.now() - started >= 900);
      silent.destroy();

      const lines = h.log.texts();
      assert.equal(lines[0], 'SSL_accept error from localhost[127.0.0.1]: lost connection');
      assert.equal(lines[1], 'SSL_accept error from localhost[127.0.0.1]: -1');
      assert.match(lines[2]!, /^warning: TLS library problem: error:0A00009C:SSL routines::http request:[^:]*(?:ssl3_record|tlsany_meth)\.c:\d+:$/);
      assert.equal(lines[3], 'SSL_accept error from localhost[127.0.0.1]: Connection timed out');
    } finally {
      await h.close();
      t.close();
    }
  });

  it('tls: CApath trusts its CAs for client certificates', async () => {
    const { t, h } = await start(`smtpd_tls_CAfile =\nsmtpd_tls_CApath = ${pki.file('capath')}`);
    try {
      const a = await connect(h.port, { cert: pki.read('cli2.pem'), key: pki.read('cli2.key') });
      const oa = await h.next();
      assert.ok(oa.ok);
      assert.equal(oa.session.summaryWord, 'Trusted');
      a.destroy();
      const b = await connect(h.port, { cert: pki.read('cli.pem'), key: pki.read('cli.key') });
      const ob = await h.next();
      assert.ok(ob.ok);
      assert.equal(ob.session.summaryWord, 'Untrusted');
      b.destroy();
    } finally {
      await h.close();
      t.close();
    }
  });

  it('tls: without CAfile/CApath no client certificate is trusted (tls_append_default_CA = no)', async () => {
    const { t, h } = await start('smtpd_tls_CAfile =');
    try {
      const a = await connect(h.port, { cert: pki.read('cli.pem'), key: pki.read('cli.key') });
      const oa = await h.next();
      assert.ok(oa.ok);
      assert.equal(oa.session.summaryWord, 'Untrusted');
      a.destroy();
    } finally {
      await h.close();
      t.close();
    }
  });

  it('tls: req_ccert with encrypt logs why an untrusted certificate failed verification', async () => {
    const { t, h } = await start('smtpd_tls_security_level = encrypt\nsmtpd_tls_req_ccert = yes\nsmtpd_tls_ask_ccert = no');
    try {
      assert.deepEqual([t.level, t.requireCcert, t.askCcert, t.authOnly], ['encrypt', true, true, true]);
      const a = await connect(h.port, { cert: pki.read('self.pem'), key: pki.read('self.key') });
      const oa = await h.next();
      assert.ok(oa.ok);
      a.destroy();
      const lines = h.log.texts();
      assert.equal(lines[0], 'certificate verification failed for localhost[127.0.0.1]: self-signed certificate');
      assert.match(lines[1]!, /^Untrusted TLS connection established from /);
    } finally {
      await h.close();
      t.close();
    }
  });

  it('tls: an exclusion starting with ! refuses TLS for the session with a warning', async () => {
    const { t, h } = await start('smtpd_tls_exclude_ciphers = MD5, !RC4');
    try {
      assert.equal(t.available, true);
      const s = new net.Socket();
      const closed = new Promise<void>((r) => s.on('close', () => r()));
      s.on('error', () => {});
      s.connect(h.port, '127.0.0.1');
      const o = await h.next();
      assert.ok(!o.ok);
      assert.ok(o.error instanceof TlsUnavailableError);
      await closed;
      assert.deepEqual(h.log.texts(), ["warning: localhost[127.0.0.1]: invalid unary '!+-@' in cipher exclusion: !RC4"]);
    } finally {
      await h.close();
      t.close();
    }
  });

  it("tls: configuration warnings use Postfix's words", async () => {
    const make = async (cf: string): Promise<{ t: SmtpdTls; lines: string[] }> => {
      const log = Log.memory();
      const t = await SmtpdTls.create(paramsFrom(`${cf}\n`), log.logger('smtpd'), { watch: false });
      t.close();
      return { t, lines: log.texts() };
    };
    const none = await make('smtpd_tls_security_level = none');
    assert.deepEqual([none.t.available, none.lines], [false, []]);

    const noCert = await make('smtpd_tls_security_level = may\nsmtpd_tls_ask_ccert = yes');
    assert.equal(noCert.t.available, false);
    assert.deepEqual(noCert.lines, ['warning: Need a server cert to request client certs', "warning: No server certs available. TLS won't be enabled"]);
    await assert.rejects(
      noCert.t.upgrade(new net.Socket(), { clientName: 'x', clientAddr: '192.0.2.1', log: Log.memory().logger('smtpd') }),
      TlsUnavailableError,
    );

    const reqAtMay = await make(`${seedCf}smtpd_tls_req_ccert = yes`);
    assert.deepEqual(reqAtMay.lines, ["warning: Can't require client certs unless TLS is required"]);
    assert.equal(reqAtMay.t.requireCcert, false);

    const both = await make(`${seedCf}smtpd_tls_chain_files = ${pki.file('other.pem')}`);
    assert.deepEqual(both.lines, [
      'warning: Both smtpd_tls_chain_files and one or more of the legacy  smtpd_tls_cert_file, smtpd_tls_eccert_file or smtpd_tls_dcert_file are non-empty; the legacy  parameters will be ignored',
    ]);

    const badProto = await make(`${seedCf}smtpd_tls_protocols = TLSv9`);
    assert.equal(badProto.t.available, false);
    assert.deepEqual(badProto.lines, ['warning: Invalid TLS protocol list "TLSv9": disabling TLS support']);

    const wrapper = await make(`${seedCf}smtpd_tls_wrappermode = yes\nsmtpd_tls_mandatory_protocols = >=TLSv1.3`);
    assert.deepEqual([wrapper.t.level, wrapper.t.wrapper, wrapper.t.authOnly, wrapper.t.protocols?.minVersion], ['encrypt', true, true, 'TLSv1.3']);
  });

  it('tls: unreadable or mismatched key/certificate files are configuration errors', async () => {
    const log = Log.memory().logger('smtpd');
    await assert.rejects(SmtpdTls.create(paramsFrom(`${seedCf}smtpd_tls_cert_file = ${pki.file('missing.pem')}\nsmtpd_tls_key_file = ${pki.file('srv.key')}\n`), log, { watch: false }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, `${pki.file('missing.pem')}: cannot read: No such file or directory`);
      return true;
    });
    // another RSA key, and a key of another algorithm (OpenSSL alone would not notice that one)
    for (const key of ['cli.key', 'srv2.key']) {
      await assert.rejects(SmtpdTls.create(paramsFrom(`${seedCf}smtpd_tls_key_file = ${pki.file(key)}\n`), log, { watch: false }), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.message, `${pki.file('fullchain.pem')}: the certificate does not match the private key in ${pki.file(key)}`);
        return true;
      });
    }
  });
});

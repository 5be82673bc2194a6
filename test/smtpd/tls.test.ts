import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { smtpdCounters } from '../../src/smtpd/index.js';
import { type StartedPostern, startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';
import { makePki, type Pki, skipWithoutOpenssl } from '../tls/pki.js';

const skip = skipWithoutOpenssl();

function texts(lines: readonly string[]): string[] {
  return lines.map((l) => l.slice(l.indexOf(']: ') + 3));
}

async function sendMessage(c: SmtpClient, rcpt = 'bob@mx.example.test'): Promise<string> {
  assert.equal(await c.cmd('MAIL FROM:<alice@client.example.test>'), '250 2.1.0 Ok');
  assert.equal(await c.cmd(`RCPT TO:<${rcpt}>`), '250 2.1.5 Ok');
  assert.equal(await c.cmd('DATA'), '354 End data with <CR><LF>.<CR><LF>');
  const r = await c.cmd('Subject: tls\r\n\r\nhello\r\n.');
  const m = /^250 2\.0\.0 Ok: queued as (\w+)$/.exec(r);
  assert.ok(m, r);
  return m[1]!;
}

describe('smtpd: STARTTLS', { skip }, () => {
  let pki: Pki;
  let pt: StartedPostern;
  before(async () => {
    pki = makePki();
    pt = await startPostern({
      mainCf: [
        'smtpd_tls_security_level = may',
        `smtpd_tls_cert_file = ${pki.file('fullchain.pem')}`,
        `smtpd_tls_key_file = ${pki.file('srv.key')}`,
        `smtpd_tls_CAfile = ${pki.file('root.pem')}`,
        'smtpd_tls_ask_ccert = yes',
        'smtpd_tls_loglevel = 1',
        'smtpd_tls_received_header = yes',
        'smtpd_tls_protocols = >=TLSv1.2',
      ].join('\n'),
    });
  });
  after(async () => {
    await pt?.stop();
    pki?.remove();
    assert.equal(smtpdCounters.exceptions, 0);
  });

  it('smtpd: STARTTLS then EHLO again: no STARTTLS keyword, TLS summary line, Received with TLS clause, disconnect stats', async () => {
    const before = pt.lines().length;
    const c = await SmtpClient.connect(pt.port4);
    await c.read();
    const ehlo1 = await c.cmd('EHLO client.example.test');
    assert.match(ehlo1, /\n250-STARTTLS\n/);
    assert.equal(await c.cmd('STARTTLS'), '220 2.0.0 Ready to start TLS');
    await c.startTls({ cert: pki.read('cli.pem'), key: pki.read('cli.key') });
    const ehlo2 = await c.cmd('EHLO client.example.test');
    assert.doesNotMatch(ehlo2, /STARTTLS/);
    assert.equal(ehlo2.split('\n').length, 10);
    assert.equal(await c.cmd('STARTTLS'), '554 5.5.1 Error: TLS already active');
    const qid = await sendMessage(c);
    assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
    await c.waitClosed();
    await pt.waitFor(/disconnect from .* starttls=1\/2/);
    const t = texts(pt.lines().slice(before));
    assert.equal(t[0], 'connect from unknown[127.0.0.1]');
    assert.match(t[1]!, /^Trusted TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384 \(256\/256 bits\)/);
    assert.ok(t.includes(`${qid}: client=unknown[127.0.0.1]`));
    assert.equal(t[t.length - 1], 'disconnect from unknown[127.0.0.1] ehlo=2 starttls=1/2 mail=1 rcpt=1 data=1 quit=1 commands=7/8');
    const { content } = await pt.message(qid);
    const received = content.slice(0, content.indexOf('\r\nSubject:'));
    assert.match(
      received,
      /^Received: from client\.example\.test \(unknown \[127\.0\.0\.1\]\)\r\n\t\(using TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384 \(256\/256 bits\)\r\n\t (?:key-exchange \S+ )?server-signature RSA-PSS \(2048 bits\) server-digest SHA256\r\n\t client-signature RSA-PSS \(2048 bits\) client-digest SHA256\)\r\n\t\(Client CN "client\.example\.test", Issuer "Postern Test Root CA" \(verified OK\)\)\r\n\tby mx\.example\.test \(Postfix\) with ESMTPS id \w+\r\n\tfor <bob@mx\.example\.test>; \w{3}, [ \d]\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(.+\)$/,
    );
  });

  it('smtpd: STARTTLS discards pipelined plaintext (CVE-2011-0411)', async () => {
    const c = await SmtpClient.connect(pt.port4);
    await c.read();
    await c.cmd('EHLO client.example.test');
    // The injected commands arrive in the same packet as STARTTLS.
    c.write('STARTTLS\r\nMAIL FROM:<evil@attacker.example>\r\nRCPT TO:<victim@mx.example.test>\r\n');
    assert.equal(await c.read(), '220 2.0.0 Ready to start TLS');
    await c.startTls();
    // Had the injection been read after TLS, these would be "nested MAIL" / success replies.
    assert.equal(await c.cmd('MAIL FROM:<alice@client.example.test>'), '250 2.1.0 Ok');
    assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), '250 2.1.5 Ok');
    assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
    await c.waitClosed();
    await pt.waitFor(/disconnect from .* mail=1 rcpt=1 quit=1 commands=5$/);
  });

  it('smtpd: STARTTLS with an argument is a syntax error; a failed handshake logs lost connection after STARTTLS', async () => {
    const c = await SmtpClient.connect(pt.port4);
    await c.read();
    await c.cmd('EHLO client.example.test');
    assert.equal(await c.cmd('STARTTLS now'), '501 5.5.4 Syntax: STARTTLS');
    assert.equal(await c.cmd('STARTTLS'), '220 2.0.0 Ready to start TLS');
    c.write('this is not a TLS client hello\r\n');
    await c.waitClosed();
    await pt.waitFor(/lost connection after STARTTLS from unknown\[127\.0\.0\.1\]/);
    // As Postfix: a STARTTLS whose handshake fails does not count as a success.
    await pt.waitFor(/disconnect from unknown\[127\.0\.0\.1\] ehlo=1 starttls=0\/2 commands=1\/3/);
  });

  it('smtpd: TLSv1.1 is refused with smtpd_tls_protocols = >=TLSv1.2', async () => {
    const c = await SmtpClient.connect(pt.port4);
    await c.read();
    await c.cmd('EHLO client.example.test');
    await c.cmd('STARTTLS');
    await assert.rejects(c.startTls({ minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }));
    c.close();
    await pt.waitFor(/lost connection after STARTTLS/);
  });
});

describe('smtpd: TLS required (encrypt) and wrappermode', { skip }, () => {
  let pki: Pki;
  before(() => {
    pki = makePki();
  });
  after(() => pki?.remove());

  const tlsCf = (): string => [`smtpd_tls_cert_file = ${pki.file('fullchain.pem')}`, `smtpd_tls_key_file = ${pki.file('srv.key')}`, `smtpd_tls_CAfile = ${pki.file('root.pem')}`].join('\n');

  it('smtpd: with encrypt, commands before STARTTLS get 530 5.7.0 and no NOQUEUE line', async () => {
    const pt = await startPostern({ mainCf: `${tlsCf()}\nsmtpd_tls_security_level = encrypt` });
    try {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      await c.cmd('EHLO client.example.test');
      assert.equal(await c.cmd('MAIL FROM:<a@b.example>'), '530 5.7.0 Must issue a STARTTLS command first');
      assert.equal(await c.cmd('NOOP'), '250 2.0.0 Ok');
      assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
      await c.waitClosed();
      await pt.waitFor(/disconnect from/);
      assert.deepEqual(texts(pt.lines()), [
        'connect from unknown[127.0.0.1]',
        'disconnect from unknown[127.0.0.1] ehlo=1 mail=0/1 noop=1 quit=1 commands=3/4',
      ]);
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: smtpd_tls_req_ccert without a client certificate aborts with 421 4.7.1', async () => {
    const pt = await startPostern({ mainCf: `${tlsCf()}\nsmtpd_tls_security_level = encrypt\nsmtpd_tls_req_ccert = yes\nsmtpd_tls_loglevel = 1` });
    try {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      await c.cmd('EHLO client.example.test');
      await c.cmd('STARTTLS');
      await c.startTls();
      assert.equal(await c.cmd('EHLO client.example.test'), '421 4.7.1 mx.example.test Error: No client certificate presented');
      await c.waitClosed();
      await pt.waitFor(/disconnect from/);
      const t = texts(pt.lines());
      assert.ok(t.includes('NOQUEUE: abort: TLS from unknown[127.0.0.1]: No client certificate presented'), t.join('\n'));
      assert.equal(t[t.length - 1], 'disconnect from unknown[127.0.0.1] ehlo=1 starttls=1 commands=2');
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: wrappermode (port 465) starts TLS before the greeting and does not offer STARTTLS', async () => {
    const pt = await startPostern({ mainCf: tlsCf(), overrides: { smtpd_tls_wrappermode: 'yes', syslog_name: 'postfix/smtps' } });
    try {
      const tls = await import('node:tls');
      const sock = tls.connect({ port: pt.port4, host: '127.0.0.1', rejectUnauthorized: false });
      const data = await new Promise<string>((resolve, reject) => {
        let buf = '';
        sock.on('data', (d: Buffer) => {
          buf += d.toString();
          if (buf.includes('250 CHUNKING\r\n')) resolve(buf);
          else if (buf.startsWith('220 ') && !buf.includes('EHLO')) sock.write('EHLO client.example.test\r\n');
        });
        sock.on('error', reject);
      });
      assert.match(data, /^220 mx\.example\.test ESMTP Postfix\r\n/);
      assert.doesNotMatch(data, /STARTTLS/);
      sock.end('QUIT\r\n');
      await pt.waitFor(/postfix\/smtps\/smtpd\[\d+\]: disconnect from unknown\[127\.0\.0\.1\] ehlo=1/);
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: wrappermode handshake survives a slow client name lookup (ClientHello already buffered)', async () => {
    const slow = {
      reverse: () => new Promise<string[]>((_, reject) => setTimeout(() => reject(new Error('NXDOMAIN')), 200)),
      lookup: async () => [],
      mailhost: async () => 'notfound' as const,
      hostAddress: async () => 'notfound' as const,
    };
    const pt = await startPostern({ mainCf: tlsCf(), overrides: { smtpd_tls_wrappermode: 'yes' }, resolver: slow });
    try {
      const tls = await import('node:tls');
      const sock = tls.connect({ port: pt.port4, host: '127.0.0.1', rejectUnauthorized: false });
      const greeting = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no greeting: the handshake stalled')), 5000);
        sock.once('data', (d: Buffer) => {
          clearTimeout(t);
          resolve(d.toString());
        });
        sock.once('error', reject);
      });
      assert.equal(greeting, '220 mx.example.test ESMTP Postfix\r\n');
      sock.end('QUIT\r\n');
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: client-initiated TLS renegotiation is refused', async () => {
    const pt = await startPostern({ mainCf: `${tlsCf()}\nsmtpd_tls_security_level = may` });
    try {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      await c.cmd('EHLO client.example.test');
      await c.cmd('STARTTLS');
      const t = await c.startTls({ maxVersion: 'TLSv1.2' });
      // The server refuses: the renegotiation fails or the server drops the connection.
      const outcome = await new Promise<string>((resolve) => {
        const timer = setTimeout(() => resolve('no answer'), 3000);
        t.once('close', () => {
          clearTimeout(timer);
          resolve('closed');
        });
        const ok = t.renegotiate({ rejectUnauthorized: false }, (e) => {
          clearTimeout(timer);
          resolve(e ? 'failed' : 'renegotiated');
        });
        if (!ok) resolve('failed');
        // Data makes the handshake messages flow.
        t.write('NOOP\r\n');
      });
      assert.notEqual(outcome, 'renegotiated');
      assert.notEqual(outcome, 'no answer');
      c.close();
    } finally {
      await pt.stop();
    }
  });
});

describe('smtpd: the mandatory TLS settings apply at encrypt and in wrappermode', { skip }, () => {
  let pki: Pki;
  before(() => {
    pki = makePki();
  });
  after(() => pki?.remove());

  type Mode = 'may' | 'encrypt' | 'wrapper';
  const TLS12_AES256: tls.ConnectionOptions = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-GCM-SHA384' };
  const TLS12_AES128: tls.ConnectionOptions = { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' };
  const TLS13: tls.ConnectionOptions = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' };

  /**
   * One handshake with a Postern configured by `cf` in `mode` (may or encrypt with STARTTLS, or
   * wrappermode with smtpd_tls_security_level = may, which wrappermode overrides): "TLSv1.2
   * ECDHE-RSA-AES128-GCM-SHA256" after a working EHLO, or "refused: <the server's TLS library
   * reason>" when the server failed the handshake.
   */
  async function handshake(mode: Mode, cf: string, client: tls.ConnectionOptions): Promise<string> {
    const mainCf = [`smtpd_tls_cert_file = ${pki.file('fullchain.pem')}`, `smtpd_tls_key_file = ${pki.file('srv.key')}`, `smtpd_tls_security_level = ${mode === 'encrypt' ? 'encrypt' : 'may'}`, cf].join('\n');
    const pt = await startPostern({ mainCf, ...(mode === 'wrapper' ? { overrides: { smtpd_tls_wrappermode: 'yes' } } : {}) });
    try {
      let sock: tls.TLSSocket;
      let c: SmtpClient | null = null;
      try {
        if (mode === 'wrapper') {
          sock = tls.connect({ port: pt.port4, host: '127.0.0.1', rejectUnauthorized: false, servername: 'mx.example.test', ...client });
          await new Promise<void>((resolve, reject) => {
            sock.once('secureConnect', () => resolve());
            sock.once('error', reject);
          });
        } else {
          c = await SmtpClient.connect(pt.port4);
          await c.read();
          await c.cmd('EHLO client.example.test');
          assert.equal(await c.cmd('STARTTLS'), '220 2.0.0 Ready to start TLS');
          sock = await c.startTls(client);
        }
      } catch {
        c?.close();
        await pt.waitFor(/disconnect from/);
        const why = pt.lines().find((l) => /warning: TLS library problem: /.test(l));
        assert.ok(pt.lines().some((l) => /SSL_accept error from unknown\[127\.0\.0\.1\]/.test(l)), pt.lines().join('\n'));
        return `refused: ${/TLS library problem: error:[0-9A-F]+:SSL routines::([^:]*)/.exec(why ?? '')?.[1] ?? '?'}`;
      }
      const got = `${sock.getProtocol()} ${sock.getCipher().name}`;
      if (c !== null) {
        assert.match(await c.cmd('EHLO client.example.test'), /^250-mx\.example\.test\n/);
        assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
        c.close();
      } else {
        sock.end('QUIT\r\n');
      }
      await pt.waitFor(/disconnect from/);
      return got;
    } finally {
      await pt.stop();
    }
  }

  it('smtpd: smtpd_tls_mandatory_protocols = >=TLSv1.3 refuses a TLSv1.2 client at encrypt and in wrappermode; at may smtpd_tls_protocols applies', async () => {
    const cf = 'smtpd_tls_mandatory_protocols = >=TLSv1.3';
    assert.equal(await handshake('encrypt', cf, TLS12_AES128), 'refused: unsupported protocol');
    assert.equal(await handshake('wrapper', cf, TLS12_AES128), 'refused: unsupported protocol');
    assert.equal(await handshake('may', cf, TLS12_AES128), 'TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256');
    assert.match(await handshake('encrypt', cf, TLS13), /^TLSv1\.3 TLS_/);
    // And the other way round: at encrypt and in wrappermode smtpd_tls_protocols is not the one used.
    const plain = 'smtpd_tls_protocols = >=TLSv1.3';
    assert.equal(await handshake('may', plain, TLS12_AES128), 'refused: unsupported protocol');
    assert.equal(await handshake('encrypt', plain, TLS12_AES128), 'TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256');
    assert.equal(await handshake('wrapper', plain, TLS12_AES128), 'TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256');
  });

  it('smtpd: smtpd_tls_mandatory_ciphers picks the cipher grade at encrypt and in wrappermode; at may smtpd_tls_ciphers does', async () => {
    // The high grade allows only AES128-GCM here; medium (both defaults) allows AES256-GCM too.
    const high = 'tls_high_cipherlist = ECDHE-RSA-AES128-GCM-SHA256';
    const cf = `${high}\nsmtpd_tls_mandatory_ciphers = high`;
    assert.equal(await handshake('encrypt', cf, TLS12_AES256), 'refused: no shared cipher');
    assert.equal(await handshake('wrapper', cf, TLS12_AES256), 'refused: no shared cipher');
    assert.equal(await handshake('encrypt', cf, TLS12_AES128), 'TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256');
    assert.equal(await handshake('may', cf, TLS12_AES256), 'TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384');
    const plain = `${high}\nsmtpd_tls_ciphers = high`;
    assert.equal(await handshake('may', plain, TLS12_AES256), 'refused: no shared cipher');
    assert.equal(await handshake('encrypt', plain, TLS12_AES256), 'TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384');
    assert.equal(await handshake('wrapper', plain, TLS12_AES256), 'TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384');
  });

  it('smtpd: smtpd_tls_mandatory_exclude_ciphers applies at encrypt and in wrappermode, not at may; smtpd_tls_exclude_ciphers applies at every level', async () => {
    const cf = 'smtpd_tls_mandatory_exclude_ciphers = AES256';
    assert.equal(await handshake('encrypt', cf, TLS12_AES256), 'refused: no shared cipher');
    assert.equal(await handshake('wrapper', cf, TLS12_AES256), 'refused: no shared cipher');
    assert.equal(await handshake('encrypt', cf, TLS12_AES128), 'TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256');
    assert.equal(await handshake('may', cf, TLS12_AES256), 'TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384');
    const all = 'smtpd_tls_exclude_ciphers = AES256';
    for (const mode of ['may', 'encrypt', 'wrapper'] as const) assert.equal(await handshake(mode, all, TLS12_AES256), 'refused: no shared cipher', mode);
  });
});

describe('smtpd: STARTTLS unavailable', () => {
  it('smtpd: level may without a usable certificate answers 454 4.7.0 and does not advertise STARTTLS', async () => {
    const pt = await startPostern({ mainCf: 'smtpd_tls_security_level = may\nsmtpd_tls_cert_file = /nonexistent/cert.pem' });
    try {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      assert.doesNotMatch(await c.cmd('EHLO client.example.test'), /STARTTLS/);
      assert.equal(await c.cmd('STARTTLS'), '454 4.7.0 TLS not available due to local problem');
      await c.cmd('QUIT');
      c.close();
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: level none answers 502 5.5.1 to STARTTLS', async () => {
    const pt = await startPostern({ mainCf: 'smtpd_tls_security_level = none' });
    try {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      await c.cmd('EHLO client.example.test');
      assert.equal(await c.cmd('STARTTLS'), '502 5.5.1 Error: command not implemented');
      c.close();
    } finally {
      await pt.stop();
    }
  });
});

void fs;

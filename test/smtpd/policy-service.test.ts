/**
 * check_policy_service over inet: and unix: sockets with a policy server speaking Postfix's
 * delegation protocol (SMTPD_POLICY_README): the attributes sent, the action judged as an access(5)
 * result (a greylisting DEFER_IF_PERMIT, then DUNNO), and smtpd_policy_service_default_action when
 * the server cannot be reached.
 */
import * as assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { type StartedPostern, startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';
import { makePki, skipWithoutOpenssl } from '../tls/pki.js';

/** A policy server that answers DUNNO to everything and keeps the requests. */
function recorder(): Promise<{ server: net.Server; requests: Record<string, string>[]; port: number }> {
  const requests: Record<string, string>[] = [];
  const server = net.createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
        requests.push(Object.fromEntries(buf.slice(0, end).split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])));
        buf = buf.slice(end + 2);
        sock.write('action=DUNNO\n\n');
      }
    });
    sock.on('error', () => {});
  });
  return new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, () => resolve({ server, requests, port: (server.address() as net.AddressInfo).port })));
}

/** The CN of an X509Certificate subject or issuer ("O=...\nCN=..."). */
const cn = (dn: string): string => /(?:^|\n)CN=([^\n]*)/.exec(dn)?.[1] ?? '';

/** A policy server: greylists the first request of each triplet, then says DUNNO. */
function greylister(listen: net.ListenOptions): Promise<{ server: net.Server; requests: Record<string, string>[]; port: number }> {
  const requests: Record<string, string>[] = [];
  const seen = new Set<string>();
  const server = net.createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      let end = buf.indexOf('\n\n');
      while (end >= 0) {
        const attrs = Object.fromEntries(
          buf
            .slice(0, end)
            .split('\n')
            .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
        );
        buf = buf.slice(end + 2);
        requests.push(attrs);
        const key = `${attrs.client_address}/${attrs.sender}/${attrs.recipient}`;
        const action = seen.has(key) ? 'DUNNO' : 'DEFER_IF_PERMIT Greylisted, see http://postgrey.example/';
        seen.add(key);
        sock.write(`action=${action}\n\n`);
        end = buf.indexOf('\n\n');
      }
    });
    sock.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(listen, () => resolve({ server, requests, port: (server.address() as net.AddressInfo | null)?.port ?? 0 })));
}

async function rcpt(pt: StartedPostern): Promise<string> {
  const c = await SmtpClient.connect(pt.port4);
  try {
    await c.read();
    await c.cmd('EHLO client.example.test');
    await c.cmd('MAIL FROM:<a@client.example.test>');
    const r = await c.cmd('RCPT TO:<bob@mx.example.test>');
    await c.cmd('QUIT');
    return r;
  } finally {
    c.close();
  }
}

const base = ['mynetworks = 192.0.2.0/24', 'local_recipient_maps =', 'smtpd_relay_restrictions = reject_unauth_destination'];

describe('smtpd: check_policy_service', () => {
  it('smtpd: a greylisting policy server over inet: defers the first attempt, accepts the retry; the request carries the attributes', async () => {
    const g = await greylister({ host: '127.0.0.1', port: 0 });
    const pt = await startPostern({ mainCf: [...base, `smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:${g.port}, permit`].join('\n') });
    try {
      assert.equal(await rcpt(pt), '450 4.7.1 <bob@mx.example.test>: Recipient address rejected: Greylisted, see http://postgrey.example/');
      assert.equal(await rcpt(pt), '250 2.1.5 Ok');
      const r = g.requests[0]!;
      assert.equal(r.request, 'smtpd_access_policy');
      assert.equal(r.protocol_state, 'RCPT');
      assert.equal(r.protocol_name, 'ESMTP');
      assert.equal(r.client_address, '127.0.0.1');
      assert.equal(r.helo_name, 'client.example.test');
      assert.equal(r.sender, 'a@client.example.test');
      assert.equal(r.recipient, 'bob@mx.example.test');
    } finally {
      await pt.stop();
      g.server.close();
    }
  });

  it('smtpd: the request carries size, instance, server_address/port, TLS and client-certificate attributes as SMTPD_POLICY_README says; smtpd_end_of_data_restrictions asks at END-OF-MESSAGE', { skip: skipWithoutOpenssl() }, async () => {
    const rec = await recorder();
    const pki = makePki();
    const policy = `check_policy_service inet:127.0.0.1:${rec.port}`;
    const pt = await startPostern({
      mainCf: [
        ...base,
        'smtpd_tls_security_level = may',
        `smtpd_tls_cert_file = ${pki.file('fullchain.pem')}`,
        `smtpd_tls_key_file = ${pki.file('srv.key')}`,
        `smtpd_tls_CAfile = ${pki.file('root.pem')}`,
        'smtpd_tls_ask_ccert = yes',
        `smtpd_recipient_restrictions = ${policy}, permit`,
        `smtpd_end_of_data_restrictions = ${policy}`,
      ].join('\n'),
    });
    const c = await SmtpClient.connect(pt.port4);
    try {
      await c.read();
      await c.cmd('EHLO client.example.test');
      assert.equal(await c.cmd('STARTTLS'), '220 2.0.0 Ready to start TLS');
      const cert = pki.read('cli.pem');
      const sock = await c.startTls({ cert, key: pki.read('cli.key') });
      await c.cmd('EHLO client.example.test');
      assert.equal(await c.cmd('MAIL FROM:<a@client.example.test> SIZE=1234'), '250 2.1.0 Ok');
      assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), '250 2.1.5 Ok');
      assert.match(await c.cmd('DATA'), /^354 /);
      assert.match(await c.cmd('Subject: x\r\n\r\nhello\r\n.'), /^250 2\.0\.0 Ok: queued as /);
      assert.equal(await c.cmd('MAIL FROM:<a@client.example.test>'), '250 2.1.0 Ok');
      assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), '250 2.1.5 Ok');
      await c.cmd('QUIT');

      const [rcpt, eom, rcpt2] = rec.requests;
      assert.ok(rcpt && eom && rcpt2, JSON.stringify(rec.requests));
      assert.equal(rcpt.protocol_state, 'RCPT');
      assert.equal(rcpt.size, '1234', 'the SIZE= the client announced');
      assert.equal(rcpt.server_address, '127.0.0.1');
      assert.equal(rcpt.server_port, String(pt.port4));
      assert.match(rcpt.instance!, /^[0-9a-f]+\.[0-9a-f]+\.[0-9a-f]+\.[0-9a-f]+$/);
      assert.equal(rcpt.encryption_protocol, sock.getProtocol());
      assert.equal(rcpt.encryption_cipher, sock.getCipher().name);
      assert.equal(rcpt.encryption_keysize, /256|CHACHA20/.test(sock.getCipher().name) ? '256' : '128');
      const x = new X509Certificate(cert);
      assert.equal(rcpt.ccert_subject, cn(x.subject).replace(/ /g, '+20'), 'xtext, from a trusted certificate');
      assert.equal(rcpt.ccert_issuer, cn(x.issuer).replace(/ /g, '+20'));
      assert.equal(rcpt.ccert_fingerprint, x.fingerprint256);

      assert.equal(eom.protocol_state, 'END-OF-MESSAGE');
      assert.equal(eom.size, '21', 'the bytes received');
      assert.equal(eom.recipient_count, '1');
      assert.equal(eom.instance, rcpt.instance, 'one instance per transaction');
      assert.match(eom.queue_id!, /^[0-9A-F]+$/);

      assert.equal(rcpt2.size, '0');
      assert.notEqual(rcpt2.instance, rcpt.instance);
      const seq = (i: string): number => Number.parseInt(i.split('.')[3]!, 16);
      assert.ok(seq(rcpt2.instance!) > seq(rcpt.instance!), 'the sequence number grows');
    } finally {
      c.close();
      await pt.stop();
      rec.server.close();
      pki.remove();
    }
  });

  it('smtpd: a unix: server name is relative to queue_directory', async () => {
    let pt: StartedPostern | null = null;
    const probe = await startPostern({ mainCf: base.join('\n') });
    const dir = path.join(probe.queueDir, 'private');
    await probe.stop();
    fs.mkdirSync(dir, { recursive: true });
    const g = await greylister({ path: path.join(dir, 'policy') });
    try {
      pt = await startPostern({ mainCf: [...base, `queue_directory = ${probe.queueDir}`, 'smtpd_recipient_restrictions = check_policy_service unix:private/policy, permit'].join('\n') });
      assert.match(await rcpt(pt), /^450 4\.7\.1 .*Greylisted/);
      assert.equal(g.requests.length, 1);
    } finally {
      await pt?.stop();
      g.server.close();
    }
  });

  it('smtpd: a reply without action= is a failed query: the default action', async () => {
    const bad = net.createServer((sock) => {
      sock.on('data', () => sock.write('result=whatever\n\n'));
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => bad.listen({ host: '127.0.0.1', port: 0 }, () => r()));
    const port = (bad.address() as net.AddressInfo).port;
    const pt = await startPostern({ mainCf: [...base, `smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:${port}, permit`, 'smtpd_policy_service_try_limit = 1'].join('\n') });
    try {
      assert.equal(await rcpt(pt), '451 4.3.5 <bob@mx.example.test>: Recipient address rejected: Server configuration problem');
      await pt.waitFor(new RegExp(`warning: problem talking to server inet:127\\.0\\.0\\.1:${port}: no action attribute in reply$`));
    } finally {
      await pt.stop();
      bad.close();
    }
  });

  it('smtpd: a server that cannot be reached gives smtpd_policy_service_default_action with Postfix warning', async () => {
    const closed = await greylister({ host: '127.0.0.1', port: 0 });
    const port = closed.port;
    await new Promise<void>((r) => closed.server.close(() => r()));
    const pt = await startPostern({ mainCf: [...base, `smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:${port}, permit`, 'smtpd_policy_service_try_limit = 1'].join('\n') });
    try {
      assert.equal(await rcpt(pt), '451 4.3.5 <bob@mx.example.test>: Recipient address rejected: Server configuration problem');
      await pt.waitFor(new RegExp(`warning: problem talking to server inet:127\\.0\\.0\\.1:${port}: Connection refused$`));
    } finally {
      await pt.stop();
    }
  });
});

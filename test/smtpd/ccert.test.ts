/**
 * Client certificates in restrictions: permit_tls_clientcerts with relay_clientcerts, and
 * check_ccert_access, matched by certificate or public-key fingerprint (smtpd_tls_fingerprint_digest,
 * sha256 at compatibility_level 3.6), over STARTTLS with openssl-made certificates.
 */
import * as assert from 'node:assert/strict';
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type StartedPostern, startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';
import { makePki, type Pki, skipWithoutOpenssl } from '../tls/pki.js';

const skip = skipWithoutOpenssl();

const colons = (hex: string): string => hex.toUpperCase().replace(/(..)(?!$)/g, '$1:');
const certPrint = (pem: string): string => new X509Certificate(pem).fingerprint256;
const pkeyPrint = (pem: string): string => colons(createHash('sha256').update(createPublicKey(pem).export({ type: 'spki', format: 'der' })).digest('hex'));

async function rcptReply(pt: StartedPostern, o: { cert?: string; key?: string } | null, rcpt: string): Promise<string> {
  const c = await SmtpClient.connect(pt.port4);
  try {
    await c.read();
    await c.cmd('EHLO client.example.test');
    if (o !== null) {
      assert.equal(await c.cmd('STARTTLS'), '220 2.0.0 Ready to start TLS');
      await c.startTls(o.cert !== undefined && o.key !== undefined ? { cert: o.cert, key: o.key } : {});
      await c.cmd('EHLO client.example.test');
    }
    assert.match(await c.cmd('MAIL FROM:<a@client.example.test>'), /^250 /);
    const r = await c.cmd(`RCPT TO:<${rcpt}>`);
    await c.cmd('QUIT');
    return r;
  } finally {
    c.close();
  }
}

describe('smtpd: client certificate restrictions', { skip }, () => {
  let pki: Pki;
  let pt: StartedPostern;
  let self: { cert: string; key: string };
  let cli: { cert: string; key: string };
  before(async () => {
    pki = makePki();
    self = { cert: pki.read('self.pem'), key: pki.read('self.key') };
    cli = { cert: pki.read('cli.pem'), key: pki.read('cli.key') };
    pt = await startPostern({
      mainCf: [
        'smtpd_tls_security_level = may',
        `smtpd_tls_cert_file = ${pki.file('fullchain.pem')}`,
        `smtpd_tls_key_file = ${pki.file('srv.key')}`,
        `smtpd_tls_CAfile = ${pki.file('root.pem')}`,
        'smtpd_tls_ask_ccert = yes',
        // localhost is not a trusted network here: only certificates can open the relay.
        'mynetworks = 192.0.2.0/24',
        `relay_clientcerts = inline:{ { ${certPrint(self.cert)} = self-signed laptop } }`,
        'smtpd_relay_restrictions = permit_mynetworks, permit_tls_clientcerts, reject_unauth_destination',
        `smtpd_recipient_restrictions = check_ccert_access inline:{ { ${pkeyPrint(cli.cert)} = REJECT key withdrawn } }, permit`,
      ].join('\n'),
    });
  });
  after(async () => {
    await pt?.stop();
    pki?.remove();
  });

  it('smtpd: permit_tls_clientcerts relays for a certificate listed in relay_clientcerts, even an untrusted one', async () => {
    assert.equal(await rcptReply(pt, self, 'far@elsewhere.example'), '250 2.1.5 Ok');
    assert.equal(await rcptReply(pt, null, 'far@elsewhere.example'), '554 5.7.1 <far@elsewhere.example>: Relay access denied');
    assert.equal(await rcptReply(pt, {}, 'far@elsewhere.example'), '554 5.7.1 <far@elsewhere.example>: Relay access denied');
  });

  it('smtpd: check_ccert_access matches the public-key fingerprint; the reply names the certificate CN', async () => {
    const r = await rcptReply(pt, cli, 'bob@mx.example.test');
    assert.equal(r, '554 5.7.1 <client.example.test>: Client certificate rejected: key withdrawn');
    await pt.waitFor(/NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 <client\.example\.test>: Client certificate rejected: key withdrawn; from=<a@client\.example\.test> to=<bob@mx\.example\.test> proto=ESMTP helo=<client\.example\.test>$/);
    assert.equal(await rcptReply(pt, self, 'bob@mx.example.test'), '250 2.1.5 Ok');
  });
});

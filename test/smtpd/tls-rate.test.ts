/**
 * smtpd_client_new_tls_session_rate_limit over STARTTLS: the session that goes over the limit ends
 * after its handshake with 421, later STARTTLS requests are refused with 454 before any handshake,
 * with Postfix's warnings (smtpd.c). Clients in smtpd_client_event_limit_exceptions are not counted.
 */
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type StartedPostern, startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';
import { makePki, type Pki, skipWithoutOpenssl } from '../tls/pki.js';

const skip = skipWithoutOpenssl();

describe('smtpd: new TLS session rate limit', { skip }, () => {
  let pki: Pki;
  const servers: StartedPostern[] = [];
  const start = async (extra: string): Promise<StartedPostern> => {
    const pt = await startPostern({
      mainCf: [
        'smtpd_tls_security_level = may',
        `smtpd_tls_cert_file = ${pki.file('fullchain.pem')}`,
        `smtpd_tls_key_file = ${pki.file('srv.key')}`,
        'smtpd_client_new_tls_session_rate_limit = 1',
        extra,
      ].join('\n'),
    });
    servers.push(pt);
    return pt;
  };
  before(() => {
    pki = makePki();
  });
  after(async () => {
    for (const pt of servers) await pt.stop();
    pki?.remove();
  });

  it('smtpd: the second new TLS session ends with 421 after the handshake, the third STARTTLS gets 454', async () => {
    // 127.0.0.1 outside mynetworks, so outside smtpd_client_event_limit_exceptions: it is counted.
    const pt = await start('mynetworks = 192.0.2.0/24');
    const starttls = async (): Promise<{ reply: string; after: string | null }> => {
      const c = await SmtpClient.connect(pt.port4);
      try {
        await c.read();
        await c.cmd('EHLO client.example.test');
        const reply = await c.cmd('STARTTLS');
        if (!reply.startsWith('220')) return { reply, after: null };
        await c.startTls();
        const afterTls = await c.cmd('EHLO client.example.test');
        return { reply, after: afterTls.split('\n')[0]! };
      } finally {
        c.close();
      }
    };
    assert.deepEqual(await starttls(), { reply: '220 2.0.0 Ready to start TLS', after: '250-mx.example.test' });
    const second = await starttls();
    assert.equal(second.reply, '220 2.0.0 Ready to start TLS');
    assert.equal(second.after, '421 4.7.0 mx.example.test Error: too many new TLS sessions from unknown[127.0.0.1]');
    assert.deepEqual(await starttls(), { reply: '454 4.7.0 Error: too many new TLS sessions from unknown[127.0.0.1]', after: null });
    await pt.waitFor(/warning: New TLS session rate limit exceeded: 2 from unknown\[127\.0\.0\.1\] for service smtp$/);
    await pt.waitFor(/warning: Refusing STARTTLS request from unknown\[127\.0\.0\.1\] for service smtp$/);
  });

  it('smtpd: a client in smtpd_client_event_limit_exceptions is not limited', async () => {
    const pt = await start('mynetworks = 127.0.0.0/8');
    for (let i = 0; i < 3; i++) {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      await c.cmd('EHLO client.example.test');
      assert.equal(await c.cmd('STARTTLS'), '220 2.0.0 Ready to start TLS');
      await c.startTls();
      assert.match(await c.cmd('EHLO client.example.test'), /^250-mx\.example\.test/);
      c.close();
    }
  });
});

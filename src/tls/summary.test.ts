import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commentSanitize, type ReceivedTlsFacts, receivedTlsClause, receivedTlsLines, type TlsSummaryFacts, tlsSummaryLine } from './summary.js';

const TLS13: TlsSummaryFacts = {
  protocol: 'TLSv1.3',
  cipher: 'TLS_AES_256_GCM_SHA384',
  bits: 256,
  algBits: 256,
  keyExchange: { name: 'X25519', curve: null, bits: 0 },
  serverSignature: { name: 'RSA-PSS', curve: null, bits: 2048, digest: 'SHA256' },
};
const CLIENT_SIG = { name: 'RSA-PSS', curve: null, bits: 2048, digest: 'SHA256' };

describe('tls: summary line (reference 1.8, sample log)', () => {
  it('tls: Anonymous TLS 1.3 line from the Postfix 3.7.11 sample log', () => {
    assert.equal(
      tlsSummaryLine({ word: 'Anonymous', direction: 'from', namaddr: 'unknown[::1]', session: TLS13 }),
      'Anonymous TLS connection established from unknown[::1]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256',
    );
  });

  it('tls: Trusted line with the client signature', () => {
    assert.equal(
      tlsSummaryLine({ word: 'Trusted', direction: 'from', namaddr: 'localhost[127.0.0.1]', session: { ...TLS13, clientSignature: CLIENT_SIG } }),
      'Trusted TLS connection established from localhost[127.0.0.1]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256 client-signature RSA-PSS (2048 bits) client-digest SHA256',
    );
  });

  it('tls: client direction with host[addr]:port, SNI never printed there', () => {
    assert.equal(
      tlsSummaryLine({ word: 'Verified', direction: 'to', namaddr: 'localhost[127.0.0.1]:2632', session: { ...TLS13, sni: 'localhost' } }),
      'Verified TLS connection established to localhost[127.0.0.1]:2632: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256',
    );
  });

  it('tls: TLS 1.2 line ends at the bits (issue 3 example)', () => {
    assert.equal(
      tlsSummaryLine({
        word: 'Trusted',
        direction: 'from',
        namaddr: 'mail-oi0-x236.google.com[2607:f8b0:4003:c06::236]',
        session: { protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256', bits: 128, algBits: 128 },
      }),
      'Trusted TLS connection established from mail-oi0-x236.google.com[2607:f8b0:4003:c06::236]: TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits)',
    );
  });

  it('tls: server side appends the accepted SNI name, ECDSA prints the curve, missing parts are left out', () => {
    assert.equal(
      tlsSummaryLine({
        word: 'Anonymous',
        direction: 'from',
        namaddr: 'unknown[192.0.2.1]',
        session: {
          protocol: 'TLSv1.3',
          cipher: 'TLS_CHACHA20_POLY1305_SHA256',
          bits: 256,
          algBits: 256,
          sni: 'mx.example.com',
          keyExchange: null,
          serverSignature: { name: 'ECDSA', curve: 'prime256v1', bits: 0, digest: 'SHA256' },
          clientSignature: { name: 'ED25519', curve: null, bits: 0, digest: null },
        },
      }),
      'Anonymous TLS connection established from unknown[192.0.2.1] to mx.example.com: TLSv1.3 with cipher TLS_CHACHA20_POLY1305_SHA256 (256/256 bits) server-signature ECDSA (prime256v1) server-digest SHA256 client-signature ED25519',
    );
  });
});

describe('tls: Received: header clause (P smtpd.c, observed on Postfix 3.7.11)', () => {
  const base: ReceivedTlsFacts = { ...TLS13, peerCert: false, trusted: false, peerCN: '', issuerCN: '', askedCcert: true };

  it('tls: TLS 1.3 without a client certificate (ask_ccert)', () => {
    assert.equal(
      receivedTlsClause(base),
      '(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)\r\n\t(Client did not present a certificate)',
    );
  });

  it('tls: TLS 1.3 with a verified client certificate puts the client signature on its own line', () => {
    assert.deepEqual(receivedTlsLines({ ...base, clientSignature: CLIENT_SIG, peerCert: true, trusted: true, peerCN: 'client.example', issuerCN: 'Test-CA' }), [
      '(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)',
      ' key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256',
      ' client-signature RSA-PSS (2048 bits) client-digest SHA256)',
      '(Client CN "client.example", Issuer "Test-CA" (verified OK))',
    ]);
  });

  it('tls: TLS 1.2, certificate not requested', () => {
    assert.deepEqual(receivedTlsLines({ protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES256-GCM-SHA384', bits: 256, algBits: 256, peerCert: false, trusted: false, peerCN: '', issuerCN: '', askedCcert: false }), [
      '(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))',
      '(No client certificate requested)',
    ]);
  });

  it('tls: without key exchange the server signature starts the second line', () => {
    assert.deepEqual(receivedTlsLines({ ...base, keyExchange: null }).slice(0, 2), [
      '(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)',
      ' server-signature RSA-PSS (2048 bits) server-digest SHA256)',
    ]);
  });

  it('tls: untrusted certificate names are sanitized for a header comment', () => {
    const lines = receivedTlsLines({ ...base, peerCert: true, trusted: false, peerCN: 'evil)\r\nX-Injected: (yes\\', issuerCN: 'Ïssuer' });
    assert.equal(lines.at(-1), '(Client CN "evil???X-Injected: (yes?)", Issuer "??ssuer" (not verified))');
    assert.ok(!lines.some((l) => /[\r\n]/.test(l)));
  });

  it('tls: comment sanitizing balances parentheses as Postfix', () => {
    assert.equal(commentSanitize('a(b'), 'a(b)');
    assert.equal(commentSanitize('a)b(c)'), 'a?b(c)');
  });
});

/**
 * DNSBL restrictions and reject_unknown_sender/recipient_domain (MX, then A/AAAA; RFC 7505 null MX)
 * side by side with a private Postfix 3.7, both asking the same DNS server
 * (test/harness/dns-server.ts on 127.83.53.1:53; Postfix reaches it through a private
 * /etc/resolv.conf in a mount namespace of its own, Postern through its production resolver,
 * systemResolver, pointed at it). The RCPT replies and the NOQUEUE reject lines must be the same.
 * This is also the test of Postern's real DNS path for DNSBL lookups (A, then TXT for the reason).
 */
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { systemResolver } from '../../src/smtpd/peer.js';
import { startDnsServer, type TestDnsServer } from '../harness/dns-server.js';
import { freePorts, privateResolverSkip, startPostfix } from '../harness/postfix.js';
import { startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';

const skip = privateResolverSkip();
/** A loopback address of its own, so a resolver of the host's on 127.0.0.1:53 does not collide. */
const NS = '127.83.53.1';

const ZONE = {
  '1.0.0.127.zen.example': { a: ['127.0.0.2'], txt: ['Listed, see https://zen.example/q?ip=127.0.0.1'] },
  '1.0.0.127.bare.example': { a: ['127.0.0.3'] },
  'client.example.test.dbl.example': { a: ['127.0.1.2'], txt: ['spam domain'] },
  'mx.example.test.rhs.example': { a: ['127.0.1.4'] },
  // Mail domains for reject_unknown_sender_domain / reject_unknown_recipient_domain.
  'nullmx.example': { mx: [{ preference: 0, exchange: '' }] },
  'aonly.example': { a: ['192.0.2.25'] },
  'mxonly.example': { mx: [{ preference: 10, exchange: 'mail.mxonly.example' }] },
  'mail.mxonly.example': { a: ['192.0.2.26'] },
};

const CASES: readonly { name: string; mainCf: string; from?: string; to?: string; helo?: string }[] = [
  { name: 'reject_rbl_client with a TXT reason', mainCf: 'smtpd_recipient_restrictions = reject_rbl_client zen.example, permit' },
  { name: 'reject_rbl_client without TXT', mainCf: 'smtpd_recipient_restrictions = reject_rbl_client bare.example, permit' },
  { name: 'a reply filter the answer does not match, then an unlisted zone', mainCf: 'smtpd_recipient_restrictions = reject_rbl_client zen.example=127.0.0.[4..11], reject_rbl_client nothere.example, permit' },
  { name: 'reject_rhsbl_sender', mainCf: 'smtpd_recipient_restrictions = reject_rhsbl_sender dbl.example, permit' },
  { name: 'reject_rhsbl_recipient', mainCf: 'smtpd_recipient_restrictions = reject_rhsbl_recipient rhs.example, permit' },
  {
    name: 'default_rbl_reply with every macro',
    mainCf: [
      'smtpd_recipient_restrictions = reject_rbl_client zen.example, permit',
      'default_rbl_reply = $rbl_code 5.7.1 <$rbl_what> $rbl_class listed by $rbl_domain ($rbl_reason) as $rbl_txt',
    ].join('\n'),
  },
  ...[
    ['a sender domain that does not exist', 'a@nx.example'],
    ['a sender domain with a null MX (RFC 7505)', 'a@nullmx.example'],
    ['a sender domain with an address but no MX', 'a@aonly.example'],
    ['a sender domain with an MX only', 'a@mxonly.example'],
  ].map(([name, from]) => ({ name: `reject_unknown_sender_domain: ${name}`, mainCf: 'smtpd_recipient_restrictions = reject_unknown_sender_domain, permit', from })),
  ...[
    ['a recipient domain that does not exist', 'bob@nx.example'],
    ['a recipient domain with a null MX', 'bob@nullmx.example'],
    ['a recipient domain with an MX', 'bob@mxonly.example'],
  ].map(([name, to]) => ({ name: `reject_unknown_recipient_domain: ${name}`, mainCf: 'smtpd_recipient_restrictions = reject_unknown_recipient_domain, permit', to })),
  ...[
    ['a HELO name without an address', 'nx.example'],
    ['a HELO name with an A record', 'aonly.example'],
    ['a HELO name with only an MX record', 'mxonly.example'],
  ].map(([name, helo]) => ({ name: `reject_unknown_helo_hostname: ${name}`, mainCf: 'smtpd_helo_required = yes\nsmtpd_helo_restrictions = reject_unknown_helo_hostname', helo })),
];

async function rcpt(port: number, from = 'a@client.example.test', to = 'bob@mx.example.test', helo = 'client.example.test'): Promise<string> {
  const c = await SmtpClient.connect(port);
  try {
    await c.read();
    await c.cmd(`EHLO ${helo}`);
    assert.equal(await c.cmd(`MAIL FROM:<${from}>`), '250 2.1.0 Ok');
    const r = await c.cmd(`RCPT TO:<${to}>`);
    await c.cmd('QUIT');
    return r;
  } finally {
    c.close();
  }
}

const rejectLine = (lines: readonly string[]): string | null => {
  const l = lines.find((x) => x.includes('NOQUEUE: reject: RCPT'));
  return l === undefined ? null : l.replace(/^.*?NOQUEUE/, 'NOQUEUE');
};

describe('smtpd: DNSBL and unknown-domain restrictions side by side with Postfix 3.7 (one DNS server for both)', { skip }, () => {
  let dns: TestDnsServer;
  before(async () => {
    dns = await startDnsServer(ZONE, NS, 53);
  });
  after(() => dns?.close());

  for (const c of CASES) {
    it(`smtpd: same reply and log line as Postfix: ${c.name}`, async () => {
      const [port] = await freePorts(1);
      const pf = await startPostfix({ services: [{ port: port! }], mainCf: c.mainCf, nameserver: NS });
      const pt = await startPostern({ mainCf: `smtpd_peername_lookup = no\n${c.mainCf}`, ipv6: false, resolver: systemResolver({ servers: [NS] }) });
      try {
        const [postern, postfix] = await Promise.all([rcpt(pt.port4, c.from, c.to, c.helo), rcpt(port!, c.from, c.to, c.helo)]);
        assert.equal(postern, postfix);
        if (!postfix.startsWith('250')) {
          await pf.waitFor(/NOQUEUE: reject: RCPT/);
          await pt.waitFor(/NOQUEUE: reject: RCPT/);
        }
        assert.equal(rejectLine(pt.lines()), rejectLine(pf.log()));
      } finally {
        pf.stop();
        await pt.stop();
      }
    });
  }

  it('smtpd: the lookups went to the test server (A, then TXT for the reason)', () => {
    assert.ok(dns.asked.includes('1.0.0.127.zen.example'), dns.asked.join(' '));
    assert.ok(dns.asked.includes('client.example.test.dbl.example'), dns.asked.join(' '));
  });
});

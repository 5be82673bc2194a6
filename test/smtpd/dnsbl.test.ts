/**
 * DNSBL restrictions (reject_rbl_client, reject_rhsbl_*, permit_dnswl_client) through a mock
 * resolver: Postfix's reply and log texts (default_rbl_reply, rbl_reply_maps), reply filters
 * (zone=127.0.0.[2..11]), IPv6 nibble queries, and lookup errors that never reject.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ipFilterMatch, reverseForDnsbl } from '../../src/smtpd/restrictions.js';
import { type Resolver, ResolverError } from '../../src/smtpd/index.js';
import { type StartedPostern, startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';

function resolver(listed: Record<string, { a: string[]; txt?: string[] } | 'temp'>, asked: string[]): Resolver {
  return {
    reverse: async () => {
      throw new ResolverError('perm', 'NXDOMAIN');
    },
    lookup: async () => {
      throw new ResolverError('perm', 'NXDOMAIN');
    },
    mailhost: async () => 'ok',
    hostAddress: async () => 'ok',
    dnsbl: async (name) => {
      asked.push(name);
      const v = listed[name];
      if (v === 'temp') throw new ResolverError('temp', 'SERVFAIL');
      return v === undefined ? null : { a: v.a, txt: v.txt ?? [] };
    },
  };
}

async function rcpt(pt: StartedPostern, o: { from?: string; to?: string; host?: string; port?: number } = {}): Promise<string> {
  const c = await SmtpClient.connect(o.port ?? pt.port4, o.host ?? '127.0.0.1');
  try {
    await c.read();
    await c.cmd('EHLO client.example.test');
    await c.cmd(`MAIL FROM:<${o.from ?? 'a@client.example.test'}>`);
    const r = await c.cmd(`RCPT TO:<${o.to ?? 'bob@mx.example.test'}>`);
    await c.cmd('QUIT');
    return r;
  } finally {
    c.close();
  }
}

const base = ['mynetworks = 192.0.2.0/24', 'local_recipient_maps =', 'smtpd_relay_restrictions = reject_unauth_destination'];

describe('smtpd: DNSBL restrictions', () => {
  it('smtpd: reject_rbl_client rejects a listed client with default_rbl_reply and the TXT reason, as Postfix logs it', async () => {
    const asked: string[] = [];
    const r = resolver({ '1.0.0.127.zen.example': { a: ['127.0.0.2'], txt: ['Listed, see https://zen.example/q?ip=127.0.0.1'] } }, asked);
    const pt = await startPostern({ resolver: r, mainCf: [...base, 'smtpd_recipient_restrictions = reject_rbl_client zen.example'].join('\n') });
    try {
      assert.equal(await rcpt(pt), '554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.example; Listed, see https://zen.example/q?ip=127.0.0.1');
      await pt.waitFor(
        /NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 Service unavailable; Client host \[127\.0\.0\.1\] blocked using zen\.example; Listed, see https:\/\/zen\.example\/q\?ip=127\.0\.0\.1; from=<a@client\.example\.test> to=<bob@mx\.example\.test> proto=ESMTP helo=<client\.example\.test>$/,
      );
      assert.ok(asked.includes('1.0.0.127.zen.example'));
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: a reply filter that the A record does not match, and a lookup error, accept; rbl_reply_maps changes the reply', async () => {
    const asked: string[] = [];
    const r = resolver({ '1.0.0.127.zen.example': { a: ['127.0.0.2'] }, '1.0.0.127.broken.example': 'temp' }, asked);
    const pt = await startPostern({
      resolver: r,
      mainCf: [...base, 'smtpd_recipient_restrictions = reject_rbl_client zen.example=127.0.0.[4..11], reject_rbl_client broken.example, reject_rbl_client zen.example', 'rbl_reply_maps = inline:{ { zen.example = 450 4.7.1 try later ($$rbl_what on $$rbl_domain) } }'].join('\n'),
    });
    try {
      assert.equal(await rcpt(pt), '450 4.7.1 try later (127.0.0.1 on zen.example)');
      await pt.waitFor(/warning: 1\.0\.0\.127\.broken\.example: RBL lookup error: SERVFAIL$/);
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: reject_rhsbl_sender looks up the sender domain; permit_dnswl_client before it lets a listed client through', async () => {
    const asked: string[] = [];
    const r = resolver({ 'spam.example.dbl.example': { a: ['127.0.1.2'] }, '1.0.0.127.wl.example': { a: ['127.0.5.1'] } }, asked);
    const reject = await startPostern({ resolver: r, mainCf: [...base, 'smtpd_recipient_restrictions = reject_rhsbl_sender dbl.example'].join('\n') });
    try {
      assert.equal(await rcpt(reject, { from: 'x@spam.example' }), '554 5.7.1 Service unavailable; Sender address [x@spam.example] blocked using dbl.example');
      assert.equal(await rcpt(reject, { from: 'x@clean.example' }), '250 2.1.5 Ok');
    } finally {
      await reject.stop();
    }
    const allow = await startPostern({ resolver: r, mainCf: [...base, 'smtpd_recipient_restrictions = permit_dnswl_client wl.example, reject_rhsbl_sender dbl.example'].join('\n') });
    try {
      assert.equal(await rcpt(allow, { from: 'x@spam.example' }), '250 2.1.5 Ok');
      // Never a way to relay: a foreign recipient still meets reject_unauth_destination.
      assert.equal(await rcpt(allow, { from: 'x@spam.example', to: 'far@elsewhere.example' }), '554 5.7.1 <far@elsewhere.example>: Relay access denied');
    } finally {
      await allow.stop();
    }
  });

  it('smtpd: a reply template without a 4xx/5xx code is a configuration error: 450 4.7.1 and Postfix warning', async () => {
    const r = resolver({ '1.0.0.127.zen.example': { a: ['127.0.0.2'] } }, []);
    const pt = await startPostern({ resolver: r, mainCf: [...base, 'smtpd_recipient_restrictions = reject_rbl_client zen.example', 'rbl_reply_maps = inline:{ { zen.example = go away } }'].join('\n') });
    try {
      assert.equal(await rcpt(pt), '450 4.7.1 Service unavailable');
      await pt.waitFor(/warning: rbl response code configuration error: go away$/);
    } finally {
      await pt.stop();
    }
  });

  it('smtpd: DNSBL query names and reply filters', () => {
    assert.equal(reverseForDnsbl('192.0.2.7'), '7.2.0.192');
    assert.equal(reverseForDnsbl('2001:db8::1'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2');
    assert.ok(ipFilterMatch('127.0.0.[2..11]', '127.0.0.4'));
    assert.ok(!ipFilterMatch('127.0.0.[2..11]', '127.0.0.12'));
    assert.ok(ipFilterMatch('127.0.[1;3..5].2', '127.0.4.2'));
    assert.ok(!ipFilterMatch('127.0.0.2', '127.0.0.3'));
  });
});

/**
 * Client name lookup (forward-confirmed, through a mock resolver), DNS-based restrictions,
 * local users from /etc/passwd, ETRN, and the open-relay check at start.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { Log } from '../../src/log/index.js';
import { clientKey } from '../../src/smtpd/anvil.js';
import { createSmtpd, type MailhostStatus, type Resolver, ResolverError } from '../../src/smtpd/index.js';
import { lookupPeer } from '../../src/smtpd/peer.js';
import { hasIPv6Loopback, type StartedPostern, startPostern } from '../harness/postern.js';
import { tempRoot } from '../harness/scratch.js';
import { SmtpClient } from '../harness/smtp-client.js';

const tmp = tempRoot('postern-policy-');

/** `hang`: addresses and names whose lookups never answer (a DNS server that does not reply). */
function mockResolver(o: { ptr?: Record<string, string[]>; a?: Record<string, string[]>; mail?: Record<string, MailhostStatus>; delayMs?: number; hang?: readonly string[] }): Resolver {
  const wait = (key: string): Promise<void> => (o.hang?.includes(key) ? new Promise<void>(() => {}) : new Promise((r) => setTimeout(r, o.delayMs ?? 0)));
  return {
    async reverse(addr) {
      await wait(addr);
      const names = o.ptr?.[addr];
      if (!names) throw new ResolverError('perm', 'NXDOMAIN');
      return names;
    },
    async lookup(name) {
      await wait(name);
      const addrs = o.a?.[name];
      if (!addrs) throw new ResolverError('perm', 'NXDOMAIN');
      return addrs;
    },
    async mailhost(domain) {
      return o.mail?.[domain] ?? 'notfound';
    },
    async hostAddress(name) {
      return o.mail?.[name] ?? 'notfound';
    },
  };
}

const ipv6Skip = (await hasIPv6Loopback()) ? false : 'no IPv6 loopback';

/** Log lines without their `date host postfix/smtpd[N]: ` prefix. */
function texts(lines: readonly string[]): string[] {
  return lines.map((l) => l.slice(l.indexOf(']: ') + 3));
}

async function withPostern(o: Parameters<typeof startPostern>[0], fn: (pt: StartedPostern) => Promise<void>): Promise<void> {
  const pt = await startPostern(o);
  try {
    await fn(pt);
  } finally {
    await pt.stop();
  }
}

describe('smtpd: client name', () => {
  it('smtpd: a forward-confirmed PTR name is logged as name[addr]', async () => {
    const resolver = mockResolver({ ptr: { '127.0.0.1': ['mail.client.example.'] }, a: { 'mail.client.example': ['127.0.0.1'] } });
    await withPostern({ resolver }, async (pt) => {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      await c.cmd('QUIT');
      await pt.waitFor(/disconnect from mail\.client\.example\[127\.0\.0\.1\] quit=1 commands=1/);
      assert.match(pt.lines()[0]!, /postfix\/smtpd\[\d+\]: connect from mail\.client\.example\[127\.0\.0\.1\]$/);
    });
  });

  it('smtpd: a PTR name that does not resolve back is unknown, with Postfix warning', async () => {
    const warnings: string[] = [];
    const p = await lookupPeer(
      { addr: '192.0.2.7', rfcAddr: '192.0.2.7', family: 4, port: 1, lookup: true, resolver: mockResolver({ ptr: { '192.0.2.7': ['forged.example'] }, a: { 'forged.example': ['192.0.2.99'] } }), timeoutMs: 1000 },
      (t) => warnings.push(t),
    );
    assert.equal(p.namaddr, 'unknown[192.0.2.7]');
    assert.equal(p.nameStatus, 'forged');
    assert.equal(p.reverseName, 'forged.example');
    assert.deepEqual(warnings, ['hostname forged.example does not resolve to address 192.0.2.7']);
  });

  it('smtpd: the lookup times out into unknown (temporary)', async () => {
    const p = await lookupPeer({ addr: '192.0.2.8', rfcAddr: '192.0.2.8', family: 4, port: 1, lookup: true, resolver: mockResolver({ ptr: { '192.0.2.8': ['slow.example'] }, delayMs: 500 }), timeoutMs: 50 }, () => {});
    assert.equal(p.name, 'unknown');
    assert.equal(p.nameStatus, 'temp');
  });

  it('smtpd: over a socket, a PTR name that does not resolve back to the client: Postfix 3.7 warning before the connect line, unknown[addr] in the log and in Received:', async () => {
    const resolver = mockResolver({ ptr: { '127.0.0.1': ['forged.client.example.'] }, a: { 'forged.client.example': ['192.0.2.99'] } });
    await withPostern({ resolver }, async (pt) => {
      const c = await SmtpClient.connect(pt.port4);
      assert.match(await c.read(), /^220 /);
      await c.cmd('EHLO client.example.test');
      await c.cmd('MAIL FROM:<a@client.example.test>');
      await c.cmd('RCPT TO:<bob@mx.example.test>');
      await c.cmd('DATA');
      const qid = /queued as (\w+)/.exec(await c.cmd('Subject: x\r\n\r\nhi\r\n.'))![1]!;
      await c.cmd('QUIT');
      await pt.waitFor(/disconnect from/);
      // smtpd_peer.c: the check runs in smtpd_state_init(), before "connect from".
      assert.deepEqual(texts(pt.lines()).slice(0, 2), ['warning: hostname forged.client.example does not resolve to address 127.0.0.1', 'connect from unknown[127.0.0.1]']);
      assert.match(texts(pt.lines()).at(-1)!, /^disconnect from unknown\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5$/);
      assert.match((await pt.message(qid)).content, /^Received: from client\.example\.test \(unknown \[127\.0\.0\.1\]\)\r\n/);
    });
  });

  it('smtpd: over IPv6, a PTR name whose AAAA records do not include the client is unknown, with the warning', { skip: ipv6Skip }, async () => {
    const resolver = mockResolver({ ptr: { '::1': ['v6.client.example'] }, a: { 'v6.client.example': ['2001:db8::99'] } });
    await withPostern({ resolver }, async (pt) => {
      const c = await SmtpClient.connect(pt.port6, '::1');
      assert.match(await c.read(), /^220 /);
      await c.cmd('QUIT');
      await pt.waitFor(/disconnect from/);
      assert.deepEqual(texts(pt.lines()), ['warning: hostname v6.client.example does not resolve to address ::1', 'connect from unknown[::1]', 'disconnect from unknown[::1] quit=1 commands=1']);
    });
  });

  it('smtpd: a forged name (PTR not confirmed) is a permanent failure for reject_unknown_client_hostname (unknown_client_reject_code) and passes reject_unknown_reverse_client_hostname', async () => {
    const resolver = mockResolver({ ptr: { '127.0.0.1': ['forged.client.example'] }, a: { 'forged.client.example': ['192.0.2.99'] } });
    for (const [restriction, reply] of [
      ['reject_unknown_client_hostname', '550 5.7.25 Client host rejected: cannot find your hostname, [127.0.0.1]'],
      ['reject_unknown_reverse_client_hostname', '250 2.1.5 Ok'],
    ] as const) {
      await withPostern({ resolver, mainCf: `smtpd_client_restrictions = ${restriction}\nunknown_client_reject_code = 550` }, async (pt) => {
        const c = await SmtpClient.connect(pt.port4);
        await c.read();
        await c.cmd('EHLO client.example.test');
        await c.cmd('MAIL FROM:<a@client.example.test>');
        assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), reply, restriction);
        await c.cmd('QUIT');
      });
    }
  });

  it('smtpd: over a socket, a PTR lookup that times out: connect from unknown[addr] and no warning (Postfix logs none for EAI_AGAIN), then 450 from both reject_unknown_*_hostname', async () => {
    const resolver = mockResolver({ hang: ['127.0.0.1'] });
    for (const [restriction, reply] of [
      // smtpd_check.c: a temporary lookup failure is 450 whatever unknown_client_reject_code says.
      ['reject_unknown_client_hostname', '450 4.7.25 Client host rejected: cannot find your hostname, [127.0.0.1]'],
      ['reject_unknown_reverse_client_hostname', '450 4.7.1 Client host rejected: cannot find your reverse hostname, [127.0.0.1]'],
    ] as const) {
      await withPostern({ resolver, peerLookupTimeoutMs: 300, mainCf: `smtpd_client_restrictions = ${restriction}\nunknown_client_reject_code = 550` }, async (pt) => {
        const t0 = Date.now();
        const c = await SmtpClient.connect(pt.port4);
        assert.match(await c.read(), /^220 /);
        assert.ok(Date.now() - t0 >= 250, 'the greeting waits for the lookup to give up');
        await c.cmd('EHLO client.example.test');
        await c.cmd('MAIL FROM:<a@client.example.test>');
        assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), reply, restriction);
        await c.cmd('QUIT');
        await pt.waitFor(/disconnect from/);
        assert.deepEqual(texts(pt.lines()), [
          'connect from unknown[127.0.0.1]',
          `NOQUEUE: reject: RCPT from unknown[127.0.0.1]: ${reply}; from=<a@client.example.test> to=<bob@mx.example.test> proto=ESMTP helo=<client.example.test>`,
          'disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4',
        ]);
      });
    }
  });

  it('smtpd: over a socket, a PTR name whose address lookup times out: Postfix\'s warning with "Temporary failure in name resolution", unknown, 450 (temporary)', async () => {
    const resolver = mockResolver({ ptr: { '127.0.0.1': ['slow.client.example'] }, hang: ['slow.client.example'] });
    await withPostern({ resolver, peerLookupTimeoutMs: 300, mainCf: 'smtpd_client_restrictions = reject_unknown_client_hostname\nunknown_client_reject_code = 550' }, async (pt) => {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      await c.cmd('EHLO client.example.test');
      await c.cmd('MAIL FROM:<a@client.example.test>');
      assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), '450 4.7.25 Client host rejected: cannot find your hostname, [127.0.0.1]');
      await c.cmd('QUIT');
      await pt.waitFor(/disconnect from/);
      assert.deepEqual(texts(pt.lines()).slice(0, 2), ['warning: hostname slow.client.example does not resolve to address 127.0.0.1: Temporary failure in name resolution', 'connect from unknown[127.0.0.1]']);
    });
  });

  it('smtpd: IPv6 addresses, numeric PTR names and smtpd_peername_lookup = no', async () => {
    const r = mockResolver({ ptr: { '2001:db8::1': ['2001:db8::1'], '2001:db8::2': ['v6.example'] }, a: { 'v6.example': ['2001:0db8:0:0::2'] } });
    const base = { family: 6 as const, port: 1, resolver: r, timeoutMs: 1000 };
    assert.equal((await lookupPeer({ ...base, addr: '2001:db8::1', rfcAddr: 'IPv6:2001:db8::1', lookup: true }, () => {})).name, 'unknown');
    assert.equal((await lookupPeer({ ...base, addr: '2001:db8::2', rfcAddr: 'IPv6:2001:db8::2', lookup: true }, () => {})).namaddr, 'v6.example[2001:db8::2]');
    assert.equal((await lookupPeer({ ...base, addr: '2001:db8::2', rfcAddr: 'IPv6:2001:db8::2', lookup: false }, () => {})).name, 'unknown');
  });

  it('smtpd: reject_unknown_client_hostname answers 450 for a temporary failure, 550 for a permanent one', async () => {
    await withPostern({ mainCf: 'smtpd_client_restrictions = reject_unknown_client_hostname\nunknown_client_reject_code = 550', resolver: mockResolver({}) }, async (pt) => {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      await c.cmd('EHLO client.example.test');
      await c.cmd('MAIL FROM:<a@client.example.test>');
      assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), '550 5.7.25 Client host rejected: cannot find your hostname, [127.0.0.1]');
      await c.cmd('QUIT');
    });
  });

  it('smtpd: clients are counted per IPv6 prefix (smtpd_client_ipv6_prefix_length)', () => {
    assert.equal(clientKey('2001:db8:1:2:3:4:5:6', 84), clientKey('2001:db8:1:2:3:fff:1:2', 84));
    assert.notEqual(clientKey('2001:db8:1:2:3:4:5:6', 84), clientKey('2001:db8:1:2:3:f000::', 84));
    assert.notEqual(clientKey('2001:db8:1:2:3:4:5:6', 84), clientKey('2001:db8:1:3::1', 84));
    assert.equal(clientKey('192.0.2.1', 84), '192.0.2.1');
    assert.notEqual(clientKey('2001:db8::1', 128), clientKey('2001:db8::2', 128));
  });
});

describe('smtpd: policy', () => {
  it('smtpd: reject_unknown_recipient_domain asks the resolver (NXDOMAIN 450 4.1.2, tempfail defers)', async () => {
    const resolver = mockResolver({ mail: { 'good.example': 'ok', 'flaky.example': 'tempfail', 'nullmx.example': 'nullmx' } });
    await withPostern({ mainCf: 'smtpd_recipient_restrictions = reject_unknown_recipient_domain, permit_mynetworks, reject', resolver }, async (pt) => {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      await c.cmd('EHLO client.example.test');
      await c.cmd('MAIL FROM:<a@client.example.test>');
      assert.equal(await c.cmd('RCPT TO:<x@good.example>'), '250 2.1.5 Ok');
      assert.equal(await c.cmd('RCPT TO:<x@nx.example>'), '450 4.1.2 <x@nx.example>: Recipient address rejected: Domain not found');
      assert.equal(await c.cmd('RCPT TO:<x@flaky.example>'), '450 4.1.2 <x@flaky.example>: Recipient address rejected: Domain not found');
      assert.equal(await c.cmd('RCPT TO:<x@nullmx.example>'), '556 5.1.10 <x@nullmx.example>: Recipient address rejected: Domain nullmx.example does not accept mail (nullMX)');
      assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), '250 2.1.5 Ok');
      await c.cmd('QUIT');
      await pt.waitFor(/disconnect from/);
      // After the first accepted recipient the queue file exists: rejects name its id, as Postfix.
      assert.ok(pt.lines().some((l) => /: [0-9A-F]+: reject: RCPT from unknown\[127\.0\.0\.1\]: 450 4\.1\.2 <x@nx\.example>: Recipient address rejected: Domain not found; from=<a@client\.example\.test> to=<x@nx\.example> proto=ESMTP helo=<client\.example\.test>$/.test(l)), pt.lines().join('\n'));
    });
  });

  it('smtpd: local_recipient_maps = proxy:unix:passwd.byname $alias_maps: system users are known', async () => {
    await withPostern({ mainCf: 'local_recipient_maps = proxy:unix:passwd.byname $alias_maps\nalias_maps = hash:/nonexistent/aliases, nis:mail.aliases' }, async (pt) => {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      await c.cmd('EHLO client.example.test');
      await c.cmd('MAIL FROM:<a@client.example.test>');
      assert.equal(await c.cmd('RCPT TO:<root@mx.example.test>'), '250 2.1.5 Ok');
      assert.equal(await c.cmd('RCPT TO:<Postmaster@mx.example.test>'), '250 2.1.5 Ok');
      assert.equal(await c.cmd('RCPT TO:<no-such-user-4711@mx.example.test>'), '550 5.1.1 <no-such-user-4711@mx.example.test>: Recipient address rejected: User unknown in local recipient table');
      await c.cmd('QUIT');
    });
  });

  it('smtpd: local_recipient_maps = proxy:unix:passwd.byname $alias_maps with an aliases(5) file: aliases (not system users) are known, with extensions and in any case; other names get 550 5.1.1', async () => {
    // The replies are Postfix 3.7's for the same file (postalias hash:FILE) and settings.
    const aliases = path.join(tmp(), 'aliases');
    fs.writeFileSync(aliases, '# comment\nteam:\tu0@example.test,\n\tinner\ninner: someone@example.org\n');
    const mainCf = `alias_maps = hash:${aliases}\nlocal_recipient_maps = proxy:unix:passwd.byname $alias_maps\nrecipient_delimiter = +`;
    await withPostern({ mainCf }, async (pt) => {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      await c.cmd('EHLO client.example.test');
      await c.cmd('MAIL FROM:<a@client.example.test>');
      for (const known of ['team@mx.example.test', 'Team+tag@MX.example.test', 'inner@mx.example.test', 'root+x@mx.example.test', 'team@localhost']) {
        assert.equal(await c.cmd(`RCPT TO:<${known}>`), '250 2.1.5 Ok', known);
      }
      // u0 is only a right-hand side; nosuch is in no table.
      for (const unknown of ['u0@mx.example.test', 'nosuch@mx.example.test']) {
        assert.equal(await c.cmd(`RCPT TO:<${unknown}>`), `550 5.1.1 <${unknown}>: Recipient address rejected: User unknown in local recipient table`);
      }
      await c.cmd('QUIT');
      await pt.waitFor(/disconnect from/);
      assert.ok(pt.lines().some((l) => l.endsWith(': reject: RCPT from unknown[127.0.0.1]: 550 5.1.1 <nosuch@mx.example.test>: Recipient address rejected: User unknown in local recipient table; from=<a@client.example.test> to=<nosuch@mx.example.test> proto=ESMTP helo=<client.example.test>')), pt.lines().join('\n'));
    });
  });

  it('smtpd: ETRN for a fast_flush_domains site starts the queue hook', async () => {
    const sites: string[] = [];
    await withPostern({ mainCf: 'relay_domains = relay.example', hooks: { etrn: async (s) => void sites.push(s) } }, async (pt) => {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      await c.cmd('EHLO client.example.test');
      assert.equal(await c.cmd('ETRN relay.example'), '250 Queuing started');
      assert.equal(await c.cmd('ETRN other.example'), '459 <other.example>: service unavailable');
      await c.cmd('QUIT');
      assert.deepEqual(sites, ['relay.example']);
    });
  });

  it('smtpd: mynetworks = [::1]/128 permits relay from ::1 and not from 127.0.0.1 (permit_mynetworks, default relay restrictions)', { skip: ipv6Skip }, async () => {
    await withPostern({ mainCf: 'mynetworks = [::1]/128' }, async (pt) => {
      assert.ok(pt.port6 > 0);
      const relay = async (host: string, port: number): Promise<{ rcpt: string; data: string | null }> => {
        const c = await SmtpClient.connect(port, host);
        await c.read();
        await c.cmd('EHLO client.example.test');
        assert.equal(await c.cmd('MAIL FROM:<alice@client.example.test>'), '250 2.1.0 Ok');
        const rcpt = await c.cmd('RCPT TO:<carol@other.test>');
        let data: string | null = null;
        if (rcpt.startsWith('250')) {
          assert.equal(await c.cmd('DATA'), '354 End data with <CR><LF>.<CR><LF>');
          data = await c.cmd('Subject: relayed\r\n\r\nx\r\n.');
        }
        assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
        c.close();
        return { rcpt, data };
      };
      const v6 = await relay('::1', pt.port6);
      assert.equal(v6.rcpt, '250 2.1.5 Ok');
      const qid = /^250 2\.0\.0 Ok: queued as (\w+)$/.exec(v6.data ?? '')?.[1];
      assert.ok(qid, v6.data ?? '');
      const { file } = await pt.message(qid);
      assert.deepEqual(
        file.envelope.recipients.map((r) => r.address),
        ['carol@other.test'],
      );
      assert.equal(file.envelope.client?.addr, '::1');
      // The same relay attempt from an address outside mynetworks: defer_unauth_destination.
      const v4 = await relay('127.0.0.1', pt.port4);
      assert.equal(v4.rcpt, '454 4.7.1 <carol@other.test>: Relay access denied');
      await pt.waitFor(/NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 454 4\.7\.1 <carol@other\.test>: Relay access denied; from=<alice@client\.example\.test> to=<carol@other\.test> proto=ESMTP helo=<client\.example\.test>$/);
      assert.ok(!pt.lines().some((l) => /reject: RCPT from unknown\[::1\]/.test(l)), pt.lines().join('\n'));
    });
  });

  it('smtpd: a main.cf that makes an open relay is refused at start with Postfix words', async () => {
    await assert.rejects(
      startPostern({ mainCf: 'smtpd_relay_restrictions = permit_mynetworks\nsmtpd_recipient_restrictions = permit_mynetworks, permit' }),
      /^PosternError: in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least one working instance of: reject_unauth_destination, defer_unauth_destination, reject, defer, defer_if_permit or check_relay_domains$/,
    );
  });

  it('smtpd: an unknown restriction is a 451 4.3.5 server configuration error', async () => {
    await withPostern({ mainCf: 'smtpd_recipient_restrictions = reject_everything_bad, reject_unauth_destination' }, async (pt) => {
      const c = await SmtpClient.connect(pt.port4);
      await c.read();
      await c.cmd('EHLO client.example.test');
      await c.cmd('MAIL FROM:<a@client.example.test>');
      assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), '451 4.3.5 Server configuration error');
      await c.cmd('QUIT');
      await pt.waitFor(/disconnect from/);
      assert.ok(pt.lines().some((l) => l.endsWith('warning: unknown smtpd restriction: "reject_everything_bad"')));
    });
  });

  it('smtpd: the master creates the daemon from its table entry', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-smtpd-cfg-'));
    try {
      writeFileSync(path.join(dir, 'main.cf'), `compatibility_level = 3.6\nqueue_directory = ${dir}/queue\nmyhostname = mx.example.test\n`);
      writeFileSync(path.join(dir, 'master.cf'), 'smtp inet n - n - - smtpd\n');
      const config = await loadConfig({ configDir: dir });
      const d = await createSmtpd({ config, service: config.services[0]!, log: Log.memory() });
      await d.drain(Date.now());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

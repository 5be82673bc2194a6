/**
 * smtpd_client_connection_count_limit and smtpd_client_connection_rate_limit count IPv6
 * clients per smtpd_client_ipv6_prefix_length prefix (Postfix 3.8, default 84): shown with a
 * real `postern run` in a network namespace of the test's own, and clients connecting from
 * several source addresses in it. Over loopback alone (::1) the grouping cannot be seen.
 *
 * Addresses (documentation range 2001:db8::/32 only):
 *   A 2001:db8:1:2::10, B 2001:db8:1:2::20   one /64, one /84
 *   D 2001:db8:1:2:ffff::30                  A's /64, not its /84
 *   C 2001:db8:9::1                          outside
 *   server 2001:db8:ffff::25, one port per test (master.cf -o overrides; anvil counts per service,
 *   so no test sees another's connections)
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { chownTree, makeTestDir, Server, writeConfig } from '../crash/server.js';
import { Netns, netnsSkip } from '../harness/netns.js';
import { SmtpClient } from '../harness/smtp-client.js';

const A = '2001:db8:1:2::10';
const B = '2001:db8:1:2::20';
const D = '2001:db8:1:2:ffff::30';
const C = '2001:db8:9::1';
const SERVER = '2001:db8:ffff::25';

/** One service per case: its port and its -o overrides. */
const SERVICES = {
  count: { port: 2501, o: { smtpd_client_connection_count_limit: '1' } },
  countD: { port: 2506, o: { smtpd_client_connection_count_limit: '1' } },
  count64: { port: 2502, o: { smtpd_client_connection_count_limit: '1', smtpd_client_ipv6_prefix_length: '64' } },
  count128: { port: 2503, o: { smtpd_client_connection_count_limit: '1', smtpd_client_ipv6_prefix_length: '128' } },
  rate: { port: 2504, o: { smtpd_client_connection_rate_limit: '2' } },
  rate128: { port: 2505, o: { smtpd_client_connection_rate_limit: '2', smtpd_client_ipv6_prefix_length: '128' } },
} as const;
type Case = keyof typeof SERVICES;

const skip = netnsSkip();

describe('smtpd: connection limits per IPv6 prefix, in a network namespace', { skip }, () => {
  let ns: Netns | undefined;
  let server: Server | undefined;
  let dir = '';

  before(async () => {
    ns = await Netns.create([`${A}/64`, `${B}/64`, `${D}/64`, `${C}/64`, `${SERVER}/128`]);
    dir = makeTestDir('postern-anvil-netns-');
    const cfg = await writeConfig(dir, {
      qmgr: false,
      // A long rate window, so the rate cases cannot pass by a window ending mid-test.
      mainCf: 'anvil_rate_time_unit = 3600s',
      smtpdServices: () =>
        Object.values(SERVICES).map(
          (s) =>
            `[${SERVER}]:${s.port} inet n - n - - smtpd${Object.entries(s.o)
              .map(([k, v]) => ` -o ${k}=${v}`)
              .join('')}`,
        ),
    });
    chownTree(dir);
    server = new Server(cfg, { wrap: (argv) => ns!.exec(argv) });
    await server.ready();
  });

  after(async () => {
    try {
      await server?.stop();
    } finally {
      await ns?.remove();
      if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  async function connect(c: Case, from: string): Promise<SmtpClient> {
    return SmtpClient.over(await ns!.connectFrom(from, SERVER, SERVICES[c].port));
  }

  /** A session from `from` that got the greeting. */
  async function greet(c: Case, from: string): Promise<SmtpClient> {
    const s = await connect(c, from);
    assert.match(await s.read(), /^220 mx\.example\.test ESMTP/, `${from} on ${c}`);
    return s;
  }

  /** A connection from `from` that is refused with Postfix's 421 and closed. */
  async function refused(c: Case, from: string): Promise<void> {
    const s = await connect(c, from);
    assert.equal(await s.read(), `421 4.7.0 mx.example.test Error: too many connections from ${from}`, `${from} on ${c}`);
    await s.waitClosed();
  }

  async function quit(...ss: SmtpClient[]): Promise<void> {
    for (const s of ss) {
      assert.match(await s.cmd('QUIT'), /^221 /);
      await s.waitClosed();
    }
  }

  const service = (c: Case): string => `[${SERVER}]:${SERVICES[c].port}`;

  it('smtpd: smtpd_client_connection_count_limit: a second address of the same /64 (/84) shares the limit, an address outside it does not', async () => {
    const a = await greet('count', A);
    await refused('count', B);
    const c = await greet('count', C);
    await quit(a, c);
    await server!.waitForLog(new RegExp(`warning: Connection concurrency limit exceeded: 2 from unknown\\[${B}\\] for service ${reEscape(service('count'))}$`, 'm'));
  });

  it('smtpd: smtpd_client_ipv6_prefix_length default 84: an address of the same /64 but another /84 is another client', async () => {
    const a = await greet('countD', A);
    await refused('countD', A);
    const d = await greet('countD', D);
    await quit(a, d);
  });

  it('smtpd: smtpd_client_ipv6_prefix_length = 64 puts that address in the same client', async () => {
    const a = await greet('count64', A);
    await refused('count64', D);
    await quit(a);
  });

  it('smtpd: smtpd_client_ipv6_prefix_length = 128 counts each address by itself', async () => {
    const a = await greet('count128', A);
    // The limit is live for A itself...
    await refused('count128', A);
    // ...but B, in A's /64, is another client.
    const b = await greet('count128', B);
    await quit(a, b);
  });

  it('smtpd: smtpd_client_connection_rate_limit: connections from two addresses of one /64 add up', async () => {
    await quit(await greet('rate', A));
    await quit(await greet('rate', B));
    await refused('rate', B);
    await quit(await greet('rate', C));
    await server!.waitForLog(new RegExp(`warning: Connection rate limit exceeded: 3 from unknown\\[${B}\\] for service ${reEscape(service('rate'))}$`, 'm'));
  });

  it('smtpd: smtpd_client_connection_rate_limit with smtpd_client_ipv6_prefix_length = 128: per address', async () => {
    await quit(await greet('rate128', A));
    await quit(await greet('rate128', A));
    await quit(await greet('rate128', B));
    await refused('rate128', A);
  });
});

function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

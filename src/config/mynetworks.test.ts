import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type NetworkInterfaceInfo, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, type TestContext, test } from 'node:test';
import { ConfigError } from '../errors.js';
import { paramsFrom } from './index.js';
import { buildAddressList, buildMynetworks, mynetworksDefault, mynetworksStyleDefault } from './mynetworks.js';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postern-mynetworks-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const SEED = ['127.0.0.0/8', '158.255.214.14/31', '[2a01:7a0:10:158:255:214:14::]/112'];

test('mynetworks: the seed value matches its v4, v6 and v4-mapped clients and nothing else', () => {
  const m = buildMynetworks({ mynetworks: SEED });
  const cases: [string, boolean][] = [
    ['127.0.0.1', true],
    ['127.255.255.254', true],
    ['::ffff:127.0.0.1', true],
    ['158.255.214.14', true],
    ['158.255.214.15', true],
    ['[::ffff:158.255.214.15]', true],
    ['158.255.214.13', false],
    ['158.255.214.16', false],
    ['2a01:7a0:10:158:255:214:14:0', true],
    ['2a01:7a0:10:158:255:214:14:ffff', true],
    ['2A01:7A0:10:158:255:214:14:1', true],
    ['[2a01:7a0:10:158:255:214:14:1]', true],
    ['2a01:7a0:10:158:255:214:15:1', false],
    ['::1', false],
    ['192.0.2.1', false],
    ['::ffff:192.0.2.1', false],
    ['not-an-address', false],
  ];
  for (const [addr, want] of cases) assert.equal(m.matches(addr), want, addr);
});

test('mynetworks: the seed main.cf line, through the config parser, builds the same matcher', () => {
  const params = paramsFrom(`mynetworks = ${SEED.join(' ')}\n`, '/etc/postern/main.cf');
  const m = buildMynetworks(params, { file: '/etc/postern/main.cf', line: 1 });
  assert.deepEqual(m.patterns, SEED);
  assert.equal(m.matches('::ffff:158.255.214.15'), true);
  assert.equal(m.matches('2a01:7a0:10:158:255:214:14:abcd'), true);
});

test('mynetworks: a list given as one string (commas, blanks) is split as Postfix lists are', () => {
  const m = buildMynetworks({ mynetworks: ['127.0.0.0/8,  [::1]/128 ,192.0.2.0/24'] });
  assert.deepEqual(m.patterns, ['127.0.0.0/8', '[::1]/128', '192.0.2.0/24']);
  assert.equal(m.matches('::1'), true);
  assert.equal(m.matches('192.0.2.9'), true);
});

test('mynetworks: bare addresses, [ipv6] and [ipv6]/len entries; v4-mapped clients match IPv4 networks', () => {
  const m = buildMynetworks({ mynetworks: ['192.0.2.1', '[::1]', '[2001:db8::]/32', '[192.0.2.128]/25'] });
  assert.equal(m.matches('192.0.2.1'), true);
  assert.equal(m.matches('192.0.2.2'), false);
  assert.equal(m.matches('192.0.2.200'), true);
  assert.equal(m.matches('::ffff:192.0.2.1'), true);
  assert.equal(m.matches('::1'), true);
  assert.equal(m.matches('0:0:0:0:0:0:0:1'), true);
  assert.equal(m.matches('2001:db8:ffff::9'), true);
  assert.equal(m.matches('2001:db9::9'), false);
});

test('mynetworks: ! exclusions, first match wins left to right', () => {
  const m = buildMynetworks({ mynetworks: ['!192.0.2.7', '192.0.2.0/24', '!192.0.2.8', '![2001:db8::1]', '[2001:db8::]/64'] });
  assert.equal(m.matches('192.0.2.7'), false);
  assert.equal(m.matches('192.0.2.8'), true);
  assert.equal(m.matches('2001:db8::1'), false);
  assert.equal(m.matches('2001:db8::2'), true);
  assert.equal(buildMynetworks({ mynetworks: ['!!192.0.2.7'] }).matches('192.0.2.7'), true);
});

test('mynetworks: /file/name entries hold more patterns (comments, continuations, ! applies to the whole file)', async () => {
  const inner = join(dir, 'inner.networks');
  const outer = join(dir, 'trusted.networks');
  await writeFile(inner, '192.0.2.64/26\n');
  await writeFile(outer, `# trusted\n10.0.0.0/8, [fd00::]/8\n  172.16.0.0/12\n!10.9.9.9\n${inner}\n`);
  const m = buildMynetworks({ mynetworks: [`!${inner}`, outer] });
  assert.deepEqual(m.patterns, ['!192.0.2.64/26', '10.0.0.0/8', '[fd00::]/8', '172.16.0.0/12', '!10.9.9.9', '192.0.2.64/26']);
  assert.equal(m.matches('10.1.2.3'), true);
  assert.equal(m.matches('10.9.9.9'), true, '10.0.0.0/8 comes first');
  assert.equal(m.matches('172.16.9.9'), true);
  assert.equal(m.matches('fd12::1'), true);
  assert.equal(m.matches('192.0.2.65'), false, 'excluded by !/file');
});

test('mynetworks: type:table entries look the client address up (cidr, inline, hash; v6 in inet_ntop form)', async () => {
  const hash = join(dir, 'clients');
  await writeFile(hash, '192.0.2.10 anything\n2001:db8::10 ok\n');
  const m = buildMynetworks({ mynetworks: ['cidr:{ {198.51.100.0/24 x}, {2001:db8:1::/48 y} }', `hash:${hash}`, '!inline:{ 203.0.113.5=no }', '203.0.113.0/24'] });
  assert.equal(m.matches('198.51.100.7'), true);
  assert.equal(m.matches('2001:db8:1::7'), true);
  assert.equal(m.matches('192.0.2.10'), true);
  assert.equal(m.matches('2001:DB8:0::10'), true);
  assert.equal(m.matches('::ffff:192.0.2.10'), true);
  assert.equal(m.matches('203.0.113.5'), false);
  assert.equal(m.matches('203.0.113.6'), true);
});

test('mynetworks: every bad entry is a ConfigError at the parameter line, in Postfix words plus a hint', async () => {
  const origin = { file: '/etc/postern/main.cf', line: 17 };
  const cases: [string, string][] = [
    ['1.2.3.4/24', 'mynetworks: non-null host address bits in "1.2.3.4/24", perhaps you should use "1.2.3.0/24" instead'],
    ['[2001:db8::1]/64', 'mynetworks: non-null host address bits in "2001:db8::1/64", perhaps you should use "2001:db8::/64" instead'],
    [
      '2a01:7a0:10::/112',
      'mynetworks: "2a01:7a0:10::/112" is an IPv6 network without brackets (Postfix would read it as a lookup table of type "2a01"); specify "[2a01:7a0:10::]/112" (IPv6 networks must be enclosed in [])',
    ],
    ['::1', 'mynetworks: "::1" is an IPv6 address without brackets (Postfix would reject it); specify "[::1]" (IPv6 networks must be enclosed in [])'],
    ['fe80::/10', 'mynetworks: "fe80::/10" is an IPv6 network without brackets (Postfix would read it as a lookup table of type "fe80"); specify "[fe80::]/10" (IPv6 networks must be enclosed in [])'],
    ['1.2.3.0/33', 'mynetworks: bad mask length in "1.2.3.0/33"'],
    ['10/8', 'mynetworks: bad network value in "10/8"'],
    ['1.2.3', 'mynetworks: bad address pattern: "1.2.3"'],
    ['[::1', `mynetworks: missing ']' character after "[::1"`],
    ['!', "mynetworks: no pattern after '!'"],
    ['example.com', 'mynetworks: "example.com" is not an IP address or network (mynetworks matches client addresses: net/len, [ipv6]/len, /file/name or type:table)'],
    ['ldap:/etc/postfix/ldap.cf', 'mynetworks: unsupported dictionary type: ldap'],
    [`${join(dir, 'nofile')}`, `mynetworks: open ${join(dir, 'nofile')}: No such file or directory`],
  ];
  for (const [entry, detail] of cases) {
    assert.throws(
      () => buildMynetworks({ mynetworks: ['127.0.0.0/8', entry] }, origin),
      (err: unknown) => err instanceof ConfigError && err.file === origin.file && err.line === 17 && err.detail === detail,
      entry,
    );
  }
  const listed = join(dir, 'bad.networks');
  await writeFile(listed, '# ok\n192.0.2.0/24\n\n192.0.2.1/24\n');
  assert.throws(
    () => buildMynetworks({ mynetworks: [listed] }, origin),
    (err: unknown) => err instanceof ConfigError && err.file === listed && err.line === 4 && err.detail.startsWith('mynetworks: non-null host address bits in "192.0.2.1/24"'),
  );
  await writeFile(listed, `${listed}\n`);
  assert.throws(() => buildMynetworks({ mynetworks: [listed] }, origin), /includes itself/);
});

test('mynetworks: other address lists name their own parameter', () => {
  assert.throws(
    () => buildAddressList('smtpd_client_event_limit_exceptions', ['1.2.3.4/24']),
    (err: unknown) => err instanceof ConfigError && err.message === 'main.cf: smtpd_client_event_limit_exceptions: non-null host address bits in "1.2.3.4/24", perhaps you should use "1.2.3.0/24" instead',
  );
  const l = buildAddressList('debug_peer_list', ['[::1]']);
  assert.equal(l.matches('::1'), true);
});

const IFACES: NodeJS.Dict<NetworkInterfaceInfo[]> = {
  lo: [
    { address: '127.0.0.1', netmask: '255.0.0.0', family: 'IPv4', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' },
    { address: '::1', netmask: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', family: 'IPv6', mac: '00:00:00:00:00:00', internal: true, cidr: '::1/128', scopeid: 0 },
  ],
  eth0: [
    { address: '192.0.2.2', netmask: '255.255.255.0', family: 'IPv4', mac: '02:fc:00:00:00:01', internal: false, cidr: '192.0.2.2/24' },
    { address: 'fd00::2', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:fc:00:00:00:01', internal: false, cidr: 'fd00::2/64', scopeid: 0 },
    { address: 'fe80::fc:ff:fe00:1', netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:fc:00:00:00:01', internal: false, cidr: 'fe80::fc:ff:fe00:1/64', scopeid: 4 },
  ],
  eth1: [
    { address: '172.20.1.5', netmask: '255.255.0.0', family: 'IPv4', mac: '02:fc:00:00:00:02', internal: false, cidr: '172.20.1.5/16' },
    { address: '192.0.2.3', netmask: '255.255.255.0', family: 'IPv4', mac: '02:fc:00:00:00:02', internal: false, cidr: '192.0.2.3/24' },
  ],
};

test('mynetworks: default per mynetworks_style, v4 first then v6, duplicates dropped (postconf format)', () => {
  assert.equal(mynetworksDefault('subnet', IFACES), '127.0.0.0/8 192.0.2.0/24 172.20.0.0/16 [::1]/128 [fd00::]/64 [fe80::]/64');
  assert.equal(mynetworksDefault('host', IFACES), '127.0.0.1/32 192.0.2.2/32 172.20.1.5/32 192.0.2.3/32 [::1]/128 [fd00::2]/128 [fe80::fc:ff:fe00:1]/128');
  assert.equal(mynetworksDefault('class', IFACES), '127.0.0.0/8 192.0.2.0/24 172.20.0.0/16 [::1]/128 [fd00::]/64 [fe80::]/64');
  assert.equal(mynetworksDefault('subnet', IFACES, ['ipv4']), '127.0.0.0/8 192.0.2.0/24 172.20.0.0/16');
  assert.equal(mynetworksDefault('host', IFACES, ['ipv6']), '[::1]/128 [fd00::2]/128 [fe80::fc:ff:fe00:1]/128');
  // The computed default is itself a valid mynetworks value.
  const m = buildMynetworks({ mynetworks: [mynetworksDefault('subnet', IFACES)] });
  assert.equal(m.matches('172.20.200.1'), true);
  assert.equal(m.matches('fe80::1234'), true);
});

test('mynetworks: mynetworks_style default follows compatibility_level (subnet below 2, host from 2)', () => {
  assert.equal(mynetworksStyleDefault('0'), 'subnet');
  assert.equal(mynetworksStyleDefault('1'), 'subnet');
  assert.equal(mynetworksStyleDefault('2'), 'host');
  assert.equal(mynetworksStyleDefault('3.6'), 'host');
});

/** Real Postfix's postconf, or null (skipped outside CI, a failure in CI). */
function postconf(t: TestContext, args: string[]): string | null {
  const r = spawnSync('postconf', args, { encoding: 'utf8' });
  if (r.error !== undefined) {
    if (process.env.CI === 'true') assert.fail(`postconf is required in CI: ${r.error.message}`);
    t.skip(`real postconf not installed (${r.error.message}); comparison skipped`);
    return null;
  }
  return r.stdout;
}

test('mynetworks: the default for this machine is what real postconf computes, for every style', async (t) => {
  const conf = await mkdtemp(join(tmpdir(), 'postern-mynetworks-postconf-'));
  try {
    for (const style of ['subnet', 'host', 'class'] as const) {
      await writeFile(join(conf, 'main.cf'), `mynetworks_style = ${style}\n`);
      await writeFile(join(conf, 'master.cf'), '');
      const out = postconf(t, ['-c', conf, 'mynetworks']);
      if (out === null) return;
      assert.equal(`mynetworks = ${mynetworksDefault(style)}\n`, out, style);
    }
  } finally {
    await rm(conf, { recursive: true, force: true });
  }
});

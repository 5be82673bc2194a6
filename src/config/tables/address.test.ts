import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { canonicalClientAddress, formatIp, formatIPv6, inNetwork, parseCidrPattern, parseIp, parseIPv4, parseIPv6 } from './address.js';

test('address: inet_pton rules for IPv4 (no leading zeros, four octets, 0-255)', () => {
  const cases: [string, string | undefined][] = [
    ['192.0.2.1', '192.0.2.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['01.2.3.4', undefined],
    ['1.2.3', undefined],
    ['1.2.3.4.5', undefined],
    ['256.1.1.1', undefined],
    ['1.2.3.-1', undefined],
    [' 1.2.3.4', undefined],
  ];
  for (const [text, want] of cases) {
    const b = parseIPv4(text);
    assert.equal(b === undefined ? undefined : [...b].join('.'), want, text);
  }
});

test('address: IPv6 printed as glibc inet_ntop (longest zero run, ties to the first, dotted tails)', () => {
  const cases: [string, string][] = [
    ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:DB8::1', '2001:db8::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['::', '::'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['2001:0:0:1:0:0:1:1', '2001::1:0:0:1:1'],
    ['2001:db8:1:2:3:4:5:0', '2001:db8:1:2:3:4:5:0'],
    ['fe80::fc:ff:fe00:1', 'fe80::fc:ff:fe00:1'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['::ffff:c000:201', '::ffff:192.0.2.1'],
    ['::1.2.3.4', '::1.2.3.4'],
    ['2a01:7a0:10:158:255:214:14::', '2a01:7a0:10:158:255:214:14:0'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['1::', '1::'],
  ];
  for (const [text, want] of cases) {
    const b = parseIPv6(text);
    assert.ok(b !== undefined, text);
    assert.equal(formatIPv6(b), want, text);
  }
  for (const bad of [':::', '1::2::3', '12345::', '1:2:3:4:5:6:7:8:9', 'g::1', '1.2.3.4', '::1.2.3', '1:2:3:4:5:6:7:8::']) {
    assert.equal(parseIPv6(bad), undefined, bad);
  }
});

test('address: client addresses are made canonical, v4-mapped IPv6 becomes IPv4', () => {
  const cases: [string, string | undefined][] = [
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['[::ffff:192.0.2.1]', '192.0.2.1'],
    ['[2001:DB8::1]', '2001:db8::1'],
    ['IPv6:2001:db8::1', '2001:db8::1'],
    ['fe80::1%eth0', 'fe80::1'],
    ['192.0.2.1', '192.0.2.1'],
    ['unknown', undefined],
    ['', undefined],
  ];
  for (const [text, want] of cases) {
    const a = canonicalClientAddress(text);
    assert.equal(a === undefined ? undefined : formatIp(a), want, text);
  }
});

test('address: cidr patterns parse as cidr_match_parse, with its error texts', () => {
  const ok: [string, string, number][] = [
    ['127.0.0.0/8', '127.0.0.0', 8],
    ['158.255.214.14/31', '158.255.214.14', 31],
    ['1.2.3.4', '1.2.3.4', 32],
    ['0.0.0.0/0', '0.0.0.0', 0],
    ['[2a01:7a0:10:158:255:214:14::]/112', '2a01:7a0:10:158:255:214:14:0', 112],
    ['[2001:db8::/32]', '2001:db8::', 32],
    ['[::1]', '::1', 128],
    ['2001:db8::/32', '2001:db8::', 32],
    ['[192.0.2.0]/24', '192.0.2.0', 24],
    ['::/0', '::', 0],
  ];
  for (const [text, addr, prefix] of ok) {
    const r = parseCidrPattern(text);
    assert.ok(r.ok, text);
    assert.equal(formatIp(r.net), addr, text);
    assert.equal(r.net.prefix, prefix, text);
  }
  const bad: [string, string][] = [
    ['1.2.3.4/24', 'non-null host address bits in "1.2.3.4/24", perhaps you should use "1.2.3.0/24" instead'],
    ['158.255.214.15/31', 'non-null host address bits in "158.255.214.15/31", perhaps you should use "158.255.214.14/31" instead'],
    ['[2001:db8::1]/32', 'non-null host address bits in "2001:db8::1/32", perhaps you should use "2001:db8::/32" instead'],
    ['1.2.3.0/33', 'bad mask length in "1.2.3.0/33"'],
    ['[::]/129', 'bad mask length in "::/129"'],
    ['1.2.3.0/x', 'bad mask value in "1.2.3.0/x"'],
    ['1.2.3.0/', 'bad mask value in "1.2.3.0/"'],
    ['10/8', 'bad network value in "10/8"'],
    ['1.2.3.x', 'bad address pattern: "1.2.3.x"'],
    ['[::1', `missing ']' character after "[::1"`],
    ['[::1]x', 'garbage after "[::1]"'],
  ];
  for (const [text, why] of bad) {
    const r = parseCidrPattern(text);
    assert.ok(!r.ok, text);
    assert.equal(r.why, why, text);
  }
});

test('address: networks match only their own family', () => {
  const net = parseCidrPattern('192.0.2.0/24');
  const net6 = parseCidrPattern('[2001:db8::]/32');
  assert.ok(net.ok && net6.ok);
  assert.equal(inNetwork(net.net, parseIp('192.0.2.200')!), true);
  assert.equal(inNetwork(net.net, parseIp('192.0.3.1')!), false);
  assert.equal(inNetwork(net.net, parseIp('::ffff:192.0.2.1')!), false);
  assert.equal(inNetwork(net6.net, parseIp('2001:db8:ffff::1')!), true);
  assert.equal(inNetwork(net6.net, parseIp('2001:db9::1')!), false);
});

test('address: every IPv6 address survives format and parse (property)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
      const text = formatIPv6(bytes);
      assert.deepEqual(parseIPv6(text), bytes);
      assert.equal(formatIPv6(parseIPv6(text.toUpperCase())!), text);
    }),
  );
});

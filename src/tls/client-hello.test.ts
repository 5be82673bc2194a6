import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type ClientHello,
  ClientHelloReader,
  groupId,
  groupKeyExchange,
  negotiatedGroup,
  opensslHasTuples,
  parseClientHello,
  readClientHello,
  serverGroups,
} from './client-hello.js';

const haveOpenssl = spawnSync('openssl', ['version']).status === 0;

/** The first bytes a client sends to a listening socket (its ClientHello records). */
async function firstFlight(start: (port: number) => () => void): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      let stopClient = (): void => {};
      server.once('connection', (sock) => {
        const reader = new ClientHelloReader();
        sock.on('data', (d: Buffer) => {
          if (reader.push(d) !== 'more') {
            resolve(reader.bytes());
            sock.destroy();
            stopClient();
          }
        });
        sock.on('error', reject);
      });
      stopClient = start(port);
    });
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}

function nodeHello(o: tls.ConnectionOptions): Promise<Buffer> {
  return firstFlight((port) => {
    const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...o });
    s.on('error', () => {});
    return () => s.destroy();
  });
}

function opensslHello(args: readonly string[]): Promise<Buffer> {
  return firstFlight((port) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { stdio: ['pipe', 'ignore', 'ignore'] });
    return () => p.kill();
  });
}

function parsed(flight: Buffer): ClientHello {
  const r = new ClientHelloReader();
  assert.equal(r.push(flight), 'done');
  return r.hello!;
}

/** Re-frames a ClientHello handshake message into records of at most `size` bytes each. */
function refragment(flight: Buffer, size: number): Buffer {
  const msg = flight.subarray(5, 5 + flight.readUInt16BE(3));
  const out: Buffer[] = [];
  for (let at = 0; at < msg.length; at += size) {
    const part = msg.subarray(at, at + size);
    const head = Buffer.from([22, 3, 1, 0, 0]);
    head.writeUInt16BE(part.length, 3);
    out.push(head, part);
  }
  return Buffer.concat(out);
}

const hello = (o: Partial<ClientHello>): ClientHello => ({ supportedGroups: [], keyShares: [], keyShareSent: true, supportedVersions: [0x0304], pskModes: [1], ...o });
const X25519 = 29;
const X448 = 30;
const P256 = 23;
const P384 = 24;
const P521 = 25;
const FFDHE2048 = 256;
const MLKEM_X25519 = 0x11ec;
const SECP256K1 = 22;

describe('tls/client-hello: parsing', () => {
  test('client-hello: Node\'s ClientHello gives its key share and supported groups in order', async () => {
    const h = parsed(await nodeHello({ ecdhCurve: 'P-384:X25519:P-256' }));
    assert.deepEqual(h.supportedGroups, [P384, X25519, P256]);
    assert.deepEqual(h.keyShares, [P384]);
    assert.equal(h.keyShareSent, true);
    assert.ok(h.supportedVersions.includes(0x0304));
    assert.deepEqual(h.pskModes, [1]);
  });

  test('client-hello: openssl s_client -groups sends one key share, for its first TLS 1.3 group', { skip: !haveOpenssl }, async () => {
    const h = parsed(await opensslHello(['-groups', 'ffdhe2048:P-521:X25519']));
    assert.deepEqual(h.supportedGroups, [FFDHE2048, P521, X25519]);
    assert.deepEqual(h.keyShares, [FFDHE2048]);
    const legacy = parsed(await opensslHello(['-groups', 'secp256k1:P-256']));
    assert.deepEqual(legacy.keyShares, [P256], 'secp256k1 is not a TLS 1.3 group');
  });

  test('client-hello: a TLS 1.2-only ClientHello has no key share and no supported_versions', async () => {
    const h = parsed(await nodeHello({ maxVersion: 'TLSv1.2' }));
    assert.equal(h.keyShareSent, false);
    assert.deepEqual(h.supportedVersions, []);
    assert.ok(h.supportedGroups.includes(X25519));
  });

  test('client-hello: a ClientHello split over many records and TCP chunks reads the same (property)', async () => {
    const flight = await nodeHello({ ecdhCurve: 'X448:P-256' });
    const whole = parsed(flight);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 400 }), fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 40 }), (recordSize, cuts) => {
        const framed = refragment(flight, recordSize);
        const r = new ClientHelloReader();
        let at = 0;
        let state: string = 'more';
        for (let i = 0; state === 'more'; i++) {
          const n = cuts[i % cuts.length]!;
          state = r.push(framed.subarray(at, at + n));
          at += n;
          assert.ok(at <= framed.length + n, 'done before the end of the bytes');
        }
        assert.equal(state, 'done');
        assert.deepEqual(r.hello, whole);
        assert.ok(r.bytes().equals(framed.subarray(0, Math.min(at, framed.length))), 'every byte is kept for TLS');
      }),
      { numRuns: 200 },
    );
  });

  test('client-hello: plaintext, an HTTP request, an SSLv2 hello or another handshake message stop the reader at once', () => {
    for (const first of ['EHLO x\r\n', 'GET / HTTP/1.0\r\n', '\u0080\u002e\u0001\u0003\u0001']) {
      assert.equal(new ClientHelloReader().push(Buffer.from(first, 'latin1')), 'stop', JSON.stringify(first));
    }
    assert.equal(new ClientHelloReader().push(Buffer.from([22, 3, 3, 0, 4, 2, 0, 0, 0])), 'stop', 'a ServerHello is not a ClientHello');
    assert.equal(new ClientHelloReader().push(Buffer.from([22, 3, 1, 0x48, 1])), 'stop', 'a record over 2^14 bytes');
    assert.equal(new ClientHelloReader().push(Buffer.from([22])), 'more');
    assert.equal(new ClientHelloReader(16).push(Buffer.from([22, 3, 1, 0, 100, 1, 0, 0, 96])), 'stop', 'a ClientHello beyond the limit');
  });

  test('client-hello: malformed extension blocks are not a ClientHello', () => {
    const base = Buffer.concat([Buffer.alloc(2 + 32), Buffer.from([0]), Buffer.from([0, 2, 0x13, 0x01]), Buffer.from([1, 0])]);
    const withExt = (ext: Buffer): Buffer => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(ext.length);
      return Buffer.concat([base, len, ext]);
    };
    assert.deepEqual(parseClientHello(base)?.keyShareSent, false, 'no extensions at all is valid');
    assert.equal(parseClientHello(withExt(Buffer.from([0, 10, 0, 3, 0, 2, 0]))), null, 'odd supported_groups');
    assert.equal(parseClientHello(withExt(Buffer.from([0, 51, 0, 6, 0, 4, 0, 29, 0, 9]))), null, 'key share longer than its list');
    assert.equal(parseClientHello(withExt(Buffer.from([0, 51, 0, 8, 0, 4, 0, 29, 0, 0]))), null, 'empty key_exchange');
    assert.equal(parseClientHello(withExt(Buffer.from([0, 10, 0, 9]))), null, 'extension beyond the block');
    const empty = parseClientHello(withExt(Buffer.from([0, 51, 0, 2, 0, 0])));
    assert.deepEqual([empty?.keyShareSent, empty?.keyShares], [true, []], 'an empty key_share asks for a HelloRetryRequest');
  });
});

describe('tls/client-hello: readClientHello on a socket', () => {
  /** A server socket and its client; `server` gets the accepted socket. */
  async function pair(): Promise<{ server: net.Socket; client: net.Socket; close: () => Promise<void> }> {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
    const client = net.connect(port, '127.0.0.1');
    client.on('error', () => {});
    const server = await accepted;
    server.on('error', () => {});
    return {
      server,
      client,
      close: async () => {
        client.destroy();
        server.destroy();
        await new Promise<void>((r) => srv.close(() => r()));
      },
    };
  }

  test('client-hello: the bytes read are put back in order, before what follows, and nothing reaches other readers', async () => {
    const flight = await nodeHello({ ecdhCurve: 'X25519' });
    const p = await pair();
    try {
      const r = await new Promise<{ hello: ClientHello | null }>((resolve) => {
        readClientHello(p.server, resolve);
        // One byte at a time at first, then the rest with bytes after the ClientHello.
        p.client.write(flight.subarray(0, 1));
        setTimeout(() => p.client.write(Buffer.concat([flight.subarray(1), Buffer.from('after')])), 20);
      });
      assert.deepEqual(r.hello?.keyShares, [X25519]);
      assert.equal(p.server.isPaused(), true);
      await new Promise((res) => setTimeout(res, 20));
      assert.deepEqual(p.server.read(), Buffer.concat([flight, Buffer.from('after')]));
    } finally {
      await p.close();
    }
  });

  test('client-hello: a client that closes mid-ClientHello ends the read; a socket with another reader is left alone', async () => {
    const flight = await nodeHello({});
    const p = await pair();
    try {
      const r = await new Promise<{ ended: boolean; hello: ClientHello | null }>((resolve) => {
        readClientHello(p.server, resolve);
        p.client.end(flight.subarray(0, 40));
      });
      assert.deepEqual(r, { hello: null, ended: true, error: null });
    } finally {
      await p.close();
    }
    const q = await pair();
    try {
      const seen: Buffer[] = [];
      q.server.on('data', (d: Buffer) => seen.push(d));
      const r = await new Promise<{ ended: boolean; hello: ClientHello | null }>((resolve) => readClientHello(q.server, resolve));
      assert.deepEqual(r, { hello: null, ended: false, error: null });
      assert.equal(q.server.listenerCount('data'), 1);
    } finally {
      await q.close();
    }
  });

  test('client-hello: cancel stops reading and keeps the bytes without calling back', async () => {
    const flight = await nodeHello({});
    const p = await pair();
    try {
      let called = false;
      const cancel = readClientHello(p.server, () => {
        called = true;
      });
      p.client.write(flight.subarray(0, 10));
      await new Promise((res) => setTimeout(res, 30));
      cancel();
      assert.equal(called, false);
      assert.equal(p.server.listenerCount('data'), 0);
      assert.deepEqual(p.server.read(), flight.subarray(0, 10));
    } finally {
      await p.close();
    }
  });
});

describe('tls/client-hello: the group OpenSSL selects', () => {
  const postfixDefault = 'X25519:X448:prime256v1:secp521r1:secp384r1'; // tls_eecdh_auto_curves (3.7)
  const v30 = serverGroups(postfixDefault, { serverPreference: false, openssl: '3.0.19' });
  const v35 = serverGroups(postfixDefault, { serverPreference: false, openssl: '3.5.8' });

  test('client-hello: group names and ids as OpenSSL spells them, words as Postfix 3.7 logs them', () => {
    assert.equal(groupId('P-256'), P256);
    assert.equal(groupId('prime256v1'), P256);
    assert.equal(groupId('SECP384R1'), P384);
    assert.equal(groupId('x25519'), X25519);
    assert.equal(groupId('X25519MLKEM768'), MLKEM_X25519);
    assert.equal(groupId('prime192v1'), groupId('P-192'));
    assert.equal(groupId('nonsense'), undefined);
    assert.deepEqual(groupKeyExchange(X25519), { name: 'X25519', curve: null, bits: 0 });
    assert.deepEqual(groupKeyExchange(P256), { name: 'ECDHE', curve: 'prime256v1', bits: 0 });
    assert.deepEqual(groupKeyExchange(P384), { name: 'ECDHE', curve: 'secp384r1', bits: 0 });
    assert.deepEqual(groupKeyExchange(0x101), { name: 'DHE', curve: null, bits: 3072 });
    assert.deepEqual(groupKeyExchange(MLKEM_X25519), { name: 'X25519MLKEM768', curve: null, bits: 0 });
    assert.equal(groupKeyExchange(0x0a0a), null, 'GREASE');
  });

  test('client-hello: server group lists (OpenSSL defaults, tuples from 3.5, ?/*/- prefixes, DEFAULT)', () => {
    assert.deepEqual(v30.tuples, [[X25519, X448, P256, P521, P384]]);
    assert.deepEqual(v35.tuples, [[X25519, X448, P256, P521, P384]]);
    assert.deepEqual(serverGroups(undefined, { serverPreference: false, openssl: '3.0.19' }).tuples, [[X25519, P256, X448, P521, P384, 256, 257, 258, 259, 260]]);
    assert.deepEqual(serverGroups('auto', { serverPreference: false, openssl: '3.5.8' }).tuples, [[MLKEM_X25519], [X25519, P256], [X448, P384, P521], [256, 257]]);
    assert.deepEqual(serverGroups('?*X25519MLKEM768 / X25519:P-256:?bogus:-X25519', { serverPreference: false, openssl: '3.5.1' }).tuples, [[MLKEM_X25519], [P256]]);
    assert.deepEqual(serverGroups('P-384:DEFAULT', { serverPreference: true, openssl: '3.6.0' }).tuples, [[P384, MLKEM_X25519, X25519, P256, X448, P521, 256, 257]]);
    assert.deepEqual(serverGroups('X25519:P-256:X25519', { serverPreference: false, openssl: '3.0.2' }).tuples, [[X25519, P256]]);
    assert.equal(opensslHasTuples('3.0.19+quic'), false);
    assert.equal(opensslHasTuples('3.5.0'), true);
    assert.equal(opensslHasTuples('4.0.0'), true);
  });

  test('client-hello: 3.0 takes the client\'s first usable key share, else retries with the server\'s first shared group', () => {
    // Each row observed on Postfix 3.7.11 / OpenSSL 3.0 with openssl s_client -groups (see key-exchange tests).
    assert.equal(negotiatedGroup(hello({ supportedGroups: [X25519], keyShares: [X25519] }), v30, { reused: false }), X25519);
    assert.equal(negotiatedGroup(hello({ supportedGroups: [P384, X25519], keyShares: [P384] }), v30, { reused: false }), P384);
    assert.equal(negotiatedGroup(hello({ supportedGroups: [FFDHE2048, P521, X25519], keyShares: [FFDHE2048] }), v30, { reused: false }), X25519);
    const p256First = serverGroups('prime256v1:X25519', { serverPreference: false, openssl: '3.0.19' });
    assert.equal(negotiatedGroup(hello({ supportedGroups: [X448, X25519, P256], keyShares: [X448] }), p256First, { reused: false }), P256);
    assert.equal(negotiatedGroup(hello({ supportedGroups: [X448, P384, X25519], keyShares: [X448] }), p256First, { reused: false }), X25519);
    // Client order of key shares wins over server order, even with server preference.
    const pref = serverGroups('prime256v1:X25519', { serverPreference: true, openssl: '3.0.19' });
    assert.equal(negotiatedGroup(hello({ supportedGroups: [X25519, P256], keyShares: [X25519, P256] }), pref, { reused: false }), X25519);
    // A key share outside supported_groups, or a TLS 1.2-only curve, is not used.
    assert.equal(negotiatedGroup(hello({ supportedGroups: [P256], keyShares: [X25519, P256] }), v30, { reused: false }), P256);
    const legacy = serverGroups('secp256k1:prime256v1', { serverPreference: false, openssl: '3.0.19' });
    assert.equal(negotiatedGroup(hello({ supportedGroups: [SECP256K1, P256], keyShares: [SECP256K1] }), legacy, { reused: false }), P256);
    // No common group: the handshake fails.
    assert.equal(negotiatedGroup(hello({ supportedGroups: [FFDHE2048], keyShares: [FFDHE2048] }), v30, { reused: false }), null);
  });

  test('client-hello: 3.5 walks the server tuples; key share by client order, or by tuple order with server preference', () => {
    const tuples = serverGroups('X25519MLKEM768 / X25519:prime256v1 / secp384r1', { serverPreference: false, openssl: '3.5.8' });
    const h = hello({ supportedGroups: [MLKEM_X25519, X25519, P256, P384], keyShares: [MLKEM_X25519, X25519] });
    assert.equal(negotiatedGroup(h, tuples, { reused: false }), MLKEM_X25519);
    const noPq = hello({ supportedGroups: [P256, X25519, P384], keyShares: [P256, X25519] });
    assert.equal(negotiatedGroup(noPq, tuples, { reused: false }), P256, 'client order inside the tuple');
    const pref = serverGroups('X25519MLKEM768 / X25519:prime256v1 / secp384r1', { serverPreference: true, openssl: '3.5.8' });
    assert.equal(negotiatedGroup(noPq, pref, { reused: false }), X25519, 'tuple order with server preference');
    // A later tuple's key share loses to a HelloRetryRequest for an earlier tuple's group.
    const retry = hello({ supportedGroups: [P384, P256], keyShares: [P384] });
    assert.equal(negotiatedGroup(retry, tuples, { reused: false }), P256);
    // One tuple (Postfix's list): HRR picks by the client's supported_groups order (3.0: server order).
    const hrr = hello({ supportedGroups: [FFDHE2048, P521, X25519], keyShares: [FFDHE2048] });
    assert.equal(negotiatedGroup(hrr, v35, { reused: false }), P521);
    assert.equal(negotiatedGroup(hrr, v30, { reused: false }), X25519);
  });

  test('client-hello: resumption without psk_dhe_ke and a missing key_share mean no key exchange', () => {
    const h = hello({ supportedGroups: [X25519], keyShares: [X25519] });
    assert.equal(negotiatedGroup({ ...h, pskModes: [0] }, v30, { reused: true }), null);
    assert.equal(negotiatedGroup({ ...h, pskModes: [0, 1] }, v30, { reused: true }), X25519);
    assert.equal(negotiatedGroup({ ...h, pskModes: [0] }, v30, { reused: false }), X25519);
    assert.equal(negotiatedGroup({ ...h, keyShareSent: false, keyShares: [] }, v30, { reused: false }), null);
  });
});

/**
 * The TLS 1.3 key-exchange group of a server-side handshake, for Postfix's `key-exchange X25519`
 * (reference 1.8). Node gives no group on a server socket (getEphemeralKeyInfo() is null there,
 * DESIGN 7), so smtpd reads the client's ClientHello as it arrives (readClientHello(), before the
 * socket is handed to TLS, which then gets every byte) and computes the group OpenSSL selects from
 * the client's key_share (RFC 8446 4.2.8) and supported_groups (4.2.7) and the server's group list
 * (Node's ecdhCurve, i.e. tls_eecdh_auto_curves):
 *
 *   OpenSSL 3.0-3.4 (ssl/statem/extensions_srvr.c tls_parse_ctos_key_share, extensions.c
 *   final_key_share): the first client key share (client order) whose group is in the server's
 *   list and valid for TLS 1.3; none ⇒ HelloRetryRequest for the first server group (server order)
 *   the client supports; the client's second ClientHello must then carry exactly that group.
 *
 *   OpenSSL ≥ 3.5: the server list is split into tuples (`a:b / c:d`); for each tuple in order: a
 *   key share in the tuple ⇒ that group (client preference: first in the client's key_share order;
 *   with SSL_OP_SERVER_PREFERENCE, i.e. tls_preempt_cipherlist = yes: first in tuple order);
 *   else a supported group in the tuple ⇒ HelloRetryRequest for it (client's supported_groups
 *   order, or tuple order with server preference); else the next tuple.
 *
 * Names are what Postfix 3.7 logs from the peer's ephemeral key (P tls_misc.c
 * tls_get_signature_params, observed with Postfix 3.7.11 / OpenSSL 3.0): `X25519`, `X448`,
 * `ECDHE (prime256v1)`, `ECDHE (secp384r1)`, `DHE (2048 bits)`; ML-KEM groups (OpenSSL ≥ 3.5) by
 * their group name, as Postfix ≥ 3.10 logs them (`X25519MLKEM768`).
 * Not modelled: OpenSSL security levels (every group a TLS 1.3 server offers passes level 1).
 */
import type * as net from 'node:net';
import type { TlsKeyExchange } from './summary.js';

/** What the group negotiation needs from a ClientHello (RFC 8446 4.1.2). */
export interface ClientHello {
  /** supported_groups (10), client preference order. */
  readonly supportedGroups: readonly number[];
  /** Groups of the key_share entries (51), in the order sent. */
  readonly keyShares: readonly number[];
  /** The key_share extension was present (an empty one asks for a HelloRetryRequest). */
  readonly keyShareSent: boolean;
  /** supported_versions (43); empty when absent (TLS ≤ 1.2 only). */
  readonly supportedVersions: readonly number[];
  /** psk_key_exchange_modes (45): 0 psk_ke, 1 psk_dhe_ke. */
  readonly pskModes: readonly number[];
}

const HANDSHAKE = 22;
const CLIENT_HELLO = 1;
/** RFC 8446 5.1: a TLSPlaintext fragment is at most 2^14 bytes. */
const MAX_FRAGMENT = 16384;

/** Parses a ClientHello handshake body (after the 4-byte handshake header); null when malformed. */
export function parseClientHello(body: Buffer): ClientHello | null {
  let at = 0;
  const need = (n: number): boolean => at + n <= body.length;
  const u8 = (): number => body[at++]!;
  const u16 = (): number => {
    const v = body.readUInt16BE(at);
    at += 2;
    return v;
  };
  if (!need(2 + 32 + 1)) return null;
  at += 2 + 32; // legacy_version, random
  const sid = u8();
  if (!need(sid + 2)) return null;
  at += sid;
  const suites = u16();
  if (!need(suites + 1)) return null;
  at += suites;
  const compressions = u8();
  if (!need(compressions)) return null;
  at += compressions;
  const hello = { supportedGroups: [] as number[], keyShares: [] as number[], keyShareSent: false, supportedVersions: [] as number[], pskModes: [] as number[] };
  if (at === body.length) return hello; // no extensions (RFC 5246 7.4.1.2)
  if (!need(2)) return null;
  const extEnd = at + 2 + body.readUInt16BE(at);
  at += 2;
  if (extEnd > body.length) return null;
  while (at < extEnd) {
    if (at + 4 > extEnd) return null;
    const type = u16();
    const len = u16();
    const end = at + len;
    if (end > extEnd) return null;
    const data = body.subarray(at, end);
    at = end;
    switch (type) {
      case 10: {
        // NamedGroupList named_group_list<2..2^16-1>
        if (data.length < 2 || data.readUInt16BE(0) !== data.length - 2 || data.length % 2 !== 0) return null;
        for (let i = 2; i < data.length; i += 2) hello.supportedGroups.push(data.readUInt16BE(i));
        break;
      }
      case 51: {
        // KeyShareEntry client_shares<0..2^16-1>; entry = group(2) key_exchange<1..2^16-1>
        if (data.length < 2 || data.readUInt16BE(0) !== data.length - 2) return null;
        hello.keyShareSent = true;
        for (let i = 2; i < data.length; ) {
          if (i + 4 > data.length) return null;
          const group = data.readUInt16BE(i);
          const klen = data.readUInt16BE(i + 2);
          if (klen === 0 || i + 4 + klen > data.length) return null;
          hello.keyShares.push(group);
          i += 4 + klen;
        }
        break;
      }
      case 43: {
        // ProtocolVersion versions<2..254>
        if (data.length < 1 || data[0] !== data.length - 1 || data[0] % 2 !== 0) return null;
        for (let i = 1; i < data.length; i += 2) hello.supportedVersions.push(data.readUInt16BE(i));
        break;
      }
      case 45: {
        // PskKeyExchangeMode ke_modes<1..255>
        if (data.length < 1 || data[0] !== data.length - 1) return null;
        for (let i = 1; i < data.length; i++) hello.pskModes.push(data[i]!);
        break;
      }
    }
  }
  return hello;
}

/**
 * Accumulates the bytes a client sends first and finds its ClientHello, which may span several
 * handshake records (RFC 8446 5.1). `push` answers `more` until it is complete (`done`), or `stop`
 * once the bytes cannot be a TLS ClientHello (an SSLv2-format hello, plaintext, an HTTP request) or
 * pass `limit`: TLS then sees the bytes and decides.
 */
export class ClientHelloReader {
  hello: ClientHello | null = null;
  private readonly chunks: Buffer[] = [];
  private length = 0;
  private readonly limit: number;

  constructor(limit = 64 * 1024) {
    this.limit = limit;
  }

  /** Every byte pushed so far, to be handed on unchanged. */
  bytes(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }

  push(chunk: Buffer): 'more' | 'done' | 'stop' {
    this.chunks.push(chunk);
    this.length += chunk.length;
    const buf = this.chunks.length === 1 ? chunk : this.bytes();
    // The handshake bytes carried by the records so far (the last one may be incomplete).
    const handshake: Buffer[] = [];
    let complete = 0; // handshake bytes in complete records
    let have = 0;
    let foreign = false; // bytes that are not a handshake record (after the ClientHello: early data)
    for (let at = 0; at < buf.length; ) {
      if (buf[at] !== HANDSHAKE || (at + 1 < buf.length && buf[at + 1] !== 3)) {
        foreign = true;
        break;
      }
      if (at + 5 > buf.length) break;
      const len = buf.readUInt16BE(at + 3);
      if (len === 0 || len > MAX_FRAGMENT) return 'stop';
      const body = buf.subarray(at + 5, Math.min(at + 5 + len, buf.length));
      handshake.push(body);
      have += body.length;
      if (body.length < len) break;
      complete += len;
      at += 5 + len;
    }
    if (have >= 4) {
      const msg = Buffer.concat(handshake, have);
      if (msg[0] !== CLIENT_HELLO) return 'stop';
      const bodyLen = msg.readUIntBE(1, 3);
      if (4 + bodyLen > this.limit) return 'stop';
      if (complete >= 4 + bodyLen) {
        this.hello = parseClientHello(msg.subarray(4, 4 + bodyLen));
        return this.hello === null ? 'stop' : 'done';
      }
    }
    return foreign || this.length >= this.limit ? 'stop' : 'more';
  }
}

/** Where readClientHello() stopped. */
export interface ClientHelloRead {
  /** The parsed ClientHello; null when the bytes were not one (TLS reports why). */
  readonly hello: ClientHello | null;
  /** The client closed, or the socket failed, before a complete ClientHello: nothing to hand on. */
  readonly ended: boolean;
  /** The socket error that ended it, if any. */
  readonly error: Error | null;
}

/**
 * Reads the first bytes a client sends on `socket` until its ClientHello is complete (or cannot be
 * one), then pauses the socket, puts every byte back (unshift) and calls `done` synchronously, from
 * the socket's 'data' event: a tls.TLSSocket constructed in `done` (Node feeds a wrapped socket's
 * buffered bytes to the TLS engine) gets every byte, and no other read of the socket intervenes.
 * Returns `cancel`, which stops reading and puts the bytes back without calling `done` (the
 * handshake timeout). A socket that another reader still listens to is not read: `done` is called
 * at once with hello null.
 */
export function readClientHello(socket: net.Socket, done: (r: ClientHelloRead) => void, limit?: number): () => void {
  const reader = new ClientHelloReader(limit);
  let stopped = false;
  const stop = (ended: boolean, error: Error | null, notify: boolean): void => {
    if (stopped) return;
    stopped = true;
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('close', onEnd);
    socket.off('error', onError);
    if (!ended) {
      socket.pause();
      const bytes = reader.bytes();
      if (bytes.length > 0) socket.unshift(bytes);
    }
    if (notify) done({ hello: ended ? null : reader.hello, ended, error });
  };
  const onData = (chunk: Buffer): void => {
    if (reader.push(chunk) !== 'more') stop(false, null, true);
  };
  const onEnd = (): void => stop(true, null, true);
  const onError = (err: Error): void => stop(true, err, true);
  if (socket.listenerCount('data') > 0 || socket.destroyed || socket.readableEnded) {
    stopped = true;
    const ended = socket.destroyed || socket.readableEnded;
    done({ hello: null, ended, error: null });
    return () => {};
  }
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('close', onEnd);
  socket.on('error', onError);
  socket.resume();
  return () => stop(false, null, false);
}

/** A TLS named group (RFC 8446 4.2.7, IANA TLS Supported Groups) as OpenSSL and Postfix name it. */
interface GroupInfo {
  readonly id: number;
  /** Names OpenSSL accepts in a group list (lower case). */
  readonly names: readonly string[];
  /** OpenSSL lets TLS 1.3 negotiate it (the legacy curves are TLS ≤ 1.2 only). */
  readonly tls13: boolean;
  /** Postfix's `key-exchange` words for it. */
  readonly kex: TlsKeyExchange;
}

const ecdhe = (curve: string): TlsKeyExchange => ({ name: 'ECDHE', curve, bits: 0 });
const named = (name: string): TlsKeyExchange => ({ name, curve: null, bits: 0 });
const dhe = (bits: number): TlsKeyExchange => ({ name: 'DHE', curve: null, bits });

const LEGACY_CURVES: readonly [number, string, string?][] = [
  [1, 'sect163k1', 'k-163'],
  [2, 'sect163r1'],
  [3, 'sect163r2', 'b-163'],
  [4, 'sect193r1'],
  [5, 'sect193r2'],
  [6, 'sect233k1', 'k-233'],
  [7, 'sect233r1', 'b-233'],
  [8, 'sect239k1'],
  [9, 'sect283k1', 'k-283'],
  [10, 'sect283r1', 'b-283'],
  [11, 'sect409k1', 'k-409'],
  [12, 'sect409r1', 'b-409'],
  [13, 'sect571k1', 'k-571'],
  [14, 'sect571r1', 'b-571'],
  [15, 'secp160k1'],
  [16, 'secp160r1'],
  [17, 'secp160r2'],
  [18, 'secp192k1'],
  [19, 'prime192v1', 'p-192'],
  [20, 'secp224k1'],
  [21, 'secp224r1', 'p-224'],
  [22, 'secp256k1'],
  [26, 'brainpoolP256r1'],
  [27, 'brainpoolP384r1'],
  [28, 'brainpoolP512r1'],
];

const GROUPS: readonly GroupInfo[] = [
  ...LEGACY_CURVES.map(([id, curve, nist]): GroupInfo => ({
    id,
    names: [curve.toLowerCase(), ...(id === 19 ? ['secp192r1'] : []), ...(nist ? [nist] : [])],
    tls13: false,
    kex: ecdhe(curve),
  })),
  { id: 23, names: ['secp256r1', 'prime256v1', 'p-256'], tls13: true, kex: ecdhe('prime256v1') },
  { id: 24, names: ['secp384r1', 'p-384'], tls13: true, kex: ecdhe('secp384r1') },
  { id: 25, names: ['secp521r1', 'p-521'], tls13: true, kex: ecdhe('secp521r1') },
  { id: 29, names: ['x25519'], tls13: true, kex: named('X25519') },
  { id: 30, names: ['x448'], tls13: true, kex: named('X448') },
  { id: 31, names: ['brainpoolp256r1tls13'], tls13: true, kex: ecdhe('brainpoolP256r1') },
  { id: 32, names: ['brainpoolp384r1tls13'], tls13: true, kex: ecdhe('brainpoolP384r1') },
  { id: 33, names: ['brainpoolp512r1tls13'], tls13: true, kex: ecdhe('brainpoolP512r1') },
  ...[2048, 3072, 4096, 6144, 8192].map((bits, i): GroupInfo => ({ id: 0x100 + i, names: [`ffdhe${bits}`], tls13: true, kex: dhe(bits) })),
  { id: 0x200, names: ['mlkem512'], tls13: true, kex: named('MLKEM512') },
  { id: 0x201, names: ['mlkem768'], tls13: true, kex: named('MLKEM768') },
  { id: 0x202, names: ['mlkem1024'], tls13: true, kex: named('MLKEM1024') },
  { id: 0x11eb, names: ['secp256r1mlkem768'], tls13: true, kex: named('SecP256r1MLKEM768') },
  { id: 0x11ec, names: ['x25519mlkem768'], tls13: true, kex: named('X25519MLKEM768') },
  { id: 0x11ed, names: ['secp384r1mlkem1024'], tls13: true, kex: named('SecP384r1MLKEM1024') },
];

const BY_ID = new Map(GROUPS.map((g) => [g.id, g]));
const BY_NAME = new Map(GROUPS.flatMap((g) => g.names.map((n) => [n, g] as const)));

/** Postfix's `key-exchange` words for a TLS group id; null for an unknown id. */
export function groupKeyExchange(id: number): TlsKeyExchange | null {
  return BY_ID.get(id)?.kex ?? null;
}

/** The TLS group id for an OpenSSL group name (any case, NIST names too); undefined if unknown. */
export function groupId(name: string): number | undefined {
  return BY_NAME.get(name.toLowerCase())?.id;
}

const tls13Ok = (id: number): boolean => BY_ID.get(id)?.tls13 === true;

/** The server side of the negotiation: its groups in preference tuples, and the selection rules. */
export interface ServerGroups {
  /** One tuple before OpenSSL 3.5 (a flat list). */
  readonly tuples: readonly (readonly number[])[];
  /** SSL_OP_CIPHER_SERVER_PREFERENCE (Node's honorCipherOrder; tls_preempt_cipherlist). */
  readonly serverPreference: boolean;
  /** OpenSSL ≥ 3.5 selection (tuples, preference-dependent key share choice). */
  readonly tupleRules: boolean;
}

/** OpenSSL's default group lists (t1_lib.c), used when Node's ecdhCurve is `auto`/unset. */
const DEFAULT_GROUPS_30 = 'X25519:secp256r1:X448:secp521r1:secp384r1:ffdhe2048:ffdhe3072:ffdhe4096:ffdhe6144:ffdhe8192';
const DEFAULT_GROUPS_35 = '?*X25519MLKEM768 / ?*X25519:?secp256r1 / ?X448:?secp384r1:?secp521r1 / ?ffdhe2048:?ffdhe3072';

/** `3.5.8` ⇒ true; `3.0.19+quic` ⇒ false. */
export function opensslHasTuples(version: string = process.versions.openssl ?? ''): boolean {
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const major = Number(m[1]);
  return major > 3 || (major === 3 && Number(m[2]) >= 5);
}

/**
 * The server's group list as OpenSSL holds it after SSL_CTX_set1_groups_list(ecdhCurve) (Node
 * passes `ecdhCurve` there; `auto` or undefined keeps OpenSSL's default list). Unknown names are
 * skipped (Postern only passes names OpenSSL accepted); duplicates keep their first place.
 */
export function serverGroups(ecdhCurve: string | undefined, o: { serverPreference: boolean; openssl?: string }): ServerGroups {
  const tupleRules = opensslHasTuples(o.openssl);
  const spec = ecdhCurve === undefined || ecdhCurve.toLowerCase() === 'auto' ? (tupleRules ? DEFAULT_GROUPS_35 : DEFAULT_GROUPS_30) : ecdhCurve;
  const seen: number[] = [];
  const tuples: number[][] = [];
  const add = (tuple: number[], text: string): void => {
    const remove = /^[?*]*-/.test(text);
    const word = text.replace(/^[?*-]+/, '');
    if (tupleRules && word.toUpperCase() === 'DEFAULT') {
      // 3.5+: the pseudo group DEFAULT appends the default groups to the current tuple.
      for (const part of DEFAULT_GROUPS_35.split('/')) for (const g of part.split(':')) add(tuple, g.trim());
      return;
    }
    const id = groupId(word);
    if (id === undefined) return;
    if (remove) {
      const at = seen.indexOf(id);
      if (at < 0) return;
      seen.splice(at, 1);
      for (const t of [...tuples, tuple]) {
        const k = t.indexOf(id);
        if (k >= 0) t.splice(k, 1);
      }
      return;
    }
    if (seen.includes(id)) return;
    seen.push(id);
    tuple.push(id);
  };
  // OpenSSL < 3.5 has no tuples: `/` is not a separator there (such a list is refused before).
  for (const part of tupleRules ? spec.split('/') : [spec]) {
    const tuple: number[] = [];
    for (const g of part.split(':')) if (g.trim() !== '') add(tuple, g.trim());
    tuples.push(tuple);
  }
  return { tuples: tuples.filter((t) => t.length > 0), serverPreference: o.serverPreference, tupleRules };
}

/**
 * The TLS 1.3 group OpenSSL negotiates for this ClientHello (after a HelloRetryRequest when the
 * client sent no usable key share); null when no (EC)DHE exchange happens or TLS 1.3 would fail.
 * `reused`: the session was resumed (then a key exchange happens only with psk_dhe_ke).
 */
export function negotiatedGroup(hello: ClientHello, server: ServerGroups, o: { reused: boolean }): number | null {
  if (o.reused && !hello.pskModes.includes(1)) return null; // psk_ke: no key exchange (RFC 8446 4.2.9)
  if (!hello.keyShareSent) return null; // no key_share: only a psk_ke resumption could succeed
  const client = hello.supportedGroups;
  const flat = server.tuples.flat();
  // Key shares OpenSSL considers: offered in supported_groups (else it aborts), ours, TLS 1.3 groups.
  const shares = hello.keyShares.filter((g) => client.includes(g) && flat.includes(g) && tls13Ok(g));
  if (!server.tupleRules) {
    if (shares.length > 0) return shares[0]!;
    return flat.find((g) => client.includes(g) && tls13Ok(g)) ?? null; // HelloRetryRequest
  }
  for (const tuple of server.tuples) {
    const usable = tuple.filter(tls13Ok);
    const pick = (candidates: readonly number[]): number | undefined =>
      server.serverPreference ? usable.find((g) => candidates.includes(g)) : candidates.find((g) => usable.includes(g));
    const share = pick(shares);
    if (share !== undefined) return share;
    const retry = pick(client);
    if (retry !== undefined) return retry; // HelloRetryRequest
  }
  return null;
}

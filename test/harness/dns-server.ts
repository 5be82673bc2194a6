/**
 * A small authoritative DNS server over UDP for tests (RFC 1035 4.1): A, TXT and MX records from a map,
 * NXDOMAIN for every other name, NOERROR without answers for other types of a known name. Enough
 * for DNSBL lookups by Postern's resolver and by Postfix's (libc) resolver alike.
 */
import * as dgram from 'node:dgram';

export interface DnsRecords {
  readonly a?: readonly string[];
  readonly txt?: readonly string[];
  /** MX records; exchange '' (with preference 0) is RFC 7505's null MX ("."). */
  readonly mx?: readonly { readonly preference: number; readonly exchange: string }[];
}

export interface TestDnsServer {
  readonly address: string;
  readonly port: number;
  /** Names asked so far, lower case, in order. */
  readonly asked: string[];
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_MX = 15;
const TYPE_TXT = 16;

function encodeName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.split('.').filter((l) => l !== '')) parts.push(Buffer.from([label.length]), Buffer.from(label, 'latin1'));
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

function readName(msg: Buffer, start: number): { name: string; end: number } {
  const labels: string[] = [];
  let i = start;
  for (;;) {
    const len = msg[i];
    if (len === undefined) throw new Error('truncated name');
    if (len === 0) return { name: labels.join('.'), end: i + 1 };
    if (len >= 0xc0) throw new Error('compressed name in a question');
    labels.push(msg.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
}

function rr(type: number, rdata: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
  head.writeUInt16BE(type, 2);
  head.writeUInt16BE(1, 4); // IN
  head.writeUInt32BE(60, 6); // TTL
  head.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([head, rdata]);
}

function txtData(text: string): Buffer {
  const parts: Buffer[] = [];
  const b = Buffer.from(text, 'utf8');
  for (let i = 0; i < b.length || i === 0; i += 255) {
    const chunk = b.subarray(i, i + 255);
    parts.push(Buffer.from([chunk.length]), chunk);
    if (b.length === 0) break;
  }
  return Buffer.concat(parts);
}

function answer(query: Buffer, zone: ReadonlyMap<string, DnsRecords>, asked: string[]): Buffer | null {
  if (query.length < 12 || query.readUInt16BE(4) !== 1) return null;
  const { name, end } = readName(query, 12);
  const qtype = query.readUInt16BE(end);
  const lname = name.toLowerCase();
  asked.push(lname);
  const rec = zone.get(lname);
  const answers: Buffer[] = [];
  if (rec !== undefined && qtype === TYPE_A) for (const a of rec.a ?? []) answers.push(rr(TYPE_A, Buffer.from(a.split('.').map(Number))));
  if (rec !== undefined && qtype === TYPE_TXT) for (const t of rec.txt ?? []) answers.push(rr(TYPE_TXT, txtData(t)));
  if (rec !== undefined && qtype === TYPE_MX) {
    for (const m of rec.mx ?? []) {
      const pref = Buffer.alloc(2);
      pref.writeUInt16BE(m.preference, 0);
      answers.push(rr(TYPE_MX, Buffer.concat([pref, encodeName(m.exchange)])));
    }
  }
  const head = Buffer.alloc(12);
  head.writeUInt16BE(query.readUInt16BE(0), 0);
  // QR, AA, the client's RD; NXDOMAIN for unknown names.
  head.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | (rec === undefined ? 3 : 0), 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(answers.length, 6);
  return Buffer.concat([head, query.subarray(12, end + 4), ...answers]);
}

/** Listen on `address`:`port` (0: any free port). Rejects when the port cannot be bound (EACCES for 53 without root). */
export function startDnsServer(records: Readonly<Record<string, DnsRecords>>, address = '127.0.0.1', port = 0): Promise<TestDnsServer> {
  const zone = new Map(Object.entries(records).map(([k, v]) => [k.toLowerCase(), v]));
  const asked: string[] = [];
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    let out: Buffer | null = null;
    try {
      out = answer(msg, zone, asked);
    } catch {
      out = null;
    }
    if (out !== null) sock.send(out, rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, address, () => {
      sock.off('error', reject);
      resolve({ address, port: sock.address().port, asked, close: () => new Promise<void>((r) => sock.close(() => r())) });
    });
  });
}

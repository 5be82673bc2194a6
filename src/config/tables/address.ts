/**
 * IP address text ⇄ bytes, the way Postfix's cidr_match and match_hostaddr see it: inet_pton for
 * parsing (strict: no leading zeros in IPv4 octets, no brackets, no zone), glibc inet_ntop for
 * printing (longest run of two or more zero groups becomes `::`, first run wins a tie,
 * `::ffff:a.b.c.d` and `::a.b.c.d` keep their dotted tail). No disk, no config.
 */

export type IpFamily = 4 | 6;

export interface IpAddress {
  readonly family: IpFamily;
  /** 4 or 16 bytes, network order. */
  readonly bytes: Uint8Array;
}

/** A network: address with all host bits zero, and a prefix length. */
export interface IpNetwork extends IpAddress {
  readonly prefix: number;
}

/** inet_pton(AF_INET): four decimal octets, no leading zeros, nothing else. */
export function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

/** inet_pton(AF_INET6): hex groups of 1-4 digits, one `::`, an optional dotted IPv4 tail. */
export function parseIPv6(text: string): Uint8Array | undefined {
  if (text.length === 0 || /[^0-9a-fA-F:.]/.test(text)) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIPv4(p);
        if (v4 === undefined) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
        out.push(Number.parseInt(p, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  let words: number[];
  if (halves.length === 2) {
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return undefined;
    words = [...head, ...new Array<number>(fill).fill(0), ...tail];
  } else {
    words = head;
  }
  if (words.length !== 8) return undefined;
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** Family by the presence of ':' (as Postfix's CIDR_MATCH_ADDR_FAMILY), then inet_pton. */
export function parseIp(text: string): IpAddress | undefined {
  if (text.includes(':')) {
    const bytes = parseIPv6(text);
    return bytes === undefined ? undefined : { family: 6, bytes };
  }
  const bytes = parseIPv4(text);
  return bytes === undefined ? undefined : { family: 4, bytes };
}

export function formatIPv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** glibc inet_ntop(AF_INET6). */
export function formatIPv6(bytes: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  let curLen = 0;
  for (let i = 0; i < 8; i++) {
    if (words[i] === 0) {
      if (curBase === -1) {
        curBase = i;
        curLen = 1;
      } else curLen++;
      if (curLen > bestLen) {
        bestBase = curBase;
        bestLen = curLen;
      }
    } else curBase = -1;
  }
  if (bestLen < 2) bestBase = -1;
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && words[5] === 0xffff))) {
      out += formatIPv4(bytes.subarray(12, 16));
      return out;
    }
    out += words[i]!.toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) out += ':';
  return out;
}

export function formatIp(addr: IpAddress): string {
  return addr.family === 4 ? formatIPv4(addr.bytes) : formatIPv6(addr.bytes);
}

/** True for `::ffff:a.b.c.d`. */
export function isV4Mapped(bytes: Uint8Array): boolean {
  if (bytes.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/**
 * A client address as a server sees it, made canonical: brackets, an `IPv6:` tag and a `%zone`
 * are removed, `::ffff:a.b.c.d` becomes `a.b.c.d` (Postfix does this whenever IPv4 is enabled,
 * postconf(5) inet_protocols), IPv6 is printed as inet_ntop does. Undefined if not an address.
 */
export function canonicalClientAddress(text: string): IpAddress | undefined {
  let t = text.trim();
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  if (/^ipv6:/i.test(t)) t = t.slice(5);
  const zone = t.indexOf('%');
  if (zone >= 0 && t.includes(':')) t = t.slice(0, zone);
  const addr = parseIp(t);
  if (addr === undefined) return undefined;
  if (addr.family === 6 && isV4Mapped(addr.bytes)) return { family: 4, bytes: addr.bytes.slice(12, 16) };
  return addr;
}

/** Zero every bit after the first `prefix` bits (Postfix mask_addr). */
export function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = bytes.slice();
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] = out[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

/** Does `addr` fall inside `net` (same family only, as cidr_match_execute)? */
export function inNetwork(net: IpNetwork, addr: IpAddress): boolean {
  if (net.family !== addr.family) return false;
  const masked = maskBytes(addr.bytes, net.prefix);
  for (let i = 0; i < masked.length; i++) if (masked[i] !== net.bytes[i]) return false;
  return true;
}

export type CidrParse = { readonly ok: true; readonly net: IpNetwork } | { readonly ok: false; readonly why: string };

/**
 * One address pattern as Postfix's cidr_match_parse reads it: `addr`, `addr/len`, `[addr]`,
 * `[addr]/len`, `[addr/len]`. Errors carry Postfix's wording (`bad mask value in "…"`,
 * `non-null host address bits in "1.2.3.4/24", perhaps you should use "1.2.3.0/24" instead`).
 */
export function parseCidrPattern(pattern: string): CidrParse {
  let p = pattern;
  if (p.startsWith('[')) {
    p = p.slice(1);
    const close = p.indexOf(']');
    if (close < 0) return { ok: false, why: `missing ']' character after "[${p}"` };
    const after = p.slice(close + 1);
    const inner = p.slice(0, close);
    if (after !== '' && !after.startsWith('/')) return { ok: false, why: `garbage after "[${inner}]"` };
    p = inner + after;
  }
  const slash = p.indexOf('/');
  if (slash >= 0) {
    const addrText = p.slice(0, slash);
    const mask = p.slice(slash + 1);
    const family: IpFamily = addrText.includes(':') ? 6 : 4;
    const bits = family === 6 ? 128 : 32;
    const where = `"${addrText}/${mask}"`;
    if (!/^[0-9]+$/.test(mask)) return { ok: false, why: `bad mask value in ${where}` };
    const prefix = Number.parseInt(mask, 10);
    if (prefix > bits) return { ok: false, why: `bad mask length in ${where}` };
    const bytes = family === 6 ? parseIPv6(addrText) : parseIPv4(addrText);
    if (bytes === undefined) return { ok: false, why: `bad network value in ${where}` };
    const masked = maskBytes(bytes, prefix);
    if (masked.some((b, i) => b !== bytes[i])) {
      const suggestion = family === 6 ? formatIPv6(masked) : formatIPv4(masked);
      return { ok: false, why: `non-null host address bits in ${where}, perhaps you should use "${suggestion}/${prefix}" instead` };
    }
    return { ok: true, net: { family, bytes, prefix } };
  }
  const addr = parseIp(p);
  if (addr === undefined) return { ok: false, why: `bad address pattern: "${p}"` };
  return { ok: true, net: { ...addr, prefix: addr.family === 6 ? 128 : 32 } };
}

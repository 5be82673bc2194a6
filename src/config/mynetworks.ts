/**
 * mynetworks (postconf(5)): the list of trusted client networks, and the default Postfix computes
 * from the host's interfaces (mynetworks_style). Also usable for every other address-only match
 * list (smtpd_client_event_limit_exceptions, permit_mx_backup_networks, …) via buildAddressList.
 *
 * Entries, first match wins left to right (Postfix match_list): `net/len` and bare addresses for
 * IPv4; `[ipv6]/len` and `[ipv6]` for IPv6 (the brackets are REQUIRED, postconf(5) mynetworks
 * note 2: Postfix would read `2a01:7a0:10::/112` as a table of type "2a01", Postern refuses it with
 * a hint); `!pattern` exclusions; `/file/name` (the file holds more patterns, comment and
 * continuation lines as a table file); `type:table` (the client address is the key; any value
 * matches). Every entry is checked when the list is built (Postfix checks a pattern only when a
 * client reaches it): an entry with host bits set is a ConfigError with Postfix's wording.
 */
import { readFileSync } from 'node:fs';
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os';
import { ConfigError, PosternError } from '../errors.js';
import {
  canonicalClientAddress,
  formatIp,
  formatIPv4,
  formatIPv6,
  type IpNetwork,
  inNetwork,
  maskBytes,
  parseCidrPattern,
  parseIPv4,
  parseIPv6,
} from './tables/address.js';
import { type LookupTable, openTable, type TableOrigin } from './tables/index.js';
import { logicalLines, splitBraceList } from './tables/text.js';

/** The shared contract: "is this client address in the list". */
export interface NetworkMatcher {
  /** v4 (`192.0.2.1`), v6 (`2001:db8::1`, `[2001:db8::1]`), v4-mapped v6 (`::ffff:192.0.2.1`). */
  matches(addr: string): boolean;
}

type Entry = { readonly match: boolean; readonly text: string } & ({ readonly net: IpNetwork } | { readonly table: LookupTable });

export interface AddressList extends NetworkMatcher {
  /** The entries after /file expansion, as `[!]pattern`, in match order. */
  readonly patterns: readonly string[];
}

/** mynetworks as given by the config (`params.mynetworks`, already expanded). */
export function buildMynetworks(params: { readonly mynetworks: readonly string[] }, origin?: TableOrigin): AddressList {
  return buildAddressList('mynetworks', params.mynetworks, origin);
}

/**
 * Any Postfix address match list (addr_match_list). `origin` is where the parameter was set; it
 * names errors and resolves relative table paths. Throws ConfigError.
 */
export function buildAddressList(param: string, items: readonly string[], origin?: TableOrigin): AddressList {
  const entries: Entry[] = [];
  const fail = (detail: string, file?: string, line?: number): ConfigError =>
    file !== undefined ? new ConfigError(file, line ?? 0, `${param}: ${detail}`) : new ConfigError(origin?.file ?? 'main.cf', origin?.line ?? 0, `${param}: ${detail}`);

  const add = (raw: string, initial: boolean, where: { file?: string; line?: number }, files: readonly string[]): void => {
    let match = initial;
    let item = raw;
    while (item.startsWith('!')) {
      match = !match;
      item = item.slice(1);
    }
    if (item === '') throw fail("no pattern after '!'", where.file, where.line);
    if (item.startsWith('/')) {
      if (files.includes(item)) throw fail(`${item} includes itself`, where.file, where.line);
      let content: string;
      try {
        content = readFileSync(item, 'utf8');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const reason = code === 'ENOENT' ? 'No such file or directory' : code === 'EACCES' ? 'Permission denied' : err instanceof Error ? err.message : String(err);
        throw fail(`open ${item}: ${reason}`, where.file, where.line);
      }
      for (const { text, line } of logicalLines(content, item, [])) {
        for (const sub of splitBraceList(text)) add(sub, match, { file: item, line }, [...files, item]);
      }
      return;
    }
    if (!item.startsWith('[') && item.includes(':')) {
      const unbracketed = unbracketedIPv6(item);
      if (unbracketed !== undefined) {
        throw fail(
          `"${item}" is an IPv6 ${item.includes('/') ? 'network' : 'address'} without brackets (${item.startsWith(':') ? 'Postfix would reject it' : `Postfix would read it as a lookup table of type "${item.slice(0, item.indexOf(':'))}"`}); specify "${unbracketed}" (IPv6 networks must be enclosed in [])`,
          where.file,
          where.line,
        );
      }
      let table: LookupTable;
      try {
        table = openTable(item, origin);
      } catch (err) {
        // Problems with the table name itself (not inside the table file) get the parameter's name.
        if (err instanceof ConfigError && err.file === (origin?.file ?? item) && err.line === (origin?.line ?? 0)) throw fail(err.detail, where.file, where.line);
        throw err;
      }
      entries.push({ match, text: item, table });
      return;
    }
    if (!item.startsWith('[') && !/^[0-9./]+$/.test(item)) {
      throw fail(`"${item}" is not an IP address or network (${param} matches client addresses: net/len, [ipv6]/len, /file/name or type:table)`, where.file, where.line);
    }
    const parsed = parseCidrPattern(item);
    if (!parsed.ok) throw fail(parsed.why, where.file, where.line);
    entries.push({ match, text: item, net: parsed.net });
  };

  for (const value of items) for (const item of splitBraceList(value)) add(item, true, {}, []);

  return {
    patterns: entries.map((e) => `${e.match ? '' : '!'}${e.text}`),
    matches(addr: string): boolean {
      const a = canonicalClientAddress(addr);
      if (a === undefined) return false;
      const key = formatIp(a);
      for (const e of entries) {
        const hit = 'net' in e ? inNetwork(e.net, a) : e.table.get(key) !== undefined;
        if (hit) return e.match;
      }
      return false;
    },
  };
}

/** `2a01:7a0:10::/112` → `[2a01:7a0:10::]/112`; undefined when `item` is not an IPv6 address/network. */
function unbracketedIPv6(item: string): string | undefined {
  const slash = item.indexOf('/');
  const addr = slash < 0 ? item : item.slice(0, slash);
  const len = slash < 0 ? '' : item.slice(slash);
  const looksLike = addr.split(':').length >= 3 && /^[0-9a-fA-F:.]+$/.test(addr);
  if (parseIPv6(addr) === undefined && !looksLike) return undefined;
  if (len !== '' && !/^\/[0-9]+$/.test(len)) return undefined;
  return `[${addr}]${len}`;
}

export type MynetworksStyle = 'host' | 'subnet' | 'class';

type Interfaces = NodeJS.Dict<NetworkInterfaceInfo[]>;

const leadingOnes = (bytes: Uint8Array): number => {
  let n = 0;
  for (const b of bytes) {
    if (b === 0xff) {
      n += 8;
      continue;
    }
    for (let bit = 0x80; bit > 0 && (b & bit) !== 0; bit >>= 1) n++;
    break;
  }
  return n;
};

/**
 * Postfix's default mynetworks for a style, in postconf's format: every IPv4 interface address
 * first, then every IPv6 one (interface order), each as its network (`subnet`), its class A/B/C
 * network (`class`; IPv6 has no classes and uses the subnet), or itself (`host`); duplicates
 * dropped. `inetProtocols` as inet_protocols (`all`, `ipv4`, `ipv6`).
 * e.g. subnet: `127.0.0.0/8 192.0.2.0/24 [::1]/128 [fd00::]/64 [fe80::]/64`.
 */
export function mynetworksDefault(style: MynetworksStyle, interfaces: Interfaces = networkInterfaces(), inetProtocols: readonly string[] = ['all']): string {
  const protocols = inetProtocols.map((p) => p.toLowerCase());
  const want4 = protocols.includes('all') || protocols.includes('ipv4');
  const want6 = protocols.includes('all') || protocols.includes('ipv6');
  const v4: string[] = [];
  const v6: string[] = [];
  for (const list of Object.values(interfaces)) {
    for (const info of list ?? []) {
      const family = String(info.family);
      if ((family === 'IPv4' || family === '4') && want4) {
        const addr = parseIPv4(info.address);
        const mask = parseIPv4(info.netmask);
        if (addr === undefined || mask === undefined || addr.every((b) => b === 0)) continue;
        let prefix: number;
        if (style === 'host') prefix = 32;
        else if (style === 'subnet') prefix = leadingOnes(mask);
        else {
          const a = addr[0]!;
          if (a < 128) prefix = 8;
          else if (a < 192) prefix = 16;
          else if (a < 224) prefix = 24;
          else if (a < 240) prefix = 4;
          else throw new PosternError('config', `mynetworks_core: unknown address class: ${info.address}`);
        }
        v4.push(`${formatIPv4(maskBytes(addr, prefix))}/${prefix}`);
      } else if ((family === 'IPv6' || family === '6') && want6) {
        const addr = parseIPv6(info.address.replace(/%.*$/, ''));
        const mask = parseIPv6(info.netmask);
        if (addr === undefined || mask === undefined || addr.every((b) => b === 0)) continue;
        const prefix = style === 'host' ? 128 : leadingOnes(mask);
        v6.push(`[${formatIPv6(maskBytes(addr, prefix))}]/${prefix}`);
      }
    }
  }
  return [...new Set([...v4, ...v6])].join(' ');
}

/**
 * mynetworks_style's default `${{$compatibility_level} <level {2} ? {subnet} : {host}}`:
 * `subnet` below compatibility level 2, `host` from 2 on.
 */
export function mynetworksStyleDefault(compatibilityLevel: string): 'subnet' | 'host' {
  const parts = compatibilityLevel.trim().split('.').map((p) => Number.parseInt(p, 10) || 0);
  return (parts[0] ?? 0) < 2 ? 'subnet' : 'host';
}

/**
 * Where an inet service listens, and binding there.
 *
 * master.cf service `smtp` (no host) listens on every address of `inet_interfaces`, filtered by
 * `inet_protocols`; a service `127.0.0.1:2525` or `[::1]:2525` listens on that address only.
 * IPv4 and IPv6 always get separate sockets, the IPv6 one with IPV6_V6ONLY, as Postfix does
 * (postconf(5) inet_protocols; IPV6_README "Postfix IPv6 support").
 */
import * as dns from 'node:dns';
import * as net from 'node:net';
import * as util from 'node:util';
import type { Config, MasterService, Setting } from '../config/types.js';
import { ConfigError, PosternError } from '../errors.js';

export type Family = 4 | 6;

export interface ListenAddress {
  /** Numeric address without brackets: `0.0.0.0`, `::`, `127.0.0.1`, `::1`. */
  readonly address: string;
  readonly family: Family;
  readonly port: number;
}

export interface Protocols {
  readonly ipv4: boolean;
  readonly ipv6: boolean;
}

function origin(config: Config, name: string): { file: string; line: number } {
  const s: Setting | undefined = config.settings.get(name);
  return s !== undefined ? { file: s.file, line: s.line } : { file: config.mainCfPath, line: 0 };
}

/** postconf(5) inet_protocols: `all`, `ipv4`, `ipv6`, or a list of them. */
export function parseInetProtocols(values: readonly string[], config?: Config): Protocols {
  let ipv4 = false;
  let ipv6 = false;
  for (const raw of values) {
    const v = raw.toLowerCase();
    if (v === 'all') {
      ipv4 = true;
      ipv6 = true;
    } else if (v === 'ipv4') ipv4 = true;
    else if (v === 'ipv6') ipv6 = true;
    else {
      const o = config !== undefined ? origin(config, 'inet_protocols') : { file: 'main.cf', line: 0 };
      throw new ConfigError(o.file, o.line, `invalid inet_protocols value "${raw}": expected all, ipv4 or ipv6`);
    }
  }
  if (!ipv4 && !ipv6) {
    const o = config !== undefined ? origin(config, 'inet_protocols') : { file: 'main.cf', line: 0 };
    throw new ConfigError(o.file, o.line, 'inet_protocols is empty: expected all, ipv4 or ipv6');
  }
  return { ipv4, ipv6 };
}

/** `[::1]` → `::1`; anything else unchanged. */
export function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

type Resolve = (host: string) => Promise<{ address: string; family: Family }[]>;

/** Host names in inet_interfaces are resolved once at start, as Postfix does. Never used for IP literals. */
const systemResolve: Resolve = async (host) => {
  const found = await dns.promises.lookup(host, { all: true, verbatim: true });
  return found.filter((a) => a.family === 4 || a.family === 6).map((a) => ({ address: a.address, family: a.family as Family }));
};

/**
 * The addresses of `inet_interfaces`, each once, filtered by `inet_protocols`:
 * `all` ⇒ 0.0.0.0 and ::, `loopback-only` ⇒ 127.0.0.1 and ::1, else the listed addresses/names.
 */
export async function interfaceAddresses(config: Config, resolve: Resolve = systemResolve): Promise<{ address: string; family: Family }[]> {
  const params = config.params;
  const proto = parseInetProtocols(params.inet_protocols, config);
  const out: { address: string; family: Family }[] = [];
  const seen = new Set<string>();
  const add = (address: string, family: Family): void => {
    if ((family === 4 && !proto.ipv4) || (family === 6 && !proto.ipv6)) return;
    if (seen.has(address)) return;
    seen.add(address);
    out.push({ address, family });
  };
  const values = params.inet_interfaces.length > 0 ? params.inet_interfaces : ['all'];
  for (const raw of values) {
    const v = raw.toLowerCase();
    if (v === 'all') {
      add('0.0.0.0', 4);
      add('::', 6);
      continue;
    }
    if (v === 'loopback-only') {
      add('127.0.0.1', 4);
      add('::1', 6);
      continue;
    }
    const host = stripBrackets(raw);
    const kind = net.isIP(host);
    if (kind === 4 || kind === 6) {
      add(host, kind);
      continue;
    }
    let found: { address: string; family: Family }[];
    try {
      found = await resolve(host);
    } catch {
      found = [];
    }
    if (found.length === 0) {
      const o = origin(config, 'inet_interfaces');
      throw new ConfigError(o.file, o.line, `parameter inet_interfaces: host not found: ${raw}`);
    }
    for (const a of found) add(a.address, a.family);
  }
  return out;
}

/** The sockets one inet service needs. Throws ConfigError when its own address is not usable. */
export async function serviceAddresses(service: MasterService, config: Config, resolve: Resolve = systemResolve): Promise<ListenAddress[]> {
  if (service.type !== 'inet' || service.listen === null) return [];
  const port = service.listen.port;
  if (service.listen.host === null) {
    return (await interfaceAddresses(config, resolve)).map((a) => ({ ...a, port }));
  }
  const host = stripBrackets(service.listen.host);
  const proto = parseInetProtocols(config.params.inet_protocols, config);
  const kind = net.isIP(host);
  let candidates: { address: string; family: Family }[];
  if (kind === 4 || kind === 6) candidates = [{ address: host, family: kind }];
  else {
    try {
      candidates = await resolve(host);
    } catch {
      candidates = [];
    }
  }
  const usable = candidates.filter((a) => (a.family === 4 ? proto.ipv4 : proto.ipv6));
  if (usable.length === 0) {
    // Postfix master_ent.c: "bad hostname or network address" for a host it cannot use.
    const why = candidates.length === 0 ? '' : ` (not enabled by inet_protocols = ${config.params.inet_protocols.join(', ')})`;
    throw new ConfigError(service.file, service.line, `bad hostname or network address: ${service.name}${why}`);
  }
  return usable.map((a) => ({ ...a, port }));
}

/** `bind ADDR port N` as Postfix's inet_listen() names a socket in its errors. */
export function describe(a: ListenAddress): string {
  return `${a.address} port ${a.port}`;
}

/** strerror(3) text, as Postfix's %m prints it (libuv's texts differ for a few). */
export function strerror(code: string | undefined): string {
  switch (code) {
    case 'EADDRINUSE':
      return 'Address already in use';
    case 'EACCES':
      return 'Permission denied';
    case 'EADDRNOTAVAIL':
      return 'Cannot assign requested address';
    case 'EAFNOSUPPORT':
      return 'Address family not supported by protocol';
    case 'EPERM':
      return 'Operation not permitted';
    case 'EINVAL':
      return 'Invalid argument';
    case 'EMFILE':
      return 'Too many open files';
    default: {
      if (code !== undefined) {
        for (const [name, desc] of util.getSystemErrorMap().values()) {
          if (name === code) return desc.charAt(0).toUpperCase() + desc.slice(1);
        }
      }
      return code ?? 'unknown error';
    }
  }
}

/** A bind failure: message `bind 0.0.0.0 port 25: Address already in use` (Postfix's text). */
export class BindError extends PosternError {
  readonly errno: string | undefined;
  readonly where: ListenAddress;
  constructor(where: ListenAddress, errno: string | undefined, cause: unknown) {
    super('bind', `bind ${describe(where)}: ${strerror(errno)}`, { cause });
    this.errno = errno;
    this.where = where;
  }
}

/**
 * Backlog of each listen socket. Postfix passes its own default (master.cf maxproc aside, the kernel
 * caps it at net.core.somaxconn anyway); 511 is Node's and nginx's default.
 */
export const LISTEN_BACKLOG = 511;

/** Binds one socket; IPv6 sockets are v6-only so the IPv4 socket on the same port can coexist. */
export function bind(a: ListenAddress, onConnection: (socket: net.Socket) => void): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer(onConnection);
    const onError = (err: NodeJS.ErrnoException): void => {
      server.removeListener('listening', onListening);
      server.close();
      reject(new BindError(a, err.code, err));
    };
    const onListening = (): void => {
      server.removeListener('error', onError);
      resolve(server);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host: a.address, port: a.port, ipv6Only: a.family === 6, backlog: LISTEN_BACKLOG, exclusive: true });
  });
}

/** Key for comparing listen sets across a reload. */
export function addressKey(a: ListenAddress): string {
  return a.family === 6 ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

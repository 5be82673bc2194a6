/**
 * Envelope address pieces as trivial-rewrite(8) and cleanup(8) see them: local part and domain,
 * address extensions (recipient_delimiter), and address literals. Pure functions, no config.
 */
import { canonicalClientAddress, formatIp } from '../config/tables/address.js';

/** Split at the last `@`: `{ local, domain }`; domain null when there is none. */
export function splitAddress(address: string): { local: string; domain: string | null } {
  const at = address.lastIndexOf('@');
  if (at < 0) return { local: address, domain: null };
  return { local: address.slice(0, at), domain: address.slice(at + 1) };
}

export interface ExtensionOptions {
  /** recipient_delimiter: a set of characters; empty = no extensions. */
  readonly recipient_delimiter: string;
  /** owner_request_special. */
  readonly owner_request_special: boolean;
  /** double_bounce_sender. */
  readonly double_bounce_sender: string;
}

/**
 * split_addr(3): the local part without its extension, and the extension with its delimiter
 * (`user+foo` → `user`, `+foo`). postmaster, MAILER-DAEMON and double_bounce_sender are never
 * split; with `-` as a delimiter `owner-x` and `x-request` stay whole (owner_request_special);
 * a split that would leave an empty local part is not made.
 */
export function splitExtension(local: string, o: ExtensionOptions): { base: string; extension: string | null } {
  const none = { base: local, extension: null };
  const delims = o.recipient_delimiter;
  if (delims === '') return none;
  const lc = local.toLowerCase();
  if (lc === 'postmaster' || lc === 'mailer-daemon' || lc === o.double_bounce_sender.toLowerCase()) return none;
  if (delims.includes('-') && o.owner_request_special && (lc.startsWith('owner-') || (lc.length > 8 && lc.endsWith('-request')))) return none;
  let i = 0;
  while (i < local.length && !delims.includes(local[i]!)) i++;
  if (i === 0 || i === local.length) return none;
  return { base: local.slice(0, i), extension: local.slice(i) };
}

/** The address without its extension (for table lookups), or null when it has none. */
export function stripExtension(address: string, o: ExtensionOptions): string | null {
  const { local, domain } = splitAddress(address);
  const { base, extension } = splitExtension(local, o);
  if (extension === null) return null;
  return domain === null ? base : `${base}@${domain}`;
}

/** Put an extension back into an address (`x@y` + `+foo` → `x+foo@y`). */
export function addExtension(address: string, extension: string): string {
  const { local, domain } = splitAddress(address);
  return domain === null ? `${local}${extension}` : `${local}${extension}@${domain}`;
}

/**
 * An address literal `[1.2.3.4]` / `[IPv6:2001:db8::1]` (RFC 5321 4.1.3) → the canonical IP
 * text; null when `domain` is not a literal or not a valid one.
 */
export function literalAddress(domain: string): string | null {
  if (!domain.startsWith('[') || !domain.endsWith(']')) return null;
  const inner = domain.slice(1, -1);
  const v6 = /^ipv6:/i.test(inner);
  if (!v6 && inner.includes(':')) return null;
  const ip = canonicalClientAddress(inner);
  return ip === undefined ? null : formatIp(ip);
}

/** RFC 1035-ish host name check as Postfix valid_hostname (letters, digits, `-`, `_`, dots; UTF-8 allowed). */
export function validHostname(name: string): boolean {
  if (name.length === 0 || name.length > 255) return false;
  if (name.startsWith('.') || name.endsWith('.') || name.includes('..')) return false;
  for (const label of name.split('.')) {
    if (label.length === 0 || label.length > 63) return false;
    if (label.startsWith('-') || label.endsWith('-')) return false;
    if (!/^[\p{L}\p{N}_-]+$/u.test(label)) return false;
  }
  // All-numeric names are IP addresses written without brackets (valid_hostname rejects them).
  return !/^[0-9.]+$/.test(name);
}

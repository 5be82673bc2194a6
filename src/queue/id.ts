/**
 * Queue ids in Postfix's two formats (Postfix global/mail_queue.h, "MQID").
 *
 * Short (default): five upper-case hex digits of the microseconds of the creation time, then
 * the queue file's inode number in upper-case hex: `4516420F32` = usec 0x45164, inode 0x20F32.
 * Ids repeat over time (a later file may get the same inode and microsecond), but never among
 * files that exist at the same time: two existing files on one file system never share an
 * inode. That is why the id comes from the inode and why qmgr moves files only by rename.
 *
 * Long (`enable_long_queue_ids = yes`): seconds (base 52, at least six characters), then
 * microseconds (base 52, exactly four), then `z`, then the inode number in base 51 — all in
 * Postfix's "safe" alphabet without vowels, so an id never spells a word: `4fJ9Qs0bdqz1v`. Long
 * ids do not repeat.
 */

/** Postfix's safe alphabet: 10 digits, 21 upper- and 21 lower-case consonants (global/safe_ultostr.c). */
const SAFE_CHARS = '0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz';

/** Base-N in the safe alphabet, most significant digit first, left-padded with '0' to `pad`. */
export function safeUltostr(value: bigint, base: number, pad: number): string {
  if (base < 2 || base > SAFE_CHARS.length) throw new RangeError(`bad base: ${base}`);
  const b = BigInt(base);
  let v = value;
  let out = '';
  while (v > 0n) {
    out = SAFE_CHARS[Number(v % b)] + out;
    v /= b;
  }
  return out.padStart(pad, '0');
}

/** Inverse of safeUltostr; null when `s` holds a character outside the base. */
export function safeStrtoul(s: string, base: number): bigint | null {
  const b = BigInt(base);
  let v = 0n;
  for (const ch of s) {
    const d = SAFE_CHARS.indexOf(ch);
    if (d < 0 || d >= base) return null;
    v = v * b + BigInt(d);
  }
  return v;
}

/** The wall-clock time with microsecond resolution. */
export interface MicroTime {
  readonly sec: number;
  readonly usec: number;
}

export function microNow(): MicroTime {
  const us = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  return { sec: Math.floor(us / 1e6), usec: us % 1e6 };
}

/** Postfix MQID_SH_*: `%05X` microseconds + `%lX` inode. */
export function shortQueueId(t: MicroTime, inode: bigint): string {
  return t.usec.toString(16).toUpperCase().padStart(5, '0') + inode.toString(16).toUpperCase();
}

/** Postfix MQID_LG_*: seconds (base 52, pad 6) + usec (base 52, pad 4) + 'z' + inode (base 51). */
export function longQueueId(t: MicroTime, inode: bigint): string {
  return safeUltostr(BigInt(t.sec), 52, 6) + safeUltostr(BigInt(t.usec), 52, 4) + 'z' + safeUltostr(inode, 51, 0);
}

export function makeQueueId(long: boolean, t: MicroTime, inode: bigint): string {
  return long ? longQueueId(t, inode) : shortQueueId(t, inode);
}

const SHORT_RE = /^[0-9A-F]{6,}$/;
/** Time part: the whole safe alphabet; inode part: base 51, so without 'z'. */
const LONG_RE = /^[0-9BCDFGHJ-NP-TV-Zbcdfghj-np-tv-z]{10,}z[0-9BCDFGHJ-NP-TV-Zbcdfghj-np-tv-y]+$/;

/**
 * A well-formed queue id of either format (also what qmgr uses to skip anything else in a queue
 * directory, such as cleanup's temporary files, which contain a dot).
 */
export function isQueueId(s: string): boolean {
  if (s.length > 64) return false;
  return SHORT_RE.test(s) || LONG_RE.test(s);
}

/** The inode number encoded in a queue id, or null when the id is not well-formed. */
export function queueIdInode(id: string): bigint | null {
  if (LONG_RE.test(id)) return safeStrtoul(id.slice(id.lastIndexOf('z') + 1), 51);
  if (SHORT_RE.test(id)) return BigInt(`0x${id.slice(5)}`);
  return null;
}

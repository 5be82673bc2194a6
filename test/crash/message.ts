/**
 * Test messages that can prove they arrived whole, and the Maildir scan that checks them.
 *
 * Each message carries a token (unique per SMTP attempt) in its Message-ID, an X-Crash-Token
 * header and its first body line; then filler lines; then the SHA-256 of the filler lines and an
 * `end TOKEN` line. A delivered file is whole when the hash matches and the end line is the last
 * line: a file cut anywhere (or with lines of another message spliced in) fails.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Deterministic PRNG (mulberry32), so a failing run can be replayed from its printed seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ';

/** A message (CRLF line ends) whose body proves its own completeness. */
export function buildMessage(o: { token: string; from: string; to: readonly string[]; fillerLines: number; random: () => number }): string {
  const filler: string[] = [];
  for (let i = 0; i < o.fillerLines; i++) {
    let s = `line ${i} `;
    const n = 20 + Math.floor(o.random() * 60);
    for (let k = 0; k < n; k++) s += ALPHABET[Math.floor(o.random() * ALPHABET.length)];
    filler.push(s.trimEnd());
  }
  const sha = createHash('sha256').update(filler.join('\n')).digest('hex');
  return [
    `From: <${o.from}>`,
    `To: ${o.to.map((r) => `<${r}>`).join(', ')}`,
    `Subject: crash test ${o.token}`,
    `Message-ID: <${o.token}@crash.example>`,
    `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
    `X-Crash-Token: ${o.token}`,
    '',
    `token ${o.token}`,
    ...filler,
    `sha256 ${sha}`,
    `end ${o.token}`,
    '',
  ].join('\r\n');
}

export interface DeliveredFile {
  readonly file: string;
  /** The Maildir (relative to the mailbox base), e.g. `u1/`. */
  readonly mailbox: string;
  readonly token: string | null;
  /** null when whole; else what is wrong. */
  readonly problem: string | null;
  /** The Delivered-To: header's address, when present. */
  readonly deliveredTo: string | null;
}

/** Checks one delivered file (LF or CRLF line ends). */
export function checkDelivered(text: string): { token: string | null; problem: string | null; deliveredTo: string | null } {
  const lines = text.split(/\r?\n/);
  const blank = lines.indexOf('');
  if (blank < 0) return { token: null, problem: 'no end of header', deliveredTo: null };
  const header = lines.slice(0, blank);
  const tokenHeader = header.find((l) => /^X-Crash-Token:/i.test(l));
  const token = tokenHeader ? tokenHeader.replace(/^X-Crash-Token:\s*/i, '').trim() : null;
  const dt = header.find((l) => /^Delivered-To:/i.test(l));
  const deliveredTo = dt ? dt.replace(/^Delivered-To:\s*/i, '').trim() : null;
  if (token === null) return { token, problem: 'no X-Crash-Token header', deliveredTo };
  const body = lines.slice(blank + 1);
  while (body.length > 0 && body[body.length - 1] === '') body.pop();
  if (body[0] !== `token ${token}`) return { token, problem: 'first body line is not the token', deliveredTo };
  if (body[body.length - 1] !== `end ${token}`) return { token, problem: `last line is not "end ${token}" (truncated?)`, deliveredTo };
  const shaLine = body[body.length - 2] ?? '';
  const m = /^sha256 ([0-9a-f]{64})$/.exec(shaLine);
  if (!m) return { token, problem: 'no sha256 line', deliveredTo };
  const sha = createHash('sha256')
    .update(body.slice(1, body.length - 2).join('\n'))
    .digest('hex');
  if (sha !== m[1]) return { token, problem: 'body hash mismatch (a part is missing or changed)', deliveredTo };
  return { token, problem: null, deliveredTo };
}

/**
 * Every Maildir under `base`, recursively: a directory with any of cur/ new/ tmp/ counts (a crash
 * may leave one without all three; scanMaildirs reports those).
 */
export function findMaildirs(base: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return;
    }
    if (names.includes('new') || names.includes('cur') || names.includes('tmp')) out.push(dir);
    for (const n of names) {
      if (n === 'new' || n === 'cur' || n === 'tmp') continue;
      const p = path.join(dir, n);
      try {
        if (fs.statSync(p).isDirectory()) walk(p);
      } catch {
        // vanished
      }
    }
  };
  walk(base);
  return out.sort();
}

/**
 * The messages in new/ and cur/ of every Maildir under `base`, each checked; `incomplete` names
 * the Maildirs that lack one of cur/ new/ tmp/ (readers such as IMAP servers do not take them).
 */
export function scanMaildirs(base: string): { files: DeliveredFile[]; tmpLeftovers: number; incomplete: string[] } {
  const files: DeliveredFile[] = [];
  const incomplete: string[] = [];
  let tmpLeftovers = 0;
  const list = (dir: string): string[] | null => {
    try {
      return fs.readdirSync(dir);
    } catch {
      return null;
    }
  };
  for (const md of findMaildirs(base)) {
    const mailbox = `${path.relative(base, md)}/`;
    const missing = ['cur', 'new', 'tmp'].filter((s) => list(path.join(md, s)) === null);
    if (missing.length > 0) incomplete.push(`${mailbox} (no ${missing.join('/, ')}/)`);
    for (const sub of ['new', 'cur']) {
      const dir = path.join(md, sub);
      for (const name of list(dir) ?? []) {
        const file = path.join(dir, name);
        const text = fs.readFileSync(file, 'latin1');
        files.push({ file, mailbox, ...checkDelivered(text) });
      }
    }
    tmpLeftovers += (list(path.join(md, 'tmp')) ?? []).length;
  }
  return { files, tmpLeftovers, incomplete };
}

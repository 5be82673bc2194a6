/**
 * The one TLS summary log line both directions write (DESIGN invariant 5; reference 1.8; P
 * tls_misc.c tls_log_summary), and the TLS part of smtpd's Received: header (P smtpd.c, with
 * smtpd_tls_received_header = yes). Pure functions of the session facts.
 */

/** A signature summary: `RSA-PSS (2048 bits)` / `ECDSA (prime256v1)`, then the digest. */
export interface TlsSignature {
  /** `RSA-PSS`, `ECDSA`, `ED25519`, ... */
  readonly name: string;
  /** EC curve (`prime256v1`); printed instead of the bits when set. */
  readonly curve: string | null;
  /** Key size, printed for RSA keys only (Postfix sets it only there). */
  readonly bits: number;
  /** `SHA256`, or null (Ed25519 has none, resumed sessions don't sign). */
  readonly digest: string | null;
}

/** `key-exchange X25519` / `ECDHE (prime256v1)` / `DHE (2048 bits)`. */
export interface TlsKeyExchange {
  readonly name: string;
  readonly curve: string | null;
  readonly bits: number;
}

/** What the summary line and the Received: clause need; TlsSession satisfies it. */
export interface TlsSummaryFacts {
  readonly protocol: string;
  readonly cipher: string;
  readonly bits: number;
  readonly algBits: number;
  /** Server side: the SNI name accepted with tls_server_sni_maps (logged as ` to <sni>`). */
  readonly sni?: string | null;
  /** TLS 1.3 details (Postfix prints them only for TLS 1.3); null/absent = not known. */
  readonly keyExchange?: TlsKeyExchange | null;
  readonly serverSignature?: TlsSignature | null;
  readonly clientSignature?: TlsSignature | null;
}

function sigText(role: 'server' | 'client', s: TlsSignature): string {
  let out = ` ${role}-signature ${s.name}`;
  if (s.curve) out += ` (${s.curve})`;
  else if (s.bits > 0) out += ` (${s.bits} bits)`;
  if (s.digest) out += ` ${role}-digest ${s.digest}`;
  return out;
}

function kexText(k: TlsKeyExchange): string {
  let out = `key-exchange ${k.name}`;
  if (k.curve) out += ` (${k.curve})`;
  else if (k.bits > 0) out += ` (${k.bits} bits)`;
  return out;
}

/**
 * `Trusted TLS connection established from host[addr]: TLSv1.3 with cipher X (256/256 bits)
 * key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256`; smtp passes
 * direction `to` and `host[addr]:port`. The SNI suffix of the peer name is server-side only.
 */
export function tlsSummaryLine(o: {
  word: string;
  direction: 'from' | 'to';
  namaddr: string;
  session: TlsSummaryFacts;
  usage?: 'established' | 'reused';
}): string {
  const s = o.session;
  const sni = o.direction === 'from' && s.sni ? ` to ${s.sni}` : '';
  let line = `${o.word} TLS connection ${o.usage ?? 'established'} ${o.direction} ${o.namaddr}${sni}: ${s.protocol} with cipher ${s.cipher} (${s.bits}/${s.algBits} bits)`;
  if (s.keyExchange?.name) line += ` ${kexText(s.keyExchange)}`;
  if (s.serverSignature?.name) line += sigText('server', s.serverSignature);
  if (s.clientSignature?.name) line += sigText('client', s.clientSignature);
  return line;
}

/** What the Received: certificate line needs besides the summary facts. */
export interface ReceivedTlsFacts extends TlsSummaryFacts {
  readonly peerCert: boolean;
  readonly trusted: boolean;
  /** Subject CN (or a DNS SAN when there is no CN); '' when none. */
  readonly peerCN: string;
  /** Issuer CN (or O when there is no CN); '' when none. */
  readonly issuerCN: string;
  /** smtpd_tls_ask_ccert was set for this session. */
  readonly askedCcert: boolean;
}

/**
 * Printable ASCII only, no backslash, balanced parentheses: what may go inside a header comment
 * (P smtpd.c comment_sanitize()).
 */
export function commentSanitize(text: string): string {
  let depth = 0;
  let out = '';
  // Byte-wise like Postfix: each byte of a non-ASCII character becomes one '?'.
  for (const c of Buffer.from(text, 'utf8')) {
    if (c < 0x20 || c > 0x7e || c === 0x5c) out += '?';
    else if (c === 0x28) {
      depth++;
      out += '(';
    } else if (c === 0x29) {
      if (depth > 0) {
        depth--;
        out += ')';
      } else out += '?';
    } else out += String.fromCharCode(c);
  }
  return out + ')'.repeat(depth);
}

/**
 * The Received: header lines Postfix adds after `Received: from helo (name [addr])` when
 * smtpd_tls_received_header = yes, without the leading tab of each folded line, e.g.
 * `(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)`,
 * ` key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)`,
 * `(No client certificate requested)`.
 */
export function receivedTlsLines(s: ReceivedTlsFacts): string[] {
  const lines: string[] = [];
  let cur = `(using ${s.protocol} with cipher ${s.cipher} (${s.bits}/${s.algBits} bits)`;
  let cont = false;
  if (s.keyExchange?.name) {
    lines.push(cur);
    cur = ` ${kexText(s.keyExchange)}`;
    cont = true;
  }
  if (s.serverSignature?.name) {
    const text = sigText('server', s.serverSignature);
    if (cont) cur += text;
    else {
      lines.push(cur);
      cur = text;
    }
  }
  if (s.clientSignature?.name) {
    lines.push(cur);
    cur = sigText('client', s.clientSignature);
  }
  lines.push(`${cur})`);
  if (s.peerCert) {
    lines.push(`(Client CN "${commentSanitize(s.peerCN)}", Issuer "${commentSanitize(s.issuerCN)}" (${s.trusted ? 'verified OK' : 'not verified'}))`);
  } else if (s.askedCcert) lines.push('(Client did not present a certificate)');
  else lines.push('(No client certificate requested)');
  return lines;
}

/**
 * receivedTlsLines() folded for a header: lines joined with CRLF + TAB. Insert it after
 * `Received: from helo (name [addr])\r\n\t` and follow it with `\r\n\tby ...`.
 */
export function receivedTlsClause(s: ReceivedTlsFacts): string {
  return receivedTlsLines(s).join('\r\n\t');
}

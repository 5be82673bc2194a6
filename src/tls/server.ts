/**
 * Server-side TLS for smtpd (STARTTLS and wrappermode): one SmtpdTls per service, built from its
 * Params. It decides the level (level.ts), loads keys, certificate chains and client-certificate
 * trust, builds the Node SecureContext (protocol range, Postfix's cipher list, renegotiation off),
 * upgrades a plain socket, and logs Postfix's lines for it (reference 1.8): `setting up TLS
 * connection from H[A]`, `H[A]: TLS cipher list "…"` (loglevel 2), the summary line (loglevel 1),
 * `SSL_accept error from H[A]: …` and `warning: TLS library problem: …` (always).
 *
 * Certificates are re-read on reload() (SIGHUP) and when their files change (directories are
 * watched, so Let's Encrypt's symlink swaps under live/ are seen); sessions already established
 * keep their context; a broken new file keeps the previous context with a warning.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import type * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import type { Params } from '../config/types.js';
import { type LookupTable, openTable, type Table } from '../config/tables/index.js';
import { ConfigError, PosternError } from '../errors.js';
import type { Logger } from '../log/index.js';
import { strerror } from '../log/strerror.js';
import { cipherBits, cipherList, type SmtpdCipherParams, smtpdCipherPolicy } from './ciphers.js';
import { type ClientHello, groupKeyExchange, negotiatedGroup, readClientHello, type ServerGroups, serverGroups } from './client-hello.js';
import { type SmtpdLevelParams, type SmtpdTlsLevel, smtpdTlsLevel } from './level.js';
import { TLS_LOG_CACHE, TLS_LOG_PEERCERT, TLS_LOG_SUMMARY, TLS_LOG_UNTRUSTED, TLS_LOG_VERBOSE, tlsLogMask } from './log-level.js';
import { type KeyChain, type RootRead, readCaFile, readCaPath, readCertKey, readChainFiles } from './pem.js';
import { type ProtocolRange, protocolRange } from './protocols.js';
import { type ReceivedTlsFacts, type TlsKeyExchange, type TlsSignature, tlsSummaryLine } from './summary.js';

export type SmtpdTlsParams = SmtpdLevelParams &
  SmtpdCipherParams &
  Pick<
    Params,
    | 'smtpd_tls_auth_only'
    | 'smtpd_tls_ask_ccert'
    | 'smtpd_tls_req_ccert'
    | 'smtpd_tls_cert_file'
    | 'smtpd_tls_key_file'
    | 'smtpd_tls_chain_files'
    | 'smtpd_tls_dcert_file'
    | 'smtpd_tls_dkey_file'
    | 'smtpd_tls_eccert_file'
    | 'smtpd_tls_eckey_file'
    | 'smtpd_tls_CAfile'
    | 'smtpd_tls_CApath'
    | 'smtpd_tls_protocols'
    | 'smtpd_tls_mandatory_protocols'
    | 'smtpd_tls_loglevel'
    | 'smtpd_tls_session_cache_timeout'
    | 'smtpd_tls_fingerprint_digest'
    | 'smtpd_starttls_timeout'
    | 'tls_server_sni_maps'
    | 'tls_preempt_cipherlist'
    | 'tls_append_default_CA'
    | 'tls_eecdh_auto_curves'
  >;

/** A completed server-side handshake. */
export interface TlsSession extends ReceivedTlsFacts {
  readonly socket: tls.TLSSocket;
  /** `TLSv1.3`, `TLSv1.2`, ... */
  readonly protocol: string;
  /** OpenSSL name: `TLS_AES_256_GCM_SHA384`, `ECDHE-RSA-AES128-GCM-SHA256`. */
  readonly cipher: string;
  readonly bits: number;
  readonly algBits: number;
  /** The client sent a certificate (DESIGN 7: decided by a non-empty getPeerCertificate()). */
  readonly peerCert: boolean;
  /** The client certificate chains to smtpd_tls_CAfile/_CApath (OpenSSL's verify result). */
  readonly trusted: boolean;
  /** smtpd never says Verified (the server never matches a client name). */
  readonly summaryWord: 'Anonymous' | 'Untrusted' | 'Trusted' | 'Verified';
  /** The SNI name accepted with tls_server_sni_maps; null without SNI maps or SNI. */
  readonly sni: string | null;
  readonly keyExchange: TlsKeyExchange | null;
  readonly serverSignature: TlsSignature | null;
  readonly clientSignature: TlsSignature | null;
  /** Client certificate subject CN, issuer CN (or O); '' without a certificate. */
  readonly peerCN: string;
  readonly issuerCN: string;
  /** A certificate was requested (smtpd_tls_ask_ccert, or req_ccert with encrypt). */
  readonly askedCcert: boolean;
  /** `AA:BB:…` with smtpd_tls_fingerprint_digest, for check_ccert_access / relay_clientcerts; '' without a certificate. */
  readonly peerCertFingerprint: string;
  readonly peerPkeyFingerprint: string;
  /** OpenSSL's verification error code (`UNABLE_TO_GET_ISSUER_CERT_LOCALLY`), null when trusted or no certificate. */
  readonly verifyError: string | null;
  readonly reused: boolean;
}

/** upgrade() was called while TLS is not available (smtpd should have replied 454 4.7.0). */
export class TlsUnavailableError extends PosternError {
  constructor(message: string) {
    super('tls-unavailable', message);
  }
}

/** One loaded set of credentials; in-flight handshakes keep the one they started with. */
interface Generation {
  readonly context: tls.SecureContext;
  /** createSecureContext options without key/cert, for SNI contexts. */
  readonly base: tls.SecureContextOptions;
  readonly sniTables: readonly LookupTable[];
  readonly sniContexts: Map<string, Promise<tls.SecureContext>>;
  /** Files whose change triggers a reload. */
  readonly files: readonly string[];
}

export interface SmtpdTlsOptions {
  /** Watch certificate files and reload on change (default true). */
  readonly watch?: boolean;
  /** Quiet time after the last file event before reloading (default 1000 ms). */
  readonly debounceMs?: number;
  /**
   * After the master dropped root: reads the files this process may no longer open (a root-only
   * privkey.pem), so a reload still sees a renewed certificate (../master/root-reader.ts).
   */
  readonly rootRead?: RootRead;
}

const SSL_OP_NO_RENEGOTIATION = crypto.constants.SSL_OP_NO_RENEGOTIATION ?? 0x40000000;

export class SmtpdTls {
  readonly level: SmtpdTlsLevel;
  readonly wrapper: boolean;
  /** A client certificate is requested (CertificateRequest sent). */
  readonly askCcert: boolean;
  /** smtpd must abort the session without a trusted client certificate (req_ccert with encrypt). */
  readonly requireCcert: boolean;
  /** No AUTH before STARTTLS (smtpd_tls_auth_only, implied by encrypt). */
  readonly authOnly: boolean;
  /** TLS can be started (level ≠ none, a usable server certificate). Else STARTTLS ⇒ 454 4.7.0. */
  available = false;
  /** The OpenSSL cipher list as Postfix composes it (what loglevel 2 prints); '' when invalid. */
  cipherListText = '';
  /** Protocol range in use; null when TLS is unavailable. */
  protocols: ProtocolRange | null = null;
  readonly logMask: number;

  private readonly params: SmtpdTlsParams;
  private readonly log: Logger;
  private readonly opts: SmtpdTlsOptions;
  private readonly mandatory: boolean;
  /** Postfix's per-session warning when the cipher list cannot be built. */
  private cipherError: string | null = null;
  private gen: Generation | null = null;
  private certPairs: readonly (readonly [string, string])[] = [];
  private chainFiles: readonly string[] = [];
  private ecdhCurve: string | undefined;
  /** The server's TLS groups as OpenSSL holds them (for the TLS 1.3 key-exchange name). */
  private groups: ServerGroups = { tuples: [], serverPreference: false, tupleRules: false };
  private digest = 'sha256';
  private watchers = new Map<string, { watcher: fs.FSWatcher; names: Set<string> }>();
  private reloadTimer: NodeJS.Timeout | null = null;
  private reloading: Promise<boolean> = Promise.resolve(true);
  private closed = false;
  private verifyApiWarned = false;

  private constructor(params: SmtpdTlsParams, log: Logger, opts: SmtpdTlsOptions) {
    this.params = params;
    this.log = log;
    this.opts = opts;
    this.level = smtpdTlsLevel(params, log);
    this.wrapper = params.smtpd_tls_wrappermode;
    this.mandatory = this.level === 'encrypt';
    this.requireCcert = params.smtpd_tls_req_ccert && this.mandatory;
    this.askCcert = params.smtpd_tls_ask_ccert || this.requireCcert;
    this.authOnly = params.smtpd_tls_auth_only || this.mandatory;
    this.logMask = tlsLogMask('smtpd_tls_loglevel', params.smtpd_tls_loglevel, (t) => log.warning(t));
  }

  /**
   * Builds the TLS side of one smtpd service. Logs Postfix's configuration warnings on `log`.
   * Throws ConfigError when a configured certificate, key or CA file cannot be read or used.
   */
  static async create(params: SmtpdTlsParams, log: Logger, opts: SmtpdTlsOptions = {}): Promise<SmtpdTls> {
    const t = new SmtpdTls(params, log, opts);
    if (t.level !== 'none') await t.init();
    return t;
  }

  private async init(): Promise<void> {
    const p = this.params;
    const log = this.log;
    // Which certificates (P smtpd.c, TLS server init): chain files win over the legacy pairs.
    const noCertOk = p.smtpd_tls_cert_file.toLowerCase() === 'none';
    const certFile = noCertOk ? '' : p.smtpd_tls_cert_file;
    const legacy: [string, string][] = [];
    if (certFile !== '') legacy.push([certFile, p.smtpd_tls_key_file || certFile]);
    if (p.smtpd_tls_eccert_file !== '') legacy.push([p.smtpd_tls_eccert_file, p.smtpd_tls_eckey_file || p.smtpd_tls_eccert_file]);
    if (p.smtpd_tls_dcert_file !== '') legacy.push([p.smtpd_tls_dcert_file, p.smtpd_tls_dkey_file || p.smtpd_tls_dcert_file]);
    let haveCert = legacy.length > 0;
    if (p.smtpd_tls_chain_files.length > 0) {
      if (haveCert) {
        // Postfix's text, double spaces included.
        log.warning(
          'Both smtpd_tls_chain_files and one or more of the legacy  smtpd_tls_cert_file, smtpd_tls_eccert_file or smtpd_tls_dcert_file are non-empty; the legacy  parameters will be ignored',
        );
      }
      haveCert = true;
      this.chainFiles = p.smtpd_tls_chain_files;
    } else {
      this.certPairs = legacy;
    }
    if (!haveCert && this.askCcert) log.warning('Need a server cert to request client certs');
    if (!this.mandatory && p.smtpd_tls_req_ccert) log.warning("Can't require client certs unless TLS is required");
    if (!haveCert && !(noCertOk && !this.askCcert)) {
      log.warning("No server certs available. TLS won't be enabled");
      return;
    }

    const protoParam = this.mandatory ? 'smtpd_tls_mandatory_protocols' : 'smtpd_tls_protocols';
    try {
      this.protocols = protocolRange(p[protoParam]);
    } catch (err) {
      log.warning(`${(err as Error).message}: disabling TLS support`);
      return;
    }
    for (const note of this.protocols.notes) log.warning(`${protoParam}: ${note}`);

    if (!crypto.getHashes().includes(p.smtpd_tls_fingerprint_digest.toLowerCase())) {
      log.warning(`Digest algorithm "${p.smtpd_tls_fingerprint_digest}" not found`);
      log.warning('disabling TLS support');
      return;
    }
    this.digest = p.smtpd_tls_fingerprint_digest.toLowerCase();

    try {
      this.cipherListText = cipherList(smtpdCipherPolicy(p, { mandatory: this.mandatory, askClientCert: this.askCcert }), p);
    } catch (err) {
      this.cipherError = (err as Error).message;
    }
    this.ecdhCurve = eecdhCurves(p.tls_eecdh_auto_curves, log);
    this.groups = serverGroups(this.ecdhCurve, { serverPreference: p.tls_preempt_cipherlist });

    this.gen = await this.load();
    this.available = true;
    if (this.opts.watch !== false) this.watch(this.gen.files);
  }

  /** createSecureContext options shared by the default and the SNI contexts. */
  private async baseOptions(): Promise<tls.SecureContextOptions> {
    const p = this.params;
    const ca: string[] = [];
    if (p.smtpd_tls_CAfile !== '') ca.push(...(await readCaFile(p.smtpd_tls_CAfile, this.opts.rootRead)));
    if (p.smtpd_tls_CApath !== '') ca.push(...(await readCaPath(p.smtpd_tls_CApath)));
    // tls_append_default_CA = no (Postfix's default): only the configured CAs. An empty array keeps
    // Node from loading its bundled root store.
    if (p.tls_append_default_CA) ca.push(...tls.rootCertificates);
    const range = this.protocols!;
    const ciphers = this.cipherError === null ? this.cipherListText : 'DEFAULT';
    return {
      ca,
      // OpenSSL 3 refuses TLSv1/1.1 above security level 0 (DESIGN 7).
      ciphers: range.legacy ? `${ciphers}:@SECLEVEL=0` : ciphers,
      minVersion: range.minVersion,
      maxVersion: range.maxVersion,
      // Client-initiated renegotiation is refused, as Postfix does (Node allows it by default).
      secureOptions: SSL_OP_NO_RENEGOTIATION,
      honorCipherOrder: p.tls_preempt_cipherlist,
      ...(this.ecdhCurve !== undefined ? { ecdhCurve: this.ecdhCurve } : {}),
      ...(p.smtpd_tls_session_cache_timeout > 0 ? { sessionTimeout: p.smtpd_tls_session_cache_timeout } : {}),
    };
  }

  /** Reads every file and builds a new Generation; throws ConfigError on any problem. */
  private async load(): Promise<Generation> {
    const p = this.params;
    const base = await this.baseOptions();
    let pairs: KeyChain[];
    const rootRead = this.opts.rootRead;
    if (this.chainFiles.length > 0) pairs = await readChainFiles(this.chainFiles, rootRead);
    else pairs = await Promise.all(this.certPairs.map(([c, k]) => readCertKey(c, k, rootRead)));
    for (const pair of pairs) checkPair(pair);
    let context: tls.SecureContext;
    try {
      context = tls.createSecureContext({ ...base, key: pairs.map((k) => k.key), cert: pairs.map((k) => k.certs.join('')) });
    } catch (err) {
      if (this.cipherError === null && /cipher/i.test((err as Error).message)) {
        // An OpenSSL-rejected list: Postfix warns per session and refuses TLS there.
        this.cipherError = `error setting cipher grade: "${this.mandatory ? p.smtpd_tls_mandatory_ciphers : p.smtpd_tls_ciphers}"`;
        return this.load();
      }
      throw new ConfigError(pairs[0]?.certFile ?? 'main.cf', 0, `cannot use the TLS configuration: ${opensslReason(err)}`);
    }
    const sniTables: Table[] = p.tls_server_sni_maps.map((spec) => openTable(spec));
    for (const t of sniTables) for (const w of t.warnings) this.log.warning(w);
    const files = [
      ...this.chainFiles,
      ...this.certPairs.flat(),
      ...(p.smtpd_tls_CAfile !== '' ? [p.smtpd_tls_CAfile] : []),
      ...(p.smtpd_tls_CApath !== '' ? [path.join(p.smtpd_tls_CApath, '*')] : []),
      ...sniTables.flatMap((t) => (t.path !== undefined ? [t.path] : [])),
    ];
    return { context, base, sniTables, sniContexts: new Map(), files };
  }

  /**
   * Upgrades a plain socket: after `220 2.0.0 Ready to start TLS` (STARTTLS), or at accept in
   * wrappermode. Resolves when the handshake is done. On failure it logs Postfix's SSL_accept
   * lines, destroys the socket and rejects (smtpd then logs `lost connection after STARTTLS`).
   * Throws TlsUnavailableError without touching the socket when `available` is false.
   * The caller must have discarded plaintext pipelined after STARTTLS (CVE-2011-0411): bytes
   * still buffered in `socket` are fed to the TLS engine.
   */
  upgrade(socket: net.Socket, o: { clientName: string; clientAddr: string; log: Logger }): Promise<TlsSession> {
    const gen = this.gen;
    if (!this.available || gen === null || this.closed) return Promise.reject(new TlsUnavailableError('TLS not available due to local problem'));
    const namaddr = `${o.clientName}[${o.clientAddr}]`;
    const log = o.log;
    const verbose = (this.logMask & TLS_LOG_VERBOSE) !== 0;
    if (verbose) log.info(`setting up TLS connection from ${namaddr}`);
    if (this.cipherError !== null) {
      log.warning(`${namaddr}: ${this.cipherError}`);
      socket.destroy();
      return Promise.reject(new TlsUnavailableError(this.cipherError));
    }
    if (verbose) log.info(`${namaddr}: TLS cipher list "${this.cipherListText}"`);
    if (socket.destroyed) {
      log.info(sslAcceptErrorLines(namaddr, 'eof')[0]!);
      return Promise.reject(new PosternError('tls-handshake', `TLS handshake with ${namaddr} failed: lost connection`));
    }

    return new Promise<TlsSession>((resolve, reject) => {
      let sni: string | null = null;
      const SNICallback =
        gen.sniTables.length > 0
          ? (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
              this.selectSni(gen, servername, namaddr, log).then(
                (r) => {
                  sni = r.sni;
                  cb(null, r.context);
                },
                (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
              );
            }
          : undefined;
      let s: tls.TLSSocket | null = null;
      let settled = false;
      const finish = (): void => {
        settled = true;
        clearTimeout(timer);
        if (s === null) return;
        s.off('error', onError);
        s.off('close', onClose);
        // An error after the handshake is the session's to handle; never let it crash the process.
        s.on('error', ignore);
      };
      const fail = (what: Error | 'timeout' | 'eof'): void => {
        if (settled) return;
        cancelRead();
        finish();
        (s ?? socket).destroy();
        for (const line of sslAcceptErrorLines(namaddr, what)) {
          if (line.startsWith('warning: ')) log.warning(line.slice(9));
          else log.info(line);
        }
        const reason = what === 'timeout' ? 'Connection timed out' : what === 'eof' ? 'lost connection' : what.message.trim() || 'handshake failure';
        reject(new PosternError('tls-handshake', `TLS handshake with ${namaddr} failed: ${reason}`));
      };
      const onError = (err: Error): void => fail(err);
      const onClose = (): void => fail('eof');
      const timer = setTimeout(() => fail('timeout'), Math.max(1, this.params.smtpd_starttls_timeout) * 1000);
      /** Hands the socket, with every byte the client sent, to the TLS engine. */
      const handshake = (hello: ClientHello | null): void => {
        const t = new tls.TLSSocket(socket, {
          isServer: true,
          secureContext: gen.context,
          requestCert: this.askCcert,
          rejectUnauthorized: false,
          ...(SNICallback ? { SNICallback } : {}),
        });
        s = t;
        t.disableRenegotiation();
        t.on('error', onError);
        t.once('close', onClose);
        t.once('secure', () => {
          if (settled) return;
          finish();
          let session: TlsSession;
          try {
            session = this.sessionOf(t, sni, namaddr, log, hello);
          } catch (err) {
            t.destroy();
            reject(err);
            return;
          }
          resolve(session);
        });
      };
      // The ClientHello tells which TLS 1.3 group OpenSSL picks (client-hello.ts); Node does not.
      let cancelRead = (): void => {};
      cancelRead = readClientHello(socket, (r) => {
        if (settled) return;
        if (r.ended) fail(r.error ?? 'eof');
        else handshake(r.hello);
      });
    });
  }

  /** Collects the session facts and logs the post-handshake lines (P tls_server_post_accept). */
  private sessionOf(s: tls.TLSSocket, sni: string | null, namaddr: string, log: Logger, hello: ClientHello | null): TlsSession {
    const mask = this.logMask;
    const cipherInfo = s.getCipher();
    const protocol = s.getProtocol() ?? cipherInfo.version;
    let { bits, algBits } = cipherBits(cipherInfo.name);
    if (bits === 0 && algBits === 0 && cipherInfo.standardName) ({ bits, algBits } = cipherBits(cipherInfo.standardName));
    const reused = s.isSessionReused();
    if (reused && (mask & TLS_LOG_CACHE) !== 0) log.info(`${namaddr}: Reusing old session`);

    const pc = s.getPeerCertificate(true);
    const peerCert = pc !== null && pc !== undefined && Object.keys(pc).length > 0;
    let peerCN = '';
    let issuerCN = '';
    let fingerprint = '';
    let pkeyFingerprint = '';
    let verifyError: string | null = null;
    let peerX509: crypto.X509Certificate | null = null;
    if (peerCert) {
      peerX509 = new crypto.X509Certificate(pc.raw);
      verifyError = this.verifyResult(s);
      peerCN = firstValue(pc.subject?.CN);
      issuerCN = firstValue(pc.issuer?.CN) || firstValue(pc.issuer?.O);
      fingerprint = colonHex(crypto.createHash(this.digest).update(pc.raw).digest());
      pkeyFingerprint = colonHex(crypto.createHash(this.digest).update(peerX509.publicKey.export({ type: 'spki', format: 'der' })).digest());
      if ((mask & TLS_LOG_VERBOSE) !== 0) {
        log.info(`subject=${onelineName(peerX509.subject)}`);
        log.info(`issuer=${onelineName(peerX509.issuer)}`);
      }
      if ((mask & (TLS_LOG_VERBOSE | TLS_LOG_PEERCERT)) !== 0) {
        log.info(`${namaddr}: subject_CN=${peerCN}, issuer=${issuerCN}, fingerprint=${fingerprint}, pkey_fingerprint=${pkeyFingerprint}`);
      }
      if (verifyError !== null && ((mask & TLS_LOG_UNTRUSTED) !== 0 || this.requireCcert)) {
        log.info(verifyErrorLine(namaddr, verifyError, pc));
      }
    }
    const trusted = peerCert && verifyError === null;

    // TLS 1.3 details (Postfix prints them for TLS 1.3 only; P tls_get_signature_params()).
    let keyExchange: TlsKeyExchange | null = null;
    let serverSignature: TlsSignature | null = null;
    let clientSignature: TlsSignature | null = null;
    if (protocol === 'TLSv1.3') {
      // A future Node may report the group on server sockets; until then, OpenSSL's choice for
      // the ClientHello this client sent.
      keyExchange = keyExchangeOf(s.getEphemeralKeyInfo());
      if (keyExchange === null && hello !== null) {
        const group = negotiatedGroup(hello, this.groups, { reused });
        keyExchange = group === null ? null : groupKeyExchange(group);
      }
      const sigalgs = s.getSharedSigalgs();
      const mine = s.getCertificate();
      if (mine && 'raw' in mine && Buffer.isBuffer(mine.raw)) {
        serverSignature = signatureOf(new crypto.X509Certificate(mine.raw).publicKey, reused ? [] : sigalgs);
      }
      if (peerX509 !== null) clientSignature = signatureOf(peerX509.publicKey, reused ? [] : sigalgs);
    }
    const session: TlsSession = {
      socket: s,
      protocol,
      cipher: cipherInfo.name,
      bits,
      algBits,
      peerCert,
      trusted,
      summaryWord: !peerCert ? 'Anonymous' : trusted ? 'Trusted' : 'Untrusted',
      sni,
      keyExchange,
      serverSignature,
      clientSignature,
      peerCN,
      issuerCN,
      askedCcert: this.askCcert,
      peerCertFingerprint: fingerprint,
      peerPkeyFingerprint: pkeyFingerprint,
      verifyError,
      reused,
    };
    if ((mask & TLS_LOG_SUMMARY) !== 0) log.info(tlsSummaryLine({ word: session.summaryWord, direction: 'from', namaddr, session }));
    return Object.freeze(session);
  }

  /**
   * OpenSSL's verify result for the client certificate. A standalone server TLSSocket never sets
   * `authorized` (tls.Server does, from the same native call), so ask the handle; if a future
   * Node lacks it, every certificate counts as untrusted (never wrongly trusted).
   */
  private verifyResult(s: tls.TLSSocket): string | null {
    const handle = (s as unknown as { ssl?: { verifyError?: () => (Error & { code?: string }) | null } }).ssl;
    if (typeof handle?.verifyError !== 'function') {
      if (!this.verifyApiWarned) {
        this.verifyApiWarned = true;
        this.log.warning('this Node.js version does not report the client certificate verification result; treating client certificates as untrusted');
      }
      return 'UNKNOWN';
    }
    const err = handle.verifyError();
    return err === null ? null : (err.code ?? err.message);
  }

  /** tls_server_sni_maps: the verbatim name, then each parent domain with a leading dot. */
  private async selectSni(gen: Generation, servername: string, namaddr: string, log: Logger): Promise<{ sni: string | null; context: tls.SecureContext | undefined }> {
    if (!validHostname(servername)) {
      log.warning(`TLS SNI from ${namaddr} is invalid: ${servername}`);
      return { sni: null, context: undefined };
    }
    let value: string | undefined;
    try {
      value = lookupSni(gen.sniTables, servername.toLowerCase());
    } catch (err) {
      log.warning(`tls_server_sni_maps: ${servername} map lookup problem`);
      throw err;
    }
    if (value === undefined) {
      log.info(`TLS SNI ${servername} from ${namaddr} not matched, using default chain`);
      return { sni: servername, context: undefined };
    }
    let pending = gen.sniContexts.get(value);
    if (pending === undefined) {
      pending = this.sniContext(gen, value);
      gen.sniContexts.set(value, pending);
      pending.catch(() => gen.sniContexts.delete(value!));
    }
    try {
      return { sni: servername, context: await pending };
    } catch (err) {
      log.warning(`tls_server_sni_maps: cannot load the key and certificate chain for ${servername}: ${(err as Error).message}`);
      throw err;
    }
  }

  private async sniContext(gen: Generation, value: string): Promise<tls.SecureContext> {
    const files = value.split(/[\s,]+/).filter((f) => f !== '');
    const pairs = await readChainFiles(files);
    for (const pair of pairs) checkPair(pair);
    if (this.opts.watch !== false && this.gen === gen) this.watch(files);
    return tls.createSecureContext({ ...gen.base, key: pairs.map((k) => k.key), cert: pairs.map((k) => k.certs.join('')) });
  }

  /**
   * Re-reads keys, certificates, CAs and SNI tables. New handshakes use them; established
   * sessions keep theirs. On failure the previous credentials stay, with a warning. Resolves true
   * when the new files are in use.
   */
  reload(): Promise<boolean> {
    this.reloading = this.reloading.then(async () => {
      if (!this.available || this.closed) return false;
      try {
        const gen = await this.load();
        if (this.closed) return false;
        this.gen = gen;
        if (this.opts.watch !== false) this.watch(gen.files);
        return true;
      } catch (err) {
        this.log.warning(`cannot reload TLS keys and certificates: ${(err as Error).message}; keeping the previous ones`);
        return false;
      }
    });
    return this.reloading;
  }

  /** Watches the directories of `files` (a name of `*` watches the whole directory). */
  private watch(files: readonly string[]): void {
    for (const file of files) {
      const dir = path.dirname(path.resolve(file));
      const name = path.basename(file);
      let w = this.watchers.get(dir);
      if (w === undefined) {
        let watcher: fs.FSWatcher;
        try {
          watcher = fs.watch(dir, { persistent: false }, (_event, changed) => {
            const entry = this.watchers.get(dir);
            if (entry === undefined) return;
            const n = changed === null ? null : changed.toString();
            if (n === null || entry.names.has('*') || entry.names.has(n)) this.scheduleReload();
          });
        } catch {
          continue; // a directory that does not exist (yet) cannot be watched; SIGHUP still reloads
        }
        watcher.on('error', () => {
          watcher.close();
          this.watchers.delete(dir);
        });
        w = { watcher, names: new Set() };
        this.watchers.set(dir, w);
      }
      w.names.add(name);
    }
  }

  private scheduleReload(): void {
    if (this.closed) return;
    if (this.reloadTimer !== null) clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = null;
      void this.reload();
    }, this.opts.debounceMs ?? 1000);
    this.reloadTimer.unref();
  }

  /** Stops watching files. Established sessions are not touched. */
  close(): void {
    this.closed = true;
    if (this.reloadTimer !== null) clearTimeout(this.reloadTimer);
    this.reloadTimer = null;
    for (const w of this.watchers.values()) w.watcher.close();
    this.watchers.clear();
  }
}

function ignore(): void {}

/** Key/certificate match, checked per pair so the message names the files. */
function checkPair(pair: KeyChain): void {
  let matches: boolean;
  try {
    // OpenSSL only compares a key with a certificate of the same algorithm; check explicitly.
    matches = new crypto.X509Certificate(pair.certs[0]!).checkPrivateKey(crypto.createPrivateKey(pair.key));
  } catch (err) {
    throw new ConfigError(pair.certFile, 0, `cannot use the certificate with the private key in ${pair.keyFile}: ${opensslReason(err)}`);
  }
  if (!matches) throw new ConfigError(pair.certFile, 0, `the certificate does not match the private key in ${pair.keyFile}`);
  try {
    tls.createSecureContext({ key: pair.key, cert: pair.certs.join('') });
  } catch (err) {
    const what = /KEY_VALUES_MISMATCH|key values mismatch/i.test(`${(err as { code?: string }).code} ${(err as Error).message}`)
      ? `the certificate does not match the private key in ${pair.keyFile}`
      : `cannot use the certificate with the private key in ${pair.keyFile}: ${opensslReason(err)}`;
    throw new ConfigError(pair.certFile, 0, what);
  }
}

/** `reason` of an OpenSSL error message (`error:05800074:x509 certificate routines::key values mismatch` ⇒ `key values mismatch`). */
function opensslReason(err: unknown): string {
  const e = err as { reason?: unknown; message?: unknown };
  if (typeof e.reason === 'string' && e.reason !== '') return e.reason;
  return String(e.message ?? err).trim();
}

function lookupSni(tables: readonly LookupTable[], name: string): string | undefined {
  let key: string | null = name;
  while (key !== null) {
    for (const t of tables) {
      const v = t.get(key);
      if (v !== undefined) return v;
    }
    const dot = key.indexOf('.', key.startsWith('.') ? 1 : 0);
    key = dot < 0 ? null : key.slice(dot);
  }
  return undefined;
}

/** Postfix valid_hostname(): letters, digits, `-`, `_`; labels of 1-63; ≤ 255; not all-numeric. */
function validHostname(name: string): boolean {
  if (name.length === 0 || name.length > 255) return false;
  const labels = name.split('.');
  if (labels.some((l) => !/^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(l))) return false;
  return !labels.every((l) => /^[0-9]+$/.test(l));
}

/** tls_eecdh_auto_curves → Node's ecdhCurve; unknown names are warned about and skipped. */
const curveOk = new Map<string, boolean>();
function eecdhCurves(curves: readonly string[], log: Logger): string | undefined {
  const ok: string[] = [];
  let unknown = 0;
  for (const c of curves.flatMap((s) => s.split(/[\s,]+/)).filter((s) => s !== '')) {
    let good = curveOk.get(c);
    if (good === undefined) {
      try {
        tls.createSecureContext({ ecdhCurve: c });
        good = true;
      } catch {
        good = false;
      }
      curveOk.set(c, good);
    }
    if (good) ok.push(c);
    else {
      unknown++;
      log.warning(`ignoring unknown ECDHE curve "${c}"`);
    }
  }
  if (ok.length === 0) {
    if (unknown > 0) log.warning('none of the configured ECDHE curves are supported');
    return undefined;
  }
  return ok.join(':');
}

function firstValue(v: string | string[] | undefined): string {
  if (v === undefined) return '';
  return Array.isArray(v) ? (v[0] ?? '') : v;
}

function colonHex(b: Buffer): string {
  return b.toString('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:');
}

/** X509Certificate.subject (`C=DE\nO=Org\nCN=x`) in X509_NAME_oneline form (`/C=DE/O=Org/CN=x`). */
function onelineName(multiline: string): string {
  return multiline
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => `/${l}`)
    .join('')
    .replace(/[^\x20-\x7e]/g, '?');
}

/** OpenSSL X509_V_ERR_* numbers for the codes Node reports. */
const X509_ERR: Readonly<Record<string, number>> = {
  UNABLE_TO_GET_ISSUER_CERT: 2,
  UNABLE_TO_GET_CRL: 3,
  UNABLE_TO_DECRYPT_CERT_SIGNATURE: 4,
  UNABLE_TO_DECRYPT_CRL_SIGNATURE: 5,
  UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY: 6,
  CERT_SIGNATURE_FAILURE: 7,
  CRL_SIGNATURE_FAILURE: 8,
  CERT_NOT_YET_VALID: 9,
  CERT_HAS_EXPIRED: 10,
  CRL_NOT_YET_VALID: 11,
  CRL_HAS_EXPIRED: 12,
  ERROR_IN_CERT_NOT_BEFORE_FIELD: 13,
  ERROR_IN_CERT_NOT_AFTER_FIELD: 14,
  OUT_OF_MEM: 17,
  DEPTH_ZERO_SELF_SIGNED_CERT: 18,
  SELF_SIGNED_CERT_IN_CHAIN: 19,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 20,
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 21,
  CERT_CHAIN_TOO_LONG: 22,
  CERT_REVOKED: 23,
  INVALID_CA: 24,
  PATH_LENGTH_EXCEEDED: 25,
  INVALID_PURPOSE: 26,
  CERT_UNTRUSTED: 27,
  CERT_REJECTED: 28,
};

/** Postfix's tls_log_verify_error() line for a client certificate (depth unknown: taken as 0). */
function verifyErrorLine(namaddr: string, code: string, pc: tls.DetailedPeerCertificate): string {
  switch (code) {
    case 'CERT_UNTRUSTED':
      return `certificate verification failed for ${namaddr}: not trusted by local or TLSA policy`;
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return `certificate verification failed for ${namaddr}: self-signed certificate`;
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'SELF_SIGNED_CERT_IN_CHAIN': {
      // The issuer of the last certificate of the presented chain.
      let top = pc;
      const seen = new Set<tls.DetailedPeerCertificate>();
      while (top.issuerCertificate && top.issuerCertificate !== top && !seen.has(top.issuerCertificate)) {
        seen.add(top);
        top = top.issuerCertificate;
      }
      const issuer = new crypto.X509Certificate(top.raw).issuer;
      if (code !== 'UNABLE_TO_VERIFY_LEAF_SIGNATURE') return `certificate verification failed for ${namaddr}: untrusted issuer ${onelineName(issuer)}`;
      return `client certificate verification failed for ${namaddr}: num=${X509_ERR[code]}:unable to verify the first certificate`;
    }
    case 'CERT_NOT_YET_VALID':
    case 'ERROR_IN_CERT_NOT_BEFORE_FIELD':
      return `client certificate verification failed for ${namaddr}: certificate not yet valid`;
    case 'CERT_HAS_EXPIRED':
    case 'ERROR_IN_CERT_NOT_AFTER_FIELD':
      return `client certificate verification failed for ${namaddr}: certificate has expired`;
    case 'INVALID_PURPOSE':
      return `certificate verification failed for ${namaddr}: not designated for use as a client certificate`;
    default: {
      const num = Object.hasOwn(X509_ERR, code) ? X509_ERR[code] : 1;
      return `client certificate verification failed for ${namaddr}: num=${num}:${code.toLowerCase().replace(/_/g, ' ')}`;
    }
  }
}

/** Node's getEphemeralKeyInfo() (null on server sockets up to at least Node 24) in Postfix's terms. */
function keyExchangeOf(info: tls.EphemeralKeyInfo | object | null): TlsKeyExchange | null {
  if (info === null || typeof info !== 'object' || !('type' in info)) return null;
  const k = info as tls.EphemeralKeyInfo;
  // Node ≥ 24 (OpenSSL 3.5) says `TLSGroup` for ML-KEM groups (X25519MLKEM768) on client sockets.
  if ((k.type as string) === 'TLSGroup' && k.name) return { name: k.name, curve: null, bits: 0 };
  if (k.type === 'ECDH' && k.name) {
    return k.name === 'X25519' || k.name === 'X448' ? { name: k.name, curve: null, bits: 0 } : { name: 'ECDHE', curve: k.name, bits: 0 };
  }
  if (k.type === 'DH') return { name: 'DHE', curve: null, bits: k.size };
  return null;
}

/** TLS 1.3 ECDSA signature schemes bind the curve to the digest. */
const EC_DIGEST: Readonly<Record<string, string>> = { prime256v1: 'SHA256', secp384r1: 'SHA384', secp521r1: 'SHA512' };

/**
 * Postfix's names for a TLS 1.3 signature by this key: RSA ⇒ `RSA-PSS (N bits)` (TLS 1.3 signs
 * RSA keys with PSS), EC ⇒ `ECDSA (curve)`, Ed25519 ⇒ `ED25519`. The digest is the first shared
 * signature algorithm (getSharedSigalgs(), the peer's preference order, which is how OpenSSL picks)
 * usable with the key; none when the list is empty (resumed session).
 */
function signatureOf(key: crypto.KeyObject, sigalgs: readonly string[]): TlsSignature | null {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  const digestFor = (prefix: string): string | null => {
    const hit = sigalgs.find((a) => a.startsWith(`${prefix}+`));
    const d = hit?.slice(prefix.length + 1);
    return d && d !== 'UNDEF' ? d : null;
  };
  switch (type) {
    case 'rsa':
      return { name: 'RSA-PSS', curve: null, bits: details.modulusLength ?? 0, digest: digestFor('RSA-PSS') };
    case 'rsa-pss':
      return { name: 'RSASSA-PSS', curve: null, bits: 0, digest: digestFor('RSA-PSS') };
    case 'ec': {
      const curve = details.namedCurve ?? null;
      const digest = sigalgs.length === 0 ? null : ((curve !== null && Object.hasOwn(EC_DIGEST, curve) ? EC_DIGEST[curve] : null) ?? digestFor('ECDSA'));
      return { name: 'ECDSA', curve, bits: 0, digest };
    }
    case undefined:
      return null;
    default:
      return { name: type.toUpperCase(), curve: null, bits: 0, digest: null };
  }
}

const OPENSSL_LINE = /^(?:[0-9A-F]+:)?error:([0-9A-F]{8}):([^:]*):[^:]*:([^:]*):([^:]*):(\d+):(.*)$/;

/**
 * OpenSSL errors inside a Node error, in Postfix's tls_print_errors() form:
 * `TLS library problem: error:0A000102:SSL routines::unsupported protocol:ssl/statem/statem_srvr.c:1664:`.
 * Empty when the error is not an OpenSSL one.
 */
export function tlsLibraryProblems(err: unknown): string[] {
  const e = err as { message?: unknown; opensslErrorStack?: unknown };
  const texts: string[] = [];
  if (typeof e?.message === 'string') texts.push(...e.message.split('\n'));
  if (Array.isArray(e?.opensslErrorStack)) texts.push(...e.opensslErrorStack.filter((x): x is string => typeof x === 'string'));
  const out: string[] = [];
  for (const t of texts) {
    const m = OPENSSL_LINE.exec(t.trim());
    if (!m) continue;
    const data = m[6]!.replace(/:$/, '');
    out.push(`TLS library problem: error:${m[1]}:${m[2]}::${m[3]}:${m[4]}:${m[5]}:${data !== '' ? `${data}:` : ''}`);
  }
  return out;
}

/**
 * Logs the `warning: TLS library problem: …` lines for an error on an established TLS socket
 * (e.g. a refused renegotiation); true when it was an OpenSSL error.
 */
export function logTlsError(log: Logger, err: unknown): boolean {
  const lines = tlsLibraryProblems(err);
  for (const l of lines) log.warning(l);
  return lines.length > 0;
}

/** Postfix's lines for a failed SSL_accept (P tls_server.c), `warning: ` prefixed where Postfix warns. */
export function sslAcceptErrorLines(namaddr: string, what: Error | 'timeout' | 'eof'): string[] {
  const head = `SSL_accept error from ${namaddr}: `;
  if (what === 'timeout') return [`${head}Connection timed out`];
  if (what === 'eof') return [`${head}lost connection`];
  const problems = tlsLibraryProblems(what);
  if (problems.length > 0) return [`${head}-1`, ...problems.map((p) => `warning: ${p}`)];
  const code = (what as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return [`${head}${strerror(what)}`];
  return [`${head}${what.message}`];
}

/**
 * tls/ — Postern's TLS policy library (DESIGN invariant 5): security levels, protocol ranges,
 * Postfix's cipher-grade lists, key/certificate loading and reload, the server-side upgrade used
 * by smtpd (STARTTLS, wrappermode), and the one TLS summary log line both directions write.
 *
 * In: Params (smtpd_tls_*, tls_*), PEM files named there, lookup tables (tls_server_sni_maps).
 * Out: SecureContexts, TlsSession facts, Postfix-format log lines through the caller's Logger.
 * Touches on disk: reads (never writes) key, certificate and CA files; watches their directories.
 * Trusts: the files the administrator configured; nothing a peer sends.
 * RFCs: 3207 (STARTTLS), 8446 (TLS 1.3), 5246 (TLS 1.2), 6066 §3 (SNI), 5746 (renegotiation).
 * main.cf: smtpd_tls_security_level smtpd_use_tls smtpd_enforce_tls smtpd_tls_wrappermode
 *   smtpd_tls_auth_only smtpd_tls_ask_ccert smtpd_tls_req_ccert smtpd_tls_cert_file
 *   smtpd_tls_key_file smtpd_tls_chain_files smtpd_tls_eccert_file smtpd_tls_eckey_file
 *   smtpd_tls_dcert_file smtpd_tls_dkey_file smtpd_tls_CAfile smtpd_tls_CApath smtpd_tls_protocols
 *   smtpd_tls_mandatory_protocols smtpd_tls_ciphers smtpd_tls_mandatory_ciphers
 *   smtpd_tls_exclude_ciphers smtpd_tls_mandatory_exclude_ciphers smtpd_tls_loglevel
 *   smtpd_tls_session_cache_timeout smtpd_tls_fingerprint_digest smtpd_starttls_timeout
 *   tls_server_sni_maps tls_{high,medium,low,export,null}_cipherlist tls_preempt_cipherlist
 *   tls_append_default_CA tls_eecdh_auto_curves
 */
export { type CipherGrade, type CipherPolicy, cipherBits, cipherList, smtpdCipherPolicy } from './ciphers.js';
export { type SmtpdTlsLevel, smtpdTlsLevel } from './level.js';
export {
  TLS_LOG_ALLPKTS,
  TLS_LOG_CACHE,
  TLS_LOG_CERTMATCH,
  TLS_LOG_DANE,
  TLS_LOG_DEBUG,
  TLS_LOG_NONE,
  TLS_LOG_PEERCERT,
  TLS_LOG_SUMMARY,
  TLS_LOG_TLSPKTS,
  TLS_LOG_UNTRUSTED,
  TLS_LOG_VERBOSE,
  tlsLogMask,
} from './log-level.js';
export { type KeyChain, pemBlocks, type RootRead, readCaFile, readCaPath, readCertKey, readChainFiles } from './pem.js';
export { type ProtocolRange, protocolRange } from './protocols.js';
export {
  logTlsError,
  SmtpdTls,
  type SmtpdTlsOptions,
  type SmtpdTlsParams,
  sslAcceptErrorLines,
  type TlsSession,
  TlsUnavailableError,
  tlsLibraryProblems,
} from './server.js';
export {
  commentSanitize,
  type ReceivedTlsFacts,
  receivedTlsClause,
  receivedTlsLines,
  type TlsKeyExchange,
  type TlsSignature,
  type TlsSummaryFacts,
  tlsSummaryLine,
} from './summary.js';

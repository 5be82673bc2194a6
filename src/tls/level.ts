/**
 * smtpd TLS security level (reference 1.1, 1.3; P smtpd.c main-time setup): `none`, `may`,
 * `encrypt`. An empty `smtpd_tls_security_level` falls back to the legacy booleans
 * (`smtpd_enforce_tls` ⇒ encrypt, `smtpd_use_tls` ⇒ may). The client-only levels
 * `fingerprint`, `verify`, `secure` run as `encrypt` with Postfix's warning. Wrapper mode (port
 * 465) ignores the level and always enforces TLS.
 */
import type { Params } from '../config/types.js';
import { PosternError } from '../errors.js';
import type { Logger } from '../log/index.js';

export type SmtpdTlsLevel = 'none' | 'may' | 'encrypt';

export type SmtpdLevelParams = Pick<Params, 'smtpd_tls_security_level' | 'smtpd_use_tls' | 'smtpd_enforce_tls' | 'smtpd_tls_wrappermode'>;

export function smtpdTlsLevel(params: SmtpdLevelParams, log?: Logger): SmtpdTlsLevel {
  if (params.smtpd_tls_wrappermode) return 'encrypt';
  // The registry may type this as a narrower union; the client-only levels are still handled.
  const level: string = params.smtpd_tls_security_level;
  switch (level.toLowerCase()) {
    case '':
      return params.smtpd_enforce_tls ? 'encrypt' : params.smtpd_use_tls ? 'may' : 'none';
    case 'none':
      return 'none';
    case 'may':
      return 'may';
    case 'encrypt':
      return 'encrypt';
    case 'fingerprint':
    case 'verify':
    case 'secure':
      log?.warning(`smtpd_tls_security_level: unsupported TLS level "${level}", using "encrypt"`);
      return 'encrypt';
    default:
      throw new PosternError('tls-level', `Invalid TLS level "${level}"`);
  }
}

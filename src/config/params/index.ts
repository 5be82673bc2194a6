/**
 * THE parameter registry: every main.cf parameter Postern supports, with Postfix 3.7's default
 * (as `postconf -d` prints it), its type, owning daemon and a one-line doc.
 */
import { bool, int, list, oneOf, size, str, tables, time } from './define.js';

export const PARAMS = {
  // filled in by the foundation work; see ./define.ts for the constructors
  myhostname: str('', 'global', 'The internet hostname of this mail system.'),
  smtpd_tls_security_level: oneOf(['', 'none', 'may', 'encrypt'] as const, '', 'smtpd', 'The SMTP TLS security level for the Postern SMTP server.'),
  inet_protocols: list('all', 'global', 'The Internet protocols Postern will attempt to use when making or accepting connections.'),
  smtpd_tls_ask_ccert: bool('no', 'smtpd', 'Ask a remote SMTP client for a client certificate.'),
  smtpd_timeout: time('${stress?{10}:{300}}s', 'smtpd', 'The time limit for sending a server response and for receiving a client request.'),
  message_size_limit: size('10240000', 'global', 'The maximal size in bytes of a message, including envelope information.'),
  default_process_limit: int('100', 'master', 'The default maximal number of processes per service.'),
  mydestination: tables('$myhostname, localhost.$mydomain, localhost', 'global', 'The list of domains delivered via the local transport.'),
} as const;

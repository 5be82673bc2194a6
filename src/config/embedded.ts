/**
 * The embedded default configuration that `npm start` (`postern run --embedded`) runs on: a
 * complete, private instance under ./var of the current directory, on unprivileged loopback ports,
 * so a fresh clone runs without root and without touching /etc.
 *
 *   ./var/etc/main.cf, master.cf   written on first start only; edit them freely (never overwritten)
 *   ./var/etc/tls/cert.pem, key.pem  a self-signed certificate for myhostname, made on first start
 *                                  (src/tls/self-signed.ts; never overwritten; delete both to renew)
 *   ./var/queue                    queue_directory
 *   ./var/data                     data_directory
 *   ./var/mail                     mail_spool_directory and virtual_mailbox_base
 *
 * Ports (127.0.0.1 and ::1 only):
 *   2525  smtp        (Postfix: smtp 25; STARTTLS offered)
 *   2587  submission  (Postfix: submission 587; STARTTLS offered)
 *   2465  smtps       (Postfix: smtps/submissions 465, TLS from the first byte)
 *   2143  imap        (Dovecot: imap 143)
 *   2993  imaps       (Dovecot: imaps 993)
 *
 * Later issues extend these texts (certificates, users, ...): keep every embedded default here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureSelfSigned, type SelfSignedFiles } from '../tls/self-signed.js';
import { paramsFrom } from './index.js';

/** Marker replaced by the absolute ./var directory when the files are written. */
const VAR = '@VAR@';

export const EMBEDDED_MAIN_CF = `# Postern embedded configuration (written by \`postern run --embedded\`, i.e. \`npm start\`).
# This file is yours: Postern never overwrites it. Delete it to get the current default back.
# Same grammar and names as Postfix's main.cf; \`postern postconf -c ${VAR}/etc -n\` shows it.

compatibility_level = 3.6
myhostname = localhost
mynetworks = 127.0.0.0/8 [::1]/128

# Listen on loopback only, on both IPv4 and IPv6 (one socket each).
inet_interfaces = loopback-only
inet_protocols = all

# Everything this instance writes stays under ${VAR}.
queue_directory = ${VAR}/queue
data_directory = ${VAR}/data
mail_spool_directory = ${VAR}/mail
virtual_mailbox_base = ${VAR}/mail

# No system alias database (Postfix's default is nis:mail.aliases and /etc/aliases); add yours
# here, e.g. alias_maps = hash:${VAR}/etc/aliases (read from the text file, no postmap needed).
alias_maps =
alias_database =

# Started as root, Postern binds its ports and then runs as this user.
mail_owner = nobody

# Opportunistic TLS (STARTTLS on 2525 and 2587, TLS from the first byte on 2465) with a
# self-signed certificate for $myhostname that Postern made on first start. A real server uses
# its own certificate chain instead, for example Let's Encrypt's:
#   smtpd_tls_cert_file = /etc/letsencrypt/live/example.com/fullchain.pem
#   smtpd_tls_key_file = /etc/letsencrypt/live/example.com/privkey.pem
smtpd_tls_security_level = may
smtpd_tls_cert_file = ${VAR}/etc/tls/cert.pem
smtpd_tls_key_file = ${VAR}/etc/tls/key.pem
smtpd_tls_loglevel = 1

# Log lines (Postfix format) on standard output.
maillog_file = /dev/stdout
`;

export const EMBEDDED_MASTER_CF = `# Postern embedded master.cf: Postfix's services on unprivileged ports (see main.cf for the addresses).
# ==========================================================================
# service type  private unpriv  chroot  wakeup  maxproc command + args
#               (yes)   (yes)   (no)    (never) (100)
# ==========================================================================
2525      inet  n       -       n       -       -       smtpd
2587      inet  n       -       n       -       -       smtpd
  -o syslog_name=postfix/submission
2465      inet  n       -       n       -       -       smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
2143      inet  n       -       n       -       -       imapd
2993      inet  n       -       n       -       -       imapd
# The queue manager and the delivery agents it runs (Postfix's unix services; Postern runs the
# ones it implements inside qmgr, the others are accepted and ignored).
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
  -o syslog_name=postfix/$service_name
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
`;

/** Ports of the embedded services, for docs and tests. */
export const EMBEDDED_PORTS: Readonly<Record<string, number>> = { smtp: 2525, submission: 2587, smtps: 2465, imap: 2143, imaps: 2993 };

/** The data directories of the embedded instance, relative to its var directory. */
export const EMBEDDED_DATA_DIRS: readonly string[] = ['queue', 'data', 'mail'];

/** main.cf text for a var directory. A `$` in the path is written `$$` (main.cf expands `$name`). */
export function embeddedMainCf(varDir: string): string {
  const escaped = varDir.split('$').join('$$');
  return EMBEDDED_MAIN_CF.replaceAll(VAR, () => escaped);
}

function writeIfAbsent(file: string, text: string): boolean {
  try {
    fs.writeFileSync(file, text, { flag: 'wx', mode: 0o644 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/**
 * Creates `varDir` (absolute or relative to the cwd) with etc/main.cf, etc/master.cf and the data
 * directories when they are missing; existing files are left exactly as they are. Returns the
 * configuration directory (`<varDir>/etc`, absolute) and what was created.
 */
export function materializeEmbedded(varDir: string): { configDir: string; varDir: string; created: string[]; certificate: SelfSignedFiles | null } {
  const root = path.resolve(varDir);
  const configDir = path.join(root, 'etc');
  const created: string[] = [];
  fs.mkdirSync(configDir, { recursive: true, mode: 0o755 });
  const mainCf = path.join(configDir, 'main.cf');
  if (writeIfAbsent(mainCf, embeddedMainCf(root))) created.push(mainCf);
  const masterCf = path.join(configDir, 'master.cf');
  if (writeIfAbsent(masterCf, EMBEDDED_MASTER_CF)) created.push(masterCf);
  for (const d of EMBEDDED_DATA_DIRS) {
    const dir = path.join(root, d);
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
      created.push(dir);
    }
  }
  return { configDir, varDir: root, created, certificate: embeddedCertificate(configDir, mainCf) };
}

/**
 * The self-signed certificate of the embedded instance, made when main.cf (as the admin left it)
 * still points smtpd_tls_cert_file at <configDir>/tls/cert.pem; null when it points elsewhere.
 * A main.cf that does not parse is reported by loadConfig() afterwards; here it means "localhost".
 */
function embeddedCertificate(configDir: string, mainCf: string): SelfSignedFiles | null {
  const tlsDir = path.join(configDir, 'tls');
  let hostname = 'localhost';
  try {
    const params = paramsFrom(fs.readFileSync(mainCf, 'utf8'), mainCf);
    if (path.resolve(configDir, params.smtpd_tls_cert_file) !== path.join(tlsDir, 'cert.pem')) return null;
    hostname = params.myhostname;
  } catch {
    // fall through with the default name
  }
  return ensureSelfSigned(tlsDir, { hostname });
}

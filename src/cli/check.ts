/**
 * `postern check`: everything `postern run` would refuse or trip over, found without starting
 * anything (cf. `postfix check`). Exit 0 when there is no error, 1 otherwise.
 *
 * Reports, on standard error, one line each:
 *   postern: fatal: FILE, line N: ...       the configuration does not load (nothing else is checked)
 *   postern: warning: ...                   config warnings (unused parameters, ...)
 *   postern: error: ... / warning: ...      per smtpd service with TLS (smtpd_tls_security_level may or
 *                                           encrypt, legacy smtpd_use_tls/smtpd_enforce_tls, or
 *                                           smtpd_tls_wrappermode=yes) or with certificate files set:
 *                                           the certificate/key findings of src/tls/certs.ts
 *                                           (smtpd_tls_chain_files, else smtpd_tls_cert_file/key_file,
 *                                           eccert/eckey and dcert/dkey), the CAfile/CApath
 *   postern: error: inet_protocols ...      a family named explicitly that the host has no address for
 *   postern: error: open maillog_file ...   a log file that cannot be opened for append
 *   postern check: N errors, M warnings
 *
 * inet_protocols: `all` takes whatever families the host has, silently (Postfix's inet_proto.c only
 * drops a family the kernel does not support); naming `ipv6` (or `ipv4`) on a host without any
 * address of that family is an error, because every socket of that family would fail to bind.
 *
 * Reads main.cf/master.cf, the certificate, key and CA files, and stats maillog_file's directory.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../config/index.js';
import type { Config, MasterService, Params } from '../config/types.js';
import { checkUserDb } from '../auth/index.js';
import { ConfigError, PosternError } from '../errors.js';
import { strerror } from '../log/strerror.js';
import { parseInetProtocols } from '../master/listen.js';
import { checkCertificates, checkChainFiles, type Finding } from '../tls/certs.js';
import { type SmtpdTlsLevel, smtpdTlsLevel } from '../tls/level.js';
import type { CliContext } from './context.js';

const USAGE = `usage: postern [-c config_dir] check

Reports configuration errors, certificate and key problems (missing, unreadable, not matching,
leaf-only chain, expired or expiring within 14 days) and inet_protocols families this host lacks.
Exit status 0 when there is no error, 1 otherwise.
`;

export type Interfaces = NodeJS.Dict<os.NetworkInterfaceInfo[]>;

export interface CheckOptions {
  /** The host's addresses (default os.networkInterfaces()); tests pass their own. */
  readonly interfaces?: Interfaces;
  /** "Now" for certificate dates (default: the clock). */
  readonly now?: Date;
}

/** The smtpd TLS facts of one set of effective parameters. */
function smtpdTls(p: Params): { level: SmtpdTlsLevel; wrapper: boolean } {
  // The one smtpd level policy (DESIGN invariant 5): legacy smtpd_use_tls/enforce_tls, wrappermode.
  return { level: smtpdTlsLevel(p), wrapper: p.smtpd_tls_wrappermode };
}

/** Findings about the TLS files of one smtpd service (or of main.cf when master.cf has no smtpd). */
function checkSmtpdTls(p: Params, now: Date | undefined): { findings: Finding[]; serviceFindings: Finding[] } {
  const findings: Finding[] = [];
  const serviceFindings: Finding[] = [];
  const { level, wrapper } = smtpdTls(p);
  const tlsOn = level !== 'none' || wrapper;
  const certNone = p.smtpd_tls_cert_file.toLowerCase() === 'none';
  const certFile = certNone ? '' : p.smtpd_tls_cert_file;
  const legacySet = certFile !== '' || p.smtpd_tls_eccert_file !== '' || p.smtpd_tls_dcert_file !== '';
  const chainSet = p.smtpd_tls_chain_files.length > 0;
  if (!tlsOn && !legacySet && !chainSet) return { findings, serviceFindings };

  const ca = {
    caFile: p.smtpd_tls_CAfile,
    caPath: p.smtpd_tls_CApath,
    caFileLabel: 'smtpd_tls_CAfile',
    caPathLabel: 'smtpd_tls_CApath',
    ...(now !== undefined ? { now } : {}),
  };
  if (chainSet) {
    if (legacySet) {
      // smtpd.c: the same warning, word for word.
      serviceFindings.push({
        severity: 'warning',
        message:
          'Both smtpd_tls_chain_files and one or more of the legacy smtpd_tls_cert_file, smtpd_tls_eccert_file or smtpd_tls_dcert_file are non-empty; the legacy parameters will be ignored',
      });
    }
    findings.push(...checkChainFiles({ files: p.smtpd_tls_chain_files, label: 'smtpd_tls_chain_files', ...ca }));
  } else if (legacySet) {
    const pairs: [string, string, string, string][] = [
      [certFile, p.smtpd_tls_key_file, 'smtpd_tls_cert_file', 'smtpd_tls_key_file'],
      [p.smtpd_tls_eccert_file, p.smtpd_tls_eckey_file, 'smtpd_tls_eccert_file', 'smtpd_tls_eckey_file'],
      [p.smtpd_tls_dcert_file, p.smtpd_tls_dkey_file, 'smtpd_tls_dcert_file', 'smtpd_tls_dkey_file'],
    ];
    for (const [cert, key, certLabel, keyLabel] of pairs) {
      if (cert === '') continue;
      findings.push(...checkCertificates({ certFile: cert, keyFile: key, certLabel, keyLabel, ...ca }));
    }
  } else if (!certNone) {
    const why = wrapper ? 'smtpd_tls_wrappermode = yes' : `smtpd_tls_security_level = ${level}`;
    if (level === 'encrypt' || wrapper) {
      serviceFindings.push({
        severity: 'error',
        message: `${why}, but no server certificate: set smtpd_tls_cert_file and smtpd_tls_key_file (or smtpd_tls_chain_files); every TLS handshake would fail`,
      });
    } else {
      // smtpd.c's warning; the server then runs without STARTTLS.
      serviceFindings.push({ severity: 'warning', message: `${why}, but no server certificate (smtpd_tls_cert_file is empty): No server certs available. TLS won't be enabled` });
    }
  } else if (p.smtpd_tls_ask_ccert) {
    serviceFindings.push({ severity: 'warning', message: 'smtpd_tls_cert_file = none: Need a server cert to request client certs' });
  }
  return { findings, serviceFindings };
}

/** Families the host has at least one address of (loopback included). */
function hostFamilies(interfaces: Interfaces): { ipv4: boolean; ipv6: boolean } {
  let ipv4 = false;
  let ipv6 = false;
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) {
      // Node 18.0-18.3 reported family as a number.
      const family = String(a.family);
      if (family === 'IPv4' || family === '4') ipv4 = true;
      if (family === 'IPv6' || family === '6') ipv6 = true;
    }
  }
  return { ipv4, ipv6 };
}

function checkInetProtocols(config: Config, interfaces: Interfaces): Finding[] {
  const named = config.params.inet_protocols.map((v) => v.toLowerCase());
  let wanted: { ipv4: boolean; ipv6: boolean };
  try {
    wanted = parseInetProtocols(config.params.inet_protocols, config);
  } catch (err) {
    if (err instanceof PosternError) return [{ severity: 'error', message: err.message }];
    throw err;
  }
  if (named.includes('all')) return [];
  const have = hostFamilies(interfaces);
  const setting = config.settings.get('inet_protocols');
  const where = setting !== undefined ? `${setting.file}, line ${setting.line}: ` : '';
  const findings: Finding[] = [];
  for (const [family, label] of [
    ['ipv4', 'IPv4'],
    ['ipv6', 'IPv6'],
  ] as const) {
    if (wanted[family] && !have[family]) {
      findings.push({
        severity: 'error',
        message: `${where}inet_protocols = ${config.params.inet_protocols.join(', ')} names ${family}, but this host has no ${label} address: every ${label} socket would fail to bind`,
      });
    }
  }
  return findings;
}

/** Can `postern run` open maillog_file for append? Checked without creating it. */
function checkMaillogFile(p: Params): Finding[] {
  const file = p.maillog_file;
  if (file === '' || file === '/dev/stdout' || file === '/dev/stderr') return [];
  try {
    if (fs.existsSync(file)) {
      if (fs.statSync(file).isDirectory()) return [{ severity: 'error', message: `open maillog_file "${file}": Is a directory` }];
      fs.accessSync(file, fs.constants.W_OK);
    } else {
      fs.accessSync(path.dirname(file), fs.constants.W_OK | fs.constants.X_OK);
    }
  } catch (err) {
    return [{ severity: 'error', message: `open maillog_file "${file}": ${strerror(err)}` }];
  }
  return [];
}

function serviceLabel(s: MasterService): string {
  return `${s.file}, line ${s.line}: service ${s.name}`;
}

/**
 * Every finding for a loaded configuration, in order: config warnings, TLS, inet_protocols,
 * maillog_file. Identical findings (services sharing main.cf's files) appear once.
 */
export function checkConfig(config: Config, o: CheckOptions = {}): Finding[] {
  const out: Finding[] = config.warnings.map((message) => ({ severity: 'warning', message }));
  const seen = new Set<string>();
  const add = (f: Finding) => {
    const key = `${f.severity}\0${f.message}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push(f);
  };
  const smtpd = config.services.filter((s) => s.command.slice(s.command.lastIndexOf('/') + 1) === 'smtpd');
  // Without an smtpd in master.cf, main.cf's TLS settings still deserve a look (an admin checking
  // certificates before writing master.cf); messages then name main.cf.
  const targets: { label: string; params: Params }[] =
    smtpd.length > 0 ? smtpd.map((s) => ({ label: serviceLabel(s), params: s.params })) : [{ label: config.mainCfPath, params: config.params }];
  // Service-specific findings that several services share are merged into one line naming them all.
  const perService = new Map<string, { severity: Finding['severity']; labels: string[] }>();
  for (const t of targets) {
    const { findings, serviceFindings } = checkSmtpdTls(t.params, o.now);
    for (const f of findings) add(f);
    for (const f of serviceFindings) {
      const e = perService.get(f.message) ?? { severity: f.severity, labels: [] };
      e.labels.push(t.label);
      perService.set(f.message, e);
    }
  }
  for (const [message, e] of perService) add({ severity: e.severity, message: `${e.labels.join('; ')}: ${message}` });
  // SMTP AUTH on without a readable user database: `postern run` would refuse to start.
  for (const s of smtpd) {
    const why = checkUserDb(s.params);
    if (why !== null) add({ severity: 'error', message: `${serviceLabel(s)}: ${why}` });
  }
  for (const f of checkInetProtocols(config, o.interfaces ?? os.networkInterfaces())) add(f);
  for (const f of checkMaillogFile(config.params)) add(f);
  return out;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** `postern check` with injectable host facts (tests). */
export async function runCheck(args: string[], ctx: CliContext, o: CheckOptions = {}): Promise<number> {
  for (const a of args) {
    if (a === '-h' || a === '--help') {
      ctx.stdout.write(USAGE);
      return 0;
    }
    ctx.stderr.write(`postern: fatal: check: unknown argument "${a}"\n${USAGE}`);
    return 1;
  }
  let config: Config;
  try {
    config = await loadConfig({ configDir: ctx.configDir, env: ctx.env });
  } catch (err) {
    if (!(err instanceof ConfigError) && !(err instanceof PosternError)) throw err;
    ctx.stderr.write(`postern: fatal: ${err.message}\npostern check: 1 error, 0 warnings\n`);
    return 1;
  }
  const findings = checkConfig(config, o);
  let errors = 0;
  for (const f of findings) {
    if (f.severity === 'error') errors++;
    ctx.stderr.write(`postern: ${f.severity}: ${f.message}\n`);
  }
  ctx.stderr.write(`postern check: ${plural(errors, 'error')}, ${plural(findings.length - errors, 'warning')}\n`);
  return errors === 0 ? 0 : 1;
}

export async function main(args: string[], ctx: CliContext): Promise<number> {
  return runCheck(args, ctx);
}

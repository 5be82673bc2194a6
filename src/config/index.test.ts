// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${name}` is Postfix's macro syntax in these strings, not a template.
import * as assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError } from '../errors.js';
import { defaultValues, isParamName, loadConfig, paramsFrom, transportParam } from './index.js';
import { IGNORED } from './params/ignored.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const SEED = join(ROOT, 'test', 'fixtures', 'config', 'seed');
const HOST = { hostname: 'mx1.example.net' };

async function withDir(files: Record<string, string>, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-config-'));
  try {
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('config: the seed main.cf loads with every value typed and no warning', async () => {
  const c = await loadConfig({ configDir: SEED, host: HOST });
  // The only warnings: the seed's smtp client settings, which Postern keeps but cannot act on yet.
  const smtp = ['smtp_tls_security_level = may', 'smtp_tls_loglevel = 1', 'smtp_tls_ciphers = export', 'smtp_tls_protocols = !SSLv2, !SSLv3', 'smtp_tls_CAfile = /etc/pki/tls/certs/ca-bundle.crt', 'smtp_address_preference = ipv6'];
  assert.deepEqual(
    c.warnings.map((w) => w.replace(/^.*main\.cf, line \d+: /, '')),
    smtp.map((l) => `Postern ignores parameter: ${l.replace(' = ', '=')} (the smtp client is not built yet: mail for remote destinations stays deferred)`),
  );
  const p = c.params;
  assert.equal(p.smtp_tls_security_level, 'may');
  assert.equal(p.smtp_tls_loglevel, '1');
  assert.equal(p.smtp_tls_ciphers, 'export');
  assert.deepEqual(p.smtp_tls_protocols, ['!SSLv2', '!SSLv3']);
  assert.equal(p.smtpd_tls_ask_ccert, true);
  assert.equal(p.smtpd_tls_ciphers, 'high');
  assert.deepEqual(p.smtpd_tls_exclude_ciphers, ['aNULL', 'MD5', 'EXPORT']);
  assert.equal(p.smtpd_tls_key_file, '/etc/letsencrypt/live/example.com/privkey.pem');
  assert.equal(p.smtp_address_preference, 'ipv6');
  assert.deepEqual(p.mynetworks, ['127.0.0.0/8', '158.255.214.14/31', '[2a01:7a0:10:158:255:214:14::]/112']);
  assert.deepEqual(p.inet_protocols, ['all']);
  assert.equal(p.config_directory, SEED);
  assert.equal(c.settings.size, 18);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(p) && Object.isFrozen(c.services));
});

test('config: defaults are typed (time in seconds with the parameter\'s unit, $name expanded)', () => {
  const p = paramsFrom('myhostname = mx.example.com\n', 'main.cf', { host: HOST });
  assert.equal(p.smtpd_timeout, 300);
  assert.equal(p.maximal_queue_lifetime, 5 * 86400);
  assert.equal(p.delay_warning_time, 0);
  assert.equal(p.smtpd_banner, 'mx.example.com ESMTP Postfix');
  assert.deepEqual(p.mydestination, ['mx.example.com', 'localhost.example.com', 'localhost']);
  assert.equal(p.mydomain, 'example.com');
  assert.equal(p.myorigin, 'mx.example.com');
  assert.equal(p.syslog_name, 'postfix');
  assert.equal(p.smtpd_forbid_unauth_pipelining, true);
  assert.equal(p.smtpd_forbid_bare_newline, 'normalize');
  assert.equal(p.smtpd_client_ipv6_prefix_length, 84);
  assert.equal(p.stress, '');
  assert.equal(p.smtpd_hard_error_limit, 20);
  // compatibility_level 0 (Postfix 3.7's built-in) selects the old defaults; 3.6 the new ones.
  assert.equal(p.mynetworks_style, 'subnet');
  assert.equal(p.smtputf8_enable, false);
  const q = paramsFrom('compatibility_level = 3.6\nstress = yes\n', 'main.cf', { host: HOST });
  assert.equal(q.mynetworks_style, 'host');
  assert.equal(q.smtputf8_enable, true);
  assert.deepEqual(q.smtpd_relay_restrictions, ['permit_mynetworks', 'permit_sasl_authenticated', 'defer_unauth_destination']);
  assert.equal(q.smtpd_timeout, 10);
  assert.equal(q.smtpd_hard_error_limit, 1);
});

test('config: myhostname and mydomain come from the host as Postfix computes them', () => {
  assert.equal(paramsFrom('', 'main.cf', { host: { hostname: 'vm' } }).myhostname, 'vm.localdomain');
  assert.equal(paramsFrom('', 'main.cf', { host: { hostname: 'vm' } }).mydomain, 'localdomain');
  assert.equal(paramsFrom('mydomain = example.org\n', 'main.cf', { host: { hostname: 'vm' } }).myhostname, 'vm.example.org');
  assert.equal(paramsFrom('', 'main.cf', { host: { hostname: 'mx.example.org' } }).mydomain, 'example.org');
  assert.equal(paramsFrom('', 'main.cf', { host: { hostname: 'host.lan' } }).mydomain, 'localdomain');
  const d = defaultValues({ hostname: 'a.b.c' });
  assert.equal(d.get('myhostname'), 'a.b.c');
  assert.equal(d.get('mydomain'), 'b.c');
  assert.equal(d.get('smtpd_timeout'), '${stress?{10}:{300}}s');
});

test('config: unknown, unimplemented and undefined parameters are warnings, not errors', () => {
  const w: string[] = [];
  paramsFrom('foo = bar\nbar_user = 1\nmyorigin = $bar_user\nmilter_protocol = 6\nrelayhost = $nosuchname\n', '/etc/postern/main.cf', { host: HOST, warnings: w });
  assert.deepEqual(w.sort(), [
    '/etc/postern/main.cf, line 1: unused parameter: foo=bar',
    '/etc/postern/main.cf, line 4: Postern ignores parameter: milter_protocol=6 (a Postfix parameter Postern does not implement)',
    '/etc/postern/main.cf, line 5: undefined parameter: nosuchname',
  ]);
});

test('config: a registry parameter Postern does not act on yet is a warning with the reason (main.cf and master.cf -o)', () => {
  const w: string[] = [];
  paramsFrom('smtp_tls_security_level = may\nin_flow_delay = 0\nmax_idle = 50s\n', '/etc/postern/main.cf', { host: HOST, warnings: w });
  assert.deepEqual(w, [
    '/etc/postern/main.cf, line 1: Postern ignores parameter: smtp_tls_security_level=may (the smtp client is not built yet: mail for remote destinations stays deferred)',
    "/etc/postern/main.cf, line 2: Postern ignores parameter: in_flow_delay=0 (not implemented by Postern's qmgr (no slow start, rate delay or dead-destination throttling yet))",
  ]);
  for (const name of Object.keys(IGNORED)) assert.ok(isParamName(name), `${name} is listed as ignored but is not in the registry`);
});

test('config: names listed in smtpd_restriction_classes are parameters, not "unused"', () => {
  const w: string[] = [];
  paramsFrom('smtpd_restriction_classes = strict, relaxed\nstrict = reject_unauth_destination\nrelaxed = permit\nstray = 1\n', '/etc/postern/main.cf', { host: HOST, warnings: w });
  assert.deepEqual(w, ['/etc/postern/main.cf, line 4: unused parameter: stray=1']);
});

test('config: a bad value is fatal and names the file and line (issue 2 wording)', () => {
  const text = '# x\n\n\n\n\n\n\n\n\n\n\nsmtpd_tls_security_level = maybe\n';
  assert.throws(
    () => paramsFrom(text, '/etc/postern/main.cf'),
    (e: unknown) => e instanceof ConfigError && e.message === '/etc/postern/main.cf, line 12: invalid smtpd_tls_security_level value "maybe": expected none, may or encrypt',
  );
  assert.throws(() => paramsFrom('a = $b\nb = $a\nmyorigin = $a\n', 'main.cf'), { message: 'main.cf, line 3: unreasonable macro call nesting: "a"' });
  assert.throws(() => paramsFrom('compatibility_level = three\n', 'main.cf'), { message: 'main.cf, line 1: invalid compatibility_level value "three": expected a level such as 2 or 3.6' });
  // A value that is bad only after expansion is blamed on the line that uses it.
  assert.throws(() => paramsFrom('t = 10x\nsmtpd_timeout = $t\n', 'main.cf'), { message: 'main.cf, line 2: invalid smtpd_timeout value "10x": bad time value or unit; expected a number with an optional unit s, m, h, d or w (a bare number means s)' });
});

test('config: each service gets main.cf plus its -o overrides; overrides may use $main_cf_names', async () => {
  const c = await loadConfig({ configDir: SEED, host: HOST });
  const by = (n: string) => c.services.find((s) => s.name === n);
  const smtp = by('smtp');
  const sub = by('submission');
  const local = by('127.0.0.1:2525');
  const v6 = by('[::1]:2526');
  const relay = by('relay');
  const dovecot = by('dovecot');
  assert.ok(smtp && sub && local && v6 && relay && dovecot);
  assert.equal(smtp.params, c.params);
  assert.deepEqual(smtp.listen, { host: null, port: 25 });
  assert.equal(smtp.private, false);
  assert.equal(smtp.unpriv, true);
  assert.equal(smtp.chroot, true);
  assert.equal(smtp.maxproc, 100);
  assert.equal(smtp.wakeup, '0');
  assert.equal(sub.params.smtpd_tls_security_level, 'encrypt');
  assert.equal(sub.params.syslog_name, 'postfix/submission');
  assert.equal(sub.params.smtpd_sasl_auth_enable, true);
  assert.deepEqual(sub.params.smtpd_client_restrictions, ['permit_sasl_authenticated', 'reject']);
  assert.equal(sub.overrides.get('smtpd_tls_security_level'), 'encrypt');
  assert.deepEqual(sub.listen, { host: null, port: 587 });
  assert.deepEqual(by('smtps')?.listen, { host: null, port: 465 });
  assert.equal(by('smtps')?.params.smtpd_tls_wrappermode, true);
  assert.equal(c.params.smtpd_tls_security_level, 'may');
  assert.equal(local.params.smtpd_banner, 'mx1.example.net');
  assert.equal(local.maxproc, 10);
  assert.deepEqual(local.listen, { host: '127.0.0.1', port: 2525 });
  assert.deepEqual(v6.listen, { host: '::1', port: 2526 });
  assert.equal(relay.params.syslog_name, 'postfix/relay');
  assert.equal(relay.listen, null);
  assert.equal(relay.private, true);
  assert.equal(dovecot.unpriv, false);
  assert.deepEqual(dovecot.args.slice(0, 2), ['flags=DRhu', 'user=vmail:vmail']);
});

test('config: a bad -o override is fatal and names master.cf and its line', async () => {
  const master = '# services\nsmtp inet n - n - - smtpd\nsubmission inet n - n - - smtpd\n  -o smtpd_tls_security_level=maybe\n';
  await withDir({ 'main.cf': 'biff = no\n', 'master.cf': master }, async (dir) => {
    await assert.rejects(loadConfig({ configDir: dir, host: HOST }), {
      message: `${join(dir, 'master.cf')}, line 4: invalid smtpd_tls_security_level value "maybe": expected none, may or encrypt`,
    });
  });
});

test('config: unknown -o names warn; an inet service that is private is refused', async () => {
  await withDir({ 'main.cf': '', 'master.cf': 'smtp inet n - n - - smtpd -o smtpd_bogus=1\n' }, async (dir) => {
    const c = await loadConfig({ configDir: dir, host: HOST });
    assert.deepEqual(c.warnings, [`${join(dir, 'master.cf')}, line 1: unused parameter: smtpd_bogus=1`]);
  });
  await withDir({ 'main.cf': '', 'master.cf': 'smtp inet - - n - - smtpd\n' }, async (dir) => {
    await assert.rejects(loadConfig({ configDir: dir, host: HOST }), /master\.cf, line 1: inet service cannot be private/);
  });
});

test('config: missing main.cf is a clear error; missing master.cf means no services', async () => {
  await withDir({}, async (dir) => {
    await assert.rejects(loadConfig({ configDir: dir }), (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${join(dir, 'main.cf')}: main.cf not found`));
  });
  await withDir({ 'main.cf': 'myhostname = a.example\n' }, async (dir) => {
    const c = await loadConfig({ configDir: dir, host: HOST });
    assert.deepEqual(c.services, []);
    assert.equal(c.params.myhostname, 'a.example');
  });
});

test('config: per-transport qmgr parameters fall back to the default_ ones', async () => {
  const main = 'default_destination_concurrency_limit = 7\ndovecot_destination_recipient_limit = 1\nlocal_destination_concurrency_limit = 3\n';
  await withDir({ 'main.cf': main, 'master.cf': 'dovecot unix - n n - - pipe\n  flags=DRhu argv=/bin/true\n' }, async (dir) => {
    const c = await loadConfig({ configDir: dir, host: HOST });
    assert.deepEqual(c.warnings, []);
    assert.equal(transportParam(c, 'dovecot', 'destination_recipient_limit'), 1);
    assert.equal(transportParam(c, 'dovecot', 'destination_concurrency_limit'), 7);
    assert.equal(transportParam(c, 'smtp', 'destination_concurrency_limit'), 7);
    assert.equal(transportParam(c, 'local', 'destination_concurrency_limit'), 3);
    assert.equal(transportParam(c, 'local', 'destination_recipient_limit'), 1);
    assert.equal(transportParam(c, 'other', 'destination_rate_delay'), 0);
  });
});

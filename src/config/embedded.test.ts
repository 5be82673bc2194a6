import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { serviceAddresses } from '../master/listen.js';
import { EMBEDDED_PORTS, embeddedMainCf, materializeEmbedded } from './embedded.js';
import { loadConfig } from './index.js';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'postern-embedded-'));
}

test('embedded: first start writes main.cf/master.cf and the data directories under var', () => {
  const dir = tmp();
  try {
    const made = materializeEmbedded(path.join(dir, 'var'));
    assert.equal(made.configDir, path.join(dir, 'var', 'etc'));
    assert.deepEqual(made.created, [
      path.join(dir, 'var', 'etc', 'main.cf'),
      path.join(dir, 'var', 'etc', 'master.cf'),
      path.join(dir, 'var', 'queue'),
      path.join(dir, 'var', 'data'),
      path.join(dir, 'var', 'mail'),
    ]);
    const mainCf = fs.readFileSync(path.join(made.configDir, 'main.cf'), 'utf8');
    assert.match(mainCf, new RegExp(`^queue_directory = ${path.join(dir, 'var', 'queue')}$`, 'm'));
    assert.doesNotMatch(mainCf, /@VAR@/);
    assert.equal(fs.statSync(path.join(made.configDir, 'main.cf')).mode & 0o777, 0o644);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('embedded: an admin\'s edits are never overwritten; a missing file is written again', () => {
  const dir = tmp();
  try {
    const { configDir } = materializeEmbedded(path.join(dir, 'var'));
    fs.writeFileSync(path.join(configDir, 'main.cf'), 'myhostname = mine.example\n');
    fs.rmSync(path.join(configDir, 'master.cf'));
    const again = materializeEmbedded(path.join(dir, 'var'));
    assert.deepEqual(again.created, [path.join(configDir, 'master.cf')]);
    assert.equal(fs.readFileSync(path.join(configDir, 'main.cf'), 'utf8'), 'myhostname = mine.example\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('embedded: a $ in the directory name is written as $$ so main.cf expansion keeps it', () => {
  assert.match(embeddedMainCf('/srv/a$b/var'), /^queue_directory = \/srv\/a\$\$b\/var\/queue$/m);
});

test('embedded: the configuration loads without warnings and listens on the documented loopback ports', async () => {
  const dir = tmp();
  try {
    const { configDir } = materializeEmbedded(path.join(dir, 'var'));
    const config = await loadConfig({ configDir, env: {} });
    assert.deepEqual(config.warnings, []);
    assert.equal(config.params.maillog_file, '/dev/stdout');
    assert.equal(config.params.queue_directory, path.join(dir, 'var', 'queue'));
    const ports: string[] = [];
    for (const s of config.services) {
      for (const a of await serviceAddresses(s, config)) ports.push(`${a.address}:${a.port}`);
    }
    const want = Object.values(EMBEDDED_PORTS).flatMap((p) => [`127.0.0.1:${p}`, `::1:${p}`]);
    assert.deepEqual(ports, want);
    const submission = config.services.find((s) => s.listen?.port === EMBEDDED_PORTS.submission);
    assert.equal(submission?.params.syslog_name, 'postfix/submission');
    const smtps = config.services.find((s) => s.listen?.port === EMBEDDED_PORTS.smtps);
    assert.equal(smtps?.params.smtpd_tls_wrappermode, true);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

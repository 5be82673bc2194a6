/**
 * check_policy_service with a packaged policy server, Debian's postgrey, the greylister most
 * Postfix admins run (`check_policy_service inet:127.0.0.1:10023`), side by side with a private
 * Postfix 3.7 asking the same postgrey:
 * - the first attempt of a triplet gets postgrey's DEFER_IF_PERMIT: the same 450 reply and the same
 *   `NOQUEUE: reject: RCPT` log line from both servers;
 * - a retry after postgrey's delay is accepted, and postgrey's `PREPEND X-Greylist: ...` action puts
 *   its header into the message Postern queued.
 * Each server sends its own sender address, so each has its own triplet in postgrey's database.
 */
import * as assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { peerSkip } from '../harness/peers.js';
import { freePorts, postfixSkip, startPostfix } from '../harness/postfix.js';
import { startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';

const skip = postfixSkip() || peerSkip('postgrey', 'postgrey');

/** postgrey's --delay: a retry this many seconds after the first attempt passes. */
const DELAY = 1;

interface Postgrey {
  readonly port: number;
  output(): string;
  stop(): void;
}

async function startPostgrey(): Promise<Postgrey> {
  const [port] = await freePorts(1);
  const db = mkdtempSync(path.join(os.tmpdir(), 'postern-postgrey-'));
  const args = [
    `--inet=127.0.0.1:${port}`,
    `--dbdir=${db}`,
    `--delay=${DELAY}`,
    '--hostname=mx.example.test',
    // No whitelists and no auto-whitelisting: every new triplet is greylisted.
    '--auto-whitelist-clients=0',
    '--whitelist-clients=/dev/null',
    '--whitelist-recipients=/dev/null',
  ];
  // As root postgrey switches to its own user (default `postgrey`); give it one that owns the db.
  if (process.getuid?.() === 0) {
    chownSync(db, 65534, 65534);
    args.push('--user=nobody', '--group=nogroup');
  }
  let out = '';
  const child: ChildProcess = spawn('postgrey', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const stop = (): void => {
    if (child.exitCode === null) child.kill('SIGTERM');
    rmSync(db, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: port! }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      stop();
      throw new Error(`postgrey did not start: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port: port!, output: () => out, stop };
}

/** One transaction; the replies to RCPT and (when RCPT passed) to the end of DATA. */
async function attempt(port: number, sender: string): Promise<{ rcpt: string; data: string | null }> {
  const c = await SmtpClient.connect(port);
  try {
    await c.read();
    await c.cmd('EHLO client.example.test');
    assert.match(await c.cmd(`MAIL FROM:<${sender}>`), /^250 /);
    const rcpt = await c.cmd('RCPT TO:<bob@mx.example.test>');
    let data: string | null = null;
    if (rcpt.startsWith('250')) {
      assert.match(await c.cmd('DATA'), /^354 /);
      data = await c.cmd(`From: ${sender}\r\nSubject: greylisted\r\n\r\nbody\r\n.`);
    }
    await c.cmd('QUIT');
    return { rcpt, data };
  } finally {
    c.close();
  }
}

const rejectLine = (lines: readonly string[]): string | undefined =>
  lines
    .find((l) => l.includes('NOQUEUE: reject: RCPT'))
    ?.replace(/^.*?NOQUEUE/, 'NOQUEUE')
    .replace(/from=<[^>]*>/, 'from=<SENDER>');

describe('smtpd: check_policy_service with postgrey, side by side with Postfix 3.7', { skip }, () => {
  it('smtpd: postgrey greylists the first attempt with the same reply and log line as Postfix; the retry passes with its X-Greylist header', async () => {
    const pg = await startPostgrey();
    const restrictions = `smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:${pg.port}, permit`;
    const mainCf = ['smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination', restrictions].join('\n');
    const [pfPort] = await freePorts(1);
    const pf = await startPostfix({ services: [{ port: pfPort! }], mainCf });
    const pt = await startPostern({ mainCf, ipv6: false });
    try {
      const [first, firstPf] = await Promise.all([attempt(pt.port4, 'a-postern@client.example.test'), attempt(pfPort!, 'a-postfix@client.example.test')]);
      assert.match(first.rcpt, /^450 4\.2\.0 <bob@mx\.example\.test>: Recipient address rejected: Greylisted, see http:\/\/postgrey\.schweikert\.ch\/help\/mx\.example\.test\.html$/);
      assert.equal(first.rcpt, firstPf.rcpt);
      await pt.waitFor(/NOQUEUE: reject: RCPT/);
      await pf.waitFor(/NOQUEUE: reject: RCPT/);
      assert.equal(rejectLine(pt.lines()), rejectLine(pf.log()));

      await new Promise((r) => setTimeout(r, (DELAY + 1.2) * 1000));
      const [retry, retryPf] = await Promise.all([attempt(pt.port4, 'a-postern@client.example.test'), attempt(pfPort!, 'a-postfix@client.example.test')]);
      assert.equal(retry.rcpt, '250 2.1.5 Ok');
      assert.equal(retryPf.rcpt, retry.rcpt);
      const queued = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(retry.data ?? '');
      assert.ok(queued, `${retry.data}`);
      assert.match(retryPf.data ?? '', /^250 2\.0\.0 Ok: queued as [0-9A-F]+$/);
      // postgrey's PREPEND action: the header goes above Postern's own Received: line.
      const { content } = await pt.message(queued[1]!);
      assert.match(content, /^X-Greylist: delayed \d+ seconds by postgrey-[\d.]+ at mx\.example\.test; .+\r?\nReceived: from client\.example\.test/);
      assert.match(pg.output(), /action=pass, reason=triplet found, .*sender=a-postern@client\.example\.test/);
    } finally {
      await pt.stop();
      pf.stop();
      pg.stop();
    }
  });
});

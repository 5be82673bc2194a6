import * as assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import { smtpdCounters } from '../../src/smtpd/index.js';
import { type StartedPostern, startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';

const EHLO = [
  '250-mx.example.test',
  '250-PIPELINING',
  '250-SIZE 10240000',
  '250-VRFY',
  '250-ETRN',
  '250-ENHANCEDSTATUSCODES',
  '250-8BITMIME',
  '250-DSN',
  '250-SMTPUTF8',
  '250 CHUNKING',
].join('\n');

/** Text after `[N]: ` of each line. */
function texts(lines: readonly string[]): string[] {
  return lines.map((l) => l.slice(l.indexOf(']: ') + 3));
}

describe('smtpd: basic conversation', () => {
  let pt: StartedPostern;
  before(async () => {
    pt = await startPostern({ mainCf: 'smtpd_forbid_unauth_pipelining = no' });
  });
  after(async () => {
    await pt.stop();
    assert.equal(smtpdCounters.exceptions, 0);
  });

  it('smtpd: greeting, EHLO keywords in Postfix order, mail queued durably, exact log lines', async () => {
    const c = await SmtpClient.connect(pt.port4);
    assert.equal(await c.read(), '220 mx.example.test ESMTP Postfix');
    assert.equal(await c.cmd('EHLO client.example.test'), EHLO);
    assert.equal(await c.cmd('MAIL FROM:<alice@client.example.test>'), '250 2.1.0 Ok');
    assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), '250 2.1.5 Ok');
    assert.equal(await c.cmd('DATA'), '354 End data with <CR><LF>.<CR><LF>');
    const r = await c.cmd('Subject: hi\r\n\r\nhello\r\n.');
    const m = /^250 2\.0\.0 Ok: queued as ([0-9A-Za-z]+)$/.exec(r);
    assert.ok(m, r);
    const qid = m[1]!;
    assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
    await c.waitClosed();
    await pt.waitFor(/disconnect from/);
    // The queue file is published under its id.
    const found = readdirSync(path.join(pt.queueDir, 'incoming'), { recursive: true }).map(String);
    assert.ok(found.some((f) => f.endsWith(qid)), `queue file ${qid} in ${found.join(',')}`);
    const t = texts(pt.lines().filter((l) => l.includes('/smtpd[')));
    assert.deepEqual(t, [
      'connect from unknown[127.0.0.1]',
      `${qid}: client=unknown[127.0.0.1]`,
      'disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5',
    ]);
    const ids = new Set(pt.lines().filter((l) => l.includes('/smtpd[')).map((l) => /smtpd\[(\d+)\]/.exec(l)![1]));
    assert.equal(ids.size, 1);
  });

  it('smtpd: relay denied for a foreign domain from outside mynetworks, logged as fail2ban expects', async () => {
    const p = await startPostern({ mainCf: 'mynetworks = 192.0.2.0/24\nsmtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination' });
    try {
      const c = await SmtpClient.connect(p.port4);
      await c.read();
      await c.cmd('EHLO client.example.test');
      assert.equal(await c.cmd('MAIL FROM:<alice@client.example.test>'), '250 2.1.0 Ok');
      assert.equal(await c.cmd('RCPT TO:<carol@other.test>'), '554 5.7.1 <carol@other.test>: Relay access denied');
      assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
      await c.waitClosed();
      await p.waitFor(/disconnect from/);
      assert.deepEqual(texts(p.lines()), [
        'connect from unknown[127.0.0.1]',
        'NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 554 5.7.1 <carol@other.test>: Relay access denied; from=<alice@client.example.test> to=<carol@other.test> proto=ESMTP helo=<client.example.test>',
        'disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4',
      ]);
    } finally {
      await p.stop();
    }
  });

  it('smtpd: reload: new sessions get the new settings, a session in progress keeps its own', async () => {
    const p = await startPostern({ mainCf: 'smtpd_banner = $myhostname ESMTP before' });
    try {
      const a = await SmtpClient.connect(p.port4);
      assert.equal(await a.read(), '220 mx.example.test ESMTP before');
      const file = path.join(p.dir, 'main.cf');
      writeFileSync(file, readFileSync(file, 'utf8').replace('ESMTP before', 'ESMTP after\nmessage_size_limit = 5000'));
      const config = await loadConfig({ configDir: p.dir });
      await p.smtpd.reload(config, config.services[0]!);
      const b = await SmtpClient.connect(p.port4);
      assert.equal(await b.read(), '220 mx.example.test ESMTP after');
      assert.match(await b.cmd('EHLO client.example.test'), /250-SIZE 5000\n/);
      assert.match(await a.cmd('EHLO client.example.test'), /250-SIZE 10240000\n/);
      await a.cmd('QUIT');
      await b.cmd('QUIT');
    } finally {
      await p.stop();
    }
  });

  it('smtpd: smtpd_discard_ehlo_keywords hides keywords and logs them', async () => {
    const p = await startPostern({ mainCf: 'smtpd_discard_ehlo_keywords = chunking, dsn' });
    try {
      const c = await SmtpClient.connect(p.port4);
      await c.read();
      const r = await c.cmd('EHLO client.example.test');
      assert.doesNotMatch(r, /CHUNKING|DSN/);
      assert.equal(await c.cmd('BDAT 10 LAST'), '521 5.5.1 Error: command not implemented');
      await c.waitClosed();
      await p.waitFor(/discarding EHLO keywords: DSN CHUNKING/);
    } finally {
      await p.stop();
    }
  });
});

/**
 * Duplicate recipients (Postfix cleanup_out_recipient(), duplicate_filter_limit): the same recipient
 * given twice in one transaction, in any letter case, is queued once; different NOTIFY or ORCPT keep
 * both. Side by side with a private Postfix 3.7: its qmgr's `nrcpt=` for the same transaction equals
 * the number of recipients in Postern's queue file.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freePorts, postfixSkip, startPostfix } from '../harness/postfix.js';
import { type StartedPostern, startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';

const skip = postfixSkip();

async function send(port: number, rcpts: readonly string[]): Promise<string> {
  const c = await SmtpClient.connect(port);
  try {
    await c.read();
    await c.cmd('EHLO client.example.test');
    assert.equal(await c.cmd('MAIL FROM:<a@client.example.test>'), '250 2.1.0 Ok');
    for (const r of rcpts) assert.equal(await c.cmd(`RCPT TO:${r}`), '250 2.1.5 Ok');
    assert.match(await c.cmd('DATA'), /^354 /);
    const done = await c.cmd('Subject: dup\r\n\r\nhello\r\n.');
    const m = /^250 2\.0\.0 Ok: queued as ([0-9A-F]+)$/.exec(done);
    assert.ok(m, done);
    await c.cmd('QUIT');
    return m[1]!;
  } finally {
    c.close();
  }
}

async function queued(pt: StartedPostern, id: string): Promise<string[]> {
  const { file } = await pt.message(id);
  return file.envelope.recipients.map((r) => `${r.address}${r.notify === null ? '' : ` NOTIFY=${r.notify === 'NEVER' ? 'NEVER' : r.notify.join(',')}`}`);
}

const CASES: readonly { name: string; rcpts: readonly string[]; postern: readonly string[]; mainCf?: string }[] = [
  { name: 'the same address twice and in other letter case', rcpts: ['<bob@mx.example.test>', '<bob@mx.example.test>', '<Bob@MX.example.test>'], postern: ['bob@mx.example.test'] },
  {
    name: 'NOTIFY in another order is the same; another NOTIFY is not',
    rcpts: ['<bob@mx.example.test> NOTIFY=SUCCESS,FAILURE', '<bob@mx.example.test> NOTIFY=FAILURE,SUCCESS', '<bob@mx.example.test> NOTIFY=NEVER'],
    postern: ['bob@mx.example.test NOTIFY=SUCCESS,FAILURE', 'bob@mx.example.test NOTIFY=NEVER'],
  },
  {
    name: 'with duplicate_filter_limit = 1 only the first recipient is remembered',
    mainCf: 'duplicate_filter_limit = 1',
    rcpts: ['<bob@mx.example.test>', '<carol@mx.example.test>', '<carol@mx.example.test>', '<bob@mx.example.test>'],
    postern: ['bob@mx.example.test', 'carol@mx.example.test', 'carol@mx.example.test'],
  },
];

describe('cleanup: duplicate recipients, side by side with Postfix 3.7', { skip }, () => {
  for (const c of CASES) {
    it(`cleanup: ${c.name}`, async () => {
      const [port] = await freePorts(1);
      const pf = await startPostfix({ services: [{ port: port! }], mainCf: c.mainCf ?? '' });
      const pt = await startPostern({ mainCf: c.mainCf ?? '', ipv6: false });
      try {
        const id = await send(pt.port4, c.rcpts);
        assert.deepEqual(await queued(pt, id), c.postern);
        const pfId = await send(port!, c.rcpts);
        const line = await pf.waitFor(new RegExp(`${pfId}: from=<a@client\\.example\\.test>, size=\\d+, nrcpt=\\d+ \\(queue active\\)`), 10_000);
        assert.equal(Number(/nrcpt=(\d+)/.exec(line)![1]), c.postern.length, line);
      } finally {
        pf.stop();
        await pt.stop();
      }
    });
  }
});

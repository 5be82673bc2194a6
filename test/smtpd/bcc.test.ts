/**
 * Automatic blind copies side by side with a private Postfix 3.7: always_bcc, sender_bcc_maps and
 * recipient_bcc_maps. Postfix's qmgr lists each recipient it delivers (to=<...>, discard here); the
 * same addresses must be in Postern's queue file, the copies with NOTIFY=NEVER.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freePorts, postfixSkip, startPostfix } from '../harness/postfix.js';
import { startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';

const skip = postfixSkip();

const MAIN_CF = [
  'always_bcc = archive@mx.example.test',
  'sender_bcc_maps = inline:{ a@client.example.test=sent@mx.example.test, @other.example=other-out@mx.example.test }',
  'recipient_bcc_maps = inline:{ bob@mx.example.test=bob-copy@mx.example.test }',
].join('\n');

async function send(port: number, from: string, rcpts: readonly string[]): Promise<string> {
  const c = await SmtpClient.connect(port);
  try {
    await c.read();
    await c.cmd('EHLO client.example.test');
    assert.equal(await c.cmd(`MAIL FROM:<${from}>`), '250 2.1.0 Ok');
    for (const r of rcpts) assert.equal(await c.cmd(`RCPT TO:<${r}>`), '250 2.1.5 Ok');
    assert.match(await c.cmd('DATA'), /^354 /);
    const done = await c.cmd('Subject: copies\r\n\r\nhello\r\n.');
    await c.cmd('QUIT');
    return /queued as ([0-9A-F]+)/.exec(done)![1]!;
  } finally {
    c.close();
  }
}

describe('cleanup: always_bcc, sender_bcc_maps, recipient_bcc_maps side by side with Postfix 3.7', { skip }, () => {
  for (const [from, rcpts] of [
    ['a@client.example.test', ['bob+tag@mx.example.test', 'carol@mx.example.test']],
    ['someone@other.example', ['carol@mx.example.test']],
    ['', ['bob@mx.example.test']],
  ] as const) {
    it(`cleanup: the same recipients as Postfix for MAIL FROM:<${from}> to ${rcpts.join(', ')}`, async () => {
      const [port] = await freePorts(1);
      const pf = await startPostfix({ services: [{ port: port! }], mainCf: `${MAIN_CF}\nrecipient_delimiter = +` });
      const pt = await startPostern({ mainCf: `${MAIN_CF}\nrecipient_delimiter = +`, ipv6: false });
      try {
        const id = await send(pt.port4, from, rcpts);
        const { file } = await pt.message(id);
        const mine = file.envelope.recipients.map((r) => r.address).sort();
        const pfId = await send(port!, from, rcpts);
        const active = await pf.waitFor(new RegExp(`${pfId}: from=<.*>, size=\\d+, nrcpt=(\\d+)`));
        const n = Number(/nrcpt=(\d+)/.exec(active)![1]);
        await pf.waitFor(new RegExp(`${pfId}: removed`));
        const theirs = pf
          .log()
          .filter((l) => l.includes(`${pfId}: to=<`))
          .map((l) => /to=<([^>]*)>/.exec(l)![1]!)
          .sort();
        assert.equal(theirs.length, n);
        assert.deepEqual(mine, theirs);
        for (const r of file.envelope.recipients) if (!rcpts.includes(r.address as never)) assert.equal(r.notify, 'NEVER', r.address);
      } finally {
        pf.stop();
        await pt.stop();
      }
    });
  }

  it('cleanup: a sender_bcc_maps table that cannot be opened defers the message (451), as with Postfix, so no copy is silently missed', async () => {
    const [port] = await freePorts(1);
    const mainCf = 'sender_bcc_maps = texthash:/nonexistent/postern-bcc';
    const pf = await startPostfix({ services: [{ port: port! }], mainCf });
    const pt = await startPostern({ mainCf, ipv6: false });
    try {
      const reply = async (p: number): Promise<string> => {
        const c = await SmtpClient.connect(p);
        try {
          await c.read();
          await c.cmd('EHLO client.example.test');
          await c.cmd('MAIL FROM:<a@client.example.test>');
          await c.cmd('RCPT TO:<bob@mx.example.test>');
          await c.cmd('DATA');
          return await c.cmd('Subject: x\r\n\r\nhello\r\n.');
        } finally {
          c.close();
        }
      };
      const [a, b] = await Promise.all([reply(pt.port4), reply(port!)]);
      assert.equal(a, '451 4.3.0 Error: queue file write error');
      assert.equal(b, a);
      await pt.waitFor(/sender_bcc_maps map lookup problem -- message not accepted, try again later/);
    } finally {
      pf.stop();
      await pt.stop();
    }
  });
});

/**
 * Fuzzing (DESIGN section 8): sessions driven into their states with real commands, then fed
 * arbitrary bytes. Every reply is well formed, the server never hangs, and the exception counter
 * stays zero.
 */
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { smtpdCounters } from '../../src/smtpd/index.js';
import { type StartedPostern, startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';

const PREFIXES: readonly string[][] = [
  [],
  ['EHLO fuzz.example'],
  ['EHLO fuzz.example', 'MAIL FROM:<a@fuzz.example>'],
  ['EHLO fuzz.example', 'MAIL FROM:<a@fuzz.example>', 'RCPT TO:<bob@mx.example.test>'],
  ['EHLO fuzz.example', 'MAIL FROM:<a@fuzz.example>', 'RCPT TO:<bob@mx.example.test>', 'DATA'],
  ['EHLO fuzz.example', 'MAIL FROM:<a@fuzz.example>', 'RCPT TO:<bob@mx.example.test>', 'BDAT 10'],
];

const WORDS = ['EHLO', 'HELO', 'MAIL FROM:', 'RCPT TO:', 'DATA', 'BDAT', 'RSET', 'NOOP', 'VRFY', 'ETRN', 'HELP', 'STARTTLS', 'QUIT', 'AUTH', '<', '>', '.', '\r\n', '\n', '\r', '\0', ' ', 'LAST', '0', '99999999999999999999', '\xff'];

const junk = fc.array(fc.oneof(fc.constantFrom(...WORDS), fc.string({ maxLength: 20 }), fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a).toString('latin1'))), { maxLength: 25 }).map((parts) => parts.join(''));

describe('smtpd: fuzz', () => {
  let pt: StartedPostern;
  before(async () => {
    pt = await startPostern({ mainCf: 'smtpd_error_sleep_time = 0\nsmtpd_hard_error_limit = 1000\nsmtpd_junk_command_limit = 1000\nsmtpd_forbid_unauth_pipelining = no\nsmtpd_timeout = 2s', ipv6: false });
  });
  after(async () => {
    await pt?.stop();
  });

  it('smtpd: arbitrary bytes in any session state give well-formed replies and no exception', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...PREFIXES), junk, async (prefix, bytes) => {
        const c = await SmtpClient.connect(pt.port4, '127.0.0.1', 4000);
        try {
          await c.read();
          for (const line of prefix) await c.cmd(line);
          c.write(bytes);
          // End any DATA/BDAT and ask for one last reply so we know the server is still answering.
          c.write('\r\n.\r\nRSET\r\nNOOP\r\n');
          await new Promise((r) => setTimeout(r, 30));
          const deadline = Date.now() + 1500;
          while (!c.closed && Date.now() < deadline && !/(^|\n)250 2\.0\.0 Ok\r\n$/.test(c.pending)) {
            await new Promise((r) => setTimeout(r, 10));
          }
          for (const line of c.pending.split('\r\n').filter((l) => l !== '')) {
            assert.match(line, /^[2-5]\d\d[ -]/, `bad reply line ${JSON.stringify(line)}`);
          }
        } finally {
          c.close();
        }
        assert.equal(smtpdCounters.exceptions, 0);
      }),
      { numRuns: 40 },
    );
  });
});

/**
 * Limits, bad input and the log lines around them, over real sockets.
 */
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nodeFs } from '../../src/io/durable.js';
import { type Resolver, ResolverError, smtpdCounters } from '../../src/smtpd/index.js';
import { hasIPv6Loopback, type StartedPostern, startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';

function texts(lines: readonly string[]): string[] {
  return lines.map((l) => l.slice(l.indexOf(']: ') + 3));
}

async function withPostern(o: Parameters<typeof startPostern>[0], fn: (pt: StartedPostern) => Promise<void>): Promise<void> {
  const pt = await startPostern(o);
  try {
    await fn(pt);
  } finally {
    await pt.stop();
  }
}

async function greet(port: number, host = '127.0.0.1'): Promise<SmtpClient> {
  const c = await SmtpClient.connect(port, host);
  assert.match(await c.read(), /^220 /);
  return c;
}

const ipv6Skip = (await hasIPv6Loopback()) ? false : 'no IPv6 loopback';

describe('smtpd: limits and bad input', () => {
  it('smtpd: smtpd_timeout: 421 4.4.2 Error: timeout exceeded and "timeout after EHLO"', async () => {
    await withPostern({ mainCf: 'smtpd_timeout = 1s' }, async (pt) => {
      const c = await greet(pt.port4);
      await c.cmd('EHLO client.example.test');
      assert.equal(await c.read(3000), '421 4.4.2 mx.example.test Error: timeout exceeded');
      await c.waitClosed();
      await pt.waitFor(/disconnect from/);
      assert.deepEqual(texts(pt.lines()), [
        'connect from unknown[127.0.0.1]',
        'timeout after EHLO from unknown[127.0.0.1]',
        'disconnect from unknown[127.0.0.1] ehlo=1 commands=1',
      ]);
    });
  });

  it('smtpd: a client that vanishes during DATA: "lost connection after DATA (N bytes)", nothing queued', async () => {
    await withPostern({}, async (pt) => {
      const c = await greet(pt.port4);
      await c.cmd('EHLO client.example.test');
      await c.cmd('MAIL FROM:<a@client.example.test>');
      await c.cmd('RCPT TO:<bob@mx.example.test>');
      await c.cmd('DATA');
      c.write('Subject: x\r\n\r\n0123456789\r\n');
      await new Promise((r) => setTimeout(r, 100));
      c.close();
      await pt.waitFor(/disconnect from/);
      const t = texts(pt.lines());
      assert.ok(t.includes('lost connection after DATA (26 bytes) from unknown[127.0.0.1]'), t.join('\n'));
      assert.equal(t[t.length - 1], 'disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=0/1 commands=3/4');
    });
  });

  it('smtpd: no commands at all logs commands=0/0 and "lost connection after CONNECT"', async () => {
    await withPostern({}, async (pt) => {
      const c = await greet(pt.port4);
      c.close();
      await pt.waitFor(/disconnect from/);
      assert.deepEqual(texts(pt.lines()), ['connect from unknown[127.0.0.1]', 'lost connection after CONNECT from unknown[127.0.0.1]', 'disconnect from unknown[127.0.0.1] commands=0/0']);
    });
  });

  it('smtpd: improper pipelining is logged once (smtpd_forbid_unauth_pipelining = no)', async () => {
    await withPostern({ mainCf: 'smtpd_forbid_unauth_pipelining = no' }, async (pt) => {
      const c = await greet(pt.port4);
      c.write('EHLO client.example.test\r\nNOOP\r\nNOOP\r\n');
      await c.read();
      await c.read();
      await c.read();
      await c.cmd('QUIT');
      await pt.waitFor(/disconnect from/);
      const t = texts(pt.lines());
      assert.deepEqual(
        t.filter((l) => l.startsWith('improper')),
        ['improper command pipelining after EHLO from unknown[127.0.0.1]: NOOP\\r\\nNOOP\\r\\n'],
      );
    });
  });

  it('smtpd: talking before the greeting: 554 5.5.0 Error: SMTP protocol synchronization', async () => {
    // A slow PTR lookup gives the client time to talk first, as on the Internet.
    const slow: Resolver = {
      reverse: () => new Promise((_, reject) => setTimeout(() => reject(new ResolverError('perm', 'NXDOMAIN')), 150)),
      lookup: async () => [],
      mailhost: async () => 'notfound',
      hostAddress: async () => 'notfound',
    };
    await withPostern({ mainCf: 'smtpd_forbid_unauth_pipelining = yes', resolver: slow }, async (pt) => {
      const c = await SmtpClient.connect(pt.port4);
      c.write('EHLO early.example\r\n');
      assert.equal(await c.read(), '554 5.5.0 Error: SMTP protocol synchronization');
      await c.waitClosed();
      await pt.waitFor(/disconnect from/);
      assert.deepEqual(texts(pt.lines()), [
        'connect from unknown[127.0.0.1]',
        'improper command pipelining after CONNECT from unknown[127.0.0.1]: EHLO early.example\\r\\n',
        'disconnect from unknown[127.0.0.1] commands=0/0',
      ]);
    });
  });

  it('smtpd: too many errors and non-SMTP commands are logged as Postfix does', async () => {
    await withPostern({ mainCf: 'smtpd_hard_error_limit = 2' }, async (pt) => {
      const c = await greet(pt.port4);
      await c.cmd('FOO');
      await c.cmd('BAR');
      assert.equal(await c.read(), '421 4.7.0 mx.example.test Error: too many errors');
      await c.waitClosed();
      const d = await greet(pt.port4);
      assert.equal(await d.cmd('POST /cgi-bin HTTP/1.0'), '221 2.7.0 Error: I can break rules, too. Goodbye.');
      await d.waitClosed();
      await pt.waitFor(/disconnect from .*unknown=0\/1 commands=0\/1/);
      const t = texts(pt.lines());
      assert.ok(t.includes('too many errors after UNKNOWN from unknown[127.0.0.1]'), t.join('\n'));
      assert.ok(t.includes('disconnect from unknown[127.0.0.1] unknown=0/2 commands=0/2'), t.join('\n'));
      assert.ok(t.includes('warning: non-SMTP command from unknown[127.0.0.1]: POST /cgi-bin HTTP/1.0'), t.join('\n'));
    });
  });

  it('smtpd: an over-long command line is cut and logged ("request longer than 2048")', async () => {
    await withPostern({}, async (pt) => {
      const c = await greet(pt.port4);
      assert.equal(await c.cmd(`NOOP ${'a'.repeat(3000)}`), '250 2.0.0 Ok');
      await c.cmd('QUIT');
      await pt.waitFor(/disconnect from/);
      assert.ok(texts(pt.lines()).includes(`warning: unknown[127.0.0.1]: request longer than 2048: NOOP ${'a'.repeat(25)}...`));
    });
  });

  it('smtpd: bad UTF-8 in a command: 500 5.5.2 Error: bad UTF-8 syntax', async () => {
    await withPostern({}, async (pt) => {
      const c = await greet(pt.port4);
      assert.equal(await c.cmd('NOOP \xff\xfe'), '500 5.5.2 Error: bad UTF-8 syntax');
      await c.cmd('QUIT');
    });
  });

  it('smtpd: CR and LF in EHLO or an envelope address never reach a header', async () => {
    await withPostern({}, async (pt) => {
      const c = await greet(pt.port4);
      // A lone CR inside the line is data, not a line end; Postfix stores it as '?'.
      await c.cmd('EHLO evil\rX-Injected: yes');
      assert.equal(await c.cmd('MAIL FROM:<a\rb@client.example.test>'), '501 5.1.7 Bad sender address syntax');
      assert.equal(await c.cmd('MAIL FROM:<a@client.example.test>'), '250 2.1.0 Ok');
      assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test\r>'), '501 5.1.3 Bad recipient address syntax');
      assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), '250 2.1.5 Ok');
      await c.cmd('DATA');
      const r = await c.cmd('Subject: x\r\n\r\nbody\r\n.');
      const qid = /queued as (\w+)/.exec(r)![1]!;
      await c.cmd('QUIT');
      const { content } = await pt.message(qid);
      assert.match(content, /^Received: from evil\?X-Injected:\?yes \(unknown \[127\.0\.0\.1\]\)\r\n\tby mx\.example\.test \(Postfix\) with ESMTP id \w+\r\n\tfor <bob@mx\.example\.test>; /);
      assert.doesNotMatch(content, /^X-Injected/m);
    });
  });

  it('smtpd: the Received header of an IPv6 client uses an [IPv6:...] literal', { skip: ipv6Skip }, async () => {
    await withPostern({}, async (pt) => {
      const c = await greet(pt.port6, '::1');
      await c.cmd('HELO client.example.test');
      await c.cmd('MAIL FROM:<a@client.example.test>');
      await c.cmd('RCPT TO:<b1@mx.example.test>');
      await c.cmd('RCPT TO:<b2@mx.example.test>');
      await c.cmd('DATA');
      const qid = /queued as (\w+)/.exec(await c.cmd('Subject: x\r\n\r\nbody\r\n.'))![1]!;
      await c.cmd('QUIT');
      const { content, file } = await pt.message(qid);
      assert.match(content, /^Received: from client\.example\.test \(unknown \[IPv6:::1\]\)\r\n\tby mx\.example\.test \(Postfix\) with SMTP id \w+;\r\n\t\w{3}, /);
      assert.equal(file.envelope.client?.addr, '::1');
      assert.deepEqual(
        file.envelope.recipients.map((r) => r.address),
        ['b1@mx.example.test', 'b2@mx.example.test'],
      );
      await pt.waitFor(/disconnect from unknown\[::1\] helo=1 mail=1 rcpt=2 data=1 quit=1 commands=6/);
    });
  });

  it('smtpd: smuggled commands after \\n.\\n stay in the message', async () => {
    await withPostern({}, async (pt) => {
      const c = await greet(pt.port4);
      await c.cmd('EHLO client.example.test');
      await c.cmd('MAIL FROM:<a@client.example.test>');
      await c.cmd('RCPT TO:<bob@mx.example.test>');
      await c.cmd('DATA');
      const r = await c.cmd('Subject: x\r\n\r\nhi\n.\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.net>\r\n.');
      const qid = /queued as (\w+)/.exec(r)![1]!;
      await c.cmd('QUIT');
      const { content } = await pt.message(qid);
      assert.match(content, /MAIL FROM:<evil@example\.com>\r\nRCPT TO:<victim@example\.net>\r\n$/);
      await pt.waitFor(/disconnect from .* mail=1 rcpt=1 data=1 quit=1 commands=5$/);
    });
  });

  it('smtpd: smtpd_client_connection_count_limit: 421 4.7.0 Error: too many connections', async () => {
    await withPostern({ mainCf: 'smtpd_client_connection_count_limit = 1\nmynetworks = 192.0.2.0/24' }, async (pt) => {
      const a = await greet(pt.port4);
      const b = await SmtpClient.connect(pt.port4);
      assert.equal(await b.read(), '421 4.7.0 mx.example.test Error: too many connections from 127.0.0.1');
      await b.waitClosed();
      await a.cmd('QUIT');
      // The slot is free again.
      await pt.waitFor(/disconnect from .* quit=1 commands=1$/);
      const c = await greet(pt.port4);
      await c.cmd('QUIT');
      assert.ok(texts(pt.lines()).includes('warning: Connection concurrency limit exceeded: 2 from unknown[127.0.0.1] for service smtp'));
    });
  });

  it('smtpd: connection limits do not apply to smtpd_client_event_limit_exceptions ($mynetworks)', async () => {
    await withPostern({ mainCf: 'smtpd_client_connection_count_limit = 1' }, async (pt) => {
      const a = await greet(pt.port4);
      const b = await greet(pt.port4);
      await a.cmd('QUIT');
      await b.cmd('QUIT');
    });
  });

  it('smtpd: smtpd_client_connection_rate_limit over IPv6 (counted per smtpd_client_ipv6_prefix_length)', { skip: ipv6Skip }, async () => {
    await withPostern({ mainCf: 'smtpd_client_connection_rate_limit = 2\nmynetworks = 192.0.2.0/24' }, async (pt) => {
      for (let i = 0; i < 2; i++) {
        const c = await greet(pt.port6, '::1');
        await c.cmd('QUIT');
      }
      const c = await SmtpClient.connect(pt.port6, '::1');
      assert.equal(await c.read(), '421 4.7.0 mx.example.test Error: too many connections from ::1');
      await pt.waitFor(/warning: Connection rate limit exceeded: 3 from unknown\[::1\] for service smtp/);
    });
  });

  it('smtpd: error sleep once smtpd_soft_error_limit is reached', async () => {
    await withPostern({ mainCf: 'smtpd_soft_error_limit = 1\nsmtpd_error_sleep_time = 1s' }, async (pt) => {
      const c = await greet(pt.port4);
      let t0 = Date.now();
      await c.cmd('FOO');
      assert.ok(Date.now() - t0 < 800, 'first error: no sleep');
      t0 = Date.now();
      assert.equal(await c.cmd('NOOP'), '250 2.0.0 Ok');
      assert.ok(Date.now() - t0 >= 900, 'after the soft limit every reply waits');
    });
  });

  it('smtpd: queue_minfree not available: 452 4.3.1 Insufficient system storage at MAIL', async () => {
    await withPostern({ mainCf: 'queue_minfree = 1000000000000000' }, async (pt) => {
      const c = await greet(pt.port4);
      await c.cmd('EHLO client.example.test');
      assert.equal(await c.cmd('MAIL FROM:<a@client.example.test>'), '452 4.3.1 Insufficient system storage');
      await c.cmd('QUIT');
      await pt.waitFor(/disconnect from/);
      const t = texts(pt.lines());
      assert.ok(t.some((l) => /^warning: not enough free space in mail queue: \d+ bytes < 1\.5\*message size limit$/.test(l)), t.join('\n'));
      assert.ok(t.includes('NOQUEUE: reject: MAIL from unknown[127.0.0.1]: 452 4.3.1 Insufficient system storage; proto=ESMTP helo=<client.example.test>'), t.join('\n'));
    });
  });

  it('smtpd: a write error while queueing: 451 4.3.0 Error: queue file write error, nothing published', async () => {
    const failing = { ...nodeFs, syncFile: async () => Promise.reject(Object.assign(new Error('EIO'), { code: 'EIO' })) };
    await withPostern({ cleanupOptions: { fs: failing } }, async (pt) => {
      const c = await greet(pt.port4);
      await c.cmd('EHLO client.example.test');
      await c.cmd('MAIL FROM:<a@client.example.test>');
      await c.cmd('RCPT TO:<bob@mx.example.test>');
      await c.cmd('DATA');
      assert.equal(await c.cmd('Subject: x\r\n\r\nbody\r\n.'), '451 4.3.0 Error: queue file write error');
      // The session goes on.
      assert.equal(await c.cmd('MAIL FROM:<a@client.example.test>'), '250 2.1.0 Ok');
      await c.cmd('QUIT');
      // The write error is a resource error: the postmaster notice (default notify_classes) fails
      // the same way, and the session ends once it has been tried.
      await pt.waitFor(/disconnect from/);
      assert.ok(pt.lines().some((l) => l.endsWith('warning: postmaster notify: 451 4.3.0 Error: queue file write error')), pt.lines().join('\n'));
      const { readdirSync } = await import('node:fs');
      const files = readdirSync(`${pt.queueDir}/incoming`);
      assert.deepEqual(files, []);
    });
  });

  it('smtpd: stress mode takes the stress branch of the stress?... defaults (hard error limit 1)', async () => {
    await withPostern({ stress: true }, async (pt) => {
      const c = await greet(pt.port4);
      assert.equal(await c.cmd('FOO'), '500 5.5.2 Error: command not recognized');
      assert.equal(await c.read(), '421 4.7.0 mx.example.test Error: too many errors');
      await c.waitClosed();
    });
  });

  it('smtpd: reaching maxproc puts new sessions in stress mode', async () => {
    await withPostern({ maxproc: 1 }, async (pt) => {
      const a = await greet(pt.port4);
      const b = await greet(pt.port4);
      assert.equal(await b.cmd('FOO'), '500 5.5.2 Error: command not recognized');
      assert.equal(await b.read(), '421 4.7.0 mx.example.test Error: too many errors');
      // The first session is not stressed.
      assert.equal(await a.cmd('FOO'), '500 5.5.2 Error: command not recognized');
      assert.equal(await a.cmd('NOOP'), '250 2.0.0 Ok');
      await a.cmd('QUIT');
    });
  });

  it('smtpd: stress mode shortens smtpd_timeout to 10 s (the stress branch of its default): a stressed session times out after 10 s, a normal one does not', async () => {
    // maxproc 1: the first session is normal, the second one starts in stress mode. Both go idle
    // after EHLO; Postfix's default smtpd_timeout is 300 s, or 10 s under stress.
    await withPostern({ maxproc: 1 }, async (pt) => {
      const normal = await greet(pt.port4);
      await normal.cmd('EHLO normal.example.test');
      const stressed = await greet(pt.port4);
      await stressed.cmd('EHLO stressed.example.test');
      const t0 = Date.now();
      assert.equal(await stressed.read(15_000), '421 4.4.2 mx.example.test Error: timeout exceeded');
      const waited = Date.now() - t0;
      assert.ok(waited >= 9_500 && waited < 13_000, `timed out after ${waited} ms`);
      await stressed.waitClosed();
      await pt.waitFor(/timeout after EHLO from unknown\[127\.0\.0\.1\]/);
      // The normal session, idle just as long, still has its 300 s.
      assert.equal(await normal.cmd('NOOP'), '250 2.0.0 Ok');
      assert.equal(await normal.cmd('QUIT'), '221 2.0.0 Bye');
      await normal.waitClosed();
      assert.equal(texts(pt.lines()).filter((l) => l.startsWith('timeout after')).length, 1, pt.lines().join('\n'));
    });
  });

  it('smtpd: a bug inside a command is answered 421 4.3.0, logged and counted', async () => {
    const broken = async (): Promise<{ bsize: number; bavail: number }> => Promise.reject(new TypeError('simulated bug'));
    const before = smtpdCounters.exceptions;
    await withPostern({ cleanupOptions: { statfs: broken } }, async (pt) => {
      const c = await greet(pt.port4);
      await c.cmd('EHLO client.example.test');
      assert.equal(await c.cmd('MAIL FROM:<a@client.example.test>'), '421 4.3.0 mx.example.test Server local data error');
      await c.waitClosed();
      await pt.waitFor(/disconnect from/);
      const t = texts(pt.lines());
      assert.ok(t.some((l) => l.startsWith('warning: NOQUEUE: internal error in MAIL from unknown[127.0.0.1]: TypeError: simulated bug')), t.join('\n'));
    });
    assert.equal(smtpdCounters.exceptions, before + 1);
    smtpdCounters.exceptions = before;
  });

  it('smtpd: header_size_limit cuts an oversized header (250, as Postfix), line_length_limit does not refuse long body lines', async () => {
    await withPostern({ mainCf: 'header_size_limit = 1024\nline_length_limit = 100' }, async (pt) => {
      const c = await greet(pt.port4);
      await c.cmd('EHLO client.example.test');
      await c.cmd('MAIL FROM:<a@client.example.test>');
      await c.cmd('RCPT TO:<bob@mx.example.test>');
      await c.cmd('DATA');
      const r = await c.cmd(`Subject: ${'s'.repeat(5000)}\r\nX-After: yes\r\n\r\n${'b'.repeat(3000)}\r\n.`);
      const qid = /^250 2\.0\.0 Ok: queued as (\w+)$/.exec(r)![1]!;
      await c.cmd('QUIT');
      const { content } = await pt.message(qid);
      const subject = /^Subject: (s*)/m.exec(content)![1]!;
      assert.ok(subject.length < 1024, `stored Subject: is ${subject.length} bytes`);
      assert.ok(content.includes('b'.repeat(3000)), 'the long body line is kept');
    });
  });

  it('smtpd: smtpd_forbid_bare_newline = reject (Postfix 3.9): a command or message with a bare LF is refused', async () => {
    await withPostern({ mainCf: 'smtpd_forbid_bare_newline_exclusions =', params: { smtpd_forbid_bare_newline: 'reject' } }, async (pt) => {
      const c = await greet(pt.port4);
      await c.cmd('EHLO client.example.test');
      await c.cmd('MAIL FROM:<a@client.example.test>');
      await c.cmd('RCPT TO:<bob@mx.example.test>');
      await c.cmd('DATA');
      assert.equal(await c.cmd('Subject: x\r\n\r\nbare\nline\r\n.'), '550 5.5.2 mx.example.test Error: bare <LF> received');
      // The session goes on; a command ending in a bare LF ends it.
      c.write('NOOP\n');
      assert.equal(await c.read(), '550 5.5.2 mx.example.test Error: bare <LF> received');
      await c.waitClosed();
      await pt.waitFor(/disconnect from/);
      const t = texts(pt.lines());
      assert.ok(t.some((l) => /^\w+: reject: END-OF-MESSAGE from unknown\[127\.0\.0\.1\]: bare <LF> received; from=<a@client\.example\.test> to=<bob@mx\.example\.test> proto=ESMTP helo=<client\.example\.test>$/.test(l)), t.join('\n'));
      // As Postfix, the line names the last command state (the message just ended).
      assert.ok(t.includes('NOQUEUE: reject: END-OF-MESSAGE from unknown[127.0.0.1]: bare <LF> received; proto=ESMTP helo=<client.example.test>'), t.join('\n'));
    });
  });

  it('smtpd: smtpd_forbid_bare_newline = note (Postfix 3.9): bare-LF lines are accepted as CRLF and the disconnect line ends in notes=bare_lf', async () => {
    await withPostern({ mainCf: 'smtpd_forbid_bare_newline = note\nsmtpd_forbid_bare_newline_exclusions =' }, async (pt) => {
      /** One session; returns its disconnect line (the text after "]: ") and the queue id it got. */
      const session = async (script: (c: SmtpClient) => Promise<string | null>): Promise<{ disconnect: string; qid: string | null }> => {
        const before = pt.lines().length;
        const c = await greet(pt.port4);
        const qid = await script(c);
        assert.equal(await c.cmd('QUIT'), '221 2.0.0 Bye');
        await c.waitClosed();
        for (let i = 0; i < 100; i++) {
          const d = texts(pt.lines().slice(before)).find((l) => l.startsWith('disconnect from '));
          if (d !== undefined) return { disconnect: d, qid };
          await new Promise((r) => setTimeout(r, 20));
        }
        throw new Error(`no disconnect line:\n${pt.lines().join('\n')}`);
      };
      const data = async (c: SmtpClient, content: string): Promise<string> => {
        assert.equal(await c.cmd('MAIL FROM:<a@client.example.test>'), '250 2.1.0 Ok');
        assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), '250 2.1.5 Ok');
        assert.equal(await c.cmd('DATA'), '354 End data with <CR><LF>.<CR><LF>');
        const r = await c.cmd(content);
        const m = /^250 2\.0\.0 Ok: queued as (\w+)$/.exec(r);
        assert.ok(m, r);
        return m[1]!;
      };
      // Message content with a bare LF: accepted (not 550), stored with CRLF, noted.
      const a = await session(async (c) => {
        await c.cmd('EHLO client.example.test');
        return data(c, 'Subject: x\r\n\r\nbare\nline\r\n.');
      });
      assert.equal(a.disconnect, 'disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5 notes=bare_lf');
      assert.match((await pt.message(a.qid!)).content, /\r\n\r\nbare\r\nline\r\n$/);
      // A command ending in a bare LF: answered as usual (not 550 and disconnect), noted.
      const b = await session(async (c) => {
        c.write('EHLO client.example.test\n');
        assert.match(await c.read(), /^250-mx\.example\.test\n/);
        assert.equal(await c.cmd('NOOP'), '250 2.0.0 Ok');
        return null;
      });
      assert.equal(b.disconnect, 'disconnect from unknown[127.0.0.1] ehlo=1 noop=1 quit=1 commands=3 notes=bare_lf');
      // BDAT content with a bare LF.
      const d = await session(async (c) => {
        await c.cmd('EHLO client.example.test');
        await c.cmd('MAIL FROM:<a@client.example.test>');
        await c.cmd('RCPT TO:<bob@mx.example.test>');
        const chunk = 'Subject: x\r\n\r\nbare\nline\r\n';
        assert.match(await c.cmd(`BDAT ${chunk.length} LAST\r\n${chunk}`.replace(/\r\n$/, '')), /^250 2\.0\.0 Ok: \d+ bytes queued as \w+$/);
        return null;
      });
      assert.equal(d.disconnect, 'disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 bdat=1 quit=1 commands=5 notes=bare_lf');
      // Only CRLF: no note.
      const e = await session(async (c) => {
        await c.cmd('EHLO client.example.test');
        return data(c, 'Subject: x\r\n\r\nclean\r\n.');
      });
      assert.equal(e.disconnect, 'disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5');
      assert.ok(!pt.lines().some((l) => l.includes('bare <LF> received')), pt.lines().join('\n'));
    });
  });

  it('smtpd: notes=bare_lf is logged only with smtpd_forbid_bare_newline = note, and never for smtpd_forbid_bare_newline_exclusions', async () => {
    const run = async (mainCf: string): Promise<string> => {
      let line = '';
      await withPostern({ mainCf }, async (pt) => {
        const c = await greet(pt.port4);
        c.write('EHLO client.example.test\n');
        await c.read();
        await c.cmd('MAIL FROM:<a@client.example.test>');
        await c.cmd('RCPT TO:<bob@mx.example.test>');
        await c.cmd('DATA');
        assert.match(await c.cmd('Subject: x\r\n\r\nbare\nline\r\n.'), /^250 2\.0\.0 Ok: queued as /);
        await c.cmd('QUIT');
        await c.waitClosed();
        line = texts([await pt.waitFor(/disconnect from/)])[0]!;
      });
      return line;
    };
    const plain = 'disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5';
    // normalize (the 3.9 default) and its alias yes: normalized, not noted.
    assert.equal(await run('smtpd_forbid_bare_newline_exclusions ='), plain);
    assert.equal(await run('smtpd_forbid_bare_newline = yes\nsmtpd_forbid_bare_newline_exclusions ='), plain);
    // note, but the client is in the default exclusions ($mynetworks = 127.0.0.0/8): Postfix turns detection off.
    assert.equal(await run('smtpd_forbid_bare_newline = note'), plain);
    // The control: the same conversation is noted when the client is not excluded.
    assert.equal(await run('smtpd_forbid_bare_newline = note\nsmtpd_forbid_bare_newline_exclusions = 192.0.2.0/24'), `${plain} notes=bare_lf`);
  });

  it('smtpd: warn_if_reject logs reject_warning and lets the mail through', async () => {
    await withPostern({ mainCf: 'smtpd_helo_restrictions = warn_if_reject reject_non_fqdn_helo_hostname' }, async (pt) => {
      const c = await greet(pt.port4);
      await c.cmd('EHLO nodots');
      await c.cmd('MAIL FROM:<a@client.example.test>');
      assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), '250 2.1.5 Ok');
      await c.cmd('QUIT');
      await pt.waitFor(/disconnect from/);
      assert.ok(
        texts(pt.lines()).includes(
          'NOQUEUE: reject_warning: RCPT from unknown[127.0.0.1]: 504 5.5.2 <nodots>: Helo command rejected: need fully-qualified hostname; from=<a@client.example.test> to=<bob@mx.example.test> proto=ESMTP helo=<nodots>',
        ),
      );
    });
  });
});

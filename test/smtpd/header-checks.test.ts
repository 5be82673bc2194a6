/**
 * header_checks(5) side by side with a private Postfix 3.7 reading the same regexp: table: the end-of-
 * DATA replies and cleanup's log lines (`QID: reject: header ... from client[addr]; from=<s> to=<r>
 * proto=ESMTP helo=<h>: 5.7.1 text`) must be the same; what IGNORE, REPLACE, PREPEND and HOLD do to
 * the queued message is checked in Postern's queue file.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePorts, postfixSkip, type StartedPostfix, startPostfix } from '../harness/postfix.js';
import { type StartedPostern, startPostern } from '../harness/postern.js';
import { SmtpClient } from '../harness/smtp-client.js';

const skip = postfixSkip();

const RULES = [
  '/^Subject: reject me$/ REJECT go away',
  '/^Subject: reject plain$/ REJECT',
  '/^Subject: defer me$/ REJECT 4.7.0 come back later',
  '/^Subject: warn me$/ WARN looks odd',
  '/^Subject: discard me$/ DISCARD',
  '/^Subject: hold me$/ HOLD held for review',
  '/^X-Secret:/ IGNORE',
  '/^X-Mailer: (.*)$/ REPLACE X-Mailer: hidden ($1)',
  '/^X-Tag:/ PREPEND X-Seen: yes',
  '',
].join('\n');

const BODY_RULES = ['/^reject this body$/ REJECT bad body', '/^warn body line$/ WARN saw it', '/^$/ INFO blank line', '/^secret body line$/ IGNORE', ''].join('\n');

async function send(port: number, subject: string, extra = '', body = 'body\r\n'): Promise<string> {
  const c = await SmtpClient.connect(port);
  try {
    await c.read();
    await c.cmd('EHLO client.example.test');
    assert.equal(await c.cmd('MAIL FROM:<a@client.example.test>'), '250 2.1.0 Ok');
    assert.equal(await c.cmd('RCPT TO:<bob@mx.example.test>'), '250 2.1.5 Ok');
    assert.match(await c.cmd('DATA'), /^354 /);
    const r = await c.cmd(`From: a@client.example.test\r\nSubject: ${subject}\r\n${extra}\r\n${body}.`);
    await c.cmd('QUIT');
    return r;
  } finally {
    c.close();
  }
}

/** The cleanup line for `subject` with the queue id and the program prefix cut off. */
function actionLine(lines: readonly string[], what: string): string | undefined {
  return lines.find((l) => l.includes(`: header Subject: ${what} from`))?.replace(/^.*?[0-9A-F]{6,}: /, '');
}

describe('cleanup: header_checks side by side with Postfix 3.7', { skip }, () => {
  let dir: string;
  let pf: StartedPostfix;
  let pt: StartedPostern;
  let pfPort: number;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-hc-'));
    fs.chmodSync(dir, 0o755);
    fs.writeFileSync(path.join(dir, 'header_checks'), RULES);
    fs.chmodSync(path.join(dir, 'header_checks'), 0o644);
    fs.writeFileSync(path.join(dir, 'body_checks'), BODY_RULES);
    fs.chmodSync(path.join(dir, 'body_checks'), 0o644);
    const mainCf = `header_checks = regexp:${path.join(dir, 'header_checks')}\nbody_checks = regexp:${path.join(dir, 'body_checks')}`;
    [pfPort] = (await freePorts(1)) as [number];
    pf = await startPostfix({ services: [{ port: pfPort }], mainCf });
    pt = await startPostern({ mainCf, ipv6: false });
  });
  after(async () => {
    pf?.stop();
    await pt?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const [subject, reply] of [
    ['reject me', '550 5.7.1 go away'],
    ['reject plain', '550 5.7.1 message content rejected'],
    ['defer me', '451 4.7.0 come back later'],
  ] as const) {
    it(`cleanup: REJECT (${subject}) gives the same reply and log line as Postfix`, async () => {
      const [a, b] = await Promise.all([send(pt.port4, subject), send(pfPort, subject)]);
      assert.equal(a, reply);
      assert.equal(b, reply);
      await pf.waitFor(new RegExp(`header Subject: ${subject} from`));
      await pt.waitFor(new RegExp(`header Subject: ${subject} from`));
      assert.equal(actionLine(pt.lines(), subject), actionLine(pf.log(), subject));
    });
  }

  for (const subject of ['warn me', 'discard me', 'hold me']) {
    it(`cleanup: ${subject.split(' ')[0]!.toUpperCase()} is accepted and logged as Postfix logs it`, async () => {
      const [a, b] = await Promise.all([send(pt.port4, subject), send(pfPort, subject)]);
      assert.match(a, /^250 2\.0\.0 Ok: queued as [0-9A-F]+$/);
      assert.match(b, /^250 2\.0\.0 Ok: queued as [0-9A-F]+$/);
      await pf.waitFor(new RegExp(`header Subject: ${subject} from`));
      await pt.waitFor(new RegExp(`header Subject: ${subject} from`));
      assert.equal(actionLine(pt.lines(), subject), actionLine(pf.log(), subject));
      const id = /queued as ([0-9A-F]+)/.exec(a)![1]!;
      const where = (q: string): boolean => fs.existsSync(path.join(pt.queueDir, q, id));
      if (subject === 'hold me') assert.ok(where('hold') && !where('incoming'), 'in hold/');
      if (subject === 'discard me') assert.ok(!where('hold') && !where('incoming'), 'not queued');
      if (subject === 'warn me') assert.ok(where('incoming'), 'queued');
    });
  }

  it('cleanup: IGNORE drops the field, REPLACE rewrites it with $1, PREPEND adds a field above', async () => {
    const r = await send(pt.port4, 'edit me', 'X-Secret: 42\r\nX-Mailer: Mutt 2.2\r\nX-Tag: a\r\n');
    const id = /queued as ([0-9A-F]+)/.exec(r)![1]!;
    const { content } = await pt.message(id);
    assert.doesNotMatch(content, /X-Secret/);
    assert.match(content, /\r\nX-Mailer: hidden \(Mutt 2\.2\)\r\n/);
    assert.match(content, /\r\nX-Seen: yes\r\nX-Tag: a\r\n/);
    const b = await send(pfPort, 'edit me', 'X-Secret: 42\r\nX-Mailer: Mutt 2.2\r\nX-Tag: a\r\n');
    assert.match(b, /^250 /);
    await pf.waitFor(/: prepend: header X-Tag: a from/);
    await pt.waitFor(/: prepend: header X-Tag: a from/);
    const line = (ls: readonly string[], re: RegExp): string | undefined => ls.find((l) => re.test(l))?.replace(/^.*?[0-9A-F]{6,}: /, '');
    assert.equal(line(pt.lines(), /: prepend: header X-Tag/), line(pf.log(), /: prepend: header X-Tag/));
    assert.equal(line(pt.lines(), /: replace: header X-Mailer/), line(pf.log(), /: replace: header X-Mailer/));
  });

  it('cleanup: body_checks REJECT, WARN and IGNORE as Postfix applies them; an empty line matches nothing, not even /^$/', async () => {
    const body = 'first\r\n\r\nwarn body line\r\nsecret body line\r\nlast\r\n';
    const [a, b] = await Promise.all([send(pt.port4, 'body test', '', body), send(pfPort, 'body test', '', body)]);
    assert.match(a, /^250 /);
    assert.match(b, /^250 /);
    const idA = /queued as ([0-9A-F]+)/.exec(a)![1]!;
    const idB = /queued as ([0-9A-F]+)/.exec(b)![1]!;
    await pf.waitFor(new RegExp(`${idB}: warning: body warn body line`));
    await pt.waitFor(new RegExp(`${idA}: warning: body warn body line`));
    const mine = (ls: readonly string[], id: string): string[] => ls.filter((l) => l.includes(`${id}: `) && /: (warning|info|reject): body /.test(l)).map((l) => l.replace(/^.*?[0-9A-F]{6,}: /, ''));
    assert.deepEqual(mine(pt.lines(), idA), mine(pf.log(), idB));
    const { content } = await pt.message(idA);
    assert.doesNotMatch(content, /secret body line/);
    assert.match(content, /\r\nwarn body line\r\nlast\r\n/);

    const [r1, r2] = await Promise.all([send(pt.port4, 'body reject', '', 'ok\r\nreject this body\r\n'), send(pfPort, 'body reject', '', 'ok\r\nreject this body\r\n')]);
    assert.equal(r1, '550 5.7.1 bad body');
    assert.equal(r2, r1);
  });

  it('cleanup: a header_checks table that cannot be opened defers every message (451), as with Postfix', async () => {
    const [port] = await freePorts(1);
    const mainCf = 'header_checks = regexp:/nonexistent/postern-header-checks';
    const pf2 = await startPostfix({ services: [{ port: port! }], mainCf });
    const pt2 = await startPostern({ mainCf, ipv6: false });
    try {
      const [a, b] = await Promise.all([send(pt2.port4, 'anything'), send(port!, 'anything')]);
      assert.equal(a, '451 4.3.0 Error: queue file write error');
      assert.equal(b, a);
      await pt2.waitFor(/header_checks map lookup problem -- message not accepted, try again later/);
    } finally {
      pf2.stop();
      await pt2.stop();
    }
  });
});

import * as assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { PosternError } from '../errors.js';
import { Log, nextSessionId, resetSessionIds } from './index.js';

// Local time is what Postfix stamps; pin it so the expected bytes do not depend on the machine.
process.env.TZ = 'UTC';

const execFileP = promisify(execFile);
const INDEX_URL = pathToFileURL(path.join(path.dirname(fileURLToPath(import.meta.url)), 'index.js')).href;

const fixed = (iso: string) => () => new Date(iso);

let tmp = '';
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'postern-log-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('log: line format', () => {
  test('log: info line is "Mon DD HH:MM:SS host syslog_name/service[N]: text" with Postfix\'s zero-padded day', () => {
    const log = Log.memory({ myhostname: 'mx.example.test', clock: fixed('2026-11-05T06:07:08Z') });
    log.logger('smtpd', { id: 19202 }).info('connect from localhost[127.0.0.1]');
    assert.deepEqual(log.lines, ['Nov 05 06:07:08 mx postfix/smtpd[19202]: connect from localhost[127.0.0.1]']);
  });

  test('log: two-digit day and every month name', () => {
    const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
    for (let m = 0; m < 12; m++) {
      const log = Log.memory({ clock: () => new Date(Date.UTC(2026, m, 25, 23, 59, 1)) });
      log.logger('qmgr', { id: 7 }).info('x');
      assert.equal(log.lines[0], `${months[m]} 25 23:59:01 mx postfix/qmgr[7]: x`);
    }
  });

  test('log: time stamp is local time (TZ)', () => {
    const saved = process.env.TZ;
    try {
      process.env.TZ = 'Europe/Berlin';
      const log = Log.memory({ clock: fixed('2026-07-01T22:30:00Z') });
      log.logger('smtpd', { id: 1 }).info('x');
      assert.equal(log.lines[0], 'Jul 02 00:30:00 mx postfix/smtpd[1]: x');
    } finally {
      process.env.TZ = saved;
    }
  });

  test('log: warning, error, fatal and panic carry Postfix\'s severity prefix; info none', () => {
    const log = Log.memory({ clock: fixed('2026-11-25T06:06:59Z') });
    const l = log.logger('smtpd', { id: 123 });
    l.info('a');
    l.warning('b');
    l.error('c');
    l.fatal('d');
    l.panic('e');
    assert.deepEqual(log.lines, [
      'Nov 25 06:06:59 mx postfix/smtpd[123]: a',
      'Nov 25 06:06:59 mx postfix/smtpd[123]: warning: b',
      'Nov 25 06:06:59 mx postfix/smtpd[123]: error: c',
      'Nov 25 06:06:59 mx postfix/smtpd[123]: fatal: d',
      'Nov 25 06:06:59 mx postfix/smtpd[123]: panic: e',
    ]);
    assert.deepEqual(log.texts(), ['a', 'warning: b', 'error: c', 'fatal: d', 'panic: e']);
    assert.deepEqual(
      log.records.map((r) => [r.tag, r.id, r.severity, r.text]),
      [
        ['postfix/smtpd', 123, 'info', 'a'],
        ['postfix/smtpd', 123, 'warning', 'b'],
        ['postfix/smtpd', 123, 'error', 'c'],
        ['postfix/smtpd', 123, 'fatal', 'd'],
        ['postfix/smtpd', 123, 'panic', 'e'],
      ],
    );
  });

  test('log: host is the first label of myhostname; empty myhostname uses the system host name', () => {
    const a = Log.memory({ myhostname: 'mail.v6.example.org', clock: fixed('2026-11-25T00:00:00Z') });
    a.logger('smtp', { id: 1 }).info('x');
    assert.equal(a.lines[0], 'Nov 25 00:00:00 mail postfix/smtp[1]: x');
    const b = Log.memory({ myhostname: '', clock: fixed('2026-11-25T00:00:00Z') });
    b.logger('smtp', { id: 1 }).info('x');
    assert.equal(b.lines[0], `Nov 25 00:00:00 ${os.hostname().split('.')[0]} postfix/smtp[1]: x`);
  });

  test('log: without an id the [N] slot is the process id', () => {
    const log = Log.memory({ clock: fixed('2026-11-25T00:00:00Z') });
    const l = log.logger('master');
    assert.equal(l.id, process.pid);
    l.info('daemon started -- version 0.1.0');
    assert.equal(log.lines[0], `Nov 25 00:00:00 mx postfix/master[${process.pid}]: daemon started -- version 0.1.0`);
  });

  test('log: control characters from a peer cannot start a new line (CR, LF, TAB, ESC become ?)', () => {
    const log = Log.memory({ clock: fixed('2026-11-25T00:00:00Z') });
    log.logger('smtpd', { id: 5 }).info('helo=<x\r\nNov 25 00:00:00 mx postfix/smtpd[6]: forged\t\x1b[31m\x7f>');
    assert.deepEqual(log.lines, ['Nov 25 00:00:00 mx postfix/smtpd[5]: helo=<x??Nov 25 00:00:00 mx postfix/smtpd[6]: forged??[31m?>']);
  });

  test('log: UTF-8 text is kept; a lone surrogate becomes ?', () => {
    const log = Log.memory({ clock: fixed('2026-11-25T00:00:00Z') });
    log.logger('smtpd', { id: 5 }).info('from=<jörg@bücher.example> 📧 \ud800x');
    assert.equal(log.texts()[0], 'from=<jörg@bücher.example> 📧 ?x');
  });

  test('log: text is cut at 2000 bytes as Postfix (MSG_LOGGER_RECLEN), never inside a character', () => {
    const log = Log.memory({ clock: fixed('2026-11-25T00:00:00Z') });
    const l = log.logger('smtpd', { id: 5 });
    l.info('a'.repeat(5000));
    l.info(`${'a'.repeat(1999)}é tail`);
    const [first, second] = log.texts();
    assert.equal(first, 'a'.repeat(2000));
    assert.equal(second, 'a'.repeat(1999));
  });
});

describe('log: syslog_name', () => {
  test('log: syslog_name defaults to postfix in memory logs and is main.cf syslog_name otherwise', () => {
    const a = Log.memory({ clock: fixed('2026-11-25T00:00:00Z') });
    a.logger('cleanup', { id: 9 }).info('x');
    const b = Log.memory({ syslog_name: 'postern', clock: fixed('2026-11-25T00:00:00Z') });
    b.logger('cleanup', { id: 9 }).info('x');
    assert.equal(a.lines[0], 'Nov 25 00:00:00 mx postfix/cleanup[9]: x');
    assert.equal(b.lines[0], 'Nov 25 00:00:00 mx postern/cleanup[9]: x');
  });

  test('log: -o syslog_name=postfix/submission gives postfix/submission/smtpd[N]', () => {
    const log = Log.memory({ clock: fixed('2026-11-25T06:06:59Z') });
    log.logger('smtpd', { syslog_name: 'postfix/submission', id: 19219 }).info('connect from localhost[127.0.0.1]');
    assert.equal(log.lines[0], 'Nov 25 06:06:59 mx postfix/submission/smtpd[19219]: connect from localhost[127.0.0.1]');
  });

  test('log: configure() on reload changes syslog_name and host for loggers without their own syslog_name', () => {
    const log = Log.memory({ clock: fixed('2026-11-25T00:00:00Z') });
    const plain = log.logger('smtpd', { id: 1 });
    const sub = log.logger('smtpd', { id: 2, syslog_name: 'postfix/submission' });
    log.configure({ syslog_name: 'mail', myhostname: 'relay.example.org' });
    plain.info('x');
    sub.info('y');
    assert.deepEqual(log.lines, ['Nov 25 00:00:00 relay mail/smtpd[1]: x', 'Nov 25 00:00:00 relay postfix/submission/smtpd[2]: y']);
  });

  test('log: fail2ban-compatible prefix "postfix/smtpd[123]:" as the sample log has it', () => {
    const log = Log.memory({ clock: fixed('2026-11-25T06:06:59Z') });
    log.logger('smtpd', { id: 123 }).info('NOQUEUE: reject: RCPT from unknown[192.0.2.1]: 554 5.7.1 <u@example.org>: Relay access denied; from=<s@example.net> to=<u@example.org> proto=ESMTP helo=<h>');
    const line = log.lines[0]!;
    assert.match(line, /^Nov 25 06:06:59 mx postfix\/smtpd\[123\]: NOQUEUE: reject: /);
    // fail2ban common.conf __daemon_combs_re + postfix.conf _daemon, and pflogsumm 1.1.5's prefix regex.
    assert.match(line.split(' ').slice(4).join(' '), /^postfix(-\w+)?\/\w+(?:\/smtp[ds])?\[\d+\]:\s/);
    assert.match(line, /^(...) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) \S+ (.+)$/);
    assert.match(line.slice(16), /^\S+ (?:postfix)(?:\/(?:smtps|submission))?\/([^[:]*).*?: ([^:\s]+)/);
  });
});

describe('log: session ids', () => {
  test('log: nextSessionId gives distinct increasing numbers, never the process id', () => {
    resetSessionIds(process.pid - 2);
    const ids = Array.from({ length: 1000 }, () => nextSessionId());
    assert.equal(new Set(ids).size, ids.length);
    assert.ok(!ids.includes(process.pid));
    assert.equal(ids[0], process.pid - 2);
    assert.equal(ids[2], process.pid + 1);
  });

  test('log: nextSessionId wraps from 2^31-1 to 1', () => {
    resetSessionIds(2 ** 31 - 2);
    assert.deepEqual([nextSessionId(), nextSessionId(), nextSessionId()], [2 ** 31 - 2, 2 ** 31 - 1, 1]);
    resetSessionIds(process.pid + 1);
  });
});

describe('log: maillog_file', () => {
  test('log: lines are appended to maillog_file, existing content kept', async () => {
    const file = path.join(tmp, 'append.log');
    fs.writeFileSync(file, 'old line\n');
    const log = Log.open({ syslog_name: 'postfix', myhostname: 'mx.example.test', maillog_file: file, clock: fixed('2026-11-25T06:06:59Z') });
    log.logger('smtpd', { id: 1 }).info('one');
    await turn();
    assert.equal(fs.readFileSync(file, 'utf8'), 'old line\nNov 25 06:06:59 mx postfix/smtpd[1]: one\n');
    log.logger('smtpd', { id: 1 }).warning('two');
    await log.close();
    assert.equal(fs.readFileSync(file, 'utf8'), 'old line\nNov 25 06:06:59 mx postfix/smtpd[1]: one\nNov 25 06:06:59 mx postfix/smtpd[1]: warning: two\n');
  });

  test('log: fatal is on disk when fatal() returns', () => {
    const file = path.join(tmp, 'fatal.log');
    const log = Log.open({ syslog_name: 'postfix', myhostname: 'mx', maillog_file: file, clock: fixed('2026-11-25T06:06:59Z') });
    const l = log.logger('postfix-script');
    l.info('before');
    l.fatal('the Postfix mail system is not running');
    assert.equal(
      fs.readFileSync(file, 'utf8'),
      `Nov 25 06:06:59 mx postfix/postfix-script[${process.pid}]: before\nNov 25 06:06:59 mx postfix/postfix-script[${process.pid}]: fatal: the Postfix mail system is not running\n`,
    );
    void log.close();
  });

  test('log: reopen() after logrotate renamed the file writes to a new file of the same name', async () => {
    const file = path.join(tmp, 'rotate.log');
    const log = Log.open({ syslog_name: 'postfix', myhostname: 'mx', maillog_file: file, clock: fixed('2026-11-25T06:06:59Z') });
    const l = log.logger('smtpd', { id: 3 });
    l.info('before rotation');
    await turn();
    fs.renameSync(file, `${file}.1`);
    l.info('between rename and HUP');
    log.reopen();
    l.info('after reopen');
    await log.close();
    assert.equal(fs.readFileSync(`${file}.1`, 'utf8'), 'Nov 25 06:06:59 mx postfix/smtpd[3]: before rotation\nNov 25 06:06:59 mx postfix/smtpd[3]: between rename and HUP\n');
    assert.equal(fs.readFileSync(file, 'utf8'), 'Nov 25 06:06:59 mx postfix/smtpd[3]: after reopen\n');
  });

  test('log: configure() with another maillog_file moves the log there', async () => {
    const a = path.join(tmp, 'moved-a.log');
    const b = path.join(tmp, 'moved-b.log');
    const log = Log.open({ syslog_name: 'postfix', myhostname: 'mx', maillog_file: a, clock: fixed('2026-11-25T06:06:59Z') });
    const l = log.logger('smtpd', { id: 3 });
    l.info('first');
    log.configure({ maillog_file: b });
    l.info('second');
    await log.close();
    assert.equal(fs.readFileSync(a, 'utf8'), 'Nov 25 06:06:59 mx postfix/smtpd[3]: first\n');
    assert.equal(fs.readFileSync(b, 'utf8'), 'Nov 25 06:06:59 mx postfix/smtpd[3]: second\n');
  });

  test('log: an unopenable maillog_file is a PosternError naming the file and the errno text', () => {
    const file = path.join(tmp, 'no-such-dir', 'x.log');
    assert.throws(
      () => Log.open({ syslog_name: 'postfix', myhostname: 'mx', maillog_file: file }),
      (err: unknown) => err instanceof PosternError && err.code === 'log' && err.message === `open maillog_file "${file}": No such file or directory`,
    );
  });

  test('log: many loggers writing at once produce only whole lines, each exactly once', async () => {
    const file = path.join(tmp, 'concurrent.log');
    const log = Log.open({ syslog_name: 'postfix', myhostname: 'mx', maillog_file: file });
    const sessions = 200;
    const perSession = 250;
    await Promise.all(
      Array.from({ length: sessions }, async (_, s) => {
        const l = log.logger('smtpd', { id: 1000 + s, ...(s % 2 === 1 ? { syslog_name: 'postfix/submission' } : {}) });
        for (let i = 0; i < perSession; i++) {
          l.info(`session ${s} line ${i} ${'x'.repeat((s * 7 + i) % 300)}`);
          if (i % 10 === 0) await turn();
        }
      }),
    );
    await log.close();
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, sessions * perSession);
    const next = new Map<number, number>();
    for (const line of lines) {
      const m = /^\w{3} \d\d \d\d:\d\d:\d\d mx postfix(?:\/submission)?\/smtpd\[(\d+)\]: session (\d+) line (\d+) (x*)$/.exec(line);
      assert.ok(m, `not a whole line: ${line.slice(0, 120)}`);
      const s = Number(m[2]);
      assert.equal(Number(m[1]), 1000 + s);
      assert.equal(m[4]!.length, (s * 7 + Number(m[3])) % 300);
      // Per logger, lines arrive in the order they were logged.
      assert.equal(Number(m[3]), next.get(s) ?? 0);
      next.set(s, Number(m[3]) + 1);
    }
  });

  test('log: several processes appending to one maillog_file never interleave inside a line', async () => {
    const file = path.join(tmp, 'multiproc.log');
    const procs = 4;
    const perProc = 20000;
    const script = `
      import { Log } from ${JSON.stringify(INDEX_URL)};
      const log = Log.open({ syslog_name: 'postfix', myhostname: 'mx', maillog_file: ${JSON.stringify(file)} });
      const l = log.logger('smtpd', { id: Number(process.argv[1]) });
      for (let i = 0; i < ${perProc}; i++) {
        l.info('proc ' + process.argv[1] + ' line ' + i + ' ' + 'y'.repeat(i % 200));
        if (i % 500 === 0) await new Promise((r) => setImmediate(r));
      }
      await log.close();
    `;
    await Promise.all(Array.from({ length: procs }, (_, p) => execFileP(process.execPath, ['--input-type=module', '-e', script, String(p + 1)])));
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, procs * perProc);
    const counts = new Map<string, number>();
    for (const line of lines) {
      const m = /^\w{3} \d\d \d\d:\d\d:\d\d mx postfix\/smtpd\[(\d)\]: proc (\d) line (\d+) (y*)$/.exec(line);
      assert.ok(m, `not a whole line: ${line.slice(0, 120)}`);
      assert.equal(m[1], m[2]);
      assert.equal(m[4]!.length, Number(m[3]) % 200);
      counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
    }
    assert.deepEqual([...counts.values()], Array(procs).fill(perProc));
  });
});

/** Run a child that logs `count` lines to maillog_file and then calls fatal() and exits at once. */
function runFatalChild(maillog_file: string, count: number): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const script = `
    import { Log } from ${JSON.stringify(INDEX_URL)};
    // Touching the stream makes libuv put the pipe in non-blocking mode, as in a real server.
    process.stderr.write('');
    process.stdout.write('');
    const log = Log.open({ syslog_name: 'postfix', myhostname: 'mx', maillog_file: ${JSON.stringify(maillog_file)} });
    const l = log.logger('smtpd', { id: 42 });
    for (let i = 0; i < ${count}; i++) l.info('line ' + i + ' ' + 'z'.repeat(100));
    l.fatal('out of time');
    process.exit(1);
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code }));
  });
}

function assertAllLines(text: string, count: number): void {
  const lines = text.split('\n');
  assert.equal(lines.pop(), '');
  assert.equal(lines.length, count + 1);
  for (let i = 0; i < count; i++) assert.match(lines[i]!, new RegExp(`^\\w{3} \\d\\d \\d\\d:\\d\\d:\\d\\d mx postfix/smtpd\\[42\\]: line ${i} z{100}$`));
  assert.match(lines[count]!, /postfix\/smtpd\[42\]: fatal: out of time$/);
}

describe('log: standard streams', () => {
  test('log: unset maillog_file logs to standard error; a fatal right before exit loses nothing through a full pipe', async () => {
    const r = await runFatalChild('', 30000);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assertAllLines(r.stderr, 30000);
  });

  test('log: maillog_file=/dev/stdout logs to standard output', async () => {
    const r = await runFatalChild('/dev/stdout', 30000);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, '');
    assertAllLines(r.stdout, 30000);
  });
});

describe('log: write errors', () => {
  test('log: a full disk (/dev/full) is reported once on stderr and does not stop the server', async (t) => {
    if (!fs.existsSync('/dev/full')) {
      t.skip('no /dev/full on this system');
      return;
    }
    const script = `
      import { Log } from ${JSON.stringify(INDEX_URL)};
      const log = Log.open({ syslog_name: 'postfix', myhostname: 'mx', maillog_file: '/dev/full' });
      const l = log.logger('smtpd', { id: 1 });
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 1000; i++) l.info('line ' + i);
        await new Promise((r) => setImmediate(r));
      }
      l.fatal('still alive');
      await log.close();
      process.stdout.write('done\\n');
    `;
    const { stdout, stderr } = await execFileP(process.execPath, ['--input-type=module', '-e', script]);
    assert.equal(stdout, 'done\n');
    assert.equal(stderr, 'postern: warning: write maillog_file /dev/full: No space left on device\n');
  });
});

describe('log: analyzers', () => {
  test('log: fail2ban-regex with Debian\'s postfix filter matches our NOQUEUE reject lines (IPv4 and IPv6)', async (t) => {
    const tool = '/usr/bin/fail2ban-regex';
    const filter = '/etc/fail2ban/filter.d/postfix.conf';
    if (!fs.existsSync(tool) || !fs.existsSync(filter)) {
      if (process.env.CI === 'true') assert.fail('fail2ban-regex or its postfix filter is missing, and CI=true: .ci/run must install fail2ban');
      t.skip('fail2ban-regex not installed (apt-get install fail2ban); set CI=true to make this a failure');
      return;
    }
    const file = path.join(tmp, 'fail2ban.log');
    const log = Log.open({ syslog_name: 'postfix', myhostname: 'mx.example.test', maillog_file: file, clock: fixed('2026-11-05T06:06:59Z') });
    const plain = log.logger('smtpd', { id: 19202 });
    const sub = log.logger('smtpd', { id: 19219, syslog_name: 'postfix/submission' });
    plain.info('connect from unknown[192.0.2.7]');
    plain.info(
      'NOQUEUE: reject: RCPT from unknown[192.0.2.7]: 554 5.7.1 <bob@example.org>: Relay access denied; from=<spam@example.net> to=<bob@example.org> proto=ESMTP helo=<spammer>',
    );
    sub.info(
      'NOQUEUE: reject: RCPT from unknown[2001:db8::7]: 554 5.7.1 <bob@example.org>: Relay access denied; from=<spam@example.net> to=<bob@example.org> proto=ESMTP helo=<spammer>',
    );
    plain.info('disconnect from unknown[192.0.2.7] ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4');
    await log.close();
    const { stdout: ips } = await execFileP(tool, ['-o', 'ip', file, filter]);
    assert.deepEqual(ips.trim().split('\n'), ['192.0.2.7', '2001:db8::7']);
    const { stdout: summary } = await execFileP(tool, [file, filter]);
    assert.match(summary, /^Lines: 4 lines, 0 ignored, 2 matched, 2 missed/m);
  });
});

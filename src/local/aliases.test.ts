// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${name}` is Postfix's macro syntax in these strings, not a template.
import * as assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { openAliasMaps, parseAliases } from './aliases.js';
import { localExpand } from './expand.js';
import { parsePasswd } from './passwd.js';
import { parseAddressList } from './tokens.js';

let tmp: string;
before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'postern-aliases-'));
});
after(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

test('aliases: name: value lines, continuation lines, comments, quoted names, case-folded keys', () => {
  const src = [
    '# comment',
    'Postmaster: root',
    'staff: alice,',
    '  bob, carol@example.org',
    '',
    '"with space": x',
    'cmd: "|/usr/bin/vacation bob"',
    'inc:   :include:/etc/mail/list',
  ].join('\n');
  const r = parseAliases(src, '/etc/aliases');
  assert.deepEqual([...r.map.entries()], [
    ['postmaster', 'root'],
    ['staff', 'alice,  bob, carol@example.org'],
    ['with space', 'x'],
    ['cmd', '"|/usr/bin/vacation bob"'],
    ['inc', ':include:/etc/mail/list'],
  ]);
  assert.deepEqual(r.warnings, []);
});

test('aliases: postalias warnings for lines it would skip; the first of duplicates wins', () => {
  const r = parseAliases('nocolon value\nuser@example.com: x\nempty:\na: 1\nA: 2\n', 'aliases');
  assert.deepEqual(r.warnings, [
    'aliases, line 1: need name:value pair',
    'aliases, line 2: name must be local',
    'aliases, line 3: need name:value pair',
    'aliases, line 5: duplicate entry: "a"',
  ]);
  assert.equal(r.map.get('a'), '1');
});

test('aliases: address lists give internal forms for addresses, commands, files and :include:', () => {
  assert.deepEqual(parseAddressList('alice, Bob Smith <bob@example.org>, "|/usr/bin/prog -x", /var/log/mail.txt, :include:/etc/list, \\carol'), [
    'alice',
    'bob@example.org',
    '|/usr/bin/prog -x',
    '/var/log/mail.txt',
    ':include:/etc/list',
    '\\carol',
  ]);
  assert.deepEqual(parseAddressList('a (comment, with comma), <@relay.example:d@example.org>, "quoted local"@example.org'), ['a', 'd@example.org', 'quoted local@example.org']);
  assert.deepEqual(parseAddressList(''), []);
});

test('aliases: openAliasMaps reads hash:/path as the text source, skips nis:, and defers on a missing file', async () => {
  const file = path.join(tmp, 'aliases');
  await fsp.writeFile(file, 'root: admin\n');
  const warnings: string[] = [];
  const maps = openAliasMaps([`hash:${file}`, 'nis:mail.aliases', `hash:${path.join(tmp, 'missing')}`], { warn: (w) => warnings.push(w) });
  assert.equal(maps.length, 2);
  assert.equal(maps[0]!.get('ROOT'), 'admin');
  assert.equal(maps[0]!.ownerUid, process.getuid?.() ?? null);
  assert.throws(() => maps[1]!.get('x'), /No such file or directory/);
  // Re-read after a change (the change check runs at most once a second).
  await fsp.writeFile(file, 'root: someone-else\n');
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(maps[0]!.get('root'), 'someone-else');
  assert.deepEqual(warnings, []);
});

test('local: $name expansion for luser_relay', () => {
  const a = { user: 'bob', extension: 'tag', domain: 'example.test', recipient_delimiter: '+' };
  assert.equal(localExpand('$user@other.example', a), 'bob@other.example');
  assert.equal(localExpand('${user}${extension?+$extension}@x', a), 'bob+tag@x');
  assert.equal(localExpand('${home:nohome}-$$-$(domain)', a), 'nohome-$-example.test');
});

test('local: passwd(5) parsing skips comments and malformed lines', () => {
  const e = parsePasswd('root:x:0:0:root:/root:/bin/bash\n#c\nbad:line\nbob:x:1000:1000:Bob,,,:/home/bob:/bin/sh\n');
  assert.deepEqual(
    e.map((x) => [x.name, x.uid, x.gid, x.dir, x.shell]),
    [
      ['root', 0, 0, '/root', '/bin/bash'],
      ['bob', 1000, 1000, '/home/bob', '/bin/sh'],
    ],
  );
});

import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Dialect, type PatternFlags, translatePattern } from './pattern.js';

const REGEXP: PatternFlags = { i: true, m: false, s: false, x: true, A: false, E: false, U: false };
const PCRE: PatternFlags = { i: true, m: false, s: true, x: false, A: false, E: false, U: false };

function run(dialect: Dialect, pattern: string, input: string, flags: Partial<PatternFlags> = {}): string[] | null {
  const t = translatePattern(pattern, dialect, { ...(dialect === 'pcre' ? PCRE : REGEXP), ...flags });
  assert.ok(t.ok, `${pattern}: ${t.ok ? '' : t.message}`);
  t.re.lastIndex = 0;
  const m = t.re.exec(input);
  return m === null ? null : [...m].map((s) => s ?? '');
}

test('pattern: PCRE constructs translated with the same meaning', () => {
  // [pattern, flags, input, whole match and groups (null = no match)]
  const cases: [string, Partial<PatternFlags>, string, string[] | null][] = [
    ['^(\\S+)@(\\S+)$', {}, 'user@example.com', ['user@example.com', 'user', 'example.com']],
    ['^abc$', {}, 'ABC', ['ABC']],
    ['^abc$', { i: false }, 'ABC', null],
    // $ matches before a final newline unless E; \z never does, \Z does.
    ['^abc$', {}, 'abc\n', ['abc']],
    ['^abc$', { E: true }, 'abc\n', null],
    ['^abc\\z', {}, 'abc\n', null],
    ['^abc\\Z', {}, 'abc\n', ['abc']],
    ['\\Aabc', {}, 'xabc', null],
    // dotall is on by default in pcre: tables; s turns it off; a \r is not a newline for PCRE.
    ['^a.b$', {}, 'a\nb', ['a\nb']],
    ['^a.b$', { s: false }, 'a\nb', null],
    ['^a.b$', { s: false }, 'a\rb', ['a\rb']],
    // multi-line ^ and $ look at \n only
    ['^b$', { m: true }, 'a\nb\nc', ['b']],
    ['^b$', { m: true }, 'a\rb\rc', null],
    ['^b', { m: true }, 'a\n', null],
    // \s is ASCII whitespace only (no U+00A0)
    ['^a\\sb$', {}, 'a\u00a0b', null],
    ['^a\\sb$', {}, 'a\tb', ['a\tb']],
    ['^[\\s]$', {}, '\u00a0', null],
    ['^\\Qa.b*c\\E$', {}, 'a.b*c', ['a.b*c']],
    ['^\\Qa.b*c\\E$', {}, 'aXbbc', null],
    ['^a(?#comment)b$', {}, 'ab', ['ab']],
    ['^(?<user>[^@]+)@', {}, 'me@x', ['me@', 'me']],
    ['^(?P<user>[^@]+)@', {}, 'me@x', ['me@', 'me']],
    ['^(?:ab)+$', {}, 'ABab', ['ABab']],
    ['foo(?=bar)', {}, 'foobar', ['foo']],
    ['(?<=x)y', {}, 'xy', ['y']],
    ['^(.+?)(\\d+)$', {}, 'abc123', ['abc123', 'abc', '123']],
    ['^(.+)(\\d+)$', { U: true }, 'abc123', ['abc123', 'abc', '123']],
    ['^(.+?)(\\d+)$', { U: true }, 'abc123', ['abc123', 'abc12', '3']],
    [' a \\  b # comment', { x: true }, 'a b', ['a b']],
    ['^[ a]$', { x: true }, ' ', [' ']],
    ['abc', { A: true }, 'xabc', null],
    ['abc', { A: true }, 'abcx', ['abc']],
    ['^[[:alpha:]]+[[:digit:]]$', {}, 'abc1', ['abc1']],
    ['^[[:alpha:]]+$', {}, 'é', null],
    ['^[]a]+$', {}, ']a]', [']a]']],
    ['^[^]a]$', {}, 'b', ['b']],
    ['^\\x41\\x{42}\\103\\e$', { i: false }, 'ABC\x1b', ['ABC\x1b']],
    ['^\\x{263a}$', {}, '\u263a', ['\u263a']],
    ['^\\cA$', {}, '\x01', ['\x01']],
    ['^[\\101-\\103]+$', {}, 'abc', ['abc']],
    ['^a{2,3}$', {}, 'aaa', ['aaa']],
    ['^a{,3}$', {}, 'a{,3}', ['a{,3}']],
    ['^\\/\\-\\.$', {}, '/-.', ['/-.']],
  ];
  for (const [pattern, flags, input, want] of cases) assert.deepEqual(run('pcre', pattern, input, flags), want, `/${pattern}/ on ${JSON.stringify(input)}`);
});

test('pattern: POSIX (regexp:) constructs translated with the same meaning', () => {
  const cases: [string, Partial<PatternFlags>, string, string[] | null][] = [
    ['^(.*)-outgoing@(.*)$', {}, 'list-outgoing@example.com', ['list-outgoing@example.com', 'list', 'example.com']],
    ['^postmaster@', {}, 'PostMaster@x', ['PostMaster@']],
    ['^postmaster@', { i: false }, 'PostMaster@x', null],
    // A backslash inside a bracket expression is literal in POSIX.
    ['^x[\\.]y$', {}, 'x\\y', ['x\\y']],
    ['^x[\\.]y$', {}, 'x.y', ['x.y']],
    ['^[]a]+$', {}, ']a', [']a']],
    // Without REG_NEWLINE `.` and [^a] match a newline and ^ $ are the string's ends.
    ['^a.b$', {}, 'a\nb', ['a\nb']],
    ['^a[^x]b$', {}, 'a\nb', ['a\nb']],
    ['^b$', {}, 'a\nb', null],
    // With REG_NEWLINE (m) they do not match a newline, and ^ $ match at line ends.
    ['^a.b$', { m: true }, 'a\nb', null],
    ['^a[^x]b$', { m: true }, 'a\nb', null],
    ['^b$', { m: true }, 'a\nb\nc', ['b']],
    ['^[[:upper:]][[:lower:]]+[[:space:]][[:digit:]]+$', { i: false }, 'Abc 12', ['Abc 12']],
    ['^[[:punct:]]+$', {}, '!/@[`{~', ['!/@[`{~']],
    ['\\<foo\\>', {}, 'a foo b', ['foo']],
    ['\\<foo\\>', {}, 'afoo', null],
    ['\\`ab', {}, 'ab', ['ab']],
    ["ab\\'", {}, 'ab\n', null],
    ['^a\\wb\\sc$', {}, 'a_b c', ['a_b c']],
    ['^a{,2}$', {}, 'aa', ['aa']],
    ['^a{2}$', {}, 'aa', ['aa']],
    ['^(a|b)+c$', {}, 'abac', ['abac', 'a']],
    ['^\\(a\\)\\{$', {}, '(a){', ['(a){']],
    ['x}', {}, 'x}', ['x}']],
  ];
  for (const [pattern, flags, input, want] of cases) assert.deepEqual(run('regexp', pattern, input, flags), want, `/${pattern}/ on ${JSON.stringify(input)}`);
});

test('pattern: constructs JavaScript would read differently are refused, naming the construct', () => {
  const cases: [Dialect, string, string][] = [
    ['pcre', 'a++b', 'possessive quantifier "++" is not supported'],
    ['pcre', 'a{2}+', 'possessive quantifier "{2}+" is not supported'],
    ['pcre', '(?>ab)', 'atomic group "(?>" is not supported'],
    ['pcre', '(?i)abc', 'inline modifier "(?i)" is not supported (put the flag after the pattern'],
    ['pcre', '(?i:abc)', 'inline modifier "(?i:" is not supported'],
    ['pcre', '(?-i)abc', 'inline modifier "(?-i)" is not supported'],
    ['pcre', '(a)(?1)', 'recursion, subroutine call or named backreference "(?1)"'],
    ['pcre', '(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)\\10', 'backreference "\\10"'],
    ['pcre', '(?R)', 'recursion'],
    ['pcre', '(?&name)', 'recursion'],
    ['pcre', '(?P=name)', 'named backreference'],
    ['pcre', '(?(1)a|b)', 'conditional group'],
    ['pcre', '(?|a|b)', 'branch reset group'],
    ['pcre', '(?C1)a', 'callout'],
    ['pcre', '(*UTF)a', 'backtracking control verb'],
    ['pcre', '(a)\\1', 'backreference "\\1" is not supported (JavaScript lets a reference to an unset group match the empty string'],
    ['pcre', '(a)\\g1', 'backreference "\\g"'],
    ['pcre', 'a\\Kb', 'escape "\\K" is not supported'],
    ['pcre', '\\R', 'escape "\\R"'],
    ['pcre', '\\h', 'escape "\\h"'],
    ['pcre', '\\p{L}', 'escape "\\p"'],
    ['pcre', '[[:^alpha:]]', 'negated POSIX class "[:^alpha:]"'],
    ['pcre', '[\\Qab\\E]', '"\\Q...\\E" inside a character class'],
    ['pcre', '\\x{1f600}', '"\\x{1f600}" beyond U+FFFF'],
    ['regexp', 'x\\d+', '"\\d" is not supported (not a POSIX regular expression escape; use [0-9]'],
    ['regexp', 'a\\n', '"\\n" is not supported'],
    ['regexp', '(?:ab)', '"(?" is not supported (PCRE syntax'],
    ['regexp', 'a+?', '"+?" is not supported (POSIX has no lazy quantifiers'],
    ['regexp', 'a*?', '"*?" is not supported'],
    ['regexp', '(a)\\1', 'backreference "\\1"'],
    ['regexp', '[[=a=][.ch.]]', 'collating element "[.ch.]"'],
  ];
  for (const [dialect, pattern, message] of cases) {
    const t = translatePattern(pattern, dialect, dialect === 'pcre' ? PCRE : REGEXP);
    assert.ok(!t.ok, pattern);
    assert.equal(t.unsupported, true, pattern);
    assert.ok(t.message.includes(message), `${pattern}: ${t.message}`);
  }
  const bre = translatePattern('a\\{2\\}', 'regexp', { ...REGEXP, x: false });
  assert.ok(!bre.ok && bre.message.startsWith('basic regular expressions'));
});

test('pattern: plain syntax errors are reported as invalid, not unsupported', () => {
  const cases: [Dialect, string, string][] = [
    ['pcre', 'a(b', 'invalid pattern: '],
    ['pcre', '[abc', 'invalid pattern: unterminated character class'],
    ['pcre', 'abc\\', 'invalid pattern: trailing backslash'],
    ['pcre', '[[:nosuch:]]', 'invalid pattern: unknown POSIX class'],
    ['regexp', 'a{2', 'invalid pattern: invalid interval'],
    ['regexp', '*a', 'invalid pattern: '],
  ];
  for (const [dialect, pattern, message] of cases) {
    const t = translatePattern(pattern, dialect, dialect === 'pcre' ? PCRE : REGEXP);
    assert.ok(!t.ok, pattern);
    assert.equal(t.unsupported, false, pattern);
    assert.ok(t.message.startsWith(message), `${pattern}: ${t.message}`);
  }
});

test('pattern: capture groups are counted for $n checks (named ones too, not (?:) or lookarounds)', () => {
  const count = (d: Dialect, p: string): number => {
    const t = translatePattern(p, d, d === 'pcre' ? PCRE : REGEXP);
    assert.ok(t.ok, p);
    return t.groups;
  };
  assert.equal(count('pcre', '(a)(?:b)(?=c)(?<n>d)(?P<m>e)(?#x)'), 3);
  assert.equal(count('regexp', '((a)|b)()'), 3);
  assert.equal(count('pcre', '\\(a\\)[(]'), 0);
});

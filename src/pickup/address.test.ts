import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAddressList, parseSender, RecipientExtractor } from './address.js';

describe('pickup/address: RFC 5322 address lists as sendmail reads them', () => {
  const cases: [string, string[]][] = [
    ['user@example.com', ['user@example.com']],
    ['a@x, b@y', ['a@x', 'b@y']],
    ['Joe Q. Public <john.q.public@example.com>', ['john.q.public@example.com']],
    ['"Smith, John" <js@example.com>, ann@example.org', ['js@example.com', 'ann@example.org']],
    ['Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>', ['pete@silly.test']],
    ['A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;', ['c@a.test', 'joe@where.test', 'jdoe@one.test']],
    ['undisclosed-recipients:;', []],
    ['"john doe"@example.com', ['john doe@example.com']],
    ['<@relay.test,@other.test:user@final.test>', ['user@final.test']],
    ['root', ['root']],
    ['user@[192.0.2.1]', ['user@[192.0.2.1]']],
    ['  ,, a@b ,', ['a@b']],
    ['Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>', ['mary@x.test', 'jdoe@example.org', 'one@y.test']],
    ['', []],
  ];
  for (const [text, want] of cases) {
    it(`address: ${JSON.stringify(text)}`, () => {
      assert.deepEqual(parseAddressList(text), want);
    });
  }

  it('address: -f <> and -f "" are the null sender; the first of several is taken', () => {
    assert.deepEqual(parseSender('<>'), { address: '', count: 1 });
    assert.deepEqual(parseSender(''), { address: '', count: 0 });
    assert.deepEqual(parseSender('Al <al@x.test>'), { address: 'al@x.test', count: 1 });
    assert.equal(parseSender('a@x, b@y').count, 2);
  });

  it('address: -t takes To, Cc and Bcc, in order', () => {
    const x = new RecipientExtractor();
    x.field('To', 'a@x.test, B <b@x.test>');
    x.field('Subject', 'c@x.test');
    x.field('cc', 'c@x.test');
    x.field('BCC', 'd@x.test');
    x.field('Reply-To', 'e@x.test');
    assert.deepEqual(x.recipients(), ['a@x.test', 'b@x.test', 'c@x.test', 'd@x.test']);
  });

  it('address: -t with a Resent-To/Cc/Bcc field takes only the Resent- fields', () => {
    const x = new RecipientExtractor();
    x.field('To', 'old@x.test');
    x.field('Resent-To', 'new@x.test');
    x.field('Cc', 'ignored@x.test');
    x.field('Resent-Bcc', 'hidden@x.test');
    assert.deepEqual(x.recipients(), ['new@x.test', 'hidden@x.test']);
  });
});

import * as assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { isQueueId, longQueueId, queueIdInode, safeStrtoul, safeUltostr, shortQueueId } from './id.js';

describe('queue/id', () => {
  test('queue id: safe alphabet conversion matches Postfix safe_ultostr.ref', () => {
    assert.equal(safeUltostr(4294967295n, 2, 0), '1'.repeat(32));
    assert.equal(safeUltostr(4294967295n, 10, 0), '4294967295');
    assert.equal(safeUltostr(4294967295n, 16, 0), 'HHHHHHHH');
    assert.equal(safeUltostr(4294967295n, 52, 0), 'CHPgSv');
    assert.equal(safeUltostr(0n, 52, 4), '0000');
    assert.equal(safeStrtoul('CHPgSv', 52), 4294967295n);
    assert.equal(safeStrtoul('a', 52), null); // a vowel is not in the alphabet
  });

  test('queue id: short ids are %05X microseconds + %lX inode, like 4516420F32', () => {
    assert.equal(shortQueueId({ sec: 0, usec: 0x45164 }, 0x20f32n), '4516420F32');
    assert.equal(shortQueueId({ sec: 0, usec: 7 }, 0x1n), '000071');
    assert.equal(shortQueueId({ sec: 0, usec: 999999 }, 0xabcdefn), 'F423FABCDEF');
  });

  test('queue id: long ids are base-52 seconds (6+) + base-52 usec (4) + z + base-51 inode', () => {
    // 4fJ9Qs0bdqz1v from the brief: decode its fields and encode them back.
    const id = '4fJ9Qs0bdqz1v';
    const sec = safeStrtoul(id.slice(0, 6), 52)!;
    const usec = safeStrtoul(id.slice(6, 10), 52)!;
    const inode = safeStrtoul(id.slice(11), 51)!;
    assert.equal(longQueueId({ sec: Number(sec), usec: Number(usec) }, inode), id);
    assert.equal(queueIdInode(id), inode);
    // A time in 2026 gives six second digits; small inode, no padding.
    const t = { sec: 1_795_000_000, usec: 123456 };
    const made = longQueueId(t, 52n);
    assert.match(made, /^[0-9A-Za-z]{6}[0-9A-Za-z]{4}z[0-9A-Za-y]+$/);
    assert.equal(made.slice(11), '11');
  });

  test('queue id: isQueueId accepts both formats and rejects temporary names and junk', () => {
    assert.ok(isQueueId('4516420F32'));
    assert.ok(isQueueId('9260421CADA'));
    assert.ok(isQueueId('4fJ9Qs0bdqz1v'));
    for (const bad of ['', '4516', '4516420f32', '123.456.7.tmp', '../etc/passwd', '4fJ9Qs0bdqz', 'AEIOU0bdqz1v', 'x'.repeat(100)]) {
      assert.equal(isQueueId(bad), false, bad);
    }
  });

  test('queue id: any time and inode give a valid id of each kind that encodes the inode back', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 33 }), fc.integer({ min: 0, max: 999_999 }), fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }), (sec, usec, inode) => {
        const s = shortQueueId({ sec, usec }, inode);
        const l = longQueueId({ sec, usec }, inode);
        assert.ok(isQueueId(s) && isQueueId(l), `${s} ${l}`);
        assert.equal(queueIdInode(s), inode);
        assert.equal(queueIdInode(l), inode);
      }),
    );
  });
});

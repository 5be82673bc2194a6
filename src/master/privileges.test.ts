import * as assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PosternError } from '../errors.js';
import { type Account, checkMailOwner, lookupUser } from './privileges.js';

const users: Record<string, Account> = {
  root: { name: 'root', uid: 0, gid: 0 },
  wheelish: { name: 'wheelish', uid: 1001, gid: 0 },
  postfix: { name: 'postfix', uid: 102, gid: 105 },
};
const lookup = (n: string): Account | null => users[n] ?? null;

describe('master/privileges: mail_owner', () => {
  test('master: mail_owner = root is refused with Postfix\'s "has privileged user ID"', () => {
    assert.throws(
      () => checkMailOwner('root', '/etc/postern/main.cf', lookup),
      (err: unknown) => {
        assert.ok(err instanceof PosternError);
        assert.equal(err.message, 'file /etc/postern/main.cf: parameter mail_owner: user root has privileged user ID');
        return true;
      },
    );
  });

  test('master: a mail_owner whose primary group is 0 is refused', () => {
    assert.throws(() => checkMailOwner('wheelish', '/x/main.cf', lookup), {
      message: 'file /x/main.cf: parameter mail_owner: user wheelish has privileged group ID',
    });
  });

  test('master: an unknown mail_owner is refused', () => {
    assert.throws(() => checkMailOwner('nosuchuser', '/x/main.cf', lookup), {
      message: 'file /x/main.cf: parameter mail_owner: unknown user name value: nosuchuser',
    });
  });

  test('master: an ordinary mail_owner is accepted with its uid and primary gid', () => {
    assert.deepEqual(checkMailOwner('postfix', '/x/main.cf', lookup), users.postfix);
  });

  test('master: lookupUser reads the system user database', () => {
    assert.deepEqual(lookupUser('root'), { name: 'root', uid: 0, gid: 0 });
    assert.equal(lookupUser('no-such-user-postern-test'), null);
    assert.equal(lookupUser('root:x'), null);
    assert.equal(lookupUser(''), null);
  });
});

import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDovecotPassdb } from './dovecot.js';

describe('config: dovecot.conf passdb', () => {
  it('config: dovecot.conf passdb passwd-file with scheme=, nested sections skipped, relative path', () => {
    const text = `# Postern reads only the passdb
protocols = imap
service auth {
  unix_listener /var/spool/postfix/private/auth {
    mode = 0660 # comment
  }
}
passdb {
  driver = pam
}
passdb {
  driver = passwd-file
  args = scheme=sha512-crypt username_format=%u users
}
userdb {
  driver = static
}
`;
    assert.deepEqual(parseDovecotPassdb(text, '/etc/postern/dovecot.conf'), { file: '/etc/postern/users', scheme: 'SHA512-CRYPT', origin: { file: '/etc/postern/dovecot.conf', line: 11 } });
    assert.deepEqual(parseDovecotPassdb('passdb {\n driver = passwd-file\n args = /etc/dovecot/users\n}\n', '/x/dovecot.conf')?.scheme, 'CRYPT');
    assert.equal(parseDovecotPassdb('passdb {\n driver = pam\n}\n', '/x/dovecot.conf'), null);
  });

  it('config: dovecot.conf errors name file and line', () => {
    assert.throws(() => parseDovecotPassdb('passdb {\n driver = passwd-file\n}\n', 'dovecot.conf'), { message: 'dovecot.conf, line 1: passdb with driver = passwd-file has no args (the passwd-file path)' });
    assert.throws(() => parseDovecotPassdb('passdb {\n driver = passwd-file\n args = /etc/%d/users\n}\n', 'dovecot.conf'), { message: 'dovecot.conf, line 3: passwd-file path /etc/%d/users: %variables are not supported by Postern; name one file' });
    assert.throws(() => parseDovecotPassdb('}\n', 'dovecot.conf'), { message: "dovecot.conf, line 1: unexpected '}'" });
    assert.throws(() => parseDovecotPassdb('passdb {\n driver = pam\n', 'dovecot.conf'), { message: "dovecot.conf, line 3: missing '}' at end of file" });
    assert.throws(() => parseDovecotPassdb('what is this\n', 'dovecot.conf'), /dovecot.conf, line 1: cannot parse "what is this"/);
  });
});

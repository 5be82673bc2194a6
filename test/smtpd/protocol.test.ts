import * as assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { smtpdCounters } from '../../src/smtpd/index.js';
import { startPostern } from '../harness/postern.js';
import { CONVERSATIONS, runConversation } from './conversations.js';

describe('smtpd: scripted conversations (Postfix 3.7 replies)', () => {
  after(() => assert.equal(smtpdCounters.exceptions, 0));
  for (const conv of CONVERSATIONS) {
    it(`smtpd: ${conv.name}`, async () => {
      const pt = await startPostern({ mainCf: `smtpd_forbid_unauth_pipelining = no\n${conv.mainCf ?? ''}`, ipv6: false });
      try {
        const got = await runConversation(pt.port4, conv);
        assert.equal(got.greeting, conv.greeting ?? '220 mx.example.test ESMTP Postfix');
        const want = conv.steps.map((s) => ({ replies: [...s.replies], closed: s.closes ?? false }));
        assert.deepEqual(got.steps, want, pt.lines().join('\n'));
      } finally {
        await pt.stop();
      }
    });
  }
});

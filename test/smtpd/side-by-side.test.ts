/**
 * The same scripted conversations against a private Postfix 3.7 and against Postern, each with
 * the same main.cf settings: the reply codes and texts must be the same (queue ids aside).
 * Postfix runs one smtpd listener per conversation (settings as master.cf -o overrides), so one
 * Postfix start serves them all.
 */
import * as assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePorts, mainCfSettings, postfixSkip, type StartedPostfix, startPostfix } from '../harness/postfix.js';
import { startPostern } from '../harness/postern.js';
import { CONVERSATIONS, runConversation } from './conversations.js';

const skip = postfixSkip();
const convs = CONVERSATIONS.filter((c) => c.postern_only === undefined && !c.global);
const globals = CONVERSATIONS.filter((c) => c.postern_only === undefined && c.global);

describe('smtpd: side by side with Postfix 3.7', { skip }, () => {
  let pf: StartedPostfix;
  let ports: number[];
  before(async () => {
    ports = await freePorts(convs.length);
    pf = await startPostfix({
      services: convs.map((c, i) => ({ port: ports[i]!, overrides: { smtpd_forbid_unauth_pipelining: 'no', ...mainCfSettings(c.mainCf ?? '') } })),
    });
  });
  after(() => pf?.stop());

  for (const conv of globals) {
    it(`smtpd: same replies as Postfix: ${conv.name}`, async () => {
      const [port] = await freePorts(1);
      const own = await startPostfix({ services: [{ port: port! }], mainCf: `smtpd_forbid_unauth_pipelining = no\n${conv.mainCf ?? ''}` });
      const pt = await startPostern({ mainCf: `smtpd_forbid_unauth_pipelining = no\n${conv.mainCf ?? ''}`, ipv6: false });
      try {
        const [postfix, postern] = await Promise.all([runConversation(port!, conv), runConversation(pt.port4, conv)]);
        assert.equal(postern.greeting, postfix.greeting);
        assert.deepEqual(postern.steps, postfix.steps);
      } finally {
        own.stop();
        await pt.stop();
      }
    });
  }

  convs.forEach((conv, i) => {
    it(`smtpd: same replies as Postfix: ${conv.name}`, async () => {
      const pt = await startPostern({ mainCf: `smtpd_forbid_unauth_pipelining = no\n${conv.mainCf ?? ''}`, ipv6: false });
      try {
        const [postfix, postern] = await Promise.all([runConversation(ports[i]!, conv), runConversation(pt.port4, conv)]);
        assert.equal(postern.greeting, postfix.greeting);
        assert.deepEqual(postern.steps, postfix.steps);
      } finally {
        await pt.stop();
      }
    });
  });
});

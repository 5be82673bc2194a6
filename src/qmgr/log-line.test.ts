import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { deliveryLogLine, formatTv } from './log-line.js';

// Postfix src/util/format_tv.in → format_tv.ref, (input, sig_dig, max_dig) → output.
const REF: readonly [number, number, number, string][] = [
  [1110, 2, 6, '1110'], [111, 2, 6, '111'], [11.1, 2, 6, '11'], [1.11, 2, 6, '1.1'], [0.111, 2, 6, '0.11'],
  [0.0111, 2, 6, '0.011'], [0.00111, 2, 6, '0.0011'], [0.000111, 2, 6, '0.00011'], [0.0000111, 2, 6, '0.000011'],
  [1000, 2, 6, '1000'], [100, 2, 6, '100'], [10, 2, 6, '10'], [1, 2, 6, '1'], [0.1, 2, 6, '0.1'], [0.01, 2, 6, '0.01'],
  [0.001, 2, 6, '0.001'], [0.0001, 2, 6, '0.0001'], [0.00001, 2, 6, '0.00001'], [0.0000011, 2, 6, '0.000001'],
  [996, 2, 6, '996'], [99.6, 2, 6, '100'], [9.96, 2, 6, '10'], [0.996, 2, 6, '1'], [0.0996, 2, 6, '0.1'],
  [0.00996, 2, 6, '0.01'], [0.000996, 2, 6, '0.001'],
  [1110, 1, 6, '1110'], [111, 1, 6, '111'], [11.1, 1, 6, '11'], [1.11, 1, 6, '1'], [0.111, 1, 6, '0.1'],
  [0.0111, 1, 6, '0.01'], [0.00111, 1, 6, '0.001'], [0.000111, 1, 6, '0.0001'], [0.000011, 1, 6, '0.00001'],
  [996, 1, 6, '996'], [99.6, 1, 6, '100'], [9.96, 1, 6, '10'], [0.996, 1, 6, '1'], [0.0996, 1, 6, '0.1'],
];

test('qmgr: formatTv matches Postfix format_tv reference output', () => {
  for (const [v, sig, max, want] of REF) assert.equal(formatTv(v, sig, max), want, `${v} ${sig} ${max}`);
});

test('qmgr: formatTv with delay_logging_resolution_limit 2 (the default) as Postfix logs', () => {
  assert.equal(formatTv(0.16), '0.16');
  assert.equal(formatTv(1.34), '1.3');
  assert.equal(formatTv(0.004), '0');
  assert.equal(formatTv(0.005), '0.01');
  assert.equal(formatTv(2.06), '2.1');
  assert.equal(formatTv(0), '0');
  assert.equal(formatTv(8.1), '8.1');
  assert.equal(formatTv(123.4), '123');
});

test('qmgr: delivery log line (golden), orig_to only when it differs', () => {
  const t = { arrival: 1000, active: 1010, handoff: 1030, connSeconds: 0, done: 1050 };
  assert.equal(
    deliveryLogLine({ queueId: 'ABC123', to: 'a@example.test', origTo: 'A@example.test', relay: 'virtual', dsn: '2.0.0', status: 'sent', reason: 'delivered to maildir' }, t, 2),
    'ABC123: to=<a@example.test>, relay=virtual, delay=0.05, delays=0.01/0.02/0/0.02, dsn=2.0.0, status=sent (delivered to maildir)',
  );
  assert.equal(
    deliveryLogLine({ queueId: 'ABC123', to: 'pm@example.test', origTo: 'postmaster', relay: 'local', dsn: '5.1.1', status: 'bounced', reason: 'unknown user' }, { ...t, handoff: null }, 2),
    'ABC123: to=<pm@example.test>, orig_to=<postmaster>, relay=local, delay=0.05, delays=0.01/0.04/0/0, dsn=5.1.1, status=bounced (unknown user)',
  );
  assert.equal(
    deliveryLogLine({ queueId: 'Q', to: 'r@x', origTo: null, relay: '127.0.0.1[127.0.0.1]:25', dsn: '4.4.1', status: 'deferred', reason: 'connect refused' }, { arrival: 0, active: 4000, handoff: 4000, connSeconds: 0.03, done: 4100 }, 2),
    'Q: to=<r@x>, relay=127.0.0.1[127.0.0.1]:25, delay=4.1, delays=4/0/0.03/0.07, dsn=4.4.1, status=deferred (connect refused)',
  );
});

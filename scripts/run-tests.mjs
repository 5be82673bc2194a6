#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with node:test. Arguments filter by substring
// (`npm test -- smtpd` runs the files whose path contains "smtpd").
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk('dist', [])
  .filter((f) => !f.startsWith(join('dist', 'bench')))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('run-tests: no test files found under dist/ (did tsc run?)');
  process.exit(1);
}
const concurrency = process.env.POSTERN_TEST_CONCURRENCY ?? '4';
// A hung test must fail, not stall CI: node:test has no default timeout.
const timeout = process.env.POSTERN_TEST_TIMEOUT_MS ?? '180000';
const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, `--test-timeout=${timeout}`, ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);

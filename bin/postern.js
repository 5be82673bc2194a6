#!/usr/bin/env node
// Entry point: the compiled CLI lives in dist/ (built by `npm install` through `prepare`).
import { main } from '../dist/src/cli/main.js';

// A reader that goes away early (`postern postcat -q ID | head`) ends the command quietly, as
// SIGPIPE ends Postfix's tools (status 128 + 13). Node ignores SIGPIPE and reports EPIPE instead,
// which would otherwise crash with a stack trace. (Log lines to /dev/stdout use fd 1, not this.)
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(141);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`postern: fatal: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);

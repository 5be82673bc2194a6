#!/usr/bin/env node
// `npm run docs`: rewrite README.md's configuration section (between <!-- params:begin --> and
// <!-- params:end -->) from the parameter registry. Needs the compiled registry (tsc runs first).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BEGIN_MARKER, END_MARKER, paramsMarkdown, replaceParamsBlock } from '../dist/src/config/params/doc.js';
import { PARAMS } from '../dist/src/config/params/index.js';

const readmePath = join(dirname(fileURLToPath(import.meta.url)), '..', 'README.md');
const readme = readFileSync(readmePath, 'utf8');
const next = replaceParamsBlock(readme, paramsMarkdown(PARAMS));
if (next === null) {
  console.error(`gen-readme: README.md needs the markers ${BEGIN_MARKER} and ${END_MARKER} (in that order)`);
  process.exit(1);
}
if (next === readme) {
  console.log('gen-readme: README.md is up to date');
} else {
  writeFileSync(readmePath, next);
  console.log(`gen-readme: README.md updated (${Object.keys(PARAMS).length} parameters)`);
}

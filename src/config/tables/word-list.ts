/**
 * Postfix string_list matching for the small word lists of main.cf (smtpd_noop_commands,
 * smtpd_forbidden_commands, smtpd_sasl_mechanism_filter): shared by smtpd and `sendmail -bs`.
 */
import { openTable } from './index.js';

/** A word list as Postfix string_list: words (case-insensitive), `!word`, inline regexp/pcre tables, other tables. */
export function wordMatcher(values: readonly string[], warn: (t: string) => void): (word: string) => boolean {
  const tests: { negate: boolean; test: (w: string) => boolean }[] = [];
  for (const raw of values) {
    let v = raw;
    let negate = false;
    while (v.startsWith('!')) {
      negate = !negate;
      v = v.slice(1);
    }
    const inline = /^(regexp|pcre):\{(.*)\}$/s.exec(v);
    if (inline) {
      const rules = [...inline[2]!.matchAll(/\{\s*\/((?:\\.|[^/])*)\/([a-zA-Z]*)\s*([^}]*)\}/g)];
      const res = rules.map((m) => {
        // Postfix regexp tables are case-insensitive unless the 'i' flag toggles it.
        const insensitive = !(m[2] ?? '').includes('i');
        return new RegExp(m[1]!, insensitive ? 'i' : '');
      });
      tests.push({ negate, test: (w) => res.some((r) => r.test(w)) });
      continue;
    }
    if (/^[a-z0-9_]+:/i.test(v)) {
      try {
        const t = openTable(v);
        tests.push({ negate, test: (w) => t.get(w) !== undefined });
      } catch (e) {
        warn(`${v}: table unavailable: ${(e as Error).message}`);
      }
      continue;
    }
    const lw = v.toLowerCase();
    tests.push({ negate, test: (w) => w.toLowerCase() === lw });
  }
  return (word) => {
    for (const t of tests) if (t.test(word)) return !t.negate;
    return false;
  };
}


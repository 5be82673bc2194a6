/**
 * Which domains local(8) treats as its own when it expands an alias: the mydestination list
 * (domain names, `/file/name` with more names, `type:table` looked up by domain), matched
 * case-insensitively, trailing dot ignored. Addresses without a domain are local after
 * `@$myorigin` is appended (Postfix canonicalises them the same way).
 */
import { readFileSync } from 'node:fs';
import { type LookupTable, openTable } from '../config/tables/index.js';

export class LocalDomains {
  private readonly names = new Set<string>();
  private readonly tables: LookupTable[] = [];
  readonly warnings: string[] = [];

  constructor(mydestination: readonly string[], configDir?: string) {
    for (const entry of mydestination) {
      if (entry.startsWith('/')) {
        try {
          for (const w of readFileSync(entry, 'utf8').split(/[\s,]+/)) if (w !== '' && !w.startsWith('#')) this.names.add(norm(w));
        } catch (err) {
          this.warnings.push(`mydestination: ${entry}: ${err instanceof Error ? err.message : String(err)}`);
        }
      } else if (/^[a-z0-9]+:/i.test(entry) && !entry.startsWith('[')) {
        try {
          this.tables.push(openTable(entry, configDir !== undefined ? { file: 'main.cf', line: 0, configDir } : undefined));
        } catch (err) {
          this.warnings.push(`mydestination: ${err instanceof Error ? err.message : String(err)}`);
        }
      } else {
        this.names.add(norm(entry));
      }
    }
  }

  has(domain: string): boolean {
    const d = norm(domain);
    if (this.names.has(d)) return true;
    return this.tables.some((t) => t.get(d) !== undefined);
  }
}

function norm(d: string): string {
  const l = d.toLowerCase();
  return l.endsWith('.') ? l.slice(0, -1) : l;
}

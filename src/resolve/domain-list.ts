/**
 * Postfix domain lists (match_list(3) with match_hostname): `mydestination`, `relay_domains`,
 * `virtual_alias_domains`, `virtual_mailbox_domains`. Each element is one of
 *   - `name`        the domain itself (case-insensitive); with parent matching (the parameter is
 *                   in parent_domain_matches_subdomains) also every subdomain of it
 *   - `.name`       every subdomain of `name`
 *   - `!element`    a match of `element` means "not in the list" (stops the search)
 *   - `/file/name`  the elements listed in that file (whitespace/comma separated, `#` comments)
 *   - `type:table`  the domain is in the list when the table has it as a key (fixed tables also
 *                   look up the parent domains: `example.com` or `.example.com` as above)
 * The first element that matches decides (postconf(5) "mydestination", "relay_domains").
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { type LookupTable, openTable } from '../config/tables/index.js';

type Element =
  | { readonly kind: 'name'; readonly name: string; readonly negate: boolean }
  | { readonly kind: 'table'; readonly table: LookupTable; readonly negate: boolean };

export interface DomainListOptions {
  /** The parameter is listed in parent_domain_matches_subdomains. */
  readonly parentMatches: boolean;
  /** For relative /file/name and table paths. */
  readonly configDir?: string;
  /** main.cf, for error messages. */
  readonly mainCfPath?: string;
  /** Already-open tables by spec (shared with the *_maps parameters). */
  readonly tables?: Map<string, LookupTable>;
}

const isTableSpec = (s: string): boolean => /^[a-z][a-z0-9_]*:/i.test(s) && !s.startsWith('/');

export class DomainList {
  private readonly elements: Element[] = [];

  constructor(
    readonly parameter: string,
    items: readonly string[],
    private readonly opts: DomainListOptions,
  ) {
    for (const item of items) this.add(item, false, 0);
  }

  private add(raw: string, negateOuter: boolean, depth: number): void {
    let item = raw.trim();
    if (item === '') return;
    let negate = negateOuter;
    while (item.startsWith('!')) {
      negate = !negate;
      item = item.slice(1);
    }
    if (item.startsWith('/')) {
      if (depth > 10) throw new ConfigError(this.opts.mainCfPath ?? 'main.cf', 0, `${this.parameter}: ${item}: too many nested files`);
      let text: string;
      try {
        text = readFileSync(item, 'utf8');
      } catch (err) {
        throw new ConfigError(this.opts.mainCfPath ?? 'main.cf', 0, `${this.parameter}: open ${item}: ${(err as Error).message}`);
      }
      for (const line of text.split('\n')) {
        const body = line.replace(/#.*/, '');
        for (const part of body.split(/[\s,]+/)) this.add(part, negate, depth + 1);
      }
      return;
    }
    if (isTableSpec(item)) {
      const shared = this.opts.tables?.get(item);
      const table =
        shared ??
        openTable(item, { file: this.opts.mainCfPath ?? 'main.cf', line: 0, ...(this.opts.configDir !== undefined ? { configDir: this.opts.configDir } : {}) });
      this.opts.tables?.set(item, table);
      this.elements.push({ kind: 'table', table, negate });
      return;
    }
    this.elements.push({ kind: 'name', name: item.toLowerCase(), negate });
  }

  get empty(): boolean {
    return this.elements.length === 0;
  }

  /** Is `domain` in the list? */
  matches(domain: string): boolean {
    const name = domain.toLowerCase();
    for (const e of this.elements) {
      if (this.elementMatches(e, name)) return !e.negate;
    }
    return false;
  }

  private elementMatches(e: Element, name: string): boolean {
    if (e.kind === 'name') {
      if (name === e.name) return true;
      if (e.name.startsWith('.')) return name.endsWith(e.name);
      return this.opts.parentMatches && name.endsWith(`.${e.name}`);
    }
    if (e.table.get(name) !== undefined) return true;
    if (e.table.kind === 'pattern') return false;
    // match_hostname(): parent domains, as `example.com` (parent style) or `.example.com`.
    for (let dot = name.indexOf('.'); dot >= 0; dot = name.indexOf('.', dot + 1)) {
      const key = this.opts.parentMatches ? name.slice(dot + 1) : name.slice(dot);
      if (key === '' || key === '.') break;
      if (e.table.get(key) !== undefined) return true;
    }
    return false;
  }
}

/**
 * cidr: tables (cidr_table(5)): `network/prefix result`, `address result`, `!pattern result`,
 * `if pattern` … `endif`. IPv6 is written WITHOUT brackets here (brackets are accepted, not
 * required). A rule Postfix would skip is skipped with Postfix's warning (`cidr map FILE, line N:
 * … : skipping this rule`). Lookup keys are one address, compared in binary; a key matches only
 * rules of its own family (`::ffff:1.2.3.4` is IPv6 here: callers map it to IPv4 first).
 */
import { type IpNetwork, inNetwork, parseCidrPattern, parseIp } from './address.js';
import { isSpace, type LogicalLine, trimSpace } from './text.js';

type CidrRule =
  | { readonly op: 'match'; readonly line: number; readonly net: IpNetwork; readonly match: boolean; readonly value: string }
  | { readonly op: 'if'; readonly line: number; readonly net: IpNetwork; readonly match: boolean; endif?: number }
  | { readonly op: 'endif'; readonly line: number };

export interface CidrRules {
  readonly rules: readonly CidrRule[];
  readonly warnings: readonly string[];
}

const isAlnum = (c: string | undefined): boolean => c !== undefined && /^[0-9A-Za-z]$/.test(c);

function negations(text: string, pos: number): { match: boolean; pos: number } {
  let match = true;
  while (pos < text.length && (text[pos] === '!' || isSpace(text[pos]))) {
    if (text[pos] === '!') match = !match;
    pos++;
  }
  return { match, pos };
}

export function parseCidrRules(lines: readonly LogicalLine[], mapName: string): CidrRules {
  const warnings: string[] = [];
  const rules: CidrRule[] = [];
  const open: number[] = [];
  const skip = (line: number, why: string): void => {
    warnings.push(`cidr map ${mapName}, line ${line}: ${why}: skipping this rule`);
  };
  /** The rule's network, or undefined after warning why the rule is skipped. */
  const network = (line: number, pattern: string): IpNetwork | undefined => {
    if (pattern === '') {
      skip(line, 'no address pattern');
      return undefined;
    }
    const parsed = parseCidrPattern(pattern);
    if (!parsed.ok) {
      skip(line, parsed.why);
      return undefined;
    }
    return parsed.net;
  };
  for (const { text, line } of lines) {
    if (/^if$/i.test(text.slice(0, 2)) && !isAlnum(text[2])) {
      const { match, pos } = negations(text, 2);
      const net = network(line, trimSpace(text.slice(pos)));
      if (net === undefined) continue;
      open.push(rules.length);
      rules.push({ op: 'if', line, net, match });
    } else if (/^endif$/i.test(text.slice(0, 5)) && !isAlnum(text[5])) {
      if (trimSpace(text.slice(5)) !== '') {
        skip(line, 'garbage after ENDIF');
        continue;
      }
      if (open.length === 0) {
        skip(line, 'ENDIF without IF');
        continue;
      }
      const ifRule = rules[open.pop()!];
      if (ifRule !== undefined && ifRule.op === 'if') ifRule.endif = rules.length;
      rules.push({ op: 'endif', line });
    } else {
      const { match, pos } = negations(text, 0);
      let end = pos;
      while (end < text.length && !isSpace(text[end])) end++;
      const net = network(line, text.slice(pos, end));
      if (net === undefined) continue;
      const value = trimSpace(text.slice(end));
      if (value === '') {
        skip(line, 'no lookup result');
        continue;
      }
      rules.push({ op: 'match', line, net, match, value });
    }
  }
  for (const idx of open) warnings.push(`cidr map ${mapName}, line ${rules[idx]!.line}: IF has no matching ENDIF`);
  return { rules, warnings };
}

/** cidr_match_execute: first rule whose network (same family) matches, negation applied. */
export function lookupCidr(rules: readonly CidrRule[], key: string): string | undefined {
  const addr = parseIp(key);
  if (addr === undefined) return undefined;
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    if (rule.op === 'endif') continue;
    const hit = rule.net.family === addr.family && inNetwork(rule.net, addr) === rule.match;
    if (rule.op === 'if') {
      if (hit) continue;
      if (rule.endif === undefined) return undefined;
      i = rule.endif;
      continue;
    }
    if (hit) return rule.value;
  }
  return undefined;
}

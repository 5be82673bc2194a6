/**
 * The README's configuration section, built from the registry: one table per owning daemon
 * (name, type, default, daemon, doc). scripts/gen-readme.mjs writes it between the
 * `<!-- params:begin -->` and `<!-- params:end -->` markers; a test keeps README.md in step.
 */
import { IGNORED } from './ignored.js';
import { PARAMS } from './index.js';
import type { ParamOwner, ParamSpec } from './types.js';

export const BEGIN_MARKER = '<!-- params:begin -->';
export const END_MARKER = '<!-- params:end -->';

/** Section order; owners not listed here follow in alphabetical order. */
const OWNER_ORDER: readonly ParamOwner[] = ['global', 'master', 'smtpd', 'tls', 'anvil', 'cleanup', 'qmgr', 'smtp', 'local', 'virtual', 'bounce', 'sendmail', 'pickup', 'imapd', 'postscreen'];

const OWNER_TITLE: Readonly<Record<ParamOwner, string>> = {
  global: 'Global (identity, directories, logging)',
  master: 'master (services, listening, processes)',
  smtpd: 'smtpd (SMTP server)',
  tls: 'TLS (shared by server and client)',
  anvil: 'anvil (client rate counters)',
  cleanup: 'cleanup (message content and addresses)',
  qmgr: 'qmgr (queue, routing, retries)',
  smtp: 'smtp (SMTP client)',
  local: 'local (local delivery)',
  virtual: 'virtual (virtual mailbox delivery)',
  bounce: 'bounce (DSNs and postmaster notices)',
  sendmail: 'sendmail (local submission)',
  pickup: 'pickup',
  imapd: 'imapd (IMAP server)',
  postscreen: 'postscreen',
};

/** Markdown table cell: pipes escaped, never empty-looking. */
function cell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|');
}

function code(text: string): string {
  if (text === '') return '(empty)';
  const ticks = text.includes('`') ? '``' : '`';
  const pad = text.startsWith('`') || text.endsWith('`') ? ' ' : '';
  return `${ticks}${pad}${cell(text)}${pad}${ticks}`;
}

function typeOf(spec: ParamSpec<unknown>): string {
  switch (spec.type) {
    case 'time':
      return `time (bare number: ${spec.unit ?? 's'})`;
    case 'enum':
      return `enum: ${(spec.values ?? []).map((v) => (v === '' ? '(empty)' : v)).join(', ')}`;
    case 'table-list':
      return 'table list';
    default:
      return spec.type;
  }
}

/** The generated markdown (without the markers), ending in a newline. */
export function paramsMarkdown(params: Readonly<Record<string, ParamSpec<unknown>>> = PARAMS): string {
  const byOwner = new Map<ParamOwner, string[]>();
  for (const name of Object.keys(params).sort()) {
    const owner = params[name].owner;
    const list = byOwner.get(owner) ?? [];
    list.push(name);
    byOwner.set(owner, list);
  }
  const owners = [...byOwner.keys()].sort((a, b) => {
    const ia = OWNER_ORDER.indexOf(a);
    const ib = OWNER_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  const out: string[] = [`${Object.keys(params).length} parameters. Time values take a unit (s, m, h, d, w); a bare number is in the unit shown.`, ''];
  for (const owner of owners) {
    out.push(`### ${OWNER_TITLE[owner]}`, '', '| name | type | default | daemon | doc |', '|---|---|---|---|---|');
    for (const name of byOwner.get(owner) ?? []) {
      const s = params[name];
      const ignored = Object.hasOwn(IGNORED, name) ? ` **Not acted on yet** (a setting is logged as ignored): ${IGNORED[name]}.` : '';
      out.push(`| \`${name}\` | ${cell(typeOf(s))} | ${code(s.default)} | ${owner} | ${cell(s.doc + ignored)} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

/**
 * README text with the block between the markers replaced by `markdown`; null when the markers are
 * missing or out of order.
 */
export function replaceParamsBlock(readme: string, markdown: string = paramsMarkdown()): string | null {
  const b = readme.indexOf(BEGIN_MARKER);
  const e = readme.indexOf(END_MARKER);
  if (b < 0 || e < b) return null;
  return `${readme.slice(0, b + BEGIN_MARKER.length)}\n${markdown}${readme.slice(e)}`;
}

/**
 * $name expansion of per-recipient attributes (Postfix local/local_expand.c over mac_expand):
 * `$name`, `${name}`, `$(name)`, `${name?text}` (text when name is set and non-empty),
 * `${name:text}` (text when it is not), `$$`. Used for luser_relay (`$user@other.example`).
 * Unknown names expand to nothing. Values are not re-expanded.
 */
export type ExpandAttrs = Readonly<Record<string, string | null | undefined>>;

export function localExpand(template: string, attrs: ExpandAttrs): string {
  return localExpandChecked(template, attrs).value;
}

export interface Expanded {
  readonly value: string;
  /** A plain `$name`/`${name}` named an attribute that is not set (null/undefined): mac_expand's MAC_PARSE_UNDEF. */
  readonly undefinedUsed: boolean;
  /** `$extension` (any form) had a value: local_expand's LOCAL_EXP_EXTENSION_MATCHED. */
  readonly extensionMatched: boolean;
}

/**
 * localExpand with Postfix's status bits (forward_path skips an entry that used an unset name);
 * `filter`: characters allowed in substituted values, others become `_` (forward_expansion_filter).
 */
export function localExpandChecked(template: string, attrs: ExpandAttrs, filter?: string): Expanded {
  const state = { undefinedUsed: false, extensionMatched: false };
  const allowed = filter === undefined ? null : new Set(filter);
  const clean = (v: string): string => (allowed === null ? v : Array.from(v, (c) => (allowed.has(c) ? c : '_')).join(''));
  const look = (name: string, plain: boolean): string => {
    const v = attrs[name];
    if (name === 'extension' && v !== null && v !== undefined) state.extensionMatched = true;
    if (v === null || v === undefined) {
      if (plain) state.undefinedUsed = true;
      return '';
    }
    return clean(v);
  };
  const value = expandWith(template, look);
  return { value, ...state };
}

function expandWith(template: string, look: (name: string, plain: boolean) => string): string {
  let out = '';
  let i = 0;
  while (i < template.length) {
    const c = template[i]!;
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    const next = template[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '{' || next === '(') {
      const close = next === '{' ? '}' : ')';
      let depth = 0;
      let j = i + 1;
      for (; j < template.length; j++) {
        if (template[j] === next) depth++;
        else if (template[j] === close && --depth === 0) break;
      }
      const inner = template.slice(i + 2, j);
      i = j + 1;
      const m = /^([A-Za-z0-9_]+)(?:([?:])([\s\S]*))?$/.exec(inner);
      if (!m) continue;
      const value = look(m[1]!, m[2] === undefined);
      if (m[2] === '?') out += value !== '' ? expandWith(m[3]!, look) : '';
      else if (m[2] === ':') out += value === '' ? expandWith(m[3]!, look) : '';
      else out += value;
      continue;
    }
    const m = /^[A-Za-z0-9_]+/.exec(template.slice(i + 1));
    if (!m) {
      out += '$';
      i++;
      continue;
    }
    out += look(m[0], true);
    i += 1 + m[0].length;
  }
  return out;
}

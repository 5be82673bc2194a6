/**
 * $name expansion of per-recipient attributes (Postfix local/local_expand.c over mac_expand):
 * `$name`, `${name}`, `$(name)`, `${name?text}` (text when name is set and non-empty),
 * `${name:text}` (text when it is not), `$$`. Used for luser_relay (`$user@other.example`).
 * Unknown names expand to nothing. Values are not re-expanded.
 */
export type ExpandAttrs = Readonly<Record<string, string | null | undefined>>;

export function localExpand(template: string, attrs: ExpandAttrs): string {
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
      const value = attrs[m[1]!] ?? '';
      if (m[2] === '?') out += value !== '' ? localExpand(m[3]!, attrs) : '';
      else if (m[2] === ':') out += value === '' ? localExpand(m[3]!, attrs) : '';
      else out += value;
      continue;
    }
    const m = /^[A-Za-z0-9_]+/.exec(template.slice(i + 1));
    if (!m) {
      out += '$';
      i++;
      continue;
    }
    out += attrs[m[0]] ?? '';
    i += 1 + m[0].length;
  }
  return out;
}

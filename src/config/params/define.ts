/** Constructors for registry entries; each fixes the typed value of the parameter. */
import type { ParamOwner, ParamSpec, TimeUnit } from './types.js';

interface Extra {
  readonly min?: number;
  readonly max?: number;
}

export const bool = (def: string, owner: ParamOwner, doc: string): ParamSpec<boolean> => ({ type: 'bool', default: def, owner, doc });
export const int = (def: string, owner: ParamOwner, doc: string, extra: Extra = {}): ParamSpec<number> => ({ type: 'int', default: def, owner, doc, ...extra });
/** Time in seconds after parsing; `unit` is what a bare number means for this parameter. */
export const time = (def: string, owner: ParamOwner, doc: string, unit: TimeUnit = 's', extra: Extra = {}): ParamSpec<number> => ({
  type: 'time',
  default: def,
  owner,
  doc,
  unit,
  ...extra,
});
/** Byte count. */
export const size = (def: string, owner: ParamOwner, doc: string, extra: Extra = {}): ParamSpec<number> => ({ type: 'size', default: def, owner, doc, ...extra });
/** Whitespace/comma separated list (postconf(5)); `{ ... }` groups kept whole. */
export const list = (def: string, owner: ParamOwner, doc: string): ParamSpec<readonly string[]> => ({ type: 'list', default: def, owner, doc });
/** List of `type:name` lookup tables. */
export const tables = (def: string, owner: ParamOwner, doc: string): ParamSpec<readonly string[]> => ({ type: 'table-list', default: def, owner, doc });
export const str = (def: string, owner: ParamOwner, doc: string): ParamSpec<string> => ({ type: 'string', default: def, owner, doc });
export const oneOf = <const V extends readonly string[]>(values: V, def: string, owner: ParamOwner, doc: string): ParamSpec<V[number]> => ({
  type: 'enum',
  default: def,
  owner,
  doc,
  values,
});

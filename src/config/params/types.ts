/**
 * Parameter definitions: the shape of one registry entry. The registry (./index.ts) is THE list of
 * parameters Postern supports; parsing, validation, `postconf -d`, and the README's configuration
 * section all come from it.
 */

export type ParamType = 'bool' | 'int' | 'time' | 'size' | 'list' | 'enum' | 'table-list' | 'string';

/** Which daemon reads the parameter (the directory under src/ that owns it). */
export type ParamOwner =
  | 'global'
  | 'master'
  | 'smtpd'
  | 'smtp'
  | 'cleanup'
  | 'qmgr'
  | 'local'
  | 'virtual'
  | 'bounce'
  | 'tls'
  | 'imapd'
  | 'sendmail'
  | 'anvil'
  | 'pickup'
  | 'postscreen';

/** Time units as postconf(5): s, m, h, d, w. */
export type TimeUnit = 's' | 'm' | 'h' | 'd' | 'w';

export interface ParamSpec<T> {
  readonly type: ParamType;
  /** Postfix's default, verbatim as `postconf -d` prints it (unexpanded: `$myhostname`, `${stress?{10}:{300}}s`). */
  readonly default: string;
  readonly owner: ParamOwner;
  /** One line for `postconf`-style docs and the README. */
  readonly doc: string;
  /** enum: the allowed values (lower case); the error message lists them. */
  readonly values?: readonly string[];
  /** time: the unit of a bare number (postconf(5) says per parameter; most are seconds). */
  readonly unit?: TimeUnit;
  /** int/size/time: smallest allowed value (Postfix's min), in the value's own unit (seconds for time). */
  readonly min?: number;
  readonly max?: number;
  /** Phantom: the typed value after parsing. Never set at run time. */
  readonly __value?: T;
}

/** Typed value of a spec: bool → boolean, int/size/time → number (time in seconds), lists → string[]. */
export type SpecValue<S> = S extends ParamSpec<infer T> ? T : never;

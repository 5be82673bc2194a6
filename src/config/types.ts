/** The parsed, typed, frozen configuration (DESIGN invariant 6). Built once by loadConfig(). */
import type { PARAMS } from './params/index.js';
import type { SpecValue } from './params/types.js';

/** Every registry parameter with its typed value (main.cf merged over defaults, `$name` expanded). */
export type Params = { readonly [K in keyof typeof PARAMS]: SpecValue<(typeof PARAMS)[K]> };
export type ParamName = keyof typeof PARAMS;

/**
 * One `name = value` as written in main.cf (value unexpanded; continuation lines appended as
 * Postfix does, their leading whitespace included; blanks around the value trimmed).
 */
export interface Setting {
  readonly name: string;
  readonly value: string;
  readonly file: string;
  /** First physical line of the logical line. */
  readonly line: number;
}

export type ServiceType = 'inet' | 'unix' | 'unix-dgram' | 'fifo' | 'pass';

/** One master.cf service line. */
export interface MasterService {
  /** As written: `smtp`, `25`, `127.0.0.1:2525`, `[::1]:2525`, `submission`. */
  readonly name: string;
  readonly type: ServiceType;
  /** `-` resolved to Postfix's defaults (private y, unpriv y, chroot n in 3.x, wakeup 0, maxproc default_process_limit). */
  readonly private: boolean;
  readonly unpriv: boolean;
  readonly chroot: boolean;
  readonly wakeup: string;
  readonly maxproc: number;
  /** The daemon: `smtpd`, `imapd`, `qmgr`, ... */
  readonly command: string;
  /** Arguments after the command, `-o` pairs removed. */
  readonly args: readonly string[];
  /** All arguments after the command, normalised as `postconf -M` shows them (`-o`, `name=value`, ...). */
  readonly argv: readonly string[];
  /** private, unpriv, chroot, wakeup, maxproc as written in master.cf (`-` kept). */
  readonly fields: readonly [string, string, string, string, string];
  /** `-o name=value` and `-o { name = value }`, in order, unexpanded. */
  readonly overrides: ReadonlyMap<string, string>;
  readonly file: string;
  readonly line: number;
  /** inet services: where to listen. host null = every address of inet_interfaces. */
  readonly listen: { readonly host: string | null; readonly port: number } | null;
  /** main.cf plus this service's overrides, expanded and validated. */
  readonly params: Params;
}

export interface Config {
  readonly configDir: string;
  readonly mainCfPath: string;
  readonly masterCfPath: string;
  /** Effective main.cf parameters (no service overrides). */
  readonly params: Params;
  /** What main.cf sets, in file order (postconf -n). Includes unknown names. */
  readonly settings: ReadonlyMap<string, Setting>;
  readonly services: readonly MasterService[];
  /** Non-fatal findings, worded as Postfix's (`/etc/postern/main.cf, line 3: unused parameter: foo=bar`). */
  readonly warnings: readonly string[];
}

/**
 * Configuration loader: main.cf + master.cf → one frozen, typed Config (DESIGN invariant 6).
 *
 * - main.cf (./main-cf.ts) gives raw `name = value` settings; every registry parameter
 *   (./params/index.ts) is then expanded (./expand.ts, Postfix's `$name` rules) and parsed by type
 *   (./values.ts). A bad value is a ConfigError `file, line N: invalid NAME value "V": allowed`.
 * - master.cf (./master-cf.ts) gives services; each service's Params are main.cf plus its `-o`
 *   overrides (an override may use `$main_cf_name`); a bad override names master.cf and its line.
 * - Warnings (not fatal), worded as Postfix's postconf(1):
 *   `FILE, line N: unused parameter: name=value` for a name nobody knows or refers to;
 *   `FILE, line N: Postern ignores parameter: name=value (a Postfix parameter Postern does not implement)`;
 *   `FILE, line N: undefined parameter: name` for a `$name` that has no value.
 * - Host-derived defaults (what `postconf -d` prints on this host):
 *   myhostname = os.hostname() when it has a dot, else `HOSTNAME.$mydomain` (main.cf's mydomain if
 *   set, else `localdomain`), as Postfix's check_myhostname(); mydomain = myhostname minus its first
 *   label when that leaves a name with a dot, else `localdomain` (check_mydomain()); mynetworks from
 *   mynetworks_style and the host's interface addresses (./mynetworks.ts mynetworksDefault(), for
 *   the families of inet_protocols), else the registry's loopback-only fallback.
 */
import { readFile } from 'node:fs/promises';
import * as os from 'node:os';
import { join } from 'node:path';
import { ConfigError, PosternError } from '../errors.js';
import { expand, parseCompatibilityLevel, referencedNames } from './expand.js';
import { parseMainCf } from './main-cf.js';
import { inetListen, type MasterEntry, parseMasterCf } from './master-cf.js';
import { type MynetworksStyle, mynetworksDefault } from './mynetworks.js';
import { PARAMS } from './params/index.js';
import { PER_TRANSPORT_SUFFIXES, POSTFIX_37_NAMES } from './params/postfix-names.js';
import type { ParamSpec } from './params/types.js';
import { IGNORED } from './params/ignored.js';
import type { Config, MasterService, ParamName, Params, Setting } from './types.js';
import { parseInt32, parseTime, parseValue, splitList, ValueError } from './values.js';

export type { Config, MasterService, ParamName, Params, Setting } from './types.js';

const SPECS: Readonly<Record<string, ParamSpec<unknown>>> = PARAMS;

export function isParamName(name: string): name is ParamName {
  return Object.hasOwn(PARAMS, name);
}

/**
 * Parameters Postfix reads without `$name` expansion because their macros are filled in later,
 * per message or per delivery (`$home`, `$user`, `$client_address`; Postfix's CONFIG_RAW_TABLEs).
 */
export const RAW_PARAMS: ReadonlySet<string> = new Set(['forward_path', 'luser_relay', 'mailbox_command', 'smtpd_reject_footer', 'default_rbl_reply', 'command_execution_directory']);

/** What the host contributes to the defaults; tests pass their own. */
export interface HostFacts {
  readonly hostname: string;
}

type MynetworksDefault = (style: MynetworksStyle, inetProtocols: readonly string[]) => string;
let mynetworksHook: MynetworksDefault = (style, inetProtocols) => mynetworksDefault(style, undefined, inetProtocols);

/**
 * Replace the function that computes mynetworks' default from mynetworks_style and the host's
 * addresses (postconf(5) "mynetworks"; default: ./mynetworks.ts on this host's interfaces). For
 * tests that need a fixed host; null restores the default.
 */
export function setMynetworksDefault(fn: MynetworksDefault | null): void {
  mynetworksHook = fn ?? ((style, inetProtocols) => mynetworksDefault(style, undefined, inetProtocols));
}

/** Where a raw value came from, for error messages. */
interface Origin {
  readonly file: string;
  readonly line: number;
}

interface Layer {
  /** main.cf settings. */
  readonly settings: ReadonlyMap<string, Setting>;
  /** master.cf `-o` overrides of one service (win over main.cf), or fixed values like config_directory. */
  readonly overrides: ReadonlyMap<string, Setting>;
  readonly mainCfPath: string;
  readonly host: HostFacts;
  /** Read-only per-service names (`$service_name`, `$process_name`), below everything else. */
  readonly readOnly?: ReadonlyMap<string, string>;
}

/** Default of a parameter: the registry's, or the host-derived one (see the header). */
function defaultOf(name: string, layer: Layer, guard: Set<string>): string | undefined {
  if (name === 'myhostname' || name === 'mydomain' || name === 'mynetworks') {
    if (guard.has(name)) return SPECS[name].default;
    guard.add(name);
    try {
      return hostDefault(name, layer, guard);
    } finally {
      guard.delete(name);
    }
  }
  return Object.hasOwn(SPECS, name) ? SPECS[name].default : undefined;
}

function hostDefault(name: 'myhostname' | 'mydomain' | 'mynetworks', layer: Layer, guard: Set<string>): string {
  const ctx = { lookup: (n: string) => rawOf(n, layer, guard) };
  const safe = (f: () => string, fallback: string): string => {
    try {
      return f();
    } catch {
      return fallback; // the setting's own expansion reports the problem
    }
  };
  if (name === 'myhostname') {
    const h = layer.host.hostname.trim();
    if (h.includes('.')) return h;
    const md = rawOf('mydomain', layer, guard, false);
    const domain = md === undefined ? 'localdomain' : safe(() => expand(md, ctx), 'localdomain');
    return `${h === '' ? 'localhost' : h}.${domain}`;
  }
  if (name === 'mydomain') {
    const hn = safe(() => expand(rawOf('myhostname', layer, guard) ?? '', ctx), '');
    const dot = hn.indexOf('.');
    const rest = dot < 0 ? '' : hn.slice(dot + 1);
    return rest.includes('.') ? rest : 'localdomain';
  }
  const style = safe(() => expand(rawOf('mynetworks_style', layer, guard) ?? '', ctx), 'host');
  const protocols = splitList(safe(() => expand(rawOf('inet_protocols', layer, guard) ?? '', ctx), 'all'));
  try {
    return mynetworksHook(style === 'subnet' || style === 'class' ? style : 'host', protocols);
  } catch {
    return SPECS.mynetworks.default; // no usable interface data: loopback only
  }
}

/** The raw value in effect: -o override, then main.cf, then the default. */
function rawOf(name: string, layer: Layer, guard: Set<string>, withDefault = true): string | undefined {
  const o = layer.overrides.get(name) ?? layer.settings.get(name);
  if (o !== undefined) return o.value;
  const ro = layer.readOnly?.get(name);
  if (ro !== undefined) return ro;
  return withDefault ? defaultOf(name, layer, guard) : undefined;
}

function originOf(name: string, layer: Layer): Origin | null {
  return layer.overrides.get(name) ?? layer.settings.get(name) ?? null;
}

/** Expand one parameter's value in a layer; ConfigError at the line that set it. */
function expandParam(name: string, layer: Layer, warn: (t: string) => void): { text: string; origin: Origin } {
  const raw = rawOf(name, layer, new Set()) ?? '';
  let origin = originOf(name, layer);
  if (origin === null) {
    // A default: blame the setting it depends on, if any (e.g. a bad compatibility_level).
    const dep = referencedNames(raw)
      .map((n) => originOf(n, layer))
      .find((o) => o !== null);
    origin = dep ?? { file: layer.mainCfPath, line: 0 };
  }
  const at = origin;
  if (RAW_PARAMS.has(name)) return { text: raw, origin: at };
  const fromSetting = originOf(name, layer) !== null;
  try {
    const text = expand(raw, {
      lookup: (n) => rawOf(n, layer, new Set()),
      onUndefined: (n) => {
        if (fromSetting && !POSTFIX_37_NAMES.has(n)) warn(`${at.file}${at.line > 0 ? `, line ${at.line}` : ''}: undefined parameter: ${n}`);
      },
    });
    return { text, origin: at };
  } catch (err) {
    if (err instanceof PosternError) throw new ConfigError(at.file, at.line, fromSetting ? err.message : `${err.message} (in the default of ${name})`);
    throw err;
  }
}

function buildParams(layer: Layer, warn: (t: string) => void): Params {
  const out: Record<string, unknown> = {};
  const seen = new Set<string>();
  const once = (t: string): void => {
    if (!seen.has(t)) {
      seen.add(t);
      warn(t);
    }
  };
  const level = expandParam('compatibility_level', layer, once);
  if (parseCompatibilityLevel(level.text) === null) {
    throw new ConfigError(level.origin.file, level.origin.line, `invalid compatibility_level value "${level.text}": expected a level such as 2 or 3.6`);
  }
  // What the files set first, so an error names the line at fault rather than a default using it.
  const names = Object.keys(SPECS);
  const set = (n: string): boolean => originOf(n, layer) !== null;
  for (const name of [...names.filter(set), ...names.filter((n) => !set(n))]) {
    const { text, origin } = expandParam(name, layer, once);
    try {
      out[name] = parseValue(name, SPECS[name], text, (w) => once(`${origin.file}${origin.line > 0 ? `, line ${origin.line}` : ''}: ${w}`));
    } catch (err) {
      if (err instanceof ValueError) throw new ConfigError(origin.file, origin.line, err.message);
      throw err;
    }
  }
  // Registry order, whatever order they were checked in.
  const ordered: Record<string, unknown> = {};
  for (const name of names) ordered[name] = out[name];
  return Object.freeze(ordered) as Params;
}

/** Names referred to (as `$name`) by any main.cf value or master.cf override. */
function referenced(settings: ReadonlyMap<string, Setting>, entries: readonly MasterEntry[]): Set<string> {
  const names = new Set<string>();
  for (const s of settings.values()) for (const n of referencedNames(s.value)) names.add(n);
  for (const e of entries) for (const o of e.overrides) for (const n of referencedNames(o.value)) names.add(n);
  // postconf(5) smtpd_restriction_classes: each name listed there is a parameter of its own.
  const classes = [settings.get('smtpd_restriction_classes')?.value, ...entries.map((e) => e.overrides.find((o) => o.name === 'smtpd_restriction_classes')?.value)];
  for (const v of classes) if (v !== undefined) for (const n of splitList(v)) names.add(n);
  return names;
}

/** Is `name` a per-transport parameter of a master.cf service (`<service>_destination_concurrency_limit`)? */
function isPerTransport(name: string, entries: readonly MasterEntry[]): boolean {
  return entries.some((e) => PER_TRANSPORT_SUFFIXES.some((s) => name === `${e.name}_${s}`));
}

/** Warn about a setting Postern does not use (postconf's "unused parameter"). */
function unusedWarning(s: Setting, entries: readonly MasterEntry[], refs: ReadonlySet<string>): string | null {
  const at = `${s.file}${s.line > 0 ? `, line ${s.line}` : ''}`;
  const ignored = Object.hasOwn(IGNORED, s.name) ? IGNORED[s.name] : undefined;
  if (ignored !== undefined) return `${at}: Postern ignores parameter: ${s.name}=${s.value} (${ignored})`;
  if (isParamName(s.name) || refs.has(s.name) || isPerTransport(s.name, entries)) return null;
  if (POSTFIX_37_NAMES.has(s.name)) return `${at}: Postern ignores parameter: ${s.name}=${s.value} (a Postfix parameter Postern does not implement)`;
  return `${at}: unused parameter: ${s.name}=${s.value}`;
}

const NO_SETTINGS: ReadonlyMap<string, Setting> = new Map();

function defaultHost(): HostFacts {
  return { hostname: os.hostname() };
}

export interface ParamsOptions {
  /** main.cf's path for messages (default `main.cf`). */
  readonly file?: string;
  readonly host?: HostFacts;
  /** Receives the warnings (unused parameters, ...). */
  readonly warnings?: string[];
}

/** Params from main.cf text, without touching the disk (for tests and `postconf`). */
export function paramsFrom(mainCfText: string, file = 'main.cf', opts: Omit<ParamsOptions, 'file'> = {}): Params {
  const parsed = parseMainCf(mainCfText, file);
  const warnings = opts.warnings ?? [];
  warnings.push(...parsed.warnings);
  const refs = referenced(parsed.settings, []);
  for (const s of parsed.settings.values()) {
    const w = unusedWarning(s, [], refs);
    if (w !== null) warnings.push(w);
  }
  return buildParams({ settings: parsed.settings, overrides: NO_SETTINGS, mainCfPath: file, host: opts.host ?? defaultHost() }, (w) => warnings.push(w));
}

/**
 * Default values as `postconf -d` prints them (unexpanded, host-derived ones computed), for every
 * registry parameter.
 */
export function defaultValues(host: HostFacts = defaultHost(), settings: ReadonlyMap<string, Setting> = NO_SETTINGS): Map<ParamName, string> {
  const layer: Layer = { settings, overrides: NO_SETTINGS, mainCfPath: 'main.cf', host };
  const out = new Map<ParamName, string>();
  for (const name of Object.keys(SPECS) as ParamName[]) out.set(name, defaultOf(name, layer, new Set()) ?? '');
  return out;
}

/** Expand a value the way main.cf values are expanded (`postconf -x`), against main.cf settings. */
export function expandValue(value: string, settings: ReadonlyMap<string, Setting>, host: HostFacts = defaultHost(), onUndefined?: (name: string) => void): string {
  const layer: Layer = { settings, overrides: NO_SETTINGS, mainCfPath: 'main.cf', host };
  return expand(value, { lookup: (n) => rawOf(n, layer, new Set()), onUndefined });
}

export interface LoadOptions {
  readonly configDir: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Host facts for the derived defaults (default: this host). */
  readonly host?: HostFacts;
}

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ConfigError(path, 0, `cannot read: ${(err as Error).message}`);
  }
}

/** Read, expand and validate main.cf and master.cf in `configDir`. */
export async function loadConfig(opts: LoadOptions): Promise<Config> {
  const configDir = opts.configDir;
  const mainCfPath = join(configDir, 'main.cf');
  const masterCfPath = join(configDir, 'master.cf');
  const mainText = await readText(mainCfPath);
  if (mainText === null) {
    throw new ConfigError(mainCfPath, 0, 'main.cf not found; create it (Postfix syntax) or choose the directory with -c DIR or MAIL_CONFIG');
  }
  const masterText = await readText(masterCfPath);
  const host = opts.host ?? defaultHost();
  const warnings: string[] = [];
  const main = parseMainCf(mainText, mainCfPath);
  warnings.push(...main.warnings);
  const entries = masterText === null ? [] : parseMasterCf(masterText, masterCfPath, warnings);
  if (masterText === null) warnings.push(`${masterCfPath}: not found; no services are defined`);

  const refs = referenced(main.settings, entries);
  for (const s of main.settings.values()) {
    const w = unusedWarning(s, entries, refs);
    if (w !== null) warnings.push(w);
  }
  const fixed = new Map<string, Setting>([['config_directory', { name: 'config_directory', value: configDir, file: mainCfPath, line: 0 }]]);
  const mainLayer: Layer = { settings: main.settings, overrides: fixed, mainCfPath, host };
  const params = buildParams(mainLayer, (w) => warnings.push(w));

  const services: MasterService[] = [];
  for (const e of entries) {
    const overrides = new Map<string, string>();
    const layerOverrides = new Map(fixed);
    for (const o of e.overrides) {
      overrides.set(o.name, o.value);
      const s: Setting = { name: o.name, value: o.value, file: e.file, line: o.line };
      layerOverrides.set(o.name, s);
      const w = unusedWarning(s, entries, refs);
      if (w !== null) warnings.push(w);
    }
    // master(8) passes these to each service (postconf(5) "service_name", "process_name").
    const processName = e.command.slice(e.command.lastIndexOf('/') + 1);
    const readOnly = new Map([
      ['process_name', processName],
      ['service_name', processName !== e.name ? e.name : processName],
    ]);
    const svcLayer: Layer = { ...mainLayer, overrides: layerOverrides, readOnly };
    const svcParams = e.overrides.length === 0 ? params : buildParams(svcLayer, (w) => warnings.push(w));
    const [priv, unpriv, chroot, wakeup, maxproc] = e.fields;
    const isPrivate = priv !== 'n';
    if (e.type === 'inet' && isPrivate) throw new ConfigError(e.file, e.line, `inet service cannot be private: "${e.name}" (set the private field to n)`);
    services.push(
      Object.freeze({
        name: e.name,
        type: e.type,
        private: isPrivate,
        unpriv: unpriv !== 'n',
        chroot: chroot === 'y',
        wakeup: wakeup === '-' ? '0' : wakeup,
        maxproc: maxproc === '-' ? params.default_process_limit : Number(maxproc),
        command: e.command,
        args: e.args,
        argv: e.argv,
        fields: e.fields,
        overrides: overrides as ReadonlyMap<string, string>,
        file: e.file,
        line: e.line,
        listen: e.type === 'inet' ? Object.freeze(inetListen(e)) : null,
        params: svcParams,
      }),
    );
  }
  return Object.freeze({
    configDir,
    mainCfPath,
    masterCfPath,
    params,
    settings: main.settings,
    services: Object.freeze(services),
    warnings: Object.freeze([...new Set(warnings)]),
  });
}

export type TransportSuffix =
  | 'destination_concurrency_limit'
  | 'destination_recipient_limit'
  | 'initial_destination_concurrency'
  | 'destination_rate_delay'
  | 'recipient_limit'
  | 'destination_concurrency_failed_cohort_limit';

/**
 * A per-transport qmgr parameter (postconf(5) "transport_destination_concurrency_limit" etc.):
 * `<transport>_<suffix>` from main.cf, else the registry's entry for it, else the global default
 * (`default_<suffix>`, or initial_destination_concurrency). destination_rate_delay is in seconds.
 */
export function transportParam(config: Pick<Config, 'settings' | 'params' | 'mainCfPath'>, transport: string, suffix: TransportSuffix): number {
  const name = `${transport}_${suffix}`;
  const s = config.settings.get(name);
  if (s !== undefined) {
    const layer: Layer = { settings: config.settings, overrides: NO_SETTINGS, mainCfPath: config.mainCfPath, host: defaultHost() };
    const { text } = expandParam(name, layer, () => {});
    try {
      return suffix === 'destination_rate_delay' ? parseTime(name, text, 's', 0) : parseInt32(name, text, suffix === 'destination_concurrency_failed_cohort_limit' ? 0 : 1);
    } catch (err) {
      if (err instanceof ValueError) throw new ConfigError(s.file, s.line, err.message);
      throw err;
    }
  }
  const params = config.params as unknown as Readonly<Record<string, unknown>>;
  if (isParamName(name)) return params[name] as number;
  const fallback = suffix === 'initial_destination_concurrency' ? 'initial_destination_concurrency' : `default_${suffix}`;
  return params[fallback] as number;
}

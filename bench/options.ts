/**
 * Bench settings from the environment. The defaults are the full run the issues ask for;
 * BENCH_QUICK=1 scales every count down so the whole bench takes under two minutes.
 */

export type Scenario = 'accept' | 'idle' | 'e2e' | 'queue';
export const SCENARIOS: readonly Scenario[] = ['accept', 'idle', 'e2e', 'queue'];

export type ProfilePhase = 'accept' | 'e2e' | 'drain';

export interface BenchOptions {
  readonly quick: boolean;
  /** Messages per acceptance run (each session count, each size). */
  readonly messages: number;
  readonly sessions: readonly number[];
  /** Message sizes in bytes. */
  readonly sizes: readonly number[];
  readonly idle: number;
  /** Messages per end-to-end run (20 sessions). */
  readonly e2eMessages: number;
  readonly e2eSessions: number;
  /** Messages for the queue drain and deferred-memory figures. */
  readonly queue: number;
  /** Seconds to watch memory with the deferred queue loaded. */
  readonly deferredWatch: number;
  /**
   * Messages (20 sessions × 2 KiB) each server gets, untimed, after it starts and before the timed
   * acceptance and end-to-end runs: steady state, not start-up (Node's JIT compiles the hot paths
   * during the first thousand or so messages; Postfix forks its smtpd processes).
   */
  readonly warmup: number;
  /** Give up waiting for deliveries after this many seconds without progress. */
  readonly stall: number;
  readonly repeat: number;
  readonly only: ReadonlySet<Scenario>;
  readonly servers: ReadonlySet<'postfix' | 'postern'>;
  /**
   * Phases to CPU-profile Postern in (node --cpu-prof): `accept` adds one acceptance run at
   * 20 × 2 KiB; `e2e` and `drain` profile those runs themselves.
   */
  readonly profile: ReadonlySet<ProfilePhase>;
  readonly keep: boolean;
}

export const USAGE = `npm run bench — Postern and a private Postfix 3.7, side by side on this machine.

Environment:
  BENCH_QUICK=1            small counts (the whole run < 2 min); default is the full run
  BENCH_MESSAGES=N         messages per acceptance run (full 5000, quick 100)
  BENCH_SESSIONS=1,20,100  concurrent sessions for the acceptance runs
  BENCH_SIZES=2048,102400  message sizes in bytes
  BENCH_IDLE=N             idle sessions after EHLO (1000)
  BENCH_E2E_MESSAGES=N     messages per end-to-end run, 20 sessions (full 5000, quick 100)
  BENCH_QUEUE=N            messages for queue drain / deferred memory (full 100000, quick 500)
  BENCH_DEFERRED_WATCH=S   seconds to watch memory with the deferred queue (full 30, quick 3)
  BENCH_WARMUP=N           untimed messages per server before the acceptance and end-to-end runs
                           (full 1000, quick 0)
  BENCH_STALL=S            give up on deliveries after S seconds without progress (full 60, quick 5)
  BENCH_REPEAT=N           runs per acceptance and end-to-end figure; the median is reported (1)
  BENCH_ONLY=accept,idle,e2e,queue   scenarios to run (all)
  BENCH_SERVERS=postfix,postern      servers to run (both)
  BENCH_PROFILE=accept,e2e,drain   CPU-profile Postern (node --cpu-prof) and list its hot spots:
                           accept = one extra acceptance run at 20 x 2 KiB (also BENCH_PROFILE=1);
                           e2e, drain = those runs themselves
  BENCH_KEEP=1             keep the temporary directories (configs, queues, logs)
`;

function int(env: NodeJS.ProcessEnv, name: string, dflt: number, min = 1): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}=${v}: expected an integer >= ${min}`);
  return n;
}

function ints(env: NodeJS.ProcessEnv, name: string, dflt: readonly number[]): readonly number[] {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  const out = v.split(',').map((x) => Number(x.trim()));
  if (out.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`${name}=${v}: expected positive integers separated by commas`);
  return out;
}

function names<T extends string>(env: NodeJS.ProcessEnv, name: string, dflt: readonly T[], all: readonly T[] = dflt): ReadonlySet<T> {
  const v = env[name];
  if (v === undefined || v === '') return new Set(dflt);
  const out = v.split(',').map((x) => x.trim().toLowerCase());
  for (const x of out) if (!(all as readonly string[]).includes(x)) throw new Error(`${name}=${v}: "${x}" is not one of ${all.join(', ')}`);
  return new Set(out as T[]);
}

const flag = (env: NodeJS.ProcessEnv, name: string): boolean => env[name] !== undefined && env[name] !== '' && env[name] !== '0';

export function benchOptions(env: NodeJS.ProcessEnv): BenchOptions {
  const quick = flag(env, 'BENCH_QUICK');
  return {
    quick,
    messages: int(env, 'BENCH_MESSAGES', quick ? 100 : 5000),
    sessions: ints(env, 'BENCH_SESSIONS', [1, 20, 100]),
    sizes: ints(env, 'BENCH_SIZES', [2048, 102400]),
    idle: int(env, 'BENCH_IDLE', 1000),
    e2eMessages: int(env, 'BENCH_E2E_MESSAGES', quick ? 100 : 5000),
    e2eSessions: 20,
    queue: int(env, 'BENCH_QUEUE', quick ? 500 : 100000),
    deferredWatch: int(env, 'BENCH_DEFERRED_WATCH', quick ? 3 : 30),
    warmup: int(env, 'BENCH_WARMUP', quick ? 0 : 1000, 0),
    stall: int(env, 'BENCH_STALL', quick ? 5 : 60),
    repeat: int(env, 'BENCH_REPEAT', 1),
    only: names(env, 'BENCH_ONLY', SCENARIOS),
    servers: names(env, 'BENCH_SERVERS', ['postfix', 'postern'] as const),
    profile: env.BENCH_PROFILE === '1' ? new Set(['accept']) : env.BENCH_PROFILE === '0' ? new Set() : names(env, 'BENCH_PROFILE', [] as ProfilePhase[], ['accept', 'e2e', 'drain']),
    keep: flag(env, 'BENCH_KEEP'),
  };
}

/**
 * Running a `postern` sub-command in-process for tests: output streams that keep what is written,
 * and a CliContext built on them.
 */
import { Writable } from 'node:stream';
import type { CliContext } from '../../src/cli/context.js';

/** A stream that keeps what is written, at once (a PassThrough would hand it over a tick later). */
export interface Collector {
  readonly stream: Writable;
  text(): string;
  clear(): void;
}

export function collector(): Collector {
  const parts: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk.toString());
      cb();
    },
  });
  return {
    stream,
    text: () => parts.join(''),
    clear: () => {
      parts.length = 0;
    },
  };
}

/** A CliContext for `configDir` (as if given with -c unless `explicit` is false), with an empty environment. */
export function cliContext(configDir: string, o: { explicit?: boolean } = {}): { ctx: CliContext; out: Collector; err: Collector } {
  const out = collector();
  const err = collector();
  const ctx: CliContext = { configDir, configDirExplicit: o.explicit ?? true, stdout: out.stream, stderr: err.stream, env: {} };
  return { ctx, out, err };
}

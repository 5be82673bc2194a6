/**
 * Hot spots of a V8 CPU profile (`node --cpu-prof`): self time per function, with dist/*.js
 * positions mapped back to the TypeScript source through the compiler's source maps.
 */
import * as fs from 'node:fs';
import { SourceMap } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  /** 0-based */
  readonly lineNumber: number;
  readonly columnNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly hitCount?: number;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export interface HotSpot {
  readonly name: string;
  /** `src/smtpd/session.ts:123` (the TypeScript line when a source map knows it). */
  readonly where: string;
  /** For a native or Node-internal function: the nearest caller in the checkout's own code. */
  readonly caller: string;
  readonly selfMs: number;
  /** Share of the busy (non-idle) samples. */
  readonly percent: number;
}

const maps = new Map<string, SourceMap | null>();

function sourceMapFor(file: string): SourceMap | null {
  let m = maps.get(file);
  if (m === undefined) {
    try {
      m = new SourceMap(JSON.parse(fs.readFileSync(`${file}.map`, 'utf8')));
    } catch {
      m = null;
    }
    maps.set(file, m);
  }
  return m;
}

function position(cf: CallFrame, root: string): string {
  if (cf.url === '') return `(${cf.functionName || 'native'})`;
  if (!cf.url.startsWith('file://')) return `${cf.url}:${cf.lineNumber + 1}`;
  const file = fileURLToPath(cf.url);
  const map = sourceMapFor(file);
  if (map !== null) {
    const e = map.findEntry(cf.lineNumber, cf.columnNumber) as { originalSource?: string; originalLine?: number };
    if (e.originalSource !== undefined && e.originalLine !== undefined) {
      const src = e.originalSource.startsWith('file://') ? fileURLToPath(e.originalSource) : path.resolve(path.dirname(file), e.originalSource);
      return `${path.relative(root, src)}:${e.originalLine + 1}`;
    }
  }
  return `${path.relative(root, file)}:${cf.lineNumber + 1}`;
}

function ownCode(cf: CallFrame, root: string): boolean {
  return cf.url.startsWith('file://') && fileURLToPath(cf.url).startsWith(path.join(root, 'dist', 'src'));
}

/** Top `n` functions by self time over every *.cpuprofile in `dir`. */
export function hotSpots(dir: string, root: string, n = 15): { spots: HotSpot[]; totalMs: number; idleMs: number; files: number } {
  const self = new Map<string, { name: string; where: string; caller: string; us: number }>();
  let totalUs = 0;
  let idleUs = 0;
  let files = 0;
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.cpuprofile'))) {
    files++;
    const prof = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as CpuProfile;
    const byId = new Map(prof.nodes.map((node) => [node.id, node]));
    const parent = new Map<number, number>();
    for (const node of prof.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
    const callerOf = (id: number): string => {
      for (let p = parent.get(id); p !== undefined; p = parent.get(p)) {
        const cf = byId.get(p)!.callFrame;
        if (ownCode(cf, root)) return `${cf.functionName || '(anonymous)'} ${position(cf, root)}`;
      }
      return '';
    };
    const us = new Map<number, number>();
    if (prof.samples && prof.timeDeltas) {
      // Each sample's time is the delta to the next sample.
      for (let i = 0; i < prof.samples.length; i++) {
        const dt = prof.timeDeltas[i + 1] ?? 0;
        us.set(prof.samples[i]!, (us.get(prof.samples[i]!) ?? 0) + Math.max(0, dt));
      }
    } else {
      const hits = prof.nodes.reduce((a, node) => a + (node.hitCount ?? 0), 0) || 1;
      for (const node of prof.nodes) us.set(node.id, ((node.hitCount ?? 0) * (prof.endTime - prof.startTime)) / hits);
    }
    for (const [id, t] of us) {
      const node = byId.get(id);
      if (!node) continue;
      totalUs += t;
      const cf = node.callFrame;
      // Idle time is the event loop waiting: not a hot spot.
      if (cf.functionName === '(idle)') {
        idleUs += t;
        continue;
      }
      const where = position(cf, root);
      const name = cf.functionName || '(anonymous)';
      const caller = ownCode(cf, root) ? '' : callerOf(id);
      const key = `${name}@${where}@${caller}`;
      const e = self.get(key);
      if (e) e.us += t;
      else self.set(key, { name, where, caller, us: t });
    }
  }
  const spots = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, n)
    .map((e) => ({ name: e.name, where: e.where, caller: e.caller, selfMs: e.us / 1000, percent: totalUs > idleUs ? (100 * e.us) / (totalUs - idleUs) : 0 }));
  return { spots, totalMs: totalUs / 1000, idleMs: idleUs / 1000, files };
}

/**
 * The bench's result: one markdown table (Postfix, Postern, ratio, target) and notes.
 */

export interface Row {
  readonly figure: string;
  readonly postfix: number | null;
  readonly postern: number | null;
  /** How to print the values: a rate (msg/s), MiB or seconds. */
  readonly unit: 'msg/s' | 'MiB' | 's' | 'ms/msg';
  /** Target text and its check on (postern, postfix); omitted when the issue sets none. */
  readonly target?: { readonly text: string; readonly met: (postern: number, postfix: number | null) => boolean; readonly relative?: boolean };
}

export function fmt(v: number | null, unit: Row['unit']): string {
  if (v === null || !Number.isFinite(v)) return 'n/a';
  if (unit === 'MiB') return `${v.toFixed(1)} MiB`;
  if (unit === 's') return `${v.toFixed(2)} s`;
  if (unit === 'ms/msg') return `${v.toFixed(2)} ms`;
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} msg/s`;
}

export function table(rows: readonly Row[]): string {
  const out = ['| Figure | Postfix 3.7 | Postern | Postern ÷ Postfix | Target | Met |', '|---|---:|---:|---:|---|---|'];
  for (const r of rows) {
    const q = r.postern !== null && r.postfix !== null && r.postfix > 0 ? r.postern / r.postfix : null;
    const ratio = q === null ? 'n/a' : `${q.toFixed(q < 0.1 ? 4 : 2)}×`;
    let met = '';
    if (r.target) {
      const measured = r.postern !== null && (r.postfix !== null || r.target.relative !== true);
      met = !measured ? 'not measured' : r.target.met(r.postern!, r.postfix) ? 'yes' : '**no**';
    }
    out.push(`| ${r.figure} | ${fmt(r.postfix, r.unit)} | ${fmt(r.postern, r.unit)} | ${ratio} | ${r.target?.text ?? ''} | ${met} |`);
  }
  return out.join('\n');
}

export function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function sizeName(bytes: number): string {
  return bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} B`;
}

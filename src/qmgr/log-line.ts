/**
 * The delivery log line every analyzer reads (reference 1.9, Postfix global/log_adhoc.c):
 *
 *   QID: to=<r>[, orig_to=<o>], relay=R, delay=D, delays=a/b/c/d, dsn=x.y.z, status=S (text)
 *
 * a = before the queue manager (arrival → active), b = in the queue manager (active → hand-off to
 * the agent), c = connection set-up, d = transmission; each formatted by formatTv() with two
 * significant digits and at most delay_logging_resolution_limit decimals.
 */

const MILLION = 1_000_000;
const POW10 = [1, 10, 100, 1000, 10_000, 100_000, 1_000_000] as const;

/**
 * Postfix format_tv(): a time in seconds with `sigDig` significant digits, at most `maxDig`
 * decimals, rounded (`1.11` → `1.1`, `99.6` → `100`, `0.0996` → `0.1`), no trailing zeros.
 */
export function formatTv(seconds: number, sigDig = 2, maxDig = 2): string {
  const total = Math.max(0, Math.round(seconds * MILLION));
  let sec = Math.floor(total / MILLION);
  let usec = total % MILLION;
  let ures = MILLION / POW10[maxDig]!;
  const wid = POW10[sigDig]!;
  if (ures < MILLION) {
    if (sec > 0) {
      let n = 1;
      while (sec >= n && n <= wid / 10) n *= 10;
      ures = (MILLION / wid) * n;
    } else {
      while (usec >= wid * ures) ures *= 10;
    }
  }
  if (ures > 1) {
    usec += Math.floor(ures / 2);
    if (usec >= MILLION) {
      sec += 1;
      usec -= MILLION;
    }
  }
  let out = String(sec);
  if (usec >= ures) {
    out += '.';
    let rem = usec;
    for (let n = MILLION / 10; rem >= ures && n >= 1; n /= 10) {
      out += String(Math.floor(rem / n));
      rem %= n;
    }
  }
  return out;
}

export interface DeliveryTimes {
  /** ms since the epoch. */
  readonly arrival: number;
  /** When the message entered the active queue. */
  readonly active: number;
  /** When the agent got the request; null when qmgr decided without an agent. */
  readonly handoff: number | null;
  /** Connection set-up seconds reported by the agent (0 without a network client). */
  readonly connSeconds: number;
  /** When the outcome was known. */
  readonly done: number;
}

export interface DeliveryLogFields {
  readonly queueId: string;
  readonly to: string;
  readonly origTo: string | null;
  readonly relay: string;
  readonly dsn: string;
  readonly status: 'sent' | 'deferred' | 'bounced' | 'expired' | 'undeliverable' | 'deliverable';
  readonly reason: string;
}

/** The log_adhoc() line (without the `postfix/agent[N]: ` prefix). */
export function deliveryLogLine(f: DeliveryLogFields, t: DeliveryTimes, maxDig: number): string {
  const s = (ms: number): number => Math.max(0, ms) / 1000;
  const fmt = (sec: number): string => formatTv(sec, 2, maxDig);
  const delay = s(t.done - t.arrival);
  const a = s(t.active - t.arrival);
  let b: number;
  let c = 0;
  let d = 0;
  if (t.handoff === null) {
    b = s(t.done - t.active);
  } else {
    b = s(t.handoff - t.active);
    const total = s(t.done - t.handoff);
    c = Math.min(Math.max(0, t.connSeconds), total);
    d = total - c;
  }
  let line = `${f.queueId}: to=<${f.to}>`;
  if (f.origTo !== null && f.origTo !== '' && f.origTo.toLowerCase() !== f.to.toLowerCase()) line += `, orig_to=<${f.origTo}>`;
  line += `, relay=${f.relay}, delay=${fmt(delay)}, delays=${fmt(a)}/${fmt(b)}/${fmt(c)}/${fmt(d)}`;
  line += `, dsn=${f.dsn}, status=${f.status} (${f.reason})`;
  return line;
}

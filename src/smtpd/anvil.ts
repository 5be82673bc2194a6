/**
 * Per-client connection counting for smtpd_client_connection_count_limit and
 * smtpd_client_connection_rate_limit (Postfix's anvil(8), in process).
 *
 * Clients are counted per service and per address; IPv6 clients per
 * smtpd_client_ipv6_prefix_length prefix (Postfix 3.8), so one host cannot dodge the limits by
 * hopping addresses inside its /64. Rates count events within anvil_rate_time_unit, as anvil
 * does: the window starts at the first event and restarts when it has passed.
 */
import * as net from 'node:net';
import { expand6 } from './peer.js';

interface Entry {
  count: number;
  rate: number;
  windowStart: number;
  maxCount: number;
  maxRate: number;
}

/** The anvil key of an address: the address itself (IPv4), or the IPv6 prefix. */
export function clientKey(addr: string, ipv6PrefixLength: number): string {
  if (!net.isIPv6(addr)) return addr;
  const groups = expand6(addr).split(':');
  const bits = groups.map((g) => Number.parseInt(g, 16).toString(2).padStart(16, '0')).join('');
  const len = Math.max(0, Math.min(128, ipv6PrefixLength));
  const kept = bits.slice(0, len).padEnd(128, '0');
  const out: string[] = [];
  for (let i = 0; i < 128; i += 16) out.push(Number.parseInt(kept.slice(i, i + 16), 2).toString(16));
  return `${out.join(':')}/${len}`;
}

export class Anvil {
  private readonly entries = new Map<string, Entry>();
  constructor(private readonly clock: () => number = Date.now) {}

  /** A client connected: returns its concurrent connection count and its connection rate. */
  connect(key: string, rateUnitMs: number): { count: number; rate: number } {
    const e = this.countEvent(key, rateUnitMs);
    e.count += 1;
    e.maxCount = Math.max(e.maxCount, e.count);
    return { count: e.count, rate: e.rate };
  }

  /** Count one event (a message, a recipient) of a key; returns its rate in the current window. */
  event(key: string, rateUnitMs: number): number {
    const e = this.countEvent(key, rateUnitMs);
    this.prune(rateUnitMs);
    return e.rate;
  }

  /** The key's entry with one more event in its rate window (a new window once the old one passed). */
  private countEvent(key: string, rateUnitMs: number): Entry {
    const now = this.clock();
    let e = this.entries.get(key);
    if (e === undefined) {
      e = { count: 0, rate: 0, windowStart: now, maxCount: 0, maxRate: 0 };
      this.entries.set(key, e);
    }
    if (now - e.windowStart >= rateUnitMs) {
      e.windowStart = now;
      e.rate = 0;
    }
    e.rate += 1;
    e.maxRate = Math.max(e.maxRate, e.rate);
    return e;
  }

  /** A key's rate in the current window, without counting an event (anvil's *_stat requests). */
  rate(key: string, rateUnitMs: number): number {
    const e = this.entries.get(key);
    if (e === undefined || this.clock() - e.windowStart >= rateUnitMs) return 0;
    return e.rate;
  }

  /** The client's connection ended. Idle entries are forgotten once their rate window passed. */
  disconnect(key: string, rateUnitMs: number): void {
    const e = this.entries.get(key);
    if (e === undefined) return;
    e.count = Math.max(0, e.count - 1);
    this.prune(rateUnitMs);
  }

  private prune(rateUnitMs: number): void {
    if (this.entries.size < 1000) return;
    const now = this.clock();
    for (const [k, e] of this.entries) {
      if (e.count === 0 && now - e.windowStart >= rateUnitMs) this.entries.delete(k);
    }
  }

  /** Concurrent connections of a key (tests). */
  count(key: string): number {
    return this.entries.get(key)?.count ?? 0;
  }
}

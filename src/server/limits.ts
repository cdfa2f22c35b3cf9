// SPEC 4.1: per-source-IP registration rate. A token bucket kept as GCRA (the
// "theoretical arrival time" form): one number per IP instead of a count and a
// timestamp, and an entry can be forgotten as soon as its bucket is full
// again, which sweep() does. Pure: `now` is a parameter.

import type { IpKey } from '../wire/address';

export class RegistrationRateLimiter {
  /** ip -> theoretical arrival time of the next registration, in ms. */
  private readonly tat = new Map<IpKey, number>();
  private readonly intervalMs: number;
  private readonly toleranceMs: number;

  /**
   * @param perSecond sustained registrations per second per IP; 0 disables the limit.
   * @param burst how many may arrive at once (the bucket's size), at least 1.
   */
  constructor(readonly perSecond: number, readonly burst: number) {
    this.intervalMs = perSecond > 0 ? 1000 / perSecond : 0;
    this.toleranceMs = this.intervalMs * (Math.max(1, burst) - 1);
  }

  /** Takes one token for `ip`; false when its bucket is empty. */
  take(ip: IpKey, now: number): boolean {
    if (this.intervalMs === 0) return true;
    const tat = Math.max(this.tat.get(ip) ?? now, now);
    if (tat - now > this.toleranceMs) return false;
    this.tat.set(ip, tat + this.intervalMs);
    return true;
  }

  /** Forgets IPs whose bucket has refilled: they are indistinguishable from new ones. */
  sweep(now: number): void {
    for (const [ip, tat] of this.tat) if (tat <= now) this.tat.delete(ip);
  }

  /** IPs currently tracked (the limiter's memory; shown in the metrics). */
  get size(): number {
    return this.tat.size;
  }
}

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
  constructor(
    readonly perSecond: number,
    readonly burst: number,
  ) {
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

/** What a session's budget is kept in: the theoretical arrival times (GCRA) of its next datagram and next byte. */
export interface BudgetState {
  packetTat: number;
  rateTat: number;
}

/** A burst of one second's worth for both budgets. */
const BUDGET_BURST_MS = 1000;

/**
 * SPEC 4.4 and the opt-in bandwidth cap: what one session may have forwarded,
 * in datagrams (zero-length included) and in bytes per second, both
 * directions together, each with a second's burst. GCRA over numbers kept on
 * the session: no object or timer per session; two compares per datagram.
 */
export class SessionBudget {
  /** Milliseconds of budget one datagram / one byte costs; 0 when there is no such budget. */
  private readonly msPerDatagram: number;
  private readonly msPerByte: number;
  /** False when there is neither budget: the hot path skips the call. */
  readonly active: boolean;

  constructor(datagramsPerSec: number, bytesPerSec: number) {
    this.msPerDatagram = datagramsPerSec > 0 ? 1000 / datagramsPerSec : 0;
    this.msPerByte = bytesPerSec > 0 ? 1000 / bytesPerSec : 0;
    this.active = this.msPerDatagram > 0 || this.msPerByte > 0;
  }

  /** Spends one datagram of `bytes` from `s`'s budget; false (nothing spent) when it is over either. */
  admit(s: BudgetState, bytes: number, now: number): boolean {
    let packetTat = s.packetTat;
    if (this.msPerDatagram > 0) {
      packetTat = Math.max(packetTat, now) + this.msPerDatagram;
      if (packetTat - now > BUDGET_BURST_MS) return false;
    }
    if (this.msPerByte > 0) {
      const rateTat = Math.max(s.rateTat, now) + bytes * this.msPerByte;
      if (rateTat - now > BUDGET_BURST_MS) return false;
      s.rateTat = rateTat;
    }
    s.packetTat = packetTat;
    return true;
  }
}

// SPEC 5.3: one attempt's targets, the peer's addresses that we probe, and
// what each has shown: answered from itself (ours confirmed), and confirmed
// by the peer (its probe to us was answered). Pure; the path machine
// (path-machine.ts) decides when an attempt starts and ends, and sends.

import * as net from 'node:net';
import { MAX_CANDIDATES } from './control';
import type { Candidate } from './control';

/** One of the peer's addresses under probe in the current attempt. */
export interface Target {
  readonly address: string;
  readonly port: number;
  readonly key: string;
  nextProbeAt: number;
  gap: number;
  /** When our probe to it was last answered from it; 0: never in this attempt. */
  answeredAt: number;
  rttMs: number;
  readonly reflexive: boolean;
}

/** Peer-reflexive targets (addresses the peer reached us from without listing them) per attempt, at most. */
export const MAX_REFLEXIVE = 2;

export const keyOf = (address: string, port: number): string => `${address}/${port}`;

export class ProbeTargets {
  private readonly byKey = new Map<string, Target>();
  /** Targets whose probe to us the peer says was answered (SPEC 5.3's other half). */
  private readonly peerConfirmed = new Set<string>();

  constructor(
    /** A udp4 socket cannot reach an IPv6 candidate, nor the reverse. */
    private readonly family: 4 | 6,
    private readonly firstGapMs: number,
    private readonly maxGapMs: number,
  ) {}

  /** A new attempt: nothing learnt in the last one holds. */
  clear(): void {
    this.byKey.clear();
    this.peerConfirmed.clear();
  }

  get size(): number {
    return this.byKey.size;
  }

  get(key: string): Target | undefined {
    return this.byKey.get(key);
  }

  /** Probes `c` from now on, unless it is of the other family, known, or past the bounds. */
  add(now: number, c: Candidate, reflexive: boolean): void {
    if (net.isIP(c.address) !== this.family) return;
    const key = keyOf(c.address, c.port);
    if (this.byKey.has(key) || this.byKey.size >= MAX_CANDIDATES + MAX_REFLEXIVE) return;
    if (reflexive && this.reflexiveCount() >= MAX_REFLEXIVE) return;
    this.byKey.set(key, { address: c.address, port: c.port, key, nextProbeAt: now, gap: this.firstGapMs, answeredAt: 0, rttMs: 0, reflexive });
  }

  /** The peer says its probe to `key` was answered. */
  confirmedByPeer(key: string): void {
    this.peerConfirmed.add(key);
  }

  /** Our probe to `key` was answered from it in this attempt. */
  answered(key: string): boolean {
    return (this.byKey.get(key)?.answeredAt ?? 0) > 0;
  }

  /** The earliest probe due. */
  nextProbeAt(): number {
    let at = Infinity;
    for (const target of this.byKey.values()) at = Math.min(at, target.nextProbeAt);
    return at;
  }

  /** Calls `probe` for each target due, and spaces its next probe (gaps double up to the max). */
  probeDue(now: number, probe: (target: Target) => void): void {
    for (const target of this.byKey.values()) {
      if (now < target.nextProbeAt) continue;
      probe(target);
      target.nextProbeAt = now + target.gap;
      target.gap = Math.min(target.gap * 2, this.maxGapMs);
    }
  }

  /** The fastest target that has crossed both ways (answered us, and the peer confirmed), if any. */
  best(): Target | undefined {
    let best: Target | undefined;
    for (const target of this.byKey.values()) {
      if (target.answeredAt > 0 && this.peerConfirmed.has(target.key) && (best === undefined || target.rttMs < best.rttMs)) best = target;
    }
    return best;
  }

  /** Why an attempt that confirmed nothing failed, for the path's reason. */
  failureReason(peerKnown: boolean): string {
    const tried = this.byKey.size;
    if (!peerKnown) return 'no candidates from the peer (relay-only, or an older client)';
    if (tried === 0) return 'the peer offered no candidate this socket can reach';
    for (const target of this.byKey.values()) if (target.answeredAt > 0) return 'probes were answered one way only';
    return `no answer from the peer's ${tried} candidate${tried === 1 ? '' : 's'}`;
  }

  private reflexiveCount(): number {
    let n = 0;
    for (const target of this.byKey.values()) if (target.reflexive) n++;
    return n;
  }
}

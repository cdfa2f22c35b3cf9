// SPEC 5.3: one attempt at a direct path: its deadline, the resends of our
// candidates, and its targets (the peer's addresses that we probe) with what
// each has shown: answered from itself (ours confirmed), and confirmed by the
// peer (its probe to us was answered). Pure; the path machine
// (path-machine.ts) starts attempts, sends, and decides what an outcome means.

import * as net from 'node:net';
import { MAX_CANDIDATES } from './control';
import type { Candidate } from './control';
import { CandidateResend } from './path-parts';

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

export interface AttemptTimings {
  attemptMs: number;
  probeFirstGapMs: number;
  probeMaxGapMs: number;
  candidateSends: number;
  candidateResendMs: number;
}

export class Attempt {
  private readonly byKey = new Map<string, Target>();
  /** Targets whose probe to us the peer says was answered (SPEC 5.3's other half). */
  private readonly peerConfirmed = new Set<string>();
  private readonly resend: CandidateResend;
  private endsAt = 0;

  constructor(
    /** A udp4 socket cannot reach an IPv6 candidate, nor the reverse. */
    private readonly family: 4 | 6,
    private readonly t: AttemptTimings,
  ) {
    this.resend = new CandidateResend(t.candidateSends, t.candidateResendMs);
  }

  /**
   * A new attempt, over attemptMs from now: nothing learnt in the last one
   * holds. `resendOurs`: our candidates (sent now by the caller) go again
   * until the peer's come; false when joining the peer's attempt.
   */
  start(now: number, resendOurs: boolean): void {
    this.clear();
    this.endsAt = now + this.t.attemptMs;
    if (resendOurs) this.resend.begin(now);
    else this.resend.none();
  }

  /** The attempt ended (confirmed or failed): its targets go. */
  clear(): void {
    this.byKey.clear();
    this.peerConfirmed.clear();
  }

  /** The peer's candidates came: ours need not go again. */
  peerCandidatesCame(): void {
    this.resend.peerCame();
  }

  /** The earliest deadline: the end, a resend, or (`probing`) a probe. */
  nextWake(probing: boolean): number {
    return Math.min(this.endsAt, this.resend.nextAt, probing ? this.nextProbeAt() : Infinity);
  }

  /** True when our candidates are due again now (and counts the send). */
  resendDue(now: number): boolean {
    return this.resend.due(now);
  }

  /** The attempt's time is up. */
  over(now: number): boolean {
    return now >= this.endsAt;
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
    this.byKey.set(key, { address: c.address, port: c.port, key, nextProbeAt: now, gap: this.t.probeFirstGapMs, answeredAt: 0, rttMs: 0, reflexive });
  }

  /** The peer says its probe to `key` was answered. */
  confirmedByPeer(key: string): void {
    this.peerConfirmed.add(key);
  }

  /** Our probe to `target` was answered from it after rttMs; true the first time in this attempt. */
  answeredBy(target: Target, now: number, rttMs: number): boolean {
    const first = target.answeredAt === 0;
    target.answeredAt = now;
    target.rttMs = rttMs;
    return first;
  }

  /** Our probe to `key` was answered from it in this attempt. */
  answered(key: string): boolean {
    return (this.byKey.get(key)?.answeredAt ?? 0) > 0;
  }

  private nextProbeAt(): number {
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
      target.gap = Math.min(target.gap * 2, this.t.probeMaxGapMs);
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

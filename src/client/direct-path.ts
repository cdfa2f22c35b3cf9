// SPEC 5.4: the direct path while it carries data. A heartbeat probe every
// heartbeatMs; it is given up when no probe was answered for timeoutMs, or
// when it answers probes while the peer sees none of our data (black-holed).
// Pure: the path machine (path-machine.ts) sends the probes it asks for.

import type { DataReport } from './path-parts';
import type { Target } from './attempt';

/** What is due on the direct path now: a heartbeat, or why to leave it. */
export type DirectDue = { readonly kind: 'heartbeat' } | { readonly kind: 'lost'; readonly reason: string } | undefined;

const HEARTBEAT: DirectDue = { kind: 'heartbeat' };

export class DirectPath {
  private lastAnswerAt: number;
  private nextHeartbeatAt: number;

  constructor(
    /** The peer's address in use, with its last round trip. */
    readonly target: Target,
    /** When it went into use (a path that held long earns a quick retry after it breaks). */
    readonly since: number,
    private readonly heartbeatMs: number,
    private readonly timeoutMs: number,
    private readonly data: DataReport,
  ) {
    this.lastAnswerAt = since;
    this.nextHeartbeatAt = since + heartbeatMs;
    data.reset(); // nothing is held against a new path
  }

  get nextWake(): number {
    return Math.min(this.nextHeartbeatAt, this.lastAnswerAt + this.timeoutMs);
  }

  /** Our probe to the target was answered after `rttMs`. */
  answered(now: number, rttMs: number): void {
    this.lastAnswerAt = now;
    this.target.rttMs = rttMs;
  }

  due(now: number): DirectDue {
    const silentMs = now - this.lastAnswerAt;
    if (silentMs >= this.timeoutMs) return { kind: 'lost', reason: `no answer on the direct path for ${(silentMs / 1000).toFixed(1)} s` };
    if (now < this.nextHeartbeatAt) return undefined;
    // SPEC 5.4: the path answers probes, but for timeoutMs of heartbeats the peer saw none of our data.
    if (this.data.blackHoled(this.heartbeatMs, this.timeoutMs))
      return { kind: 'lost', reason: `the peer got none of our direct data for ${(this.timeoutMs / 1000).toFixed(1)} s` };
    this.nextHeartbeatAt = now + this.heartbeatMs;
    return HEARTBEAT;
  }
}

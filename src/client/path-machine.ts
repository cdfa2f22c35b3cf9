// SPEC 5.3-5.4: which path carries a peer link's data, and when it changes.
// Pure: no sockets, no timers, no clock. The link feeds it datagrams and the
// time (`now`, in ms), calls tick() at nextWake(), and carries out what it
// asks through PathActions. Tests drive it with a hand-turned clock.
//
// One attempt: send our candidates through the relay (asking for the peer's);
// probe each of the peer's candidates from the registered socket, with gaps
// that double; an address is ours to use once our probe to it was answered
// from it AND the peer says (a flag in its probes and answers) that its own
// probe to us was answered: a probe and its answer have crossed both ways.
// While direct, a heartbeat probe every heartbeatMs; no answer for
// directTimeoutMs puts data back on the relay at once, and the next attempt
// waits retryInitialMs, doubling to retryMaxMs, so a bad path cannot flap.

import * as net from 'node:net';
import { decodeControl, encodeControl, MAX_CANDIDATES, NONCE_BYTES, SENDER_BYTES } from './control';
import { DataReport, NonceWindow, PeerAddresses, RelayCheck } from './path-parts';
import type { Candidate, ControlMessage } from './control';

export interface PathTimings {
  /** First resend of our candidates while the peer's have not come; doubles. @default 250 */
  candidateResendMs: number;
  /** Sends of our candidates per attempt (at 0, 250, 750, 1750 ms by default). @default 4 */
  candidateSends: number;
  /** Gap after the first probe to a candidate; doubles up to probeMaxGapMs. @default 50 */
  probeFirstGapMs: number;
  /** @default 800 */
  probeMaxGapMs: number;
  /** An attempt that has not confirmed a path after this long gives up (7 probes a candidate by default). @default 3000 */
  attemptMs: number;
  /** Probes on the direct path while it carries data. @default 500 */
  heartbeatMs: number;
  /** No answer on the direct path for this long: back to the relay. @default 2000 */
  directTimeoutMs: number;
  /** Wait before the next attempt after a failure or a fallback; doubles. @default 2000 */
  retryInitialMs: number;
  /** @default 30000 */
  retryMaxMs: number;
  /**
   * On the relay path, nothing from the peer for this long: probe it through
   * the relay; no answer by the next check: register again at once. Only once
   * the peer has shown that it speaks these datagrams. A false alarm costs one
   * REG. @default 1500
   */
  relayCheckMs: number;
}

export const DEFAULT_PATH_TIMINGS: Readonly<PathTimings> = Object.freeze({
  candidateResendMs: 250,
  candidateSends: 4,
  probeFirstGapMs: 50,
  probeMaxGapMs: 800,
  attemptMs: 3000,
  heartbeatMs: 500,
  directTimeoutMs: 2000,
  retryInitialMs: 2000,
  retryMaxMs: 30000,
  relayCheckMs: 1500,
});

export type Path =
  | { readonly kind: 'relay'; readonly reason: string }
  | { readonly kind: 'direct'; readonly address: string; readonly port: number; readonly rttMs: number };

export interface PathActions {
  /** Send a control datagram to the peer through the relay session. */
  viaRelay(datagram: Buffer): void;
  /** Send a control datagram straight to an address, from the registered socket. */
  sendTo(address: string, port: number, datagram: Buffer): void;
  /** The path that carries data changed (also told once when the first attempt fails). */
  pathChanged(path: Path): void;
  /** An attempt is due: refresh our candidates (address query) and call begin(). */
  attemptDue(): void;
  /** The peer stopped answering through the relay: register again now. */
  relayLost(): void;
}

/** What receive() made of a datagram that looked like control. */
export type ControlOutcome = 'peer' | 'ignored' | 'invalid';

interface Target {
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

type Phase = 'waiting' | 'exchanging' | 'probing' | 'direct';

const RELAY = 'relay' as const;
const MAX_PENDING_PROBES = 64;
const MAX_REFLEXIVE = 2;
const REPLAY_WINDOW = 64;

const keyOf = (address: string, port: number): string => `${address}/${port}`;

/** Addresses remembered as the peer's, at most (the oldest is forgotten first). */
const MAX_PEER_ADDRESSES = MAX_CANDIDATES + MAX_REFLEXIVE;

export class PathMachine {
  /** Our sender id: a datagram that carries it was reflected back to us. */
  readonly id: string;

  /** End-to-end liveness through the relay (path-parts.ts). */
  private readonly relayCheck: RelayCheck;
  /**
   * Every address whose answer to our probe proved it the peer's (this
   * incarnation of the peer): data from any of them is the peer's, at any
   * time (SPEC 5.4). Not only the one we send to: the peer picks its own
   * target among our candidates, and its data comes from wherever its route
   * to that target leaves (two interfaces, a VPN, a hairpinning router).
   */
  private readonly peerAddresses = new PeerAddresses(MAX_PEER_ADDRESSES);
  /** SPEC 5.4: whether our direct data reaches the peer. */
  private readonly data = new DataReport();
  private readonly nonces = new NonceWindow(REPLAY_WINDOW);

  private readonly t: PathTimings;
  private readonly family: 4 | 6;
  private phase: Phase = 'waiting';
  private begun = false;
  private own: Candidate[] = [];
  private peerId: string | undefined;
  private peerCandidates: readonly Candidate[] = [];
  private peerCandidatesFresh = false;
  private readonly targets = new Map<string, Target>();
  private readonly pending = new Map<string, { key: string; sentAt: number }>();
  private readonly peerConfirmed = new Set<string>();
  private direct: Target | undefined;
  private directSince = 0;
  private lastDirectAnswerAt = 0;
  private nextHeartbeatAt = 0;
  private candidateSendsLeft = 0;
  private candidateGap = 0;
  private nextCandidatesAt = 0;
  private attemptEndsAt = 0;
  private retryAt: number | undefined;
  private retryGap: number;
  private reported = false;

  constructor(
    private readonly key: Buffer,
    private readonly actions: PathActions,
    private readonly random: (bytes: number) => Buffer,
    now: number,
    options: { family?: 4 | 6; timings?: Partial<PathTimings> } = {},
  ) {
    this.t = { ...DEFAULT_PATH_TIMINGS, ...options.timings };
    this.family = options.family ?? 4;
    this.id = random(SENDER_BYTES).toString('hex');
    this.retryGap = this.t.retryInitialMs;
    this.relayCheck = new RelayCheck(this.t.relayCheckMs, now);
  }

  get path(): Path | undefined {
    const d = this.direct;
    return this.phase === 'direct' && d !== undefined ? { kind: 'direct', address: d.address, port: d.port, rttMs: d.rttMs } : undefined;
  }

  /** Neither attempting nor direct: a new attempt may start. */
  get waiting(): boolean {
    return this.phase === 'waiting';
  }

  /** Where data goes while the direct path is in use; undefined: through the relay. */
  get directTarget(): Candidate | undefined {
    return this.phase === 'direct' ? this.direct : undefined;
  }

  /** True when data from address:port is the peer's: an address that answered our probe (SPEC 5.4). Per datagram: no allocation. */
  acceptsFrom(address: string, port: number): boolean {
    return this.peerAddresses.has(address, port);
  }

  /** Anything from the peer came through the relay (the relay check's input). */
  heardViaRelay(): void {
    this.relayCheck.heard();
  }

  /** A data datagram went out on the direct path. */
  noteDirectDataSent(): void {
    this.data.noteSent();
  }

  /** A data datagram came in from one of the peer's addresses. */
  noteDirectDataReceived(): void {
    this.data.noteReceived();
  }

  /** Starts an attempt with our current candidates (the public address from the relay, and local ones). */
  begin(now: number, own: readonly Candidate[]): void {
    this.begun = true;
    this.own = own.slice(0, MAX_CANDIDATES);
    if (this.phase === 'direct') return;
    this.startAttempt(now);
    // Always ask for the peer's candidates afresh: its public port may have moved.
    this.peerCandidatesFresh = false;
    this.candidateSendsLeft = this.t.candidateSends - 1;
    this.candidateGap = this.t.candidateResendMs;
    this.nextCandidatesAt = now + this.candidateGap;
    this.sendCandidates(false);
    if (this.peerId !== undefined) this.startProbing(now);
    else this.phase = 'exchanging';
  }

  /**
   * A datagram that looksLikeControl(), from the relay (`viaRelay`) or from
   * `address:port`. Only an authentic datagram of this session from the peer
   * changes anything; 'peer' says it was one.
   */
  receive(now: number, viaRelay: boolean, address: string, port: number, datagram: Buffer): ControlOutcome {
    const msg = decodeControl(this.key, datagram);
    if (msg === undefined) return 'invalid';
    if (msg.sender === this.id || (msg.type !== 'answer' && this.nonces.replayed(msg.nonce))) return 'ignored';
    switch (msg.type) {
      case 'candidates':
        return viaRelay ? this.onCandidates(now, msg) : 'ignored'; // candidates travel through the relay only
      case 'probe':
        return this.onProbe(now, viaRelay, address, port, msg);
      case 'answer':
        return this.onAnswer(now, viaRelay, address, port, msg);
      default: {
        const never: never = msg;
        return never;
      }
    }
  }

  /** The earliest time tick() has something to do. */
  nextWake(): number {
    let at = this.relayCheck.nextAt;
    const p = this.phase;
    if (p === 'waiting') {
      if (this.retryAt !== undefined) at = Math.min(at, this.retryAt);
      return at;
    }
    if (p === 'direct') return Math.min(at, this.nextHeartbeatAt, this.lastDirectAnswerAt + this.t.directTimeoutMs);
    at = Math.min(at, this.attemptEndsAt);
    if (!this.peerCandidatesFresh && this.candidateSendsLeft > 0) at = Math.min(at, this.nextCandidatesAt);
    for (const target of this.targets.values()) at = Math.min(at, target.nextProbeAt);
    return at;
  }

  tick(now: number): void {
    const p = this.phase;
    if ((p === 'exchanging' || p === 'probing') && !this.peerCandidatesFresh && this.candidateSendsLeft > 0 && now >= this.nextCandidatesAt) {
      this.candidateSendsLeft--;
      this.candidateGap *= 2;
      this.nextCandidatesAt = now + this.candidateGap;
      this.sendCandidates(false);
    }
    if (p === 'probing') {
      for (const target of this.targets.values()) {
        if (now >= target.nextProbeAt) {
          this.probe(now, target);
          target.nextProbeAt = now + target.gap;
          target.gap = Math.min(target.gap * 2, this.t.probeMaxGapMs);
        }
      }
    }
    if ((p === 'exchanging' || p === 'probing') && now >= this.attemptEndsAt) this.attemptFailed(now);
    if (p === 'direct' && this.direct !== undefined) {
      if (now - this.lastDirectAnswerAt >= this.t.directTimeoutMs) {
        this.fallBack(now, `no answer on the direct path for ${((now - this.lastDirectAnswerAt) / 1000).toFixed(1)} s`);
      } else if (now >= this.nextHeartbeatAt && this.data.blackHoled(this.t.heartbeatMs, this.t.directTimeoutMs)) {
        // SPEC 5.4: the path answers probes, but for directTimeoutMs of heartbeats the peer saw none of our data.
        this.fallBack(now, `the peer got none of our direct data for ${(this.t.directTimeoutMs / 1000).toFixed(1)} s`);
      } else if (now >= this.nextHeartbeatAt) {
        this.nextHeartbeatAt = now + this.t.heartbeatMs;
        this.probe(now, this.direct);
      }
    }
    if (this.phase === 'waiting' && this.retryAt !== undefined && now >= this.retryAt) {
      this.retryAt = undefined;
      this.actions.attemptDue();
    }
    if (now >= this.relayCheck.nextAt) {
      const verdict = this.relayCheck.due(now, this.phase !== 'direct' && this.peerId !== undefined);
      if (verdict === 'probe') this.probe(now, RELAY);
      else if (verdict === 'lost') this.actions.relayLost(); // our registration may be gone (a relay restart)
    }
  }

  // ---- inputs

  private onCandidates(now: number, msg: Extract<ControlMessage, { type: 'candidates' }>): ControlOutcome {
    if (msg.sender !== this.peerId) {
      // A new peer, or the peer restarted: nothing learnt from the old one holds.
      if (this.peerId !== undefined && this.phase === 'direct') this.fallBack(now, 'the peer restarted');
      this.peerId = msg.sender;
      this.peerAddresses.clear();
      this.data.forgetPeer();
      this.targets.clear();
    }
    this.peerCandidates = msg.candidates;
    this.peerCandidatesFresh = true;
    if (!this.begun) return 'peer'; // begin() sends ours and starts probing
    if (!msg.haveYours) this.sendCandidates(true);
    if (this.phase === 'waiting') {
      // The peer began an attempt: join it now, so that both sides punch at once.
      this.startAttempt(now);
      this.candidateSendsLeft = 0;
      this.startProbing(now);
    } else if (this.phase === 'exchanging') {
      this.startProbing(now);
    } else if (this.phase === 'probing') {
      for (const c of this.peerCandidates) this.addTarget(now, c, false);
    }
    return 'peer';
  }

  private onProbe(now: number, viaRelay: boolean, address: string, port: number, msg: Extract<ControlMessage, { type: 'probe' }>): ControlOutcome {
    const key = keyOf(address, port);
    // Authentic, so answer it, and the same size: an answer never amplifies.
    const answer = encodeControl(this.key, {
      type: 'answer',
      sender: this.id,
      nonce: msg.nonce,
      confirmed: !viaRelay && this.answeredFrom(key),
      dataSeen: this.data.take(viaRelay),
    });
    if (viaRelay) {
      this.actions.viaRelay(answer);
      return msg.sender === this.peerId ? 'peer' : 'ignored';
    }
    this.actions.sendTo(address, port, answer);
    if (msg.sender !== this.peerId) return 'ignored'; // a restarted peer: its candidates will come first
    this.data.fromPeer(msg.dataSeen);
    if (msg.confirmed) this.peerConfirmed.add(key);
    if (this.phase === 'probing' && !this.targets.has(key)) {
      // Peer-reflexive: the peer reaches us from an address it did not list.
      let reflexive = 0;
      for (const target of this.targets.values()) if (target.reflexive) reflexive++;
      if (reflexive < MAX_REFLEXIVE) this.addTarget(now, { address, port }, true);
    }
    this.evaluate(now);
    return 'peer';
  }

  private onAnswer(now: number, viaRelay: boolean, address: string, port: number, msg: Extract<ControlMessage, { type: 'answer' }>): ControlOutcome {
    const sent = this.pending.get(msg.nonce);
    if (sent === undefined || msg.sender !== this.peerId) return 'ignored';
    const key = viaRelay ? RELAY : keyOf(address, port);
    // Only the address we probed confirms itself: an answer from elsewhere proves nothing.
    if (sent.key !== key) return 'ignored';
    this.pending.delete(msg.nonce);
    if (viaRelay) return 'peer';
    this.data.fromPeer(msg.dataSeen);
    const rttMs = now - sent.sentAt;
    const direct = this.direct;
    if (this.phase === 'direct' && direct !== undefined && direct.key === key) {
      this.lastDirectAnswerAt = now;
      direct.rttMs = rttMs;
      return 'peer';
    }
    const target = this.targets.get(key);
    if (target === undefined || this.phase !== 'probing') return 'peer';
    const first = target.answeredAt === 0;
    target.answeredAt = now;
    target.rttMs = rttMs;
    this.peerAddresses.add(address, port);
    if (msg.confirmed) this.peerConfirmed.add(key);
    this.evaluate(now);
    if (first) this.probe(now, target); // tell the peer at once that we have its answer: it may be waiting for that
    return 'peer';
  }

  // ---- internals

  private answeredFrom(key: string): boolean {
    if (this.phase === 'direct') return this.direct?.key === key;
    return (this.targets.get(key)?.answeredAt ?? 0) > 0;
  }

  private sendCandidates(haveYours: boolean): void {
    this.actions.viaRelay(encodeControl(this.key, { type: 'candidates', sender: this.id, nonce: this.nonce(), haveYours, candidates: this.own }));
  }

  private startProbing(now: number): void {
    this.phase = 'probing';
    for (const c of this.peerCandidates) this.addTarget(now, c, false);
  }

  private addTarget(now: number, c: Candidate, reflexive: boolean): void {
    const family = net.isIP(c.address);
    if (family !== this.family) return; // a udp4 socket cannot reach an IPv6 candidate, nor the reverse
    const key = keyOf(c.address, c.port);
    if (this.targets.has(key) || this.targets.size >= MAX_CANDIDATES + MAX_REFLEXIVE) return;
    this.targets.set(key, { address: c.address, port: c.port, key, nextProbeAt: now, gap: this.t.probeFirstGapMs, answeredAt: 0, rttMs: 0, reflexive });
  }

  /** A probe to `target`, or through the relay (RELAY), remembered until answered. */
  private probe(now: number, target: Target | typeof RELAY): void {
    const nonce = this.nonce();
    const key = target === RELAY ? RELAY : target.key;
    this.pending.set(nonce, { key, sentAt: now });
    // Bounded: the oldest unanswered probe is forgotten first.
    if (this.pending.size > MAX_PENDING_PROBES) this.pending.delete(this.pending.keys().next().value!);
    const datagram = encodeControl(this.key, {
      type: 'probe',
      sender: this.id,
      nonce,
      confirmed: target !== RELAY && this.answeredFrom(key),
      dataSeen: this.data.take(target === RELAY),
    });
    if (target === RELAY) this.actions.viaRelay(datagram);
    else this.actions.sendTo(target.address, target.port, datagram);
  }

  /** What every attempt, begun or joined, starts from. */
  private startAttempt(now: number): void {
    this.retryAt = undefined;
    this.attemptEndsAt = now + this.t.attemptMs;
    this.peerConfirmed.clear();
    this.targets.clear();
  }

  /** Goes direct on the best address that has crossed both ways; true if it did. */
  private evaluate(now: number): boolean {
    if (this.phase !== 'probing') return false;
    let best: Target | undefined;
    for (const target of this.targets.values()) {
      if (target.answeredAt > 0 && this.peerConfirmed.has(target.key) && (best === undefined || target.rttMs < best.rttMs)) best = target;
    }
    if (best === undefined) return false;
    this.phase = 'direct';
    this.direct = best;
    this.directSince = now;
    this.data.reset();
    this.lastDirectAnswerAt = now;
    this.nextHeartbeatAt = now + this.t.heartbeatMs;
    this.targets.clear();
    this.reported = true;
    this.actions.pathChanged({ kind: 'direct', address: best.address, port: best.port, rttMs: best.rttMs });
    return true;
  }

  private attemptFailed(now: number): void {
    const answered = [...this.targets.values()].some((target) => target.answeredAt > 0);
    const tried = this.targets.size;
    this.phase = 'waiting';
    this.targets.clear();
    this.scheduleRetry(now);
    if (this.reported) return; // only the first outcome is news; later failures change nothing
    this.reported = true;
    const reason =
      this.peerId === undefined
        ? 'no candidates from the peer (relay-only, or an older client)'
        : tried === 0
          ? 'the peer offered no candidate this socket can reach'
          : answered
            ? 'probes were answered one way only'
            : `no answer from the peer's ${tried} candidate${tried === 1 ? '' : 's'}`;
    this.actions.pathChanged({ kind: 'relay', reason });
  }

  private fallBack(now: number, reason: string): void {
    // A path that held for a while earns a quick retry; one that keeps breaking waits longer each time.
    if (now - this.directSince >= this.t.retryMaxMs) this.retryGap = this.t.retryInitialMs;
    this.phase = 'waiting';
    this.direct = undefined;
    this.scheduleRetry(now);
    this.actions.pathChanged({ kind: 'relay', reason });
    // The relay carried nothing for a while: check it end to end at once.
    this.relayCheck.probeNow(now);
    this.probe(now, RELAY);
  }

  private scheduleRetry(now: number): void {
    this.retryAt = now + this.retryGap;
    this.retryGap = Math.min(this.retryGap * 2, this.t.retryMaxMs);
  }

  private nonce(): string {
    return this.random(NONCE_BYTES).toString('hex');
  }
}

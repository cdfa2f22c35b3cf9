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
//
// Its parts, each pure with its own state: the attempt (attempt.ts), the
// direct path in use (direct-path.ts), our signed end of the control
// datagrams (control-channel.ts), and the small ones in path-parts.ts. This
// file keeps the phases and what each message means.

import { MAX_CANDIDATES } from './control';
import type { Candidate, ControlMessage } from './control';
import { ControlChannel } from './control-channel';
import { DirectPath } from './direct-path';
import { Attempt, MAX_REFLEXIVE, keyOf } from './attempt';
import type { Target } from './attempt';
import { DataReport, PeerAddresses, PendingProbes, RelayCheck, RetryBackoff } from './path-parts';

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

type Phase = 'waiting' | 'exchanging' | 'probing' | 'direct';

const RELAY = 'relay' as const;
const MAX_PENDING_PROBES = 64;

/** Addresses remembered as the peer's, at most (the oldest is forgotten first). */
const MAX_PEER_ADDRESSES = MAX_CANDIDATES + MAX_REFLEXIVE;

export class PathMachine {
  /** Our signed end of the control datagrams (control-channel.ts). */
  private readonly channel: ControlChannel;
  /** End-to-end liveness through the relay (path-parts.ts). */
  private readonly relayCheck: RelayCheck;
  /** SPEC 5.4: every address proved the peer's (path-parts.ts says why all of them). */
  private readonly peerAddresses = new PeerAddresses(MAX_PEER_ADDRESSES);
  /** SPEC 5.4: whether our direct data reaches the peer. */
  private readonly data = new DataReport();
  private readonly pending = new PendingProbes(MAX_PENDING_PROBES);
  /** The current attempt: its targets, deadline and resends (attempt.ts). */
  private readonly attempt: Attempt;

  private readonly t: PathTimings;
  private phase: Phase = 'waiting';
  private begun = false;
  private own: Candidate[] = [];
  private peerId: string | undefined;
  private peerCandidates: readonly Candidate[] = [];
  /** SPEC 5.4: the direct path in use (phase 'direct'). */
  private direct: DirectPath | undefined;
  private readonly retry: RetryBackoff;
  private reported = false;

  constructor(
    key: Buffer,
    private readonly actions: PathActions,
    random: (bytes: number) => Buffer,
    now: number,
    options: { family?: 4 | 6; timings?: Partial<PathTimings> } = {},
  ) {
    this.t = { ...DEFAULT_PATH_TIMINGS, ...options.timings };
    this.attempt = new Attempt(options.family ?? 4, this.t);
    this.channel = new ControlChannel(key, random);
    this.retry = new RetryBackoff(this.t.retryInitialMs, this.t.retryMaxMs);
    this.relayCheck = new RelayCheck(this.t.relayCheckMs, now);
  }

  /** Our sender id: a datagram that carries it was reflected back to us. */
  get id(): string {
    return this.channel.id;
  }

  /** The direct path while one is in use (data goes there); undefined: through the relay. */
  get path(): Path | undefined {
    const d = this.direct?.target;
    return d !== undefined ? { kind: 'direct', address: d.address, port: d.port, rttMs: d.rttMs } : undefined;
  }

  /** Neither attempting nor direct: a new attempt may start. */
  get waiting(): boolean {
    return this.phase === 'waiting';
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
    // Always ask for the peer's candidates afresh: its public port may have moved.
    this.retry.cancel();
    this.attempt.start(now, true);
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
    const msg = this.channel.open(datagram);
    if (typeof msg === 'string') return msg;
    if (msg.type === 'candidates') return viaRelay ? this.onCandidates(now, msg) : 'ignored'; // candidates travel through the relay only
    return msg.type === 'probe' ? this.onProbe(now, viaRelay, address, port, msg) : this.onAnswer(now, viaRelay, address, port, msg);
  }

  /** The earliest time tick() has something to do. */
  nextWake(): number {
    const at = this.relayCheck.nextAt;
    if (this.phase === 'waiting') return Math.min(at, this.retry.nextAt);
    if (this.direct !== undefined) return Math.min(at, this.direct.nextWake);
    return Math.min(at, this.attempt.nextWake(this.phase === 'probing'));
  }

  tick(now: number): void {
    const p = this.phase;
    if ((p === 'exchanging' || p === 'probing') && this.attempt.resendDue(now)) this.sendCandidates(false);
    if (p === 'probing') this.attempt.probeDue(now, (target) => this.probe(now, target));
    if ((p === 'exchanging' || p === 'probing') && this.attempt.over(now)) this.attemptFailed(now);
    const due = this.direct?.due(now);
    if (due?.kind === 'lost') this.fallBack(now, due.reason);
    else if (due?.kind === 'heartbeat') this.probe(now, this.direct!.target);
    if (this.phase === 'waiting' && this.retry.due(now)) this.actions.attemptDue();
    const verdict = this.relayCheck.due(now, this.phase !== 'direct' && this.peerId !== undefined);
    if (verdict === 'probe') this.probe(now, RELAY);
    else if (verdict === 'lost') this.actions.relayLost(); // our registration may be gone (a relay restart)
  }

  // ---- inputs

  private onCandidates(now: number, msg: Extract<ControlMessage, { type: 'candidates' }>): ControlOutcome {
    if (msg.sender !== this.peerId) {
      // A new peer, or the peer restarted: nothing learnt from the old one holds.
      if (this.peerId !== undefined && this.direct !== undefined) this.fallBack(now, 'the peer restarted');
      this.peerId = msg.sender;
      this.peerAddresses.clear();
      this.data.forgetPeer();
      this.attempt.clear();
    }
    this.peerCandidates = msg.candidates;
    this.attempt.peerCandidatesCame();
    if (!this.begun) return 'peer'; // begin() sends ours and starts probing
    if (!msg.haveYours) this.sendCandidates(true);
    if (this.phase === 'waiting') {
      // The peer began an attempt: join it now, so that both sides punch at once.
      this.retry.cancel();
      this.attempt.start(now, false);
      this.startProbing(now);
    } else if (this.phase === 'exchanging') {
      this.startProbing(now);
    } else if (this.phase === 'probing') {
      for (const c of this.peerCandidates) this.attempt.add(now, c, false);
    }
    return 'peer';
  }

  private onProbe(now: number, viaRelay: boolean, address: string, port: number, msg: Extract<ControlMessage, { type: 'probe' }>): ControlOutcome {
    const key = keyOf(address, port);
    // Authentic, so answer it, and the same size: an answer never amplifies.
    const answer = this.channel.probe('answer', msg.nonce, !viaRelay && this.answeredFrom(key), this.data.take(viaRelay));
    if (viaRelay) {
      this.actions.viaRelay(answer);
      return msg.sender === this.peerId ? 'peer' : 'ignored';
    }
    this.actions.sendTo(address, port, answer);
    if (msg.sender !== this.peerId) return 'ignored'; // a restarted peer: its candidates will come first
    this.data.fromPeer(msg.dataSeen);
    if (msg.confirmed) this.attempt.confirmedByPeer(key);
    // Peer-reflexive: the peer reaches us from an address it did not list (at most MAX_REFLEXIVE).
    if (this.phase === 'probing') this.attempt.add(now, { address, port }, true);
    this.evaluate(now);
    return 'peer';
  }

  private onAnswer(now: number, viaRelay: boolean, address: string, port: number, msg: Extract<ControlMessage, { type: 'answer' }>): ControlOutcome {
    if (msg.sender !== this.peerId) return 'ignored';
    const key = viaRelay ? RELAY : keyOf(address, port);
    // Only the address we probed confirms itself: an answer from elsewhere proves nothing.
    const sentAt = this.pending.take(msg.nonce, key);
    if (sentAt === undefined) return 'ignored';
    if (viaRelay) return 'peer';
    this.data.fromPeer(msg.dataSeen);
    const rttMs = now - sentAt;
    if (this.direct?.target.key === key) {
      this.direct.answered(now, rttMs);
      return 'peer';
    }
    const target = this.attempt.get(key);
    if (target === undefined || this.phase !== 'probing') return 'peer';
    const first = this.attempt.answeredBy(target, now, rttMs);
    this.peerAddresses.add(address, port);
    if (msg.confirmed) this.attempt.confirmedByPeer(key);
    this.evaluate(now);
    if (first) this.probe(now, target); // tell the peer at once that we have its answer: it may be waiting for that
    return 'peer';
  }

  // ---- internals

  private answeredFrom(key: string): boolean {
    if (this.direct !== undefined) return this.direct.target.key === key;
    return this.attempt.answered(key);
  }

  private sendCandidates(haveYours: boolean): void {
    this.actions.viaRelay(this.channel.candidates(haveYours, this.own));
  }

  private startProbing(now: number): void {
    this.phase = 'probing';
    for (const c of this.peerCandidates) this.attempt.add(now, c, false);
  }

  /** A probe to `target`, or through the relay (RELAY), remembered until answered. */
  private probe(now: number, target: Target | typeof RELAY): void {
    const nonce = this.channel.nonce();
    const key = target === RELAY ? RELAY : target.key;
    this.pending.add(nonce, key, now);
    const datagram = this.channel.probe('probe', nonce, target !== RELAY && this.answeredFrom(key), this.data.take(target === RELAY));
    if (target === RELAY) this.actions.viaRelay(datagram);
    else this.actions.sendTo(target.address, target.port, datagram);
  }

  /** Goes direct on the best address that has crossed both ways, if any. */
  private evaluate(now: number): void {
    const best = this.phase === 'probing' ? this.attempt.best() : undefined;
    if (best === undefined) return;
    this.phase = 'direct';
    this.direct = new DirectPath(best, now, this.t.heartbeatMs, this.t.directTimeoutMs, this.data);
    this.attempt.clear();
    this.reported = true;
    this.actions.pathChanged({ kind: 'direct', address: best.address, port: best.port, rttMs: best.rttMs });
  }

  private attemptFailed(now: number): void {
    const reason = this.attempt.failureReason(this.peerId !== undefined);
    this.phase = 'waiting';
    this.attempt.clear();
    this.retry.schedule(now);
    if (this.reported) return; // only the first outcome is news; later failures change nothing
    this.reported = true;
    this.actions.pathChanged({ kind: 'relay', reason });
  }

  private fallBack(now: number, reason: string): void {
    // A path that held for a while earns a quick retry; one that keeps breaking waits longer each time.
    this.retry.schedule(now, this.direct?.since);
    this.phase = 'waiting';
    this.direct = undefined;
    this.actions.pathChanged({ kind: 'relay', reason });
    // The relay carried nothing for a while: check it end to end at once.
    this.relayCheck.probeNow(now);
    this.probe(now, RELAY);
  }
}

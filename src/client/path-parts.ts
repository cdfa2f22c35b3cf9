// Small pure parts of the path machine (path-machine.ts), each with one job
// and its own state: what the peer's addresses are, which nonces were seen,
// whether our direct data reaches the peer, whether the peer still answers
// through the relay, which probes await an answer, and when our candidates
// are sent again. No sockets, no clock: `now` comes in.

/**
 * SPEC 5.4: every address whose answer to our probe proved it the peer's
 * (this incarnation of the peer), bounded; the oldest goes first. Data from
 * any of them is the peer's, at any time. Not only the one we send to: the
 * peer picks its own target among our candidates, and its data comes from
 * wherever its route to that target leaves (two interfaces, a VPN, a
 * hairpinning router).
 */
export class PeerAddresses {
  /** address -> ports, so the per-datagram check builds no string. */
  private readonly byAddress = new Map<string, number[]>();
  private count = 0;

  constructor(private readonly max: number) {}

  /** True when data from address:port is the peer's (SPEC 5.4). Per datagram: no allocation. */
  has(address: string, port: number): boolean {
    return this.byAddress.get(address)?.includes(port) === true;
  }

  add(address: string, port: number): void {
    const ports = this.byAddress.get(address);
    if (ports?.includes(port) === true) return;
    if (this.count >= this.max) {
      // Bounded: forget the address learnt first (a peer that keeps moving).
      const [oldest, oldPorts] = this.byAddress.entries().next().value!;
      oldPorts.shift();
      if (oldPorts.length === 0) this.byAddress.delete(oldest);
      this.count--;
    }
    if (ports === undefined) this.byAddress.set(address, [port]);
    else ports.push(port);
    this.count++;
  }

  clear(): void {
    this.byAddress.clear();
    this.count = 0;
  }
}

/** SPEC 5.3: each nonce is taken once, within a window of the last `size`. */
export class NonceWindow {
  private readonly seen = new Set<string>();
  private readonly order: string[] = [];

  constructor(private readonly size: number) {}

  /** True when `nonce` was seen before (a replay); else remembers it. */
  replayed(nonce: string): boolean {
    if (this.seen.has(nonce)) return true;
    this.seen.add(nonce);
    this.order.push(nonce);
    if (this.order.length > this.size) this.seen.delete(this.order.shift()!);
    return false;
  }
}

/**
 * SPEC 5.4: does our direct data reach the peer? Each probe and answer on
 * the direct path says whether the other side's data arrived since the last
 * one; a path that answers probes while our data vanishes is black-holed.
 */
export class DataReport {
  private sent = false;
  private received = false;
  /** The peer reports at all (a peer of an older version says nothing). */
  private peerReports = false;
  /** Heartbeat periods in a row in which we sent direct data and the peer reported none arriving. */
  private unseenPeriods = 0;

  noteSent(): void {
    this.sent = true;
  }

  noteReceived(): void {
    this.received = true;
  }

  /** A new direct path: nothing is held against it. */
  reset(): void {
    this.unseenPeriods = 0;
    this.sent = false;
  }

  /** A new peer: what the old one reported says nothing. */
  forgetPeer(): void {
    this.peerReports = false;
  }

  /** What our next probe or answer tells the peer: did its direct data reach us since the last one? */
  take(viaRelay: boolean): boolean | undefined {
    if (viaRelay) return undefined;
    const seen = this.received;
    this.received = false;
    return seen;
  }

  /** The peer's report on our direct data, from its probes and answers on the direct path. */
  fromPeer(dataSeen: boolean | undefined): void {
    if (dataSeen === undefined) return;
    this.peerReports = true;
    if (dataSeen) this.unseenPeriods = 0;
  }

  /**
   * Once per heartbeat period: true when for longer than `timeoutMs` we kept
   * sending and the peer saw none of it (a filter that passes our probes only,
   * or an address mix-up). A lost datagram or an idle period does not count.
   */
  blackHoled(heartbeatMs: number, timeoutMs: number): boolean {
    if (this.sent && this.peerReports) this.unseenPeriods++;
    this.sent = false;
    return this.unseenPeriods * heartbeatMs > timeoutMs;
  }
}

const RELAY_CHECK_MAX_FACTOR = 8;
const RELAY_ANSWER_WAIT_MS = 500;

/**
 * End-to-end liveness through the relay: on the relay path, nothing from the
 * peer for a period, a probe through the relay; no answer by the verdict, the
 * registration may be gone (a relay restart): 'lost'. Gaps double while the
 * peer stays silent. It is the peer's answer that counts, so this lives with
 * the path (the probe is a signed control datagram), not with the registration.
 */
export class RelayCheck {
  private at: number;
  private heardSince = true;
  private probeOut = false;
  private gap: number;

  constructor(
    private readonly periodMs: number,
    now: number,
  ) {
    this.gap = periodMs;
    this.at = now + periodMs;
  }

  /** When due() is next due. */
  get nextAt(): number {
    return this.at;
  }

  /** Anything from the peer came through the relay. */
  heard(): void {
    this.heardSince = true;
  }

  /** Probe at once (the direct path just failed: the relay has carried nothing for a while). */
  probeNow(now: number): void {
    this.heardSince = false;
    this.probeOut = true;
    this.gap = this.periodMs;
    this.at = now + Math.min(this.gap, RELAY_ANSWER_WAIT_MS);
  }

  /** 'probe' (send one through the relay), 'lost' (none answered), or 'none' (also before nextAt). `applies`: on the relay path, with a peer that speaks control datagrams. */
  due(now: number, applies: boolean): 'probe' | 'lost' | 'none' {
    if (now < this.at) return 'none';
    let verdict: 'probe' | 'lost' | 'none' = 'none';
    if (!applies || this.heardSince) {
      this.heardSince = false;
      this.probeOut = false;
      this.gap = this.periodMs;
    } else if (!this.probeOut) {
      this.probeOut = true;
      // An answer takes one round trip: the verdict need not wait a whole period.
      this.at = now + Math.min(this.gap, RELAY_ANSWER_WAIT_MS);
      return 'probe';
    } else {
      this.probeOut = false;
      this.gap = Math.min(this.gap * 2, this.periodMs * RELAY_CHECK_MAX_FACTOR);
      verdict = 'lost';
    }
    this.at = now + this.gap;
    return verdict;
  }
}

/** Our probes not yet answered, by nonce: where each went and when. Bounded: the oldest is forgotten first. */
export class PendingProbes {
  private readonly byNonce = new Map<string, { key: string; sentAt: number }>();

  constructor(private readonly max: number) {}

  add(nonce: string, key: string, now: number): void {
    this.byNonce.set(nonce, { key, sentAt: now });
    if (this.byNonce.size > this.max) this.byNonce.delete(this.byNonce.keys().next().value!);
  }

  /**
   * The answer to `nonce` came from `key`: when that probe was sent, and it is
   * answered. Undefined (and still pending) when no such probe went to `key`:
   * only the address we probed confirms itself.
   */
  take(nonce: string, key: string): number | undefined {
    const sent = this.byNonce.get(nonce);
    if (sent === undefined || sent.key !== key) return undefined;
    this.byNonce.delete(nonce);
    return sent.sentAt;
  }
}

/**
 * SPEC 5.3: our candidates go through the relay at the start of an attempt
 * and again, with gaps that double, until the peer's arrive or the sends
 * run out.
 */
export class CandidateResend {
  private peerSent = false;
  private left = 0;
  private gap = 0;
  private at = Infinity;

  constructor(
    private readonly sends: number,
    private readonly firstGapMs: number,
  ) {}

  /** An attempt begins with a send (the caller's): the rest follow. */
  begin(now: number): void {
    this.peerSent = false;
    this.left = this.sends - 1;
    this.gap = this.firstGapMs;
    this.at = now + this.gap;
  }

  /** The peer's candidates came in this attempt: no more resends. */
  peerCame(): void {
    this.peerSent = true;
  }

  /** Joining the peer's attempt: its candidates are here, ours go once in answer. */
  none(): void {
    this.left = 0;
  }

  get nextAt(): number {
    return this.peerSent || this.left <= 0 ? Infinity : this.at;
  }

  /** True when a resend is due now (and counts it). */
  due(now: number): boolean {
    if (now < this.nextAt) return false;
    this.left--;
    this.gap *= 2;
    this.at = now + this.gap;
    return true;
  }
}

/**
 * When the next attempt may start after a failure or a fallback: a gap that
 * doubles up to the max, so a bad path cannot flap; a path that held for
 * maxMs earns the initial gap again.
 */
export class RetryBackoff {
  /** When the next attempt may start; Infinity: none is waiting. */
  private retryAt = Infinity;
  private gap: number;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
  ) {
    this.gap = initialMs;
  }

  get nextAt(): number {
    return this.retryAt;
  }

  /** The next attempt waits the current gap; the one after, twice that. `heldSince`: when the path that just broke went into use. */
  schedule(now: number, heldSince?: number): void {
    if (heldSince !== undefined && now - heldSince >= this.maxMs) this.gap = this.initialMs;
    this.retryAt = now + this.gap;
    this.gap = Math.min(this.gap * 2, this.maxMs);
  }

  /** An attempt started: none is waiting. */
  cancel(): void {
    this.retryAt = Infinity;
  }

  /** True (once) when the retry is due. */
  due(now: number): boolean {
    if (now < this.retryAt) return false;
    this.retryAt = Infinity;
    return true;
  }
}

// Two pure parts of the registration machine (registration.ts), each with
// its own state: SPEC 5.7's fleet (which relay is home, failover, the search
// for the partner), and SPEC 6.4's choice between UDP and the WebSocket legs.

/**
 * SPEC 5.7: which listed relay is home, and when to move on. Registering on
 * home has until a deadline (failoverMs; lostRelayMs after an unanswered
 * keepalive of a relay that carried the session); past it, or on ERR:BUSY,
 * the next relay in order is home. Registered and not hearing the partner
 * for waitMs, the next relay is registered on too (a standby), so two peers
 * that can each reach some listed relay meet. The partner heard through a
 * relay makes it home; standbys are then let go.
 */
export class Fleet {
  /** Relays registered on besides home, kept alive with it. */
  private readonly standby = new Set<number>();
  private homeRelay = 0;
  private failoverAt = 0;
  private dueAt = Infinity;
  private heard = false;
  private heardAt = 0;

  constructor(
    /** How many relays are listed: with one, nothing here ever moves. */
    readonly size: number,
    private readonly failoverMs: number,
    private readonly waitMs: number,
  ) {}

  get home(): number {
    return this.homeRelay;
  }

  get several(): boolean {
    return this.size > 1;
  }

  standbys(): IterableIterator<number> {
    return this.standby.values();
  }

  isStandby(i: number): boolean {
    return this.standby.has(i);
  }

  /** Relay `i` refused us: it is no standby. */
  dropStandby(i: number): void {
    this.standby.delete(i);
  }

  /** Home has until `at` to answer. */
  deadline(at: number): void {
    this.failoverAt = at;
  }

  /** How long until home's deadline (Infinity with one relay, or once past it). */
  untilFailover(now: number): number {
    return this.several && this.failoverAt > now ? this.failoverAt - now : Infinity;
  }

  /** Home's time is up. */
  expired(now: number): boolean {
    return this.several && now >= this.failoverAt;
  }

  /** The next relay is home, with failoverMs to answer; the partner is looked for afresh. Returns the one left. */
  next(now: number): number {
    const from = this.homeRelay;
    this.homeRelay = (from + 1) % this.size;
    this.failoverAt = now + this.failoverMs;
    this.heard = false;
    this.standby.delete(this.homeRelay);
    return from;
  }

  /** When the next standby is due; Infinity: none. */
  get waitAt(): number {
    return this.dueAt;
  }

  /** The registration closed: nothing more is due. */
  stop(): void {
    this.dueAt = Infinity;
  }

  /** Registered: the wait for the partner starts, unless it was heard or a wait is on. */
  await(now: number): void {
    if (!this.several || this.heard || this.dueAt !== Infinity) return;
    this.dueAt = now + this.waitMs;
  }

  /** The wait is over: the next relay to register on as a standby, if any is left (the wait restarts for the one after). */
  due(now: number): number | undefined {
    this.dueAt = Infinity;
    if (this.heard) return undefined;
    for (let k = 1; k < this.size; k++) {
      const i = (this.homeRelay + k) % this.size;
      if (this.standby.has(i)) continue;
      this.standby.add(i);
      this.await(now);
      return i;
    }
    return undefined;
  }

  /**
   * The partner spoke through relay `i`. It becomes home when it is a
   * standby, or another relay while home has carried nothing from the
   * partner for failoverMs (the partner moved on first); never while home
   * flows. Returns the relay left, or -1.
   */
  heardVia(i: number, now: number): number {
    if (!this.several) return -1;
    if (i !== this.homeRelay && this.heard && now - this.heardAt < this.failoverMs) return -1;
    this.heard = true;
    this.heardAt = now;
    this.standby.clear();
    this.dueAt = Infinity;
    if (i === this.homeRelay) return -1;
    const from = this.homeRelay;
    this.homeRelay = i;
    return from;
  }
}

/**
 * SPEC 6.4: UDP or the relays' WebSockets. 'auto' starts on UDP and falls
 * back when no listed relay has answered any UDP datagram in time; after
 * such a fallback UDP is still asked, and an answer brings the client back.
 */
export class TransportChoice {
  private stream: boolean;
  private udpHeard = false;
  private fellBack = false;
  private asked = false;

  constructor(private readonly mode: 'auto' | 'udp' | 'ws') {
    this.stream = mode === 'ws';
  }

  /** Datagrams go over the relays' WebSockets. */
  get onStream(): boolean {
    return this.stream;
  }

  /** 'auto', on UDP, and no UDP answer yet: the fallback may still come. */
  get undecided(): boolean {
    return this.mode === 'auto' && !this.stream && !this.udpHeard;
  }

  /** On the stream by fallback: UDP is still asked with each REG. */
  get askingUdp(): boolean {
    return this.fellBack;
  }

  /** UDP has been asked at least once: a relay's `ADDR ...` over UDP is its answer, never the peer's. */
  get askedUdp(): boolean {
    return this.asked;
  }

  noteAsked(): void {
    this.asked = true;
  }

  /** A UDP datagram from a listed relay. True when it brings us back from a fallback to UDP. */
  heardUdp(): boolean {
    this.udpHeard = true;
    if (!this.fellBack) return false;
    this.stream = false;
    this.fellBack = false;
    return true;
  }

  /** No UDP answer in time: onto the stream. */
  fallBack(): void {
    this.stream = true;
    this.fellBack = true;
  }
}

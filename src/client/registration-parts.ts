// Two pure parts of the registration machine (registration.ts), each with
// its own state: SPEC 5.7's search for the partner across several relays,
// and SPEC 6.4's choice between UDP and the relays' WebSocket legs.

/**
 * SPEC 5.7: with several relays, registered and not hearing the partner for
 * waitMs, the next relay is registered on too (a standby), so two peers that
 * can each reach some listed relay meet. The partner heard through a relay
 * makes it home; standbys are then let go.
 */
export class PartnerSearch {
  /** Relays registered on besides home, kept alive with it. */
  readonly standby = new Set<number>();
  private dueAt = Infinity;
  private heard = false;
  private heardAt = 0;

  constructor(
    private readonly relays: number,
    private readonly waitMs: number,
    /** While the partner was heard through home this recently, home flows: another relay's datagram does not move it. */
    private readonly flowsMs: number,
  ) {}

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
    if (this.relays <= 1 || this.heard || this.dueAt !== Infinity) return;
    this.dueAt = now + this.waitMs;
  }

  /** The wait is over: the next relay to register on as a standby, if any is left (the wait restarts for the one after). */
  due(now: number, home: number): number | undefined {
    this.dueAt = Infinity;
    if (this.heard) return undefined;
    for (let k = 1; k < this.relays; k++) {
      const i = (home + k) % this.relays;
      if (this.standby.has(i)) continue;
      this.standby.add(i);
      this.await(now);
      return i;
    }
    return undefined;
  }

  /**
   * The partner spoke through relay `i`. True when `i` is to be home from now
   * on: a standby, or another relay while home has carried nothing from the
   * partner for flowsMs (the partner moved on first). Never back while home flows.
   */
  heardVia(i: number, home: number, now: number): boolean {
    if (this.relays <= 1) return false;
    if (i !== home && this.heard && now - this.heardAt < this.flowsMs) return false;
    this.heard = true;
    this.heardAt = now;
    this.standby.clear();
    this.dueAt = Infinity;
    return i !== home;
  }

  /** Home moved to `home` by failover: the partner is looked for afresh. */
  movedHome(home: number): void {
    this.heard = false;
    this.standby.delete(home);
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

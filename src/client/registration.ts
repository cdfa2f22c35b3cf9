// SPEC 5.1, 5.7, 6.4: a client's registration, as a pure machine shaped like
// PathMachine. No sockets, no timers, no clock, no events: the shell
// (relay-client.ts) feeds it what the relays said and the time (`now`, ms),
// calls tick() at nextWake(), and carries out what it asks through
// RegistrationActions.
//
//   idle --start--> registering --ACK--> registered --keepalive due--> confirming
//                       ^   |                ^                             |
//                       |   +--retry, backoff doubling; failover (5.7);    |
//                       |      fallback to the WebSocket leg (6.4)         |
//                       |                    +-------------ACK-------------+
//                       +------ no ACK for the keepalive, or a refusal ----+
//
// `confirming` is the wait for a keepalive's ACK. Every deadline is a field
// (wakeAt for the phase, fleet.waitAt for SPEC 5.7's standby), so nextWake()
// is their minimum and nothing else is scheduled anywhere. SPEC 5.7's partner
// search and SPEC 6.4's transport choice are parts (registration-parts.ts).

import type { RefusalReason } from '../wire/errors';
import { Fleet, TransportChoice } from './registration-parts';

export type RegistrationPhase = 'idle' | 'registering' | 'registered' | 'confirming' | 'closed';

/** What the machine asks of its shell. */
export interface RegistrationActions {
  /** A REG to relay `i`, over the current transport. */
  sendReg(i: number, role: 'home' | 'standby'): void;
  /** SPEC 6.4: ADDR? to relay `i` over UDP whatever the transport: does UDP answer here? */
  askUdp(i: number): void;
  /** SPEC 6.4: move datagrams to (true) or off (false) the relays' WebSockets. */
  useStream(on: boolean): void;
  /** SPEC 6.4: close relay `i`'s WebSocket (a fresh one is opened on the next send). */
  dropLink(i: number): void;
  /** The first ACK after registering (not each keepalive's). */
  registered(): void;
  /** A keepalive went unanswered, or the relay refused us after an ACK: registering again. */
  unregistered(): void;
  /** The relay refused a registration after we had one (the machine keeps trying). */
  refused(reason: RefusalReason, relay: number): void;
  /** The first registration gave up: `refused` with a reason that retrying cannot change, else a timeout (with the last ERR:BUSY, if any). */
  failed(outcome: { refused: RefusalReason | undefined; relay: number }): void;
  /** SPEC 5.7: relay `to` carries the session now, instead of `from`. */
  relayChanged(to: number, from: number, why: 'no-ack' | 'busy' | 'partner'): void;
  /** SPEC 6.4: the transport changed: UDP got no answer in time, or answered after all. */
  transportChanged(transport: 'udp' | 'ws'): void;
}

export interface RegistrationTimings {
  keepaliveMs: number;
  registerTimeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** Re-register at once when we keep sending but have heard nothing from the relay for this long; 0: never. */
  silenceMs: number;
  /** SPEC 5.7 */
  failoverMs: number;
  lostRelayMs: number;
  partnerWaitMs: number;
  /** SPEC 6.4 */
  wsFallbackMs: number;
}

export interface RegistrationOptions {
  relays: number;
  /** SPEC 6.4: 'auto' falls back to the WebSocket legs when UDP gets no answer; 'udp' never; 'ws' starts there. */
  transport: 'auto' | 'udp' | 'ws';
  timings: RegistrationTimings;
}

export class Registration {
  private state: RegistrationPhase = 'idle';
  private readonly t: RegistrationTimings;
  /** SPEC 6.4 */
  private readonly transport: TransportChoice;
  /** SPEC 5.7: home, failover, standbys. */
  private readonly fleet: Fleet;
  /** The phase's deadline: the next REG (registering), the keepalive (registered), its ACK's (confirming). */
  private wakeAt = Infinity;
  private backoffMs: number;
  private firstAttemptAt = 0;
  private everRegisteredOnce = false;
  private lastRefusal: RefusalReason | undefined;
  private lastHeardAt = 0;
  private lastRegAt = 0;

  constructor(
    options: RegistrationOptions,
    private readonly actions: RegistrationActions,
  ) {
    this.t = options.timings;
    this.transport = new TransportChoice(options.transport);
    this.fleet = new Fleet(options.relays, this.t.failoverMs, this.t.partnerWaitMs);
    this.backoffMs = this.t.backoffInitialMs;
  }

  get phase(): RegistrationPhase {
    return this.state;
  }

  /** SPEC 5.7: the relay in use, an index into the list. */
  get home(): number {
    return this.fleet.home;
  }

  /** SPEC 6.4: whether datagrams go over the relays' WebSockets. */
  get onStream(): boolean {
    return this.transport.onStream;
  }

  /** An ACK has come at least once (a re-registration since then does not undo it). */
  get everRegistered(): boolean {
    return this.everRegisteredOnce;
  }

  get isRegistered(): boolean {
    return this.phase === 'registered' || this.phase === 'confirming';
  }

  /** Once UDP has been asked (askUdp), a relay's `ADDR ...` over UDP is that answer, never the peer's (late ones too). */
  get askedUdp(): boolean {
    return this.transport.askedUdp;
  }

  /** The earliest time tick() has something to do. */
  nextWake(): number {
    return Math.min(this.wakeAt, this.fleet.waitAt);
  }

  // ---- inputs

  start(now: number): void {
    if (this.phase !== 'idle') return;
    this.firstAttemptAt = now;
    this.enterRegistering(now, false);
  }

  close(): void {
    this.state = 'closed';
    this.wakeAt = Infinity;
    this.fleet.stop();
  }

  tick(now: number): void {
    if (this.phase === 'closed' || this.phase === 'idle') return;
    if (now >= this.fleet.waitAt) {
      // SPEC 5.7: registered, and the partner not heard for partnerWaitMs: register on the next relay too.
      const next = this.fleet.due(now);
      if (next !== undefined) this.actions.sendReg(next, 'standby');
    }
    if (now < this.wakeAt) return;
    if (this.phase === 'registering') {
      if (!this.everRegisteredOnce && now - this.firstAttemptAt >= this.t.registerTimeoutMs) this.giveUp(this.lastRefusal, this.home);
      else this.attempt(now);
    } else if (this.phase === 'registered') {
      this.keepalive(now);
    } else if (this.phase === 'confirming') {
      this.enterRegistering(now, true, this.lastRegAt);
    }
  }

  /** Any datagram from listed relay `from`; `udp` when it came over UDP. */
  heard(now: number, udp: boolean): void {
    this.lastHeardAt = now;
    if (udp && this.transport.heardUdp()) this.backToUdp(now);
  }

  ack(from: number, now: number): void {
    if (from !== this.home || this.phase === 'closed' || this.phase === 'idle') return; // a standby's, or a late one
    const first = this.phase === 'registering';
    this.state = 'registered';
    this.backoffMs = this.t.backoffInitialMs;
    this.wakeAt = now + this.t.keepaliveMs;
    this.fleet.await(now);
    if (first) {
      this.everRegisteredOnce = true;
      this.actions.registered();
    }
  }

  refused(from: number, reason: RefusalReason, now: number): void {
    if (from !== this.home) {
      this.fleet.dropStandby(from); // a standby that refuses is no standby
      return;
    }
    if (this.phase === 'closed' || this.phase === 'idle') return;
    if (!this.everRegisteredOnce && reason !== 'busy') {
      this.giveUp(reason, from); // FULL, BAD and AUTH will not change by retrying: the first registration fails
      return;
    }
    this.lastRefusal = reason;
    if (this.everRegisteredOnce) this.actions.refused(reason, from);
    if (this.fleet.several && reason === 'busy') {
      // SPEC 5.7: full or draining: the next relay at once.
      this.failOver(now, 'busy');
      this.state = 'registering';
      this.attempt(now);
      return;
    }
    if (this.isRegistered) this.enterRegistering(now, true);
  }

  /** SPEC 5.7: the partner spoke through relay `i`, which may make it home (Fleet.heardVia). */
  partnerVia(i: number, now: number): void {
    const from = this.fleet.heardVia(i, now);
    if (from >= 0) this.actions.relayChanged(i, from, 'partner');
  }

  /** We send data: a relay silent all the while may have lost our NAT mapping; re-register now rather than at the keepalive. */
  sending(now: number): void {
    if (this.t.silenceMs <= 0 || !this.isRegistered || this.onStream) return;
    if (now - this.lastHeardAt > this.t.silenceMs && now - this.lastRegAt > this.t.silenceMs) this.keepalive(now);
  }

  /** A keepalive now rather than at its time (the peer went quiet through the relay). */
  refresh(now: number): void {
    if (this.isRegistered) this.keepalive(now);
  }

  /** SPEC 6.4: relay `i`'s WebSocket opened: the REG sent while it connected was dropped. */
  streamOpened(i: number): void {
    if (this.phase === 'closed' || this.phase === 'idle') return;
    if (i === this.home) this.actions.sendReg(i, 'home');
    else if (this.fleet.isStandby(i)) this.actions.sendReg(i, 'standby');
  }

  /** SPEC 6.4: relay `i`'s WebSocket ended; registered through it: register again now (the relay let us go, SPEC 6.2). */
  streamClosed(i: number, now: number): void {
    if (i === this.home && this.isRegistered) this.enterRegistering(now, true, now);
  }

  // ---- the machine

  /** `lostAt`: when the relay was last known to answer (SPEC 5.7's grace counts from there). */
  private enterRegistering(now: number, wasRegistered: boolean, lostAt = this.lastRegAt): void {
    if (wasRegistered) this.actions.unregistered();
    // A WebSocket that let a keepalive go unanswered may be dead without a FIN: a fresh one.
    if (wasRegistered && this.onStream) this.actions.dropLink(this.home);
    this.state = 'registering';
    this.backoffMs = this.t.backoffInitialMs;
    // SPEC 5.7: a relay that stopped answering a session it carried has
    // lostRelayMs from the unanswered keepalive; a first registration failoverMs.
    this.fleet.deadline(wasRegistered ? lostAt + this.t.lostRelayMs : now + this.t.failoverMs);
    this.attempt(now);
  }

  /** One REG, and the next after the current backoff, doubling up to the max. */
  private attempt(now: number): void {
    const undecided = this.transport.undecided;
    // SPEC 6.4: UDP has had its time and no relay answered: the WebSocket legs.
    if (undecided && now - this.firstAttemptAt >= this.t.wsFallbackMs) this.fallBackToStream(now);
    // SPEC 5.7: this relay's time is up: the next one, now.
    else if (this.fleet.expired(now)) this.failOver(now, 'no-ack');
    this.sendReg(now);
    // One relay down is not UDP blocked: any listed relay answering ADDR? keeps us on UDP.
    if (undecided && this.fleet.several && !this.transport.onStream) for (let i = 0; i < this.fleet.size; i++) if (i !== this.home) this.askUdp(i);
    // ...and the next try comes no later than the relay's failover time, or the fallback's.
    let wait = this.backoffMs;
    wait = Math.min(wait, this.fleet.untilFailover(now));
    const toFallback = this.firstAttemptAt + this.t.wsFallbackMs - now;
    if (this.transport.undecided && toFallback > 0) wait = Math.min(wait, toFallback);
    this.backoffMs = Math.min(this.backoffMs * 2, this.t.backoffMaxMs);
    this.wakeAt = now + wait;
  }

  /** A keepalive REG; no ACK within the backoff cap (several relays: lostRelayMs): register again with backoff. */
  private keepalive(now: number): void {
    this.sendReg(now);
    this.state = 'confirming';
    this.wakeAt = now + Math.min(this.t.backoffMaxMs, this.t.keepaliveMs, this.fleet.several ? this.t.lostRelayMs : Infinity);
  }

  private askUdp(i: number): void {
    this.transport.noteAsked();
    this.actions.askUdp(i);
  }

  /** REG to home and the standbys (SPEC 5.7: kept alive too); after a fallback, UDP is asked again (SPEC 6.4). */
  private sendReg(now: number): void {
    this.lastRegAt = now;
    this.actions.sendReg(this.home, 'home');
    for (const i of this.fleet.standbys()) this.actions.sendReg(i, 'standby');
    if (this.transport.askingUdp) this.askUdp(this.home);
  }

  /** The first registration failed for good. */
  private giveUp(refused: RefusalReason | undefined, relay: number): void {
    this.state = 'idle';
    this.wakeAt = Infinity;
    this.actions.failed({ refused, relay });
  }

  /** SPEC 5.7: registering on `home` failed (no ACK in time, or ERR:BUSY): the next relay in order. */
  private failOver(now: number, why: 'no-ack' | 'busy'): void {
    const from = this.fleet.next(now);
    this.backoffMs = this.t.backoffInitialMs;
    this.actions.relayChanged(this.home, from, why);
  }

  /** SPEC 6.4: no UDP answer from any listed relay: UDP is blocked here (or the relays were down); the WebSocket legs. */
  private fallBackToStream(now: number): void {
    this.transport.fallBack();
    this.fleet.deadline(now + this.t.failoverMs);
    this.backoffMs = this.t.backoffInitialMs;
    this.actions.useStream(true);
    this.actions.transportChanged('ws');
  }

  /** SPEC 6.4: UDP answered after all: register over it, and let the WebSockets go. */
  private backToUdp(now: number): void {
    this.actions.useStream(false);
    this.actions.transportChanged('udp');
    if (this.isRegistered)
      this.keepalive(now); // a REG over UDP now (a rebind at the relay)
    else if (this.phase === 'registering') this.attempt(now);
  }
}

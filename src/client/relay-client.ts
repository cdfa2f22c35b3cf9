// RelayClient (SPEC 5.1): one UDP socket that registers a session on a relay,
// keeps the registration (and the NAT mapping) alive from the same socket that
// carries the data, and sends and receives the peer's datagrams. Where UDP
// gets no answer at all, the same datagrams go over a WebSocket to the relay
// instead (SPEC 6.4, stream-link.ts). Imports only the pure modules
// (protocol, address, constants, errors): the client never meets the server.

import type * as dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { formatAddress } from '../wire/address';
import type { Endpoint } from '../wire/endpoint';
import {
  DEFAULT_FAILOVER_MS, DEFAULT_KEEPALIVE_SECS, DEFAULT_WS_FALLBACK_MS, DEFAULT_LOST_RELAY_MS, DEFAULT_PARTNER_WAIT_MS, DEFAULT_REGISTER_TIMEOUT_MS,
  REGISTER_BACKOFF_INITIAL_MS, REGISTER_BACKOFF_MAX_MS,
} from '../wire/constants';
import { ClosedError, ConfigError, RegistrationRefusedError, RegistrationTimeoutError } from '../wire/errors';
import type { RefusalReason } from '../wire/errors';
import { ADDRESS_QUERY_DATAGRAM, encodeRegister, isAddressQuery, isValidSessionId, parseAddressAnswer, parseReply } from '../wire/protocol';
import { RelayCarrier } from './relay-carrier';
import type { StreamOptions } from './stream-link';
import { realTimers } from './timers';
import type { Timers } from './timers';

/** Where a relay is: a host (IP or name) and its UDP port. */
export type RelayEndpoint = Endpoint;

/** SPEC 6.4: how the client reaches relays: UDP falling back to WebSocket, or only one of them. */
export type TransportMode = 'auto' | 'udp' | 'ws';
export const TRANSPORT_MODES: readonly TransportMode[] = ['auto', 'udp', 'ws'];

export interface RelayClientOptions {
  relay: RelayEndpoint;
  /**
   * SPEC 5.7: every relay the session may use, in rendezvous order for its id
   * (rankRelays()), `relay` first. With more than one, the client moves on
   * when its relay does not ACK within failoverMs or answers ERR:BUSY, and
   * while the partner has not been heard for partnerWaitMs it also registers
   * on the next one, so two peers that can each reach some listed relay meet.
   * @default [relay]
   */
  relays?: readonly RelayEndpoint[];
  /** SPEC 5.7: no ACK from a relay for this long: the next one. @default DEFAULT_FAILOVER_MS (3000) */
  failoverMs?: number;
  /** SPEC 5.7: a relay that carried the session and stopped answering: the next one this long after the unanswered keepalive. @default DEFAULT_LOST_RELAY_MS (1000) */
  lostRelayMs?: number;
  /** SPEC 5.7: registered, and nothing from the partner for this long: also register on the next relay. @default DEFAULT_PARTNER_WAIT_MS (3000) */
  partnerWaitMs?: number;
  sessionId: string;
  /** Resend REG this often once registered (keeps session and NAT mapping). @default DEFAULT_KEEPALIVE_SECS (15) */
  keepaliveSecs?: number;
  /** Give up on the first registration after this long. @default DEFAULT_REGISTER_TIMEOUT_MS (30 s) */
  registerTimeoutMs?: number;
  /** First retry delay; doubles up to backoffMaxMs. @default 250 */
  backoffInitialMs?: number;
  /** @default 2000 */
  backoffMaxMs?: number;
  /**
   * Re-register at once when we keep sending but have heard nothing from the
   * relay for this long (a NAT change the keepalive would only fix later).
   * 0 disables. @default 1000
   */
  silenceReregisterMs?: number;
  /**
   * Where registration detail goes (each REG, ACK and refusal, failover): a
   * `debug` instance, say; checked with `.enabled` before any line is built.
   * Nothing per data datagram. @default none
   */
  trace?: ((format: string, ...args: unknown[]) => void) & { enabled?: boolean };
  /**
   * SPEC 6.4: 'auto' registers over UDP and, when no listed relay has
   * answered any UDP datagram within wsFallbackMs, over the relays'
   * WebSocket legs from then on; 'udp' never falls back; 'ws' starts there.
   * @default 'auto'
   */
  transport?: TransportMode;
  /** SPEC 6.4: how the WebSocket legs are reached (port, TLS, CA, proxy). */
  stream?: StreamOptions;
  /** SPEC 6.4: in 'auto', UDP silent this long from the first REG: the WebSocket leg. @default DEFAULT_WS_FALLBACK_MS (2000) */
  wsFallbackMs?: number;
  /** Local address to bind the relay socket to. @default '0.0.0.0' or '::' by the relay's family */
  bindAddress?: string;
  /** @default 0 (any) */
  bindPort?: number;
}

/**
 * Events. None is needed: a client without listeners never throws for
 * anything the network does. `error` is emitted only while someone listens
 * (an unheard `error` would crash the process); every error is counted in
 * `stats` either way.
 */
export interface RelayClientEvents {
  /** The relay acknowledged a (re-)registration (not every keepalive). */
  registered: [];
  /** A keepalive went unanswered: registering again with backoff. */
  unregistered: [];
  /** A datagram from the peer, through the relay. */
  message: [data: Buffer];
  /** SPEC 5.7: the relay that carries the session changed (several relays only). */
  relay: [relay: RelayEndpoint, reason: string];
  /** SPEC 6.4: the datagrams to the relay now go over 'ws' (UDP got no answer). */
  transport: [transport: 'udp' | 'ws', reason: string];
  /** A datagram from anywhere but the relay (a peer's direct path, or a stranger): for PeerLink to judge. */
  unrelayed: [data: Buffer, from: dgram.RemoteInfo];
  /** The relay refused a registration after we had one (the client keeps trying). */
  refused: [err: RegistrationRefusedError];
  /** A socket error (ICMP unreachable reported by the kernel, a failed bind later on): informative, the client carries on. */
  error: [err: Error];
}

type State = 'idle' | 'registering' | 'registered' | 'closed';

export class RelayClient extends EventEmitter<RelayClientEvents> {
  readonly sessionId: string;
  /** SPEC 5.7: the relays in the order they are tried; `home` indexes the one in use. */
  readonly relays: readonly RelayEndpoint[];
  private home = 0;
  /** SPEC 5.7: when registering on `home` gives up and the next relay is tried. */
  private failoverAt = 0;
  private readonly lostRelayMs: number;
  private readonly trace: RelayClientOptions['trace'];
  private readonly failoverMs: number;
  private readonly partnerWaitMs: number;
  /** Relays also registered on while the partner is awaited (SPEC 5.7). */
  private readonly standby = new Set<number>();
  private partnerTimer: unknown;
  /** Whether, and when last, the partner was heard through `home`. */
  private partnerHeard = false;
  private partnerHeardAt = 0;
  private readonly timers: Timers;
  private readonly reg: Buffer;
  private readonly keepaliveMs: number;
  private readonly registerTimeoutMs: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly silenceMs: number;
  /** Every datagram to and from the relays, and the direct path's: the socket and the WebSockets. */
  private readonly carrier: RelayCarrier;
  /** SPEC 6.4: what was asked for (carrier.onStream says where datagrams go now). */
  private readonly transportMode: TransportMode;
  /** Any UDP datagram from a listed relay: UDP works here, and 'auto' never falls back. */
  private udpHeard = false;
  private readonly wsFallbackMs: number;
  /** Relays were asked ADDR? over UDP (is UDP blocked, or only a relay down?): their answers are swallowed. */
  private askedOthers = false;
  /** On the stream leg because 'auto' fell back (not because 'ws' was asked for): UDP is still asked, and wins when it answers. */
  private fellBack = false;
  private state: State = 'idle';
  private timer: unknown;
  private backoffMs: number;
  private everRegistered = false;
  private firstAttemptAt = 0;
  private lastHeardAt = 0;
  private lastRegAt = 0;
  private pending: { resolve: () => void; reject: (e: Error) => void } | undefined;
  /** The last ERR:BUSY while first registering: what register() rejects with if it never clears. */
  private lastRefusal: RegistrationRefusedError | undefined;
  private started: Promise<void> | undefined;
  /** SPEC 1.5: an address query under way, answered by the relay's `ADDR ip:port`. */
  private addressWaiter: ((a: { address: string; port: number } | undefined) => void) | undefined;
  /** Counters for the sidecar's and probe's reports. */
  private readonly counts = { sent: 0, received: 0, sentDirect: 0, regsSent: 0, acks: 0, registrations: 0, refusals: 0, socketErrors: 0, swallowed: 0, unrelayed: 0 };

  /**
   * Counters for the sidecar's and probe's reports, the carrier's included
   * (sendErrors, droppedPortZero; SPEC 6.4: streamConnects, streamCloses).
   */
  get stats(): Readonly<RelayClient['counts'] & RelayCarrier['counts']> {
    return { ...this.counts, ...this.carrier.counts };
  }

  constructor(options: RelayClientOptions, timers: Timers = realTimers) {
    super();
    if (!isValidSessionId(options.sessionId)) {
      throw new ConfigError('--session', 'must be 1-64 characters of A-Z a-z 0-9 - _');
    }
    this.relays = options.relays !== undefined && options.relays.length > 0 ? [...options.relays] : [options.relay];
    this.failoverMs = options.failoverMs ?? DEFAULT_FAILOVER_MS;
    this.partnerWaitMs = options.partnerWaitMs ?? DEFAULT_PARTNER_WAIT_MS;
    this.lostRelayMs = options.lostRelayMs ?? DEFAULT_LOST_RELAY_MS;
    this.trace = options.trace?.enabled === false ? undefined : options.trace;
    this.sessionId = options.sessionId;
    this.timers = timers;
    this.reg = encodeRegister(options.sessionId);
    this.keepaliveMs = (options.keepaliveSecs ?? DEFAULT_KEEPALIVE_SECS) * 1000;
    this.registerTimeoutMs = options.registerTimeoutMs ?? DEFAULT_REGISTER_TIMEOUT_MS;
    this.backoffInitialMs = options.backoffInitialMs ?? REGISTER_BACKOFF_INITIAL_MS;
    this.backoffMaxMs = options.backoffMaxMs ?? REGISTER_BACKOFF_MAX_MS;
    this.silenceMs = options.silenceReregisterMs ?? 1000;
    this.backoffMs = this.backoffInitialMs;
    this.transportMode = options.transport ?? 'auto';
    if (!TRANSPORT_MODES.includes(this.transportMode)) throw new ConfigError('--transport', `must be one of ${TRANSPORT_MODES.join(', ')}`);
    this.wsFallbackMs = options.wsFallbackMs ?? DEFAULT_WS_FALLBACK_MS;
    this.carrier = new RelayCarrier(
      { relays: this.relays, stream: options.stream ?? {}, bindAddress: options.bindAddress, bindPort: options.bindPort ?? 0 },
      {
        fromRelay: this.onRelayDatagram, unrelayed: this.onUnrelayed, streamOpened: this.onStreamOpened, streamClosed: this.onStreamClosed,
        error: (err) => this.reportError(err),
      },
    );
    this.carrier.onStream = this.transportMode === 'ws';
    if (!(this.keepaliveMs > 0)) throw new ConfigError('--keepalive-secs', 'must be more than 0');
  }

  get registered(): boolean {
    return this.state === 'registered';
  }

  /** SPEC 6.4: how datagrams reach the relay now. */
  get transport(): 'udp' | 'ws' {
    return this.carrier.onStream ? 'ws' : 'udp';
  }

  /** The relay in use (SPEC 5.7: it may change when one fails). */
  get relay(): RelayEndpoint {
    return this.relays[this.home]!;
  }

  private get multi(): boolean {
    return this.relays.length > 1;
  }

  /** `host:port` of the relay, for messages. */
  get relayName(): string {
    return formatAddress(this.relay.host, this.relay.port);
  }

  /** The local address of the socket that talks to the relay. */
  address(): AddressInfo {
    const a = this.carrier.address();
    if (a === undefined) throw new ClosedError('RelayClient socket');
    return a;
  }

  /**
   * Opens the socket and registers; resolves on the first ACK. Rejects with
   * RegistrationRefusedError on ERR:FULL or ERR:BAD, and with
   * RegistrationTimeoutError (or the last ERR:BUSY) after registerTimeoutMs.
   */
  register(): Promise<void> {
    this.started ??= this.open()
      .then(
        () =>
          new Promise<void>((resolve, reject) => {
            this.pending = { resolve, reject };
            this.firstAttemptAt = this.timers.now();
            this.enterRegistering();
          }),
      )
      .catch(async (err: unknown) => {
        // A client that never registered has nothing to keep: close what was
        // opened, so that a program that gives up on the error can exit.
        await this.close();
        throw err;
      });
    return this.started;
  }

  /** Sends a datagram to the peer through the relay. */
  send(data: Buffer | Uint8Array): void {
    if (!this.carrier.isOpen || this.state === 'closed') throw new ClosedError('RelayClient');
    this.counts.sent++;
    this.carrier.send(this.home, data);
    if (this.silenceMs > 0 && this.state === 'registered' && !this.carrier.onStream) {
      const now = this.timers.now();
      // We keep talking and the relay has gone quiet: our NAT mapping may have
      // changed. Re-register now rather than at the next keepalive.
      if (now - this.lastHeardAt > this.silenceMs && now - this.lastRegAt > this.silenceMs) this.keepalive();
    }
  }

  /**
   * Sends from the registered socket straight to `address:port`, not through
   * the relay: the direct path's probes and data (SPEC 5.3), which must leave
   * from the socket whose NAT mapping the peer was told about.
   */
  sendTo(data: Buffer | Uint8Array, port: number, address: string): void {
    if (!this.carrier.isOpen || this.state === 'closed') throw new ClosedError('RelayClient');
    this.counts.sentDirect++;
    this.carrier.sendTo(data, port, address);
  }

  /**
   * A keepalive now rather than at its time: when the peer stops answering
   * through the relay, our registration may be gone (a relay restart). If no
   * ACK comes, the client registers again with backoff, as after any missed
   * keepalive.
   */
  refresh(): void {
    if (this.state === 'registered') this.keepalive();
  }

  /**
   * SPEC 1.5: the address (ip, port) the relay sees this socket as, which is
   * its public address behind a NAT; undefined when the relay does not answer
   * within `timeoutMs` (the original relay has no address query). Asked from
   * the registered socket, so it names the mapping that carries the data.
   */
  queryAddress(timeoutMs = 1000): Promise<{ address: string; port: number } | undefined> {
    if (!this.carrier.isOpen || this.state === 'closed') return Promise.reject(new ClosedError('RelayClient'));
    this.addressWaiter?.(undefined); // one query at a time: a newer one replaces it
    return new Promise((resolve) => {
      const timer = this.timers.setTimeout(() => done(undefined), timeoutMs);
      const done = (a: { address: string; port: number } | undefined): void => {
        if (this.addressWaiter !== done) return;
        this.addressWaiter = undefined;
        this.timers.clearTimeout(timer);
        resolve(a);
      };
      this.addressWaiter = done;
      this.carrier.send(this.home, ADDRESS_QUERY_DATAGRAM);
    });
  }

  /** Stops timers and closes the socket. Safe to call twice. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.clearTimer();
    if (this.partnerTimer !== undefined) this.timers.clearTimeout(this.partnerTimer);
    this.partnerTimer = undefined;
    this.pending?.reject(new ClosedError('RelayClient'));
    this.pending = undefined;
    this.addressWaiter?.(undefined);
    await this.carrier.close();
  }

  // ---- internals

  private async open(): Promise<void> {
    await this.carrier.open();
    if (this.state === 'closed') {
      await this.carrier.close();
      throw new ClosedError('RelayClient');
    }
  }

  /** Counts a socket error and tells whoever listens; never throws. */
  reportError(err: Error): void {
    this.counts.socketErrors++;
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** Not a relay: a peer's direct path, or nothing of ours. Never data here. */
  private readonly onUnrelayed = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    this.counts.unrelayed++;
    this.emit('unrelayed', msg, rinfo);
  };

  private readonly onRelayDatagram = (from: number, msg: Buffer, udp: boolean): void => {
    if (udp) {
      this.udpHeard = true; // SPEC 6.4: UDP works here
      if (this.fellBack) this.backToUdp();
      if (this.askedOthers && parseAddressAnswer(msg) !== undefined && this.addressWaiter === undefined) {
        this.counts.swallowed++; // the answer to "is UDP blocked?" (attempt()), never the peer's
        return;
      }
    }
    this.fromRelay(from, msg);
  };

  /** A datagram from listed relay `from`, over UDP or its WebSocket. */
  private fromRelay(from: number, msg: Buffer): void {
    this.lastHeardAt = this.timers.now();
    if (isAddressQuery(msg)) {
      // SPEC 5.3: a relay that does not answer address queries (the original)
      // forwards our peer's to us as data; it is never the QUIC program's.
      this.counts.swallowed++;
      return;
    }
    if (this.addressWaiter !== undefined) {
      // Only while a query is under way: a peer's datagram could, in theory, spell the same.
      const answer = parseAddressAnswer(msg);
      if (answer !== undefined) {
        this.addressWaiter(answer);
        return;
      }
    }
    const reply = parseReply(msg);
    if (reply === undefined) {
      if (this.multi) this.partnerVia(from);
      this.counts.received++;
      this.emit('message', msg);
      return;
    }
    if (from !== this.home) {
      if (reply !== 'ack') this.standby.delete(from); // a standby that refuses is no standby
      return; // an ACK from a standby, or a late answer from a relay left behind
    }
    if (reply === 'ack') this.onAck();
    else this.onRefused(reply);
  }

  /** SPEC 6.4: a WebSocket opened: the REG that went out while it connected was dropped, so send it now. */
  private readonly onStreamOpened = (i: number): void => {
    if (this.state !== 'closed' && this.state !== 'idle' && (i === this.home || this.standby.has(i))) this.sendRegTo(i);
  };

  /**
   * SPEC 6.4: a WebSocket ended. Registered through it: reconnect and
   * register again now (the relay took us out of the session when it
   * closed, SPEC 6.2); while registering, the next attempt opens a new one.
   */
  private readonly onStreamClosed = (i: number, why: string): void => {
    this.trace?.('connection to relay %s ended: %s', formatAddress(this.relays[i]!.host, this.relays[i]!.port), why);
    if (i === this.home && this.state === 'registered') this.enterRegistering(this.timers.now());
  };

  /** SPEC 6.4: no UDP answer from any listed relay: UDP is blocked here (or the relays were down); the WebSocket legs. */
  private fallBackToStream(): void {
    this.carrier.useStream(true);
    this.fellBack = true;
    this.failoverAt = this.timers.now() + this.failoverMs;
    this.backoffMs = this.backoffInitialMs;
    const why = `no UDP answer from ${this.multi ? `any of ${this.relays.length} relays` : this.relayName} in ${this.wsFallbackMs} ms`;
    this.trace?.('WebSocket leg: %s', why);
    this.emit('transport', 'ws', why);
  }

  /**
   * After a fallback, UDP is still asked (ADDR?, which registers nothing) at
   * each attempt and keepalive: a relay that was only down when we started
   * answers once it is up, and then the session goes back to UDP.
   */
  private askUdp(): void {
    if (!this.fellBack) return;
    this.askedOthers = true;
    this.carrier.sendUdp(this.home, ADDRESS_QUERY_DATAGRAM);
  }

  /** SPEC 6.4: UDP answered after all: register over it, and let the WebSockets go. */
  private backToUdp(): void {
    this.carrier.useStream(false);
    this.fellBack = false;
    this.trace?.('UDP answers: leaving the WebSocket leg');
    this.emit('transport', 'udp', 'UDP answers again');
    if (this.state === 'registered') this.keepalive(); // a REG over UDP now (a rebind at the relay)
    else if (this.state === 'registering') this.attempt();
  }

  /**
   * SPEC 5.7: the partner spoke through relay `i`. Through a standby, or
   * through another relay while home has carried nothing from it for a
   * while (the partner moved on first): that relay is home from now on.
   * Through home: the session flows; standbys are let go. Never back while
   * it flows.
   */
  private partnerVia(i: number): void {
    const now = this.timers.now();
    if (i !== this.home) {
      if (this.partnerHeard && now - this.partnerHeardAt < this.failoverMs) return; // home flows: stay
      this.home = i;
      this.emit('relay', this.relay, 'the partner is there');
    }
    this.partnerHeard = true;
    this.partnerHeardAt = now;
    this.standby.clear();
    if (this.partnerTimer !== undefined) this.timers.clearTimeout(this.partnerTimer);
    this.partnerTimer = undefined;
  }

  /** SPEC 5.7: registering on `home` failed (no ACK in time, or ERR:BUSY): the next relay in order. */
  private failOver(why: string): void {
    this.home = (this.home + 1) % this.relays.length;
    this.failoverAt = this.timers.now() + this.failoverMs;
    this.partnerHeard = false;
    this.standby.delete(this.home);
    this.backoffMs = this.backoffInitialMs;
    this.trace?.('failover to %s: %s', this.relayName, why);
    this.emit('relay', this.relay, why);
  }

  /** SPEC 5.7: registered, and the partner not heard for partnerWaitMs: register on the next relay too. */
  private awaitPartner(): void {
    if (!this.multi || this.partnerHeard || this.partnerTimer !== undefined) return;
    this.partnerTimer = this.timers.setTimeout(() => {
      this.partnerTimer = undefined;
      if (this.partnerHeard || this.state === 'closed') return;
      for (let k = 1; k < this.relays.length; k++) {
        const i = (this.home + k) % this.relays.length;
        if (this.standby.has(i)) continue;
        this.standby.add(i);
        this.sendRegTo(i);
        this.awaitPartner();
        return;
      }
    }, this.partnerWaitMs);
  }

  private onAck(): void {
    if (this.state === 'closed' || this.state === 'idle') return;
    this.counts.acks++;
    this.trace?.('ACK from %s', this.relayName);
    this.clearTimer();
    const wasRegistered = this.state === 'registered';
    this.state = 'registered';
    this.backoffMs = this.backoffInitialMs;
    this.schedule(() => this.keepalive(), this.keepaliveMs);
    this.awaitPartner();
    if (!wasRegistered) {
      this.everRegistered = true;
      this.counts.registrations++;
      const p = this.pending;
      this.pending = undefined;
      p?.resolve();
      this.emit('registered');
    }
  }

  private onRefused(reason: RefusalReason): void {
    if (this.state === 'closed' || this.state === 'idle') return;
    this.trace?.('ERR:%s from %s', reason.toUpperCase(), this.relayName);
    this.counts.refusals++;
    const err = new RegistrationRefusedError(reason, this.relayName, this.sessionId);
    if (!this.everRegistered && reason !== 'busy') {
      // FULL, BAD and AUTH will not change by retrying: fail the first registration.
      this.clearTimer();
      this.state = 'idle';
      const p = this.pending;
      this.pending = undefined;
      p?.reject(err);
      return;
    }
    this.lastRefusal = err;
    if (this.everRegistered) this.emit('refused', err);
    if (this.multi && reason === 'busy') {
      // SPEC 5.7: full or draining: the next relay at once.
      this.failOver('ERR:BUSY');
      this.state = 'registering';
      this.attempt();
      return;
    }
    if (this.state === 'registered') this.enterRegistering();
  }

  private sendReg(): void {
    this.lastRegAt = this.timers.now();
    this.sendRegTo(this.home);
    for (const i of this.standby) this.sendRegTo(i); // SPEC 5.7: standbys are kept alive too
  }

  private sendRegTo(i: number): void {
    this.counts.regsSent++;
    this.trace?.('REG %s to %s%s (%s)', this.sessionId, formatAddress(this.relays[i]!.host, this.relays[i]!.port), this.carrier.onStream ? ' over WebSocket' : '', i === this.home ? this.state : 'standby');
    this.carrier.send(i, this.reg);
  }

  /** `lostAt`: when the relay was last known to answer (SPEC 5.7's grace counts from there). */
  private enterRegistering(lostAt = this.lastRegAt): void {
    const wasRegistered = this.state === 'registered';
    if (wasRegistered) this.emit('unregistered');
    // A WebSocket that let a keepalive go unanswered may be dead without a FIN: a fresh one.
    if (wasRegistered && this.carrier.onStream) this.carrier.dropLink(this.home);
    this.state = 'registering';
    this.backoffMs = this.backoffInitialMs;
    // SPEC 5.7: a relay that stopped answering a session it carried has lostRelayMs
    // from the unanswered keepalive (it answered in milliseconds until then);
    // a first registration has failoverMs.
    this.failoverAt = wasRegistered ? lostAt + this.lostRelayMs : this.timers.now() + this.failoverMs;
    this.attempt();
  }

  /** One REG, then the next after the current backoff, doubling up to the max. */
  private attempt(): void {
    this.clearTimer();
    const now = this.timers.now();
    // SPEC 6.4: UDP has had its time and no relay answered: the WebSocket legs.
    const undecided = this.transportMode === 'auto' && !this.carrier.onStream && !this.udpHeard;
    if (undecided && now - this.firstAttemptAt >= this.wsFallbackMs) this.fallBackToStream();
    // SPEC 5.7: this relay's time is up: the next one, now.
    else if (this.multi && now >= this.failoverAt) this.failOver(`no ACK from ${this.relayName}`);
    this.sendReg();
    this.askUdp();
    if (undecided && this.multi && !this.carrier.onStream) {
      // One relay down is not UDP blocked: any listed relay answering ADDR? keeps us on UDP.
      this.askedOthers = true;
      for (let i = 0; i < this.relays.length; i++) if (i !== this.home) this.carrier.sendUdp(i, ADDRESS_QUERY_DATAGRAM);
    }
    // ...and the next try comes no later than the new relay's failover time, or the fallback's.
    let wait = this.backoffMs;
    const left = this.failoverAt - this.timers.now();
    if (this.multi && left > 0) wait = Math.min(wait, left);
    const toFallback = this.firstAttemptAt + this.wsFallbackMs - this.timers.now();
    if (this.transportMode === 'auto' && !this.carrier.onStream && !this.udpHeard && toFallback > 0) wait = Math.min(wait, toFallback);
    this.backoffMs = Math.min(this.backoffMs * 2, this.backoffMaxMs);
    this.schedule(() => {
      if (!this.everRegistered && this.timers.now() - this.firstAttemptAt >= this.registerTimeoutMs) {
        this.state = 'idle';
        const p = this.pending;
        this.pending = undefined;
        p?.reject(this.lastRefusal ?? new RegistrationTimeoutError(this.relayName, this.sessionId, this.registerTimeoutMs));
        return;
      }
      this.attempt();
    }, wait);
  }

  /** A keepalive REG; if no ACK comes within the backoff cap (with several relays, lostRelayMs), register again with backoff. */
  private keepalive(): void {
    this.clearTimer();
    this.sendReg();
    this.askUdp();
    const wait = Math.min(this.backoffMaxMs, this.keepaliveMs, this.multi ? this.lostRelayMs : Infinity);
    this.schedule(() => this.enterRegistering(), wait);
  }

  private schedule(fn: () => void, ms: number): void {
    this.timer = this.timers.setTimeout(fn, ms);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
  }
}


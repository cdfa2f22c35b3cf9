// RelayClient (SPEC 5.1): one UDP socket that registers a session on a relay,
// keeps the registration (and the NAT mapping) alive from the same socket that
// carries the data, and sends and receives the peer's datagrams. Where UDP
// gets no answer at all, the same datagrams go over a WebSocket to the relay
// instead (SPEC 6.4). It is a shell: when to register, keep alive, fail over
// or change transport is registration.ts's (pure); the sockets are
// relay-carrier.ts's; this file owns the one timer, reads what arrives, and
// turns the machine's requests into sends and events. Imports only the pure
// modules of wire/: the client never meets the server.

import type * as dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Endpoint } from '../wire/endpoint';
import {
  DEFAULT_FAILOVER_MS,
  DEFAULT_KEEPALIVE_SECS,
  DEFAULT_WS_FALLBACK_MS,
  DEFAULT_LOST_RELAY_MS,
  DEFAULT_PARTNER_WAIT_MS,
  DEFAULT_REGISTER_TIMEOUT_MS,
  REGISTER_BACKOFF_INITIAL_MS,
  REGISTER_BACKOFF_MAX_MS,
} from '../wire/constants';
import { ClosedError, ConfigError, RegistrationRefusedError, RegistrationTimeoutError } from '../wire/errors';
import { ADDRESS_QUERY_DATAGRAM, encodeRegister, isValidSessionId } from '../wire/protocol';
import { AddressQuery } from './address-query';
import { Deferred } from './deferred';
import type { PublicAddress } from './address-query';
import { RelayCarrier } from './relay-carrier';
import { classifyFromRelay } from './relay-datagram';
import { RegistrationTrace } from './registration-trace';
import type { TraceFn } from './registration-trace';
import { Registration } from './registration';
import type { RegistrationActions, RegistrationOptions } from './registration';
import type { StreamOptions } from './stream-link';
import { WakeTimer, realTimers } from './timers';
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
  trace?: TraceFn;
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

/** What a client counts (its `stats`, with the carrier's). */
class RelayClientCounts {
  sent = 0;
  received = 0;
  sentDirect = 0;
  regsSent = 0;
  acks = 0;
  registrations = 0;
  refusals = 0;
  socketErrors = 0;
  /** Relay datagrams that are never the program's: a forwarded address query, a late UDP check's answer. */
  swallowed = 0;
  unrelayed = 0;
}

export class RelayClient extends EventEmitter<RelayClientEvents> {
  readonly sessionId: string;
  /** SPEC 5.7: the relays in the order they are tried. */
  readonly relays: readonly RelayEndpoint[];
  /** What DEBUG=quic-relay:peer shows, and the events' reasons (registration-trace.ts). */
  private readonly trace: RegistrationTrace;
  private readonly timers: Timers;
  private readonly reg: Buffer;
  private readonly registerTimeoutMs: number;
  /** When to register, keep alive, fail over and change transport (pure). */
  private readonly machine: Registration;
  /** Every datagram to and from the relays, and the direct path's: the socket and the WebSockets. */
  private readonly carrier: RelayCarrier;
  /** The one timer: set to machine.nextWake() after every input. */
  private readonly wake: WakeTimer;
  private closed = false;
  /** register()'s promise, settled by the first ACK or by giving up. */
  private started: Deferred | undefined;
  /** SPEC 1.5: the address query under way, if any. */
  private readonly query: AddressQuery;
  private readonly counts = new RelayClientCounts();

  /**
   * Counters for the sidecar's and probe's reports, the carrier's included
   * (sendErrors, droppedPortZero; SPEC 6.4: streamConnects, streamCloses).
   */
  get stats(): Readonly<RelayClientCounts & RelayCarrier['counts']> {
    return { ...this.counts, ...this.carrier.counts };
  }

  constructor(options: RelayClientOptions, timers: Timers = realTimers) {
    super();
    const registration = registrationOptions(options);
    this.relays = options.relays !== undefined && options.relays.length > 0 ? [...options.relays] : [options.relay];
    this.trace = new RegistrationTrace(options.trace, this.relays, registration.timings.wsFallbackMs);
    this.sessionId = options.sessionId;
    this.timers = timers;
    this.query = new AddressQuery(timers);
    this.wake = new WakeTimer(timers, () => this.input(() => this.machine.tick(this.timers.now())));
    this.reg = encodeRegister(options.sessionId);
    this.registerTimeoutMs = registration.timings.registerTimeoutMs;
    this.machine = new Registration({ ...registration, relays: this.relays.length }, this.actions);
    this.carrier = new RelayCarrier(
      { relays: this.relays, stream: options.stream ?? {}, bindAddress: options.bindAddress, bindPort: options.bindPort ?? 0, onStream: this.machine.onStream },
      {
        fromRelay: this.onRelayDatagram,
        unrelayed: this.onUnrelayed,
        streamOpened: (i) => this.input(() => this.machine.streamOpened(i)),
        streamClosed: (i, why) => {
          this.trace.streamEnded(i, why);
          this.input(() => this.machine.streamClosed(i, this.timers.now()));
        },
        error: (err) => this.reportError(err),
      },
    );
  }

  get registered(): boolean {
    return this.machine.isRegistered;
  }

  /** The relay has acknowledged us at least once: there is a session to send through (or to get back to). */
  get everRegistered(): boolean {
    return this.machine.everRegistered;
  }

  /** SPEC 6.4: how datagrams reach the relay now. */
  get transport(): 'udp' | 'ws' {
    return this.machine.onStream ? 'ws' : 'udp';
  }

  /** The relay in use (SPEC 5.7: it may change when one fails). */
  get relay(): RelayEndpoint {
    return this.relays[this.machine.home]!;
  }

  /** `host:port` of the relay, for messages. */
  get relayName(): string {
    return this.trace.nameOf(this.machine.home);
  }

  /** The local address of the socket that talks to the relay. */
  address(): AddressInfo {
    const a = this.carrier.address();
    if (a === undefined) throw new ClosedError('RelayClient socket');
    return a;
  }

  /**
   * Opens the socket and registers; resolves on the first ACK. Rejects with
   * RegistrationRefusedError on ERR:FULL, ERR:BAD or ERR:AUTH, and with
   * RegistrationTimeoutError (or the last ERR:BUSY) after registerTimeoutMs.
   */
  register(): Promise<void> {
    if (this.started !== undefined) return this.started.promise;
    this.started = new Deferred();
    this.carrier.open().then(() => this.input(() => this.machine.start(this.timers.now())), this.started.reject);
    // A client that never registered has nothing to keep: close what was
    // opened, so that a program that gives up on the error can exit.
    return this.started.promise.catch(async (err: unknown) => {
      await this.close();
      throw err;
    });
  }

  /** Sends a datagram to the peer through the relay. */
  send(data: Buffer | Uint8Array): void {
    if (!this.carrier.isOpen || this.closed) throw new ClosedError('RelayClient');
    this.counts.sent++;
    this.carrier.send(this.machine.home, data);
    // A relay silent while we keep talking may have lost our NAT mapping (registration.ts decides).
    if (this.machine.isRegistered) {
      this.machine.sending(this.timers.now()); // per datagram: no closure, one deadline check
      this.rearm();
    }
  }

  /**
   * Sends from the registered socket straight to `address:port`, not through
   * the relay: the direct path's probes and data (SPEC 5.3), which must leave
   * from the socket whose NAT mapping the peer was told about.
   */
  sendTo(data: Buffer | Uint8Array, port: number, address: string): void {
    if (!this.carrier.isOpen || this.closed) throw new ClosedError('RelayClient');
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
    this.input(() => this.machine.refresh(this.timers.now()));
  }

  /**
   * SPEC 1.5: the address (ip, port) the relay sees this socket as, which is
   * its public address behind a NAT; undefined when the relay does not answer
   * within `timeoutMs` (the original relay has no address query). Asked from
   * the registered socket, so it names the mapping that carries the data.
   */
  queryAddress(timeoutMs = 1000): Promise<PublicAddress | undefined> {
    if (!this.carrier.isOpen || this.closed) return Promise.reject(new ClosedError('RelayClient'));
    return this.query.ask(timeoutMs, () => this.carrier.send(this.machine.home, ADDRESS_QUERY_DATAGRAM));
  }

  /** Stops the timer and closes the sockets. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.machine.close();
    this.rearm();
    this.started?.reject(new ClosedError('RelayClient'));
    this.query.cancel();
    await this.carrier.close();
  }

  /** Counts a socket error and tells whoever listens; never throws. */
  reportError(err: Error): void {
    this.counts.socketErrors++;
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  // ---- the shell

  /** Feeds the machine one input, then moves the timer to its next deadline. */
  private input(feed: () => void): void {
    if (this.closed) return;
    feed();
    this.rearm();
  }

  private rearm(): void {
    this.wake.set(this.closed ? Infinity : this.machine.nextWake());
  }

  /** Not a relay: a peer's direct path, or nothing of ours. Never data here. */
  private readonly onUnrelayed = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    this.counts.unrelayed++;
    this.emit('unrelayed', msg, rinfo);
  };

  /** A datagram from listed relay `from`, over UDP or its WebSocket. */
  private readonly onRelayDatagram = (from: number, msg: Buffer, udp: boolean): void => {
    if (this.closed) return;
    const now = this.timers.now();
    // Per datagram: the machine is fed directly (no closure), and the timer
    // re-armed once, after the last input (a compare unless a deadline moved).
    this.machine.heard(now, udp);
    const reply = classifyFromRelay(msg, udp, this.machine.askedUdp, this.query.active);
    if (reply === 'data') {
      this.machine.partnerVia(from, now);
      this.rearm();
      this.counts.received++;
      this.emit('message', msg);
      return;
    }
    if (reply === 'swallow') this.counts.swallowed++;
    else if (typeof reply === 'object') this.query.answer(reply);
    else {
      if (from === this.machine.home) {
        if (reply === 'ack') this.counts.acks++;
        else this.counts.refusals++;
        this.trace.reply(reply, from);
      }
      if (reply === 'ack') this.machine.ack(from, now);
      else this.machine.refused(from, reply, now);
    }
    this.rearm();
  };

  /** What the machine asks: sends, and the events callers see. */
  private readonly actions: RegistrationActions = {
    sendReg: (i, role) => {
      this.counts.regsSent++;
      this.trace.reg(this.sessionId, i, this.machine.onStream, role === 'home' ? this.machine.phase : 'standby');
      this.carrier.send(i, this.reg);
    },
    askUdp: (i) => this.carrier.sendUdp(i, ADDRESS_QUERY_DATAGRAM),
    useStream: (on) => this.carrier.useStream(on),
    dropLink: (i) => this.carrier.dropLink(i),
    registered: () => {
      this.counts.registrations++;
      this.started?.resolve();
      this.emit('registered');
    },
    unregistered: () => this.emit('unregistered'),
    refused: (reason, i) => this.emit('refused', new RegistrationRefusedError(reason, this.trace.nameOf(i), this.sessionId)),
    failed: ({ refused, relay }) => {
      this.started?.reject(
        refused !== undefined
          ? new RegistrationRefusedError(refused, this.trace.nameOf(relay), this.sessionId)
          : new RegistrationTimeoutError(this.trace.nameOf(relay), this.sessionId, this.registerTimeoutMs),
      );
    },
    relayChanged: (to, from, why) => this.emit('relay', this.relays[to]!, this.trace.failover(to, from, why)),
    transportChanged: (transport) => this.emit('transport', transport, this.trace.transport(transport, this.machine.home)),
  };
}

/** The registration machine's options from the client's (all but the relay count), each checked: a bad one names its flag. */
function registrationOptions(options: RelayClientOptions): Omit<RegistrationOptions, 'relays'> {
  if (!isValidSessionId(options.sessionId)) throw new ConfigError('--session', 'must be 1-64 characters of A-Z a-z 0-9 - _');
  const transport = options.transport ?? 'auto';
  if (!TRANSPORT_MODES.includes(transport)) throw new ConfigError('--transport', `must be one of ${TRANSPORT_MODES.join(', ')}`);
  const keepaliveMs = (options.keepaliveSecs ?? DEFAULT_KEEPALIVE_SECS) * 1000;
  if (!(keepaliveMs > 0)) throw new ConfigError('--keepalive-secs', 'must be more than 0');
  return {
    transport,
    timings: {
      keepaliveMs,
      registerTimeoutMs: options.registerTimeoutMs ?? DEFAULT_REGISTER_TIMEOUT_MS,
      backoffInitialMs: options.backoffInitialMs ?? REGISTER_BACKOFF_INITIAL_MS,
      backoffMaxMs: options.backoffMaxMs ?? REGISTER_BACKOFF_MAX_MS,
      silenceMs: options.silenceReregisterMs ?? 1000,
      failoverMs: options.failoverMs ?? DEFAULT_FAILOVER_MS,
      lostRelayMs: options.lostRelayMs ?? DEFAULT_LOST_RELAY_MS,
      partnerWaitMs: options.partnerWaitMs ?? DEFAULT_PARTNER_WAIT_MS,
      wsFallbackMs: options.wsFallbackMs ?? DEFAULT_WS_FALLBACK_MS,
    },
  };
}

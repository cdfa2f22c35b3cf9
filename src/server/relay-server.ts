// The relay's socket edge: datagrams in -> the pure parts (classify, limits,
// tickets, the session table) -> at most one datagram out. The hot path (data
// from a registered peer) is one IP parse, one Map lookup, two field writes
// and a send: no strings built, nothing allocated by us, nothing logged
// unless asked for. How datagrams arrive and leave is io/'s business (dgram,
// or the native batches). Metrics over HTTP attach from outside (metrics-http.ts).

import dns from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import { formatAddress, ipKeyOf, limitKeyOf } from '../wire/address';
import type { IpKey } from '../wire/address';
import { REAP_INTERVAL_MS } from '../wire/constants';
import type { Endpoint } from '../wire/endpoint';
import { RelayError } from '../wire/errors';
import { ACK, ERR_AUTH, ERR_BAD, ERR_BUSY, ERR_FULL, classify, encodeAddressAnswer, replyFits } from '../wire/protocol';
import { checkTicket } from '../wire/tickets';
import { VERSION } from '../wire/version';
import { DgramIo } from '../io/datagram-io';
import type { DatagramIo } from '../io/datagram-io';
import { NativeIo, embeddedNativeModule, loadNative } from '../io/native-io';
import type { NativeModuleSource } from '../io/native-io';
import { validateConfig } from './config';
import type { RelayConfig, RelayServerOptions } from './config';
import { RelayCounters, formatSummary } from './counters';
import type { RelaySummary } from './counters';
import { RegistrationRateLimiter } from './limits';
import { LoopGuard } from './loop-guard';
import { RelayLog, createLoggers } from './log';
import type { RelayLoggers } from './log';
import { SessionTable } from './session-table';
import type { Admission, RegisterResult, Session } from './session-table';

/** What the relay is given, as opposed to how it is configured: tests substitute these. */
export interface RelayServerComponents {
  /** Monotonic integer milliseconds. @default Math.floor(performance.now()) */
  clock?: () => number;
  /** Unix time in milliseconds, for ticket expiry (SPEC 4.3). @default Date.now */
  wallClock?: () => number;
  loggers?: RelayLoggers;
  /** Period of the reaper; 0 starts no timer (tests call reap()). @default REAP_INTERVAL_MS (250) */
  reapIntervalMs?: number;
  /** The compiled native I/O module; null: none. @default the one built into the bundle, if any */
  nativeModule?: NativeModuleSource | null;
  /** The I/O path itself, instead of the one --io picks (tests: a send that throws, SPEC 1.6). */
  io?: DatagramIo;
  /** This host's addresses (SPEC 4.4, when bound to the wildcard). @default from os.networkInterfaces() */
  hostAddresses?: () => string[];
  /** Sessions the reaper looks at before letting I/O run again. @default REAP_SLICE (4096) */
  reapSlice?: number;
}

/** A mass expiry is taken this many sessions at a time, so forwarding never stalls on it (a slice is about a millisecond). */
export const REAP_SLICE = 4096;
/** How often the loop guard re-reads the host's interfaces when bound to the wildcard. */
const INTERFACE_REFRESH_MS = 10_000;

type State = 'new' | 'starting' | 'running' | 'closing' | 'closed';

const R = 0x52; // 'R': the first byte of REG:
const A = 0x41; // 'A': the first byte of ADDR?

/** A burst of one second's worth for the bandwidth cap and the packet budget. */
const RATE_BURST_MS = 1000;

export class RelayServer {
  readonly config: RelayConfig;
  readonly counters = new RelayCounters();
  readonly table: SessionTable;
  readonly version = VERSION;
  private readonly limiter: RegistrationRateLimiter;
  private readonly clock: () => number;
  private readonly wallClock: () => number;
  private readonly log: RelayLog;
  private readonly reapIntervalMs: number;
  /** Milliseconds of budget one forwarded byte costs; 0 when there is no cap. */
  private readonly msPerByte: number;
  /** SPEC 4.4: milliseconds of budget one forwarded datagram costs; 0 when there is no budget. */
  private readonly msPerDatagram: number;
  private readonly loopGuard = new LoopGuard({ port: -1, ownIps: [], wildcard: false, others: [] });
  private readonly hostAddresses: () => string[];
  private readonly reapSlice: number;
  private loopSources: { wildcard: boolean; bound: string; public: Endpoint[]; peers: Endpoint[] } | undefined;
  private interfacesReadAt = 0;
  private reapMore: NodeJS.Immediate | undefined;
  private readonly givenIo: DatagramIo | undefined;
  private io: DatagramIo | undefined;
  private readonly nativeModule: NativeModuleSource | undefined;
  private reaper: NodeJS.Timeout | undefined;
  private state: State = 'new';
  private startedAt = 0;
  private starting: Promise<AddressInfo> | undefined;
  private closing: Promise<RelaySummary> | undefined;
  private boundAddress: AddressInfo | undefined;
  /** SPEC 3.6: set by drain(); resolves when the last session is gone. */
  private drainDone: (() => void) | undefined;
  private drained: Promise<void> | undefined;
  /** Buffer sizes the kernel granted (Linux reports twice what it books). */
  recvBufferBytes = 0;
  sendBufferBytes = 0;
  /** Which I/O path carries datagrams, once started; and why not native, when it is not. */
  ioKind: 'native' | 'dgram' | undefined;
  ioFallbackReason: string | undefined;

  constructor(options: RelayServerOptions = {}, components: RelayServerComponents = {}) {
    this.config = validateConfig(options);
    this.clock = components.clock ?? (() => Math.floor(performance.now()));
    this.wallClock = components.wallClock ?? Date.now;
    this.log = new RelayLog(components.loggers ?? createLoggers());
    this.reapIntervalMs = components.reapIntervalMs ?? REAP_INTERVAL_MS;
    this.nativeModule = components.nativeModule === null ? undefined : (components.nativeModule ?? embeddedNativeModule());
    this.givenIo = components.io;
    this.hostAddresses = components.hostAddresses ?? interfaceAddresses;
    this.reapSlice = components.reapSlice ?? REAP_SLICE;
    this.table = new SessionTable({
      sessionTimeoutMs: this.config.sessionTimeoutSecs * 1000,
      unpairedTimeoutMs: this.config.unpairedTimeoutSecs * 1000,
      maxSessions: this.config.maxSessions,
      maxSessionsPerIp: this.config.maxSessionsPerIp,
      expiryTickMs: Math.max(1, Math.min(this.reapIntervalMs || REAP_INTERVAL_MS, REAP_INTERVAL_MS)),
    });
    this.limiter = new RegistrationRateLimiter(this.config.registrationsPerSecPerIp, this.config.registrationBurstPerIp);
    this.msPerByte = this.config.maxSessionBytesPerSec > 0 ? 1000 / this.config.maxSessionBytesPerSec : 0;
    this.msPerDatagram = this.config.maxSessionDatagramsPerSec > 0 ? 1000 / this.config.maxSessionDatagramsPerSec : 0;
  }

  /** Source IPs the registration rate limiter holds a bucket for (its memory; metrics). */
  get rateTrackedIps(): number {
    return this.limiter.size;
  }

  /** SPEC 3.6: true from drain() on. */
  get draining(): boolean {
    return this.drained !== undefined;
  }

  /** Binds the socket; safe to call twice. Resolves to the bound address. */
  start(): Promise<AddressInfo> {
    this.starting ??= this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<AddressInfo> {
    if (this.state !== 'new') throw new RelayError('QR_ERR_STATE', `relay cannot start: it is ${this.state}`);
    this.state = 'starting';
    const { host, port } = this.config;
    // Resolve a host name once, here: every later send goes to an IP literal
    // from rinfo, so the socket's lookup can answer synchronously.
    const ip = net.isIP(host) !== 0 ? host : (await dns.lookup(host)).address;
    const family = net.isIPv6(ip) ? 6 : 4;
    let peers: Endpoint[];
    try {
      peers = await resolveAll(this.config.peerRelays);
    } catch (err) {
      this.state = 'closed';
      throw new RelayError('QR_ERR_CONFIG', `--peer-relays: ${(err as Error).message}`);
    }
    const io = this.givenIo ?? this.chooseIo(family);
    this.io = io;
    try {
      this.boundAddress = await io.bind(ip, port, family, this.config.recvBufferBytes, this.config.sendBufferBytes);
    } catch (err) {
      this.state = 'closed';
      this.io = undefined;
      const e = err as NodeJS.ErrnoException;
      throw new RelayError('QR_ERR_BIND', `cannot bind UDP ${formatAddress(ip, port)}: ${e.code ?? e.message}`);
    }
    // SPEC 4.2: a socket error is logged and counted, never fatal.
    io.start(this.onDatagram, this.onSocketError);
    this.recvBufferBytes = io.recvBufferBytes;
    this.sendBufferBytes = io.sendBufferBytes;
    this.ioKind = io.kind;
    // SPEC 4.4: what leads back to us, known now that the port is.
    this.loopSources = { wildcard: ip === '0.0.0.0' || ip === '::', bound: ip, public: [...this.config.publicAddresses], peers };
    this.refreshLoopGuard(this.clock());
    if (this.reapIntervalMs > 0) {
      this.reaper = setInterval(this.reapSliceNow, this.reapIntervalMs);
      this.reaper.unref(); // never what keeps the process alive
    }
    this.startedAt = this.clock();
    this.state = 'running';
    const a = this.boundAddress;
    const cfg = this.config;
    // SPEC 3.2: the start line, as the original prints it, and the version.
    this.log.relay('UDP relay listening on %s (quic-relay %s, %s I/O)', formatAddress(a.address, a.port), VERSION, io.kind);
    if (this.ioFallbackReason !== undefined) this.log.relay('native I/O not in use (%s): datagrams go through node:dgram', this.ioFallbackReason);
    this.log.relay(
      'session timeout %d s (unpaired %d s), max sessions %d (%d per IP or IPv6 /64), %d registrations/s per IP, implicit rebind %s, tickets %s, per-session cap %s and %s, %d peer relays, socket buffers recv %d send %d bytes',
      cfg.sessionTimeoutSecs, Math.min(cfg.unpairedTimeoutSecs, cfg.sessionTimeoutSecs), cfg.maxSessions, cfg.maxSessionsPerIp, cfg.registrationsPerSecPerIp, cfg.implicitRebind ? 'on' : 'off',
      cfg.authSecrets.length > 0 ? `required (${cfg.authSecrets.length} secret${cfg.authSecrets.length > 1 ? 's' : ''})` : 'off',
      cfg.maxSessionBytesPerSec > 0 ? `${cfg.maxSessionBytesPerSec} bytes/s` : 'no byte cap',
      cfg.maxSessionDatagramsPerSec > 0 ? `${cfg.maxSessionDatagramsPerSec} datagrams/s` : 'no datagram budget',
      this.loopSources?.peers.length ?? 0, this.recvBufferBytes, this.sendBufferBytes,
    );
    return a;
  }

  /** The I/O path --io asks for; 'auto' falls back to dgram, keeping the reason for the start log. */
  private chooseIo(family: 4 | 6): DatagramIo {
    const mode = this.config.io;
    if (mode === 'dgram') return new DgramIo();
    const loaded = family === 6 ? { error: 'native I/O is IPv4-only' } : loadNative(this.nativeModule);
    if ('binding' in loaded) return new NativeIo(loaded.binding);
    if (mode === 'native') {
      this.state = 'closed';
      throw new RelayError('QR_ERR_NATIVE', `--io native: ${loaded.error}`);
    }
    this.ioFallbackReason = loaded.error;
    return new DgramIo();
  }

  /** What the I/O path counts itself (metrics). */
  ioCounts(): { receiveErrors: number; sendsQueued: number } {
    return { receiveErrors: this.io?.receiveErrors ?? 0, sendsQueued: this.io?.sendsQueued ?? 0 };
  }

  /** The bound UDP address (after start). */
  address(): AddressInfo {
    if (this.boundAddress === undefined) throw new RelayError('QR_ERR_STATE', 'relay is not started');
    return this.boundAddress;
  }

  /**
   * SPEC 3.6: stop taking new sessions, keep serving the ones held. Resolves
   * once no session is left (the caller decides how long to wait, then
   * close()s). Safe to call twice.
   */
  drain(): Promise<void> {
    if (this.drained === undefined) {
      this.drained = new Promise<void>((resolve) => {
        this.drainDone = resolve;
      });
      this.log.relay('draining: new sessions refused, %d sessions (%d paired) carry on', this.table.size, this.table.pairedCount);
      this.checkDrained();
    }
    return this.drained;
  }

  private checkDrained(): void {
    if (this.drainDone !== undefined && this.table.size === 0) {
      const done = this.drainDone;
      this.drainDone = undefined;
      this.log.relay('drained: no session left');
      done();
    }
  }

  /** Stops the reaper and the socket; logs and returns the summary. Safe to call twice. */
  close(): Promise<RelaySummary> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<RelaySummary> {
    if (this.starting !== undefined) await this.starting.catch(() => undefined);
    this.state = 'closing';
    if (this.reaper !== undefined) clearInterval(this.reaper);
    this.reaper = undefined;
    if (this.reapMore !== undefined) clearImmediate(this.reapMore);
    this.reapMore = undefined;
    const io = this.io;
    if (io !== undefined) {
      this.counters.sendErrors = io.sendErrors;
      await io.close();
    }
    const summary = this.summary();
    this.state = 'closed';
    if (io !== undefined && this.boundAddress !== undefined) this.log.relay(formatSummary(summary));
    return summary;
  }

  summary(): RelaySummary {
    const c = this.counters;
    return {
      uptimeSecs: this.state === 'new' ? 0 : (this.clock() - this.startedAt) / 1000,
      sessionsOpen: this.table.size,
      sessionsPaired: this.table.pairedCount,
      sessionsCreated: c.sessionsCreated,
      forwardedDatagrams: c.forwardedDatagrams,
      forwardedBytes: c.forwardedBytes,
      droppedDatagrams: c.droppedDatagrams,
      refusals: c.refusals,
      sendErrors: c.sendErrors,
    };
  }

  /**
   * One reaper pass (SPEC 2.5): removes the sessions past their deadline, at
   * most `max` of them, and returns how many went. The timer calls it with
   * one slice and, while more are due, continues on setImmediate, so that a
   * mass expiry lets datagrams through between slices. Tests may call it.
   */
  reap(now = this.clock(), max = Infinity): number {
    if (this.io !== undefined) this.counters.sendErrors = this.io.sendErrors; // counted by the I/O path; read here, off the hot path
    const removed = this.table.expire(now, max);
    this.limiter.sweep(now);
    this.counters.sessionsReaped += removed.length;
    for (const s of removed) if (this.log.event('reaped', now)) this.log.session('session %s reaped after %d s idle', s.id, Math.round((now - s.lastActive) / 1000));
    if (this.loopSources?.wildcard === true && now - this.interfacesReadAt >= INTERFACE_REFRESH_MS) this.refreshLoopGuard(now);
    this.checkDrained();
    return removed.length;
  }

  private readonly reapSliceNow = (): void => {
    this.reapMore = undefined;
    if (this.state !== 'running') return;
    const now = this.clock();
    this.reap(now, this.reapSlice);
    if (this.table.expiryDue(now)) this.reapMore = setImmediate(this.reapSliceNow);
  };

  /** SPEC 4.4: the relay's own addresses (all of the host's when bound to the wildcard), --public-address and --peer-relays. */
  private refreshLoopGuard(now: number): void {
    const src = this.loopSources;
    if (src === undefined || this.boundAddress === undefined) return;
    this.interfacesReadAt = now;
    const port = this.boundAddress.port;
    const own: IpKey[] = (src.wildcard ? this.hostAddresses() : [src.bound]).map(ipKeyOf);
    const others: Array<{ ip: IpKey; port: number }> = [];
    for (const e of src.public) {
      if (e.port === 0 || e.port === port) own.push(ipKeyOf(e.host));
      else others.push({ ip: ipKeyOf(e.host), port: e.port });
    }
    for (const e of src.peers) others.push({ ip: ipKeyOf(e.host), port: e.port === 0 ? port : e.port });
    this.loopGuard.update({ port, ownIps: own, wildcard: src.wildcard, others });
  }

  // ---- the datagram path

  private readonly onSocketError = (err: Error): void => {
    this.counters.socketErrors++;
    if (this.log.refusal('socket-error', this.clock(), this.log.relay)) this.log.relay('socket error (relay continues): %s', err.message);
  };

  /**
   * One datagram: `len` bytes of `data` from address:port. With the native
   * path `data` is the whole receive slot (`slot`), longer than the datagram.
   */
  private readonly onDatagram = (data: Buffer, len: number, address: string, ip: IpKey, port: number, slot: number): void => {
    const c = this.counters;
    c.datagramsReceived++;
    c.bytesReceived += len;
    if (port === 0) {
      // SPEC 1.6: nothing can be sent back to port 0 (dgram throws on it); never answered, never registered.
      c.droppedPortZero++;
      c.droppedPortZeroBytes += len;
      return;
    }
    const first = len > 0 ? data[0] : -1;

    if (first === R || first === A) {
      // SPEC 4.4: from an address that leads back to a relay, nothing is answered or registered.
      if (this.loopGuard.isLoop(ip, port)) {
        this.dropLoop(len, address, port);
        return;
      }
      const msg = data.length === len ? data : data.subarray(0, len); // rare: registrations and queries only
      const m = classify(msg);
      if (m.kind === 'register') {
        this.onRegister(len, m.id, ip, address, port);
        return;
      }
      if (m.kind === 'address-query') {
        // SPEC 1.5: answered from any address; registers, forwards and refreshes nothing.
        c.addressQueries++;
        this.reply(encodeAddressAnswer(address, port), len, address, port);
        return;
      }
      if (m.kind === 'bad-register' && this.table.find(ip, address, port) === undefined) {
        // SPEC 1.3: ERR:BAD to an unregistered address, unless that would be
        // longer than the request. (From a registered peer a malformed REG: is
        // data, SPEC 1.4: a QUIC short-header packet may begin with those bytes.)
        c.regBad++;
        this.reply(ERR_BAD, len, address, port);
        if (this.log.refusal('bad', this.clock())) this.log.limits('ERR:BAD to %s: malformed registration (%d bytes)', formatAddress(address, port), len);
        return;
      }
    }

    // SPEC 2.3: data from a registered peer goes to its partner, or is dropped
    // while the partner has not arrived.
    const now = this.clock();
    const session = this.table.dataFrom(ip, address, port, now);
    if (session === undefined) {
      this.onUnknownData(data, len, slot, ip, address, port, now);
      return;
    }
    if (!session.paired) {
      c.droppedUnpaired++;
      c.droppedUnpairedBytes += len;
      if (this.log.datagram.enabled) this.log.datagram('%d bytes from %s dropped: session %s not paired', len, formatAddress(address, port), session.id);
      return;
    }
    this.forward(data, len, slot, session, now);
  };

  /** SPEC 4.4: counted, never answered. */
  private dropLoop(len: number, address: string, port: number): void {
    this.counters.droppedLoop++;
    this.counters.droppedLoopBytes += len;
    if (this.log.refusal('loop', this.clock())) this.log.limits('%d bytes from %s dropped: that address leads back to a relay (SPEC 4.4)', len, formatAddress(address, port));
  }

  /** Sends to the partner of the slot that sent last (the table has just recorded it). */
  private forward(data: Buffer, len: number, slot: number, s: Session, now: number): void {
    const c = this.counters;
    if (this.msPerDatagram > 0) {
      // SPEC 4.4: the packet budget, zero-length datagrams included: what any loop costs is bounded.
      const tat = Math.max(s.packetTat, now) + this.msPerDatagram;
      if (tat - now > RATE_BURST_MS) {
        c.droppedRate++;
        c.droppedRateBytes += len;
        if (this.log.datagram.enabled) this.log.datagram('%d bytes of session %s dropped: over %d datagrams/s', len, s.id, this.config.maxSessionDatagramsPerSec);
        return;
      }
      s.packetTat = tat;
    }
    if (this.msPerByte > 0) {
      // Opt-in bandwidth cap per session, GCRA over bytes with a second's burst.
      const tat = Math.max(s.rateTat, now) + len * this.msPerByte;
      if (tat - now > RATE_BURST_MS) {
        c.droppedRate++;
        c.droppedRateBytes += len;
        if (this.log.datagram.enabled) this.log.datagram('%d bytes of session %s dropped: over %d bytes/s', len, s.id, this.config.maxSessionBytesPerSec);
        return;
      }
      s.rateTat = tat;
    }
    c.forwardedDatagrams++;
    c.forwardedBytes += len;
    this.io!.forward(data, len, slot, s.toPort, s.toAddress);
    if (this.log.datagram.enabled) this.log.datagram('%d bytes forwarded to %s', len, formatAddress(s.toAddress, s.toPort));
  }

  /** SPEC 2.4: data from an address no session knows. */
  private onUnknownData(data: Buffer, len: number, slot: number, ip: IpKey, address: string, port: number, now: number): void {
    const c = this.counters;
    if (this.loopGuard.isLoop(ip, port)) {
      this.dropLoop(len, address, port); // SPEC 4.4: never rebinds to it
      return;
    }
    if (this.config.implicitRebind) {
      const r = this.table.implicitRebind(ip, address, port, now);
      if (r.outcome === 'rebound') {
        c.rebindsImplicit++;
        if (this.log.event('rebound', now)) this.log.session('session %s: %s rebound to %s (data)', r.session.id, formatAddress(r.previousAddress, r.previousPort), formatAddress(address, port));
        this.forward(data, len, slot, r.session, now);
        return;
      }
      if (r.outcome === 'ambiguous') {
        c.droppedAmbiguousSource++;
        c.droppedAmbiguousSourceBytes += len;
        if (this.log.datagram.enabled) this.log.datagram('%d bytes from %s dropped: several peers share its IP', len, formatAddress(address, port));
        return;
      }
    }
    c.droppedUnknownSource++;
    c.droppedUnknownSourceBytes += len;
    if (this.log.datagram.enabled) this.log.datagram('%d bytes from unregistered %s dropped', len, formatAddress(address, port));
  }

  /** SPEC 2.2, 3.6, 4.1, 4.3: a well-formed registration. */
  private onRegister(msg: number, id: string, ip: IpKey, address: string, port: number): void {
    const c = this.counters;
    const now = this.clock();
    let admission: Admission = 'any';
    // SPEC 4.1: keepalives are never refused (nor re-checked: the ticket let
    // this address in, SPEC 4.3); anything else spends a token first, so a
    // flood of forged tickets costs no more than one HMAC per token.
    if (!this.table.isKeepalive(ip, address, port, id)) {
      if (!this.limiter.take(limitKeyOf(ip), now)) {
        c.regBusyRate++;
        this.reply(ERR_BUSY, msg, address, port);
        if (this.log.refusal('busy-rate', now)) this.log.limits('ERR:BUSY to %s for session %s: over %d registrations/s from its IP', formatAddress(address, port), id, this.config.registrationsPerSecPerIp);
        return;
      }
      if (this.config.authSecrets.length > 0) {
        const ticket = checkTicket(id, this.config.authSecrets, Math.floor(this.wallClock() / 1000));
        if (ticket === 'invalid') {
          this.refuseAuth(msg, address, port, id, 'not a ticket made with our secrets', now);
          return;
        }
        if (ticket === 'expired') admission = 'rebind-only';
      }
      if (admission === 'any' && this.drained !== undefined) admission = 'no-create';
    }
    const r = this.table.register(ip, address, port, id, now, admission);
    if (r.left !== undefined) this.noteLeft(r, address, port, now);
    switch (r.outcome) {
      case 'keepalive':
        c.regKeepalive++;
        this.reply(ACK, msg, address, port);
        if (this.log.datagram.enabled) this.log.datagram('keepalive from %s for session %s', formatAddress(address, port), id);
        return;
      case 'created':
        c.regCreated++;
        c.sessionsCreated++;
        this.reply(ACK, msg, address, port);
        if (this.log.event('created', now)) this.log.session('session %s created by %s', id, formatAddress(address, port));
        return;
      case 'joined': {
        c.regJoined++;
        this.reply(ACK, msg, address, port);
        const s = r.session as Session; // the joiner took slot b
        if (this.log.event('paired', now)) this.log.session('session %s paired: %s <-> %s', id, formatAddress(s.aAddress, s.aPort), formatAddress(address, port));
        return;
      }
      case 'replaced-quiet':
        c.regJoined++;
        this.reply(ACK, msg, address, port);
        if (this.log.event('paired', now)) {
          this.log.session('session %s paired: %s took the slot of %s, silent since the same peer came back from a new port', id, formatAddress(address, port), formatAddress(r.previousAddress ?? '?', r.previousPort ?? 0));
        }
        return;
      case 'rebound':
        c.regRebound++;
        c.rebindsExplicit++;
        this.reply(ACK, msg, address, port);
        if (this.log.event('rebound', now)) this.log.session('session %s: %s rebound to %s (REG)', id, formatAddress(r.previousAddress ?? '?', r.previousPort ?? 0), formatAddress(address, port));
        return;
      case 'full':
        c.regFull++;
        this.reply(ERR_FULL, msg, address, port);
        if (this.log.refusal('full', now)) this.log.limits('ERR:FULL to %s: session %s already holds two other peers', formatAddress(address, port), id);
        this.checkDrained(); // X may have left, and emptied, the last session
        return;
      case 'busy-sessions':
        c.regBusySessions++;
        this.reply(ERR_BUSY, msg, address, port);
        if (this.log.refusal('busy-sessions', now)) this.log.limits('ERR:BUSY to %s for session %s: %d sessions open (--max-sessions)', formatAddress(address, port), id, this.table.size);
        return;
      case 'busy-ip':
        c.regBusyIp++;
        this.reply(ERR_BUSY, msg, address, port);
        if (this.log.refusal('busy-ip', now)) this.log.limits('ERR:BUSY to %s for session %s: its IP is in %d sessions (--max-sessions-per-ip)', formatAddress(address, port), id, this.table.sessionsOnIp(ip));
        return;
      case 'busy-draining':
        c.regBusyDraining++;
        this.reply(ERR_BUSY, msg, address, port);
        if (this.log.refusal('busy-draining', now)) this.log.limits('ERR:BUSY to %s for session %s: draining, no new sessions', formatAddress(address, port), id);
        return;
      case 'expired':
        this.refuseAuth(msg, address, port, id, 'expired ticket (it may only keep its own session alive)', now);
        return;
      default: {
        const never: never = r.outcome;
        throw new Error(`unhandled registration outcome ${String(never)}`);
      }
    }
  }

  /** SPEC 4.3: ERR:AUTH, and nothing changes. The id is logged: a ticket is no secret, its MAC proves only that we made it. */
  private refuseAuth(msg: number, address: string, port: number, id: string, why: string, now: number): void {
    this.counters.regAuth++;
    this.reply(ERR_AUTH, msg, address, port);
    if (this.log.refusal('auth', now)) this.log.limits('ERR:AUTH to %s for session %s: %s', formatAddress(address, port), id, why);
  }

  private noteLeft(r: RegisterResult, address: string, port: number, now: number): void {
    if (r.leftRemoved) this.counters.sessionsEmptied++;
    if (this.log.event('left', now)) this.log.session('%s left session %s%s', formatAddress(address, port), r.left!.id, r.leftRemoved ? ' (now empty, removed)' : '');
  }

  /** SPEC 1.3: one reply datagram to the source, never longer than the request (`requestLength` bytes). */
  private reply(reply: Buffer, requestLength: number, address: string, port: number): void {
    if (!replyFits(reply, requestLength)) {
      this.counters.repliesSuppressed++;
      return;
    }
    this.io!.send(reply, port, address);
  }
}

/** This host's interface addresses, every family (SPEC 4.4: a wildcard-bound relay is reachable on each). */
function interfaceAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) out.push(i.address.split('%')[0]!);
  return out;
}

/** Every address of each endpoint's host (a name may have several); its port kept. */
async function resolveAll(list: readonly Endpoint[]): Promise<Endpoint[]> {
  const out: Endpoint[] = [];
  for (const e of list) {
    if (net.isIP(e.host) !== 0) out.push(e);
    else for (const a of await dns.lookup(e.host, { all: true })) out.push({ host: a.address, port: e.port });
  }
  return out;
}

/** Creates a relay; call start() to bind it. */
export function createRelayServer(options?: RelayServerOptions, components?: RelayServerComponents): RelayServer {
  return new RelayServer(options, components);
}

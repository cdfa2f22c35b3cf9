// The relay's lifecycle: bind (choosing the I/O path), the reaper, drain and
// close. Each datagram is datagram-path.ts's business; who may register is
// registrar.ts's; the sessions are session-table.ts's. Metrics over HTTP
// attach from outside (metrics-http.ts).

import * as dns from 'node:dns/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import { performance } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import { formatAddress } from '../wire/address';
import { REAP_INTERVAL_MS, STREAM_PATH } from '../wire/constants';
import type { Endpoint } from '../wire/endpoint';
import { RelayError } from '../wire/errors';
import { VERSION } from '../wire/version';
import { chooseIo } from '../io/choose-io';
import type { DatagramIo } from '../io/datagram-io';
import { embeddedNativeModule } from '../io/native-io';
import type { NativeModuleSource } from '../io/native-io';
import { validateConfig } from './config';
import type { RelayConfig, RelayServerOptions } from './config';
import { RelayCounters, formatSummary, summaryOf } from './counters';
import type { RelaySummary } from './counters';
import { RegistrationRateLimiter, SessionBudget } from './limits';
import { HostLoopWatch, LoopGuard } from './loop-guard';
import { RelayLog, createLoggers, settingsLine } from './log';
import type { RelayLoggers } from './log';
import { Reaper } from './reaper';
import { Registrar } from './registrar';
import { SessionTable } from './session-table';
import { DatagramPath } from './datagram-path';
import { describeSessions } from './debug-sessions';
import { startStreamLeg } from './stream-leg';
import type { StreamLeg } from './stream-leg';
import type { SessionsView } from './debug-sessions';

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
  /** Period of the WebSocket leg's deadlines and pings (SPEC 6.3); 0 starts no timer (tests call sweepStreams()). @default 1000 */
  streamSweepMs?: number;
}

/** A mass expiry is taken this many sessions at a time, so forwarding never stalls on it (a slice is about a millisecond). */
export const REAP_SLICE = 4096;
/** How often the loop guard re-reads the host's interfaces when bound to the wildcard. */
const INTERFACE_REFRESH_MS = 10_000;

type State = 'new' | 'starting' | 'running' | 'closing' | 'closed';

export class RelayServer {
  readonly config: RelayConfig;
  readonly counters = new RelayCounters();
  readonly table: SessionTable;
  readonly version = VERSION;
  private readonly limiter: RegistrationRateLimiter;
  private readonly registrar: Registrar;
  private readonly clock: () => number;
  private readonly wallClock: () => number;
  private readonly log: RelayLog;
  private readonly reapIntervalMs: number;
  private readonly budget: SessionBudget;
  private readonly loopGuard = new LoopGuard({ port: -1, ownIps: [], wildcard: false, others: [] });
  /** SPEC 4.4: the host's interfaces, re-read into the guard (wildcard binds), once started. */
  private loopWatch: HostLoopWatch | undefined;
  private readonly hostAddresses: () => string[];
  private readonly reaper: Reaper;
  private readonly givenIo: DatagramIo | undefined;
  private io: DatagramIo | undefined;
  private readonly nativeModule: NativeModuleSource | undefined;
  private readonly streamSweepMs: number;
  /** SPEC 6: the WebSocket leg, when configured and started. */
  streams: StreamLeg | undefined;
  private state: State = 'new';
  private startedAt = 0;
  private starting: Promise<AddressInfo> | undefined;
  private closing: Promise<RelaySummary> | undefined;
  private boundAddress: AddressInfo | undefined;
  /** SPEC 3.6: set by drain(). */
  private drainer: Drain | undefined;
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
    this.reaper = new Reaper(
      (now, max) => this.reap(now, max),
      (now) => this.table.expiryDue(now),
      this.clock,
      components.reapSlice ?? REAP_SLICE,
    );
    this.streamSweepMs = components.streamSweepMs ?? 1000;
    this.table = new SessionTable({
      sessionTimeoutMs: this.config.sessionTimeoutSecs * 1000,
      unpairedTimeoutMs: this.config.unpairedTimeoutSecs * 1000,
      maxSessions: this.config.maxSessions,
      maxSessionsPerIp: this.config.maxSessionsPerIp,
      expiryTickMs: Math.max(1, Math.min(this.reapIntervalMs || REAP_INTERVAL_MS, REAP_INTERVAL_MS)),
    });
    this.limiter = new RegistrationRateLimiter(this.config.registrationsPerSecPerIp, this.config.registrationBurstPerIp);
    this.registrar = new Registrar(this.table, this.limiter, { authSecrets: this.config.authSecrets });
    this.budget = new SessionBudget(this.config.maxSessionDatagramsPerSec, this.config.maxSessionBytesPerSec);
  }

  /** Source IPs the registration rate limiter holds a bucket for (its memory; metrics). */
  get rateTrackedIps(): number {
    return this.limiter.size;
  }

  /** SPEC 3.6: true from drain() on. */
  get draining(): boolean {
    return this.drainer !== undefined;
  }

  /** Binds the socket; safe to call twice. Resolves to the bound address. */
  start(): Promise<AddressInfo> {
    this.starting ??= this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<AddressInfo> {
    if (this.state !== 'new') throw new RelayError('QR_ERR_STATE', `relay cannot start: it is ${this.state}`);
    this.state = 'starting';
    try {
      return await this.bindAndRun();
    } catch (err) {
      this.state = 'closed';
      throw err;
    }
  }

  private async bindAndRun(): Promise<AddressInfo> {
    const { ip, family, peers } = await resolveAddresses(this.config);
    const opened = await openIo(this.config, ip, family, this.givenIo, this.nativeModule);
    const io = opened.io;
    this.io = io;
    this.boundAddress = opened.bound;
    this.ioFallbackReason = opened.fallbackReason;
    // SPEC 4.2: a socket error is logged and counted, never fatal.
    const path = new DatagramPath(
      {
        config: this.config,
        counters: this.counters,
        table: this.table,
        registrar: this.registrar,
        budget: this.budget,
        loopGuard: this.loopGuard,
        log: this.log,
        clock: this.clock,
        wallClock: this.wallClock,
        draining: () => this.draining,
        sessionsGone: () => this.checkDrained(),
      },
      io,
    );
    io.start(path.onDatagram, this.onSocketError);
    if (this.config.wsPort !== undefined) {
      try {
        this.streams = await startStreamLeg(this.config, ip, path, this.counters, this.clock, this.streamSweepMs);
      } catch (err) {
        await io.close();
        this.io = undefined;
        throw err;
      }
    }
    this.recvBufferBytes = io.recvBufferBytes;
    this.sendBufferBytes = io.sendBufferBytes;
    this.ioKind = io.kind;
    // SPEC 4.4: what leads back to us, known now that the port is.
    const sources = { wildcard: ip === '0.0.0.0' || ip === '::', bound: ip, public: [...this.config.publicAddresses], peers };
    this.loopWatch = new HostLoopWatch(this.loopGuard, sources, this.boundAddress.port, this.hostAddresses, INTERFACE_REFRESH_MS, this.clock());
    this.reaper.start(this.reapIntervalMs);
    this.startedAt = this.clock();
    this.state = 'running';
    logStarted(this.log, this.boundAddress, io, this.streams, this.ioFallbackReason);
    this.log.relay(settingsLine(this.config, peers.length, this.recvBufferBytes, this.sendBufferBytes));
    return this.boundAddress;
  }

  /** SPEC 6.3: the WebSocket leg's deadlines and pings, now (the timer does this each second). */
  sweepStreams(now = this.clock()): void {
    this.streams?.sweep(now);
  }

  /**
   * SPEC 6.1: re-reads --tls-cert and --tls-key (SIGHUP); connections keep
   * theirs. Throws with the reason when they do not load; the old ones stay.
   * False when there is no TLS to reload.
   */
  reloadTls(): boolean {
    if (this.streams === undefined || !this.streams.tls) return false;
    this.streams.reloadTls();
    this.log.relay('TLS certificate and key re-read from %s and %s', this.config.tlsCert, this.config.tlsKey);
    return true;
  }

  /** The WebSocket leg's TCP address (SPEC 6.1), once started; undefined without --ws-port. */
  wsAddressInfo(): AddressInfo | undefined {
    return this.streams?.address;
  }

  /** /debug/sessions: the oldest `limit` sessions and the totals (debug-sessions.ts). */
  debugSessions(limit: number): SessionsView {
    return describeSessions(this.table.sessions(), this.table.size, this.table.pairedCount, this.clock(), limit);
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
    if (this.drainer === undefined) {
      this.drainer = new Drain();
      this.log.relay('draining: new sessions refused, %d sessions (%d paired) carry on', this.table.size, this.table.pairedCount);
      this.checkDrained();
    }
    return this.drainer.finished;
  }

  private checkDrained(): void {
    if (this.drainer?.check(this.table.size) === true) this.log.relay('drained: no session left');
  }

  /** Stops the reaper and the socket; logs and returns the summary. Safe to call twice. */
  close(): Promise<RelaySummary> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<RelaySummary> {
    if (this.starting !== undefined) await this.starting.catch(() => undefined);
    this.state = 'closing';
    this.reaper.stop();
    await this.streams?.close();
    const io = this.io;
    this.readSendErrors();
    await io?.close();
    const summary = this.summary();
    this.state = 'closed';
    if (io !== undefined && this.boundAddress !== undefined) this.log.relay(formatSummary(summary));
    return summary;
  }

  /** Send errors are counted where sends happen (the I/O path, the WebSocket leg): summed here, off the hot path. */
  private readSendErrors(): void {
    if (this.io !== undefined) this.counters.sendErrors = this.io.sendErrors + (this.streams?.sendErrors ?? 0);
  }

  summary(): RelaySummary {
    const uptimeSecs = this.state === 'new' ? 0 : (this.clock() - this.startedAt) / 1000;
    return summaryOf(this.counters, uptimeSecs, this.table.size, this.table.pairedCount);
  }

  /**
   * One reaper pass (SPEC 2.5): removes the sessions past their deadline, at
   * most `max` of them, and returns how many went. The reaper (reaper.ts)
   * calls it a slice at a time; tests may call it.
   */
  reap(now = this.clock(), max = Infinity): number {
    this.readSendErrors();
    const removed = this.table.expire(now, max);
    this.limiter.sweep(now);
    this.counters.sessionsReaped += removed.length;
    for (const s of removed)
      if (this.log.event('reaped', now)) this.log.session('session %s reaped after %d s idle', s.id, Math.round((now - s.lastActive) / 1000));
    this.loopWatch?.refresh(now);
    this.checkDrained();
    return removed.length;
  }

  // ---- the datagram path

  private readonly onSocketError = (err: Error): void => {
    this.counters.socketErrors++;
    if (this.log.refusal('socket-error', this.clock(), this.log.relay)) this.log.relay('socket error (relay continues): %s', err.message);
  };
}

/** SPEC 3.6: a drain under way; `finished` resolves once no session is left. */
class Drain {
  readonly finished: Promise<void>;
  private done: (() => void) | undefined;

  constructor() {
    this.finished = new Promise<void>((resolve) => {
      this.done = resolve;
    });
  }

  /** Sessions may have gone: true when this call ends the drain. */
  check(sessions: number): boolean {
    const done = this.done;
    if (done === undefined || sessions > 0) return false;
    this.done = undefined;
    done();
    return true;
  }
}

/** SPEC 3.2: the start lines: the original's, with the version and the I/O path; the WebSocket leg's; why not native. */
function logStarted(log: RelayLog, a: AddressInfo, io: DatagramIo, streams: StreamLeg | undefined, fallbackReason: string | undefined): void {
  log.relay('UDP relay listening on %s (quic-relay %s, %s I/O)', formatAddress(a.address, a.port), VERSION, io.kind);
  const ws = streams?.address;
  if (ws !== undefined)
    log.relay('WebSocket leg (%s) listening on %s, path %s', streams!.tls ? 'wss' : 'ws, no TLS', formatAddress(ws.address, ws.port), STREAM_PATH);
  if (fallbackReason !== undefined) log.relay('native I/O not in use (%s): datagrams go through node:dgram', fallbackReason);
}

/** Chooses the I/O path (--io, or the one given) and binds it; a bind failure says what and why. */
async function openIo(
  config: RelayConfig,
  ip: string,
  family: 4 | 6,
  given: DatagramIo | undefined,
  nativeModule: NativeModuleSource | undefined,
): Promise<{ io: DatagramIo; bound: AddressInfo; fallbackReason: string | undefined }> {
  const chosen = given !== undefined ? { io: given, fallbackReason: undefined } : chooseIo(config.io, family, nativeModule);
  try {
    return {
      io: chosen.io,
      bound: await chosen.io.bind(ip, config.port, family, config.recvBufferBytes, config.sendBufferBytes),
      fallbackReason: chosen.fallbackReason,
    };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new RelayError('QR_ERR_BIND', `cannot bind UDP ${formatAddress(ip, config.port)}: ${e.code ?? e.message}`);
  }
}

/** This host's interface addresses, every family (SPEC 4.4: a wildcard-bound relay is reachable on each). */
function interfaceAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) out.push(i.address.split('%')[0]!);
  return out;
}

/**
 * The relay's --host as an IP and its family, and --peer-relays resolved.
 * A host name is resolved once, here: every later send goes to an IP literal
 * from rinfo, so the socket's lookup can answer synchronously.
 */
async function resolveAddresses(config: RelayConfig): Promise<{ ip: string; family: 4 | 6; peers: Endpoint[] }> {
  const ip = net.isIP(config.host) !== 0 ? config.host : (await dns.lookup(config.host)).address;
  try {
    return { ip, family: net.isIPv6(ip) ? 6 : 4, peers: await resolveAll(config.peerRelays) };
  } catch (err) {
    throw new RelayError('QR_ERR_CONFIG', `--peer-relays: ${(err as Error).message}`);
  }
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

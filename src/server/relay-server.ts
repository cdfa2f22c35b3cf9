// The relay: owns the UDP socket and brings the pure parts together. One
// datagram in, at most one out; the hot path (data from a registered peer) is
// one IP parse, one Map lookup, two field writes and a send, with no strings
// built, nothing allocated by us and nothing logged unless asked for.

import dgram from 'node:dgram';
import dns from 'node:dns/promises';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import { formatAddress, ipKeyOf, literalLookup } from '../wire/address';
import type { IpKey } from '../wire/address';
import { REAP_INTERVAL_MS } from '../wire/constants';
import { validateConfig } from './config';
import type { RelayConfig, RelayServerOptions } from './config';
import { RelayError } from '../wire/errors';
import { RegistrationRateLimiter } from './limits';
import { LogLimiter, createLoggers } from './log';
import type { Logger, RelayLoggers } from './log';
import { RelayCounters, formatSummary } from './counters';
import type { RelaySummary } from './counters';
import type { MetricsServer } from './metrics-http';
import { ACK, ERR_BAD, ERR_BUSY, ERR_FULL, classify, replyFits } from '../wire/protocol';
import { SessionTable } from './session-table';
import type { RegisterResult, Session } from './session-table';

/** What the relay is given, as opposed to how it is configured: tests substitute these. */
export interface RelayServerComponents {
  /** Monotonic integer milliseconds. @default Math.floor(performance.now()) */
  clock?: () => number;
  loggers?: RelayLoggers;
  /** Period of the reaper; 0 starts no timer (tests call reap()). @default REAP_INTERVAL_MS (250) */
  reapIntervalMs?: number;
}

type State = 'new' | 'starting' | 'running' | 'closing' | 'closed';

const R = 0x52; // 'R': the first byte of REG:

export class RelayServer {
  readonly config: RelayConfig;
  readonly counters = new RelayCounters();
  readonly table: SessionTable;
  private readonly limiter: RegistrationRateLimiter;
  private readonly clock: () => number;
  private readonly log: RelayLoggers;
  private readonly reapIntervalMs: number;
  private readonly refusalLog = new LogLimiter(1000, 1);
  private readonly eventLog = new LogLimiter(1000, 50);
  private socket: dgram.Socket | undefined;
  private metrics: MetricsServer | undefined;
  private reaper: NodeJS.Timeout | undefined;
  private state: State = 'new';
  private startedAt = 0;
  private starting: Promise<AddressInfo> | undefined;
  private closing: Promise<RelaySummary> | undefined;
  private boundAddress: AddressInfo | undefined;
  /** Buffer sizes the kernel granted (Linux reports twice what it books). */
  recvBufferBytes = 0;
  sendBufferBytes = 0;

  constructor(options: RelayServerOptions = {}, components: RelayServerComponents = {}) {
    this.config = validateConfig(options);
    this.clock = components.clock ?? (() => Math.floor(performance.now()));
    this.log = components.loggers ?? createLoggers();
    this.reapIntervalMs = components.reapIntervalMs ?? REAP_INTERVAL_MS;
    this.table = new SessionTable({
      sessionTimeoutMs: this.config.sessionTimeoutSecs * 1000,
      maxSessions: this.config.maxSessions,
      maxSessionsPerIp: this.config.maxSessionsPerIp,
      wheelTickMs: Math.max(1, Math.min(this.reapIntervalMs || REAP_INTERVAL_MS, REAP_INTERVAL_MS)),
    });
    this.limiter = new RegistrationRateLimiter(this.config.registrationsPerSecPerIp, this.config.registrationBurstPerIp);
  }

  /** Binds the socket (and the metrics server); safe to call twice. Resolves to the bound address. */
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
    const socket = dgram.createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      ipv6Only: false, // SPEC 1.1: `::` is dual-stack
      recvBufferSize: this.config.recvBufferBytes || undefined,
      sendBufferSize: this.config.sendBufferBytes || undefined,
      lookup: literalLookup(family),
    });
    this.socket = socket;
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind({ port, address: ip, exclusive: true }, () => {
          socket.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      this.state = 'closed';
      socket.close();
      const e = err as NodeJS.ErrnoException;
      throw new RelayError('QR_ERR_BIND', `cannot bind UDP ${formatAddress(ip, port)}: ${e.code ?? e.message}`);
    }
    // SPEC 4.2: a socket error is logged and counted, never fatal.
    socket.on('error', this.onSocketError);
    socket.on('message', this.onMessage);
    this.boundAddress = socket.address();
    try {
      this.recvBufferBytes = socket.getRecvBufferSize();
      this.sendBufferBytes = socket.getSendBufferSize();
    } catch {
      // not every platform reports them
    }
    if (this.config.metricsPort !== undefined) {
      // Loaded here, not at the top: a relay without metrics never evaluates prom-client.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { MetricsServer } = require('./metrics-http') as typeof import('./metrics-http');
      const metrics = new MetricsServer({
        counters: this.counters,
        sessionsOpen: () => this.table.size,
        sessionsPaired: () => this.table.pairedCount,
        summary: () => this.summary(),
      });
      this.metrics = metrics;
      try {
        const m = await metrics.listen(this.config.metricsHost, this.config.metricsPort);
        this.log.relay('metrics on http://%s/metrics', formatAddress(m.address, m.port));
      } catch (err) {
        this.state = 'closed';
        socket.close();
        const e = err as NodeJS.ErrnoException;
        throw new RelayError('QR_ERR_BIND', `cannot serve metrics on ${formatAddress(this.config.metricsHost, this.config.metricsPort)}: ${e.code ?? e.message}`);
      }
    }
    if (this.reapIntervalMs > 0) {
      this.reaper = setInterval(() => this.reap(), this.reapIntervalMs);
      this.reaper.unref(); // never what keeps the process alive
    }
    this.startedAt = this.clock();
    this.state = 'running';
    const a = this.boundAddress;
    // SPEC 3.2: the start line, as the original prints it.
    this.log.relay('UDP relay listening on %s', formatAddress(a.address, a.port));
    this.log.relay(
      'session timeout %d s, max sessions %d (%d per IP), %d registrations/s per IP, implicit rebind %s, socket buffers recv %d send %d bytes',
      this.config.sessionTimeoutSecs, this.config.maxSessions, this.config.maxSessionsPerIp,
      this.config.registrationsPerSecPerIp, this.config.implicitRebind ? 'on' : 'off', this.recvBufferBytes, this.sendBufferBytes,
    );
    return a;
  }

  /** The bound UDP address (after start). */
  address(): AddressInfo {
    if (this.boundAddress === undefined) throw new RelayError('QR_ERR_STATE', 'relay is not started');
    return this.boundAddress;
  }

  /** The metrics server's address, when --metrics-port is set. */
  metricsAddress(): AddressInfo | undefined {
    return this.metrics?.address();
  }

  /** Stops: reaper, UDP socket, metrics server; logs and returns the summary. Safe to call twice. */
  close(): Promise<RelaySummary> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<RelaySummary> {
    if (this.starting !== undefined) await this.starting.catch(() => undefined);
    this.state = 'closing';
    if (this.reaper !== undefined) clearInterval(this.reaper);
    this.reaper = undefined;
    const socket = this.socket;
    if (socket !== undefined) {
      socket.off('message', this.onMessage);
      await new Promise<void>((resolve) => {
        try {
          socket.close(() => resolve());
        } catch {
          resolve(); // already closed (a failed start)
        }
      });
      socket.off('error', this.onSocketError);
    }
    await this.metrics?.close();
    const summary = this.summary();
    this.state = 'closed';
    if (socket !== undefined && this.boundAddress !== undefined) this.log.relay(formatSummary(summary));
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

  /** One reaper pass (SPEC 2.5); the timer calls this, tests may too. Returns how many sessions went. */
  reap(now = this.clock()): number {
    const removed = this.table.expire(now);
    this.limiter.sweep(now);
    this.counters.sessionsReaped += removed.length;
    for (const s of removed) if (this.mayLogSession('reaped', now)) this.log.session('session %s reaped after %d s idle', s.id, Math.round((now - s.lastActive) / 1000));
    return removed.length;
  }

  // ---- the datagram path

  private readonly onSent = (err: Error | null): void => {
    // SPEC 4.2: a failed send (a vanished peer, a full buffer) is counted, never thrown.
    if (err) this.counters.sendErrors++;
  };

  private readonly onSocketError = (err: Error): void => {
    this.counters.socketErrors++;
    if (this.mayLog(this.refusalLog, this.log.relay, 'socket-error', this.clock())) this.log.relay('socket error (relay continues): %s', err.message);
  };

  private readonly onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    const c = this.counters;
    const len = msg.length;
    c.datagramsReceived++;
    c.bytesReceived += len;
    const ip = ipKeyOf(rinfo.address);

    if (len >= 4 && msg[0] === R) {
      const m = classify(msg);
      if (m.kind === 'register') {
        this.onRegister(msg, m.id, ip, rinfo.address, rinfo.port);
        return;
      }
      if (m.kind === 'bad-register' && this.table.find(ip, rinfo.address, rinfo.port) === undefined) {
        // SPEC 1.3: ERR:BAD to an unregistered address, unless that would be
        // longer than the request. (From a registered peer a malformed REG: is
        // data, SPEC 1.4: a QUIC short-header packet may begin with those bytes.)
        c.regBad++;
        this.reply(ERR_BAD, msg, rinfo.address, rinfo.port);
        if (this.mayLogRefusal('bad')) this.log.limits('ERR:BAD to %s: malformed registration (%d bytes)', formatAddress(rinfo.address, rinfo.port), len);
        return;
      }
    }

    // SPEC 2.3: data from a registered peer goes to its partner, or is dropped
    // while the partner has not arrived.
    const session = this.table.dataFrom(ip, rinfo.address, rinfo.port, this.clock());
    if (session === undefined) {
      this.onUnknownData(msg, ip, rinfo);
      return;
    }
    if (!session.paired) {
      c.droppedUnpaired++;
      c.droppedUnpairedBytes += len;
      if (this.log.datagram.enabled) this.log.datagram('%d bytes from %s dropped: session %s not paired', len, formatAddress(rinfo.address, rinfo.port), session.id);
      return;
    }
    this.forward(msg, session);
  };

  /** Sends to the partner of the slot that sent last (the table has just recorded it). */
  private forward(msg: Buffer, s: Session): void {
    const c = this.counters;
    c.forwardedDatagrams++;
    c.forwardedBytes += msg.length;
    this.socket!.send(msg, s.toPort, s.toAddress, this.onSent);
    if (this.log.datagram.enabled) this.log.datagram('%d bytes forwarded to %s', msg.length, formatAddress(s.toAddress, s.toPort));
  }

  /** SPEC 2.4: data from an address no session knows. */
  private onUnknownData(msg: Buffer, ip: IpKey, rinfo: dgram.RemoteInfo): void {
    const c = this.counters;
    const len = msg.length;
    if (this.config.implicitRebind) {
      const now = this.clock();
      const r = this.table.implicitRebind(ip, rinfo.address, rinfo.port, now);
      if (r.outcome === 'rebound') {
        c.rebindsImplicit++;
        if (this.mayLogSession('rebound', now)) this.log.session('session %s: %s rebound to %s (data)', r.session.id, formatAddress(r.previousAddress, r.previousPort), formatAddress(rinfo.address, rinfo.port));
        this.forward(msg, r.session);
        return;
      }
      if (r.outcome === 'ambiguous') {
        c.droppedAmbiguousSource++;
        c.droppedAmbiguousSourceBytes += len;
        if (this.log.datagram.enabled) this.log.datagram('%d bytes from %s dropped: several peers share its IP', len, formatAddress(rinfo.address, rinfo.port));
        return;
      }
    }
    c.droppedUnknownSource++;
    c.droppedUnknownSourceBytes += len;
    if (this.log.datagram.enabled) this.log.datagram('%d bytes from unregistered %s dropped', len, formatAddress(rinfo.address, rinfo.port));
  }

  /** SPEC 2.2, 4.1: a well-formed registration. */
  private onRegister(msg: Buffer, id: string, ip: IpKey, address: string, port: number): void {
    const c = this.counters;
    const now = this.clock();
    // SPEC 4.1: keepalives are never refused; anything else spends a token.
    if (!this.table.isKeepalive(ip, address, port, id) && !this.limiter.take(ip, now)) {
      c.regBusyRate++;
      this.reply(ERR_BUSY, msg, address, port);
      if (this.mayLogRefusal('busy-rate')) this.log.limits('ERR:BUSY to %s for session %s: over %d registrations/s from its IP', formatAddress(address, port), id, this.config.registrationsPerSecPerIp);
      return;
    }
    const r = this.table.register(ip, address, port, id, now);
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
        if (this.mayLogSession('created', now)) this.log.session('session %s created by %s', id, formatAddress(address, port));
        return;
      case 'joined': {
        c.regJoined++;
        this.reply(ACK, msg, address, port);
        const s = r.session as Session; // the joiner took slot b
        if (this.mayLogSession('paired', now)) this.log.session('session %s paired: %s <-> %s', id, formatAddress(s.aAddress, s.aPort), formatAddress(address, port));
        return;
      }
      case 'rebound':
        c.regRebound++;
        c.rebindsExplicit++;
        this.reply(ACK, msg, address, port);
        if (this.mayLogSession('rebound', now)) this.log.session('session %s: %s rebound to %s (REG)', id, formatAddress(r.previousAddress ?? '?', r.previousPort ?? 0), formatAddress(address, port));
        return;
      case 'full':
        c.regFull++;
        this.reply(ERR_FULL, msg, address, port);
        if (this.mayLogRefusal('full')) this.log.limits('ERR:FULL to %s: session %s already holds two other peers', formatAddress(address, port), id);
        return;
      case 'busy-sessions':
        c.regBusySessions++;
        this.reply(ERR_BUSY, msg, address, port);
        if (this.mayLogRefusal('busy-sessions')) this.log.limits('ERR:BUSY to %s for session %s: %d sessions open (--max-sessions)', formatAddress(address, port), id, this.table.size);
        return;
      case 'busy-ip':
        c.regBusyIp++;
        this.reply(ERR_BUSY, msg, address, port);
        if (this.mayLogRefusal('busy-ip')) this.log.limits('ERR:BUSY to %s for session %s: its IP is in %d sessions (--max-sessions-per-ip)', formatAddress(address, port), id, this.table.sessionsOnIp(ip));
        return;
      default: {
        const never: never = r.outcome;
        throw new Error(`unhandled registration outcome ${String(never)}`);
      }
    }
  }

  private noteLeft(r: RegisterResult, address: string, port: number, now: number): void {
    if (r.leftRemoved) this.counters.sessionsEmptied++;
    if (this.mayLogSession('left', now)) this.log.session('%s left session %s%s', formatAddress(address, port), r.left!.id, r.leftRemoved ? ' (now empty, removed)' : '');
  }

  /** SPEC 1.3: one reply datagram to the source, never longer than the request. */
  private reply(reply: Buffer, request: Buffer, address: string, port: number): void {
    if (!replyFits(reply, request)) {
      this.counters.repliesSuppressed++;
      return;
    }
    this.socket!.send(reply, port, address, this.onSent);
  }

  /**
   * True when a line of this cause may be written now (SPEC 4.1: refusals at
   * most once a second per cause; session events 50 a second per kind). Asked
   * before the line is formatted, so a flood builds no strings. The first line
   * after a held-back stretch is preceded by how many were held back.
   */
  private mayLog(limiter: LogLimiter, logger: Logger, cause: string, now: number): boolean {
    if (logger.enabled === false) return false; // namespace off: build nothing
    const held = limiter.admit(cause, now);
    if (held > 0) logger('(%d more "%s" lines held back in the last second)', held, cause);
    return held >= 0;
  }

  private mayLogRefusal(cause: string): boolean {
    return this.mayLog(this.refusalLog, this.log.limits, cause, this.clock());
  }

  private mayLogSession(cause: string, now: number): boolean {
    return this.mayLog(this.eventLog, this.log.session, cause, now);
  }
}

/** Creates a relay; call start() to bind it. */
export function createRelayServer(options?: RelayServerOptions, components?: RelayServerComponents): RelayServer {
  return new RelayServer(options, components);
}

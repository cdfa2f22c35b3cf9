// SPEC 3.3, 3.6: /metrics (Prometheus text), /healthz and /readyz over HTTP,
// on 127.0.0.1 unless told otherwise. It attaches to a relay from outside:
// every figure is read at scrape time from the relay's plain counters and its
// session table; nothing here runs per datagram. The CLI loads this module
// only when --metrics-port is given, so a relay without metrics never
// evaluates prom-client.

import * as http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { REGISTRATION_RESULTS } from './counters';
import type { RelayCounters, RelaySummary } from './counters';
import { STREAM_CLOSE_REASONS } from './stream-leg';

/** What the metrics read: a RelayServer is one. */
export interface MetricsSource {
  readonly counters: RelayCounters;
  readonly table: { readonly size: number; readonly pairedCount: number };
  readonly draining: boolean;
  readonly version: string;
  readonly rateTrackedIps: number;
  /** Which I/O path carries datagrams ('native' or 'dgram'), once started. */
  readonly ioKind?: string | undefined;
  /** What the I/O path counts itself: kernel receive errors, and sends that waited for the socket (native only). */
  ioCounts?(): { receiveErrors: number; sendsQueued: number };
  summary(): RelaySummary;
  /** SPEC 6: the WebSocket leg's figures, when it runs. */
  readonly streams?: StreamFigures | undefined;
  /** /debug/sessions, when the source has sessions to show. */
  debugSessions?(limit: number): unknown;
}

/** What the WebSocket leg counts (stream-leg.ts's StreamLeg is one). */
export interface StreamFigures {
  readonly connections: number;
  readonly accepted: number;
  readonly closedBy: Readonly<Record<string, number>>;
  readonly datagramsIn: number;
  readonly bytesIn: number;
  readonly datagramsOut: number;
  readonly bytesOut: number;
  readonly tlsReloads: number;
}

/** /debug/sessions shows this many sessions unless ?limit= says otherwise (at most MAX). */
const DEBUG_SESSIONS_DEFAULT = 1000;
const DEBUG_SESSIONS_MAX = 10_000;

/** The registry with the relay's metrics and the process figures. */
export function createRegistry(src: MetricsSource): Registry {
  const registry = new Registry();
  const c = src.counters;
  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  };
  const labelled = (name: string, help: string, label: string, values: Record<string, () => number>): void => {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      collect() {
        this.reset();
        for (const [v, read] of Object.entries(values)) this.inc({ [label]: v }, read());
      },
    });
  };
  new Gauge({
    name: 'quic_relay_build_info',
    help: 'The running build: always 1, labelled with its version',
    labelNames: ['version'],
    registers: [registry],
    collect() {
      this.set({ version: src.version }, 1);
    },
  });
  new Gauge({
    name: 'quic_relay_io_info',
    help: 'The I/O path in use: always 1, labelled native or dgram',
    labelNames: ['path'],
    registers: [registry],
    collect() {
      this.reset();
      if (src.ioKind !== undefined) this.set({ path: src.ioKind }, 1);
    },
  });
  counter('quic_relay_receive_errors_total', 'Errors the kernel reported on receive (the socket carries on)', () => src.ioCounts?.().receiveErrors ?? 0);
  counter(
    'quic_relay_sends_queued_total',
    'Datagrams that waited for the socket to take them (EAGAIN; dropped past the queue bound, counted as send errors)',
    () => src.ioCounts?.().sendsQueued ?? 0,
  );
  new Gauge({
    name: 'quic_relay_sessions',
    help: 'Sessions open',
    registers: [registry],
    collect() {
      this.set(src.table.size);
    },
  });
  new Gauge({
    name: 'quic_relay_sessions_paired',
    help: 'Sessions with both peers registered',
    registers: [registry],
    collect() {
      this.set(src.table.pairedCount);
    },
  });
  new Gauge({
    name: 'quic_relay_rate_limited_ips',
    help: 'Source IPs the registration rate limiter holds a bucket for',
    registers: [registry],
    collect() {
      this.set(src.rateTrackedIps);
    },
  });
  new Gauge({
    name: 'quic_relay_draining',
    help: '1 while draining (SIGUSR2): no new sessions',
    registers: [registry],
    collect() {
      this.set(src.draining ? 1 : 0);
    },
  });
  labelled(
    'quic_relay_registrations_total',
    'Registrations by result',
    'result',
    Object.fromEntries(REGISTRATION_RESULTS.map((r) => [r, () => c.registrations[r]])),
  );
  counter('quic_relay_address_queries_total', 'Address queries (ADDR?) answered or suppressed', () => c.addressQueries);
  counter('quic_relay_received_datagrams_total', 'Datagrams received', () => c.datagramsReceived);
  counter('quic_relay_received_bytes_total', 'Bytes received', () => c.bytesReceived);
  counter('quic_relay_forwarded_datagrams_total', 'Datagrams forwarded to the other peer', () => c.forwardedDatagrams);
  counter('quic_relay_forwarded_bytes_total', 'Bytes forwarded to the other peer', () => c.forwardedBytes);
  // One list of drop reasons serves both counters, so neither can miss one.
  const dropped: Record<string, [() => number, () => number]> = {
    unpaired: [() => c.droppedUnpaired, () => c.droppedUnpairedBytes],
    unknown_source: [() => c.droppedUnknownSource, () => c.droppedUnknownSourceBytes],
    ambiguous_source: [() => c.droppedAmbiguousSource, () => c.droppedAmbiguousSourceBytes],
    rate: [() => c.droppedRate, () => c.droppedRateBytes],
    loop: [() => c.droppedLoop, () => c.droppedLoopBytes],
    source_port_zero: [() => c.droppedPortZero, () => c.droppedPortZeroBytes],
    backpressure: [() => c.droppedBackpressure, () => c.droppedBackpressureBytes],
  };
  const pick = (i: 0 | 1): Record<string, () => number> => Object.fromEntries(Object.entries(dropped).map(([reason, reads]) => [reason, reads[i]]));
  labelled(
    'quic_relay_dropped_datagrams_total',
    'Datagrams dropped, by reason (data not forwarded; loop and source_port_zero: anything from such a source)',
    'reason',
    pick(0),
  );
  labelled('quic_relay_dropped_bytes_total', 'Bytes of the datagrams dropped, by reason', 'reason', pick(1));
  labelled('quic_relay_rebinds_total', 'Peers moved to a new port after a NAT change', 'kind', {
    explicit: () => c.rebindsExplicit,
    implicit: () => c.rebindsImplicit,
  });
  // SPEC 6: by transport. The totals above count both; these split them.
  const ws = (read: (f: StreamFigures) => number) => (): number => (src.streams === undefined ? 0 : read(src.streams));
  labelled('quic_relay_received_datagrams_by_transport_total', 'Datagrams received, by transport (udp, ws)', 'transport', {
    udp: () => c.datagramsReceived - ws((f) => f.datagramsIn)(),
    ws: ws((f) => f.datagramsIn),
  });
  labelled('quic_relay_received_bytes_by_transport_total', 'Bytes received, by transport (udp, ws)', 'transport', {
    udp: () => c.bytesReceived - ws((f) => f.bytesIn)(),
    ws: ws((f) => f.bytesIn),
  });
  counter(
    'quic_relay_ws_sent_datagrams_total',
    'Datagrams sent to WebSocket peers (forwards and replies)',
    ws((f) => f.datagramsOut),
  );
  counter(
    'quic_relay_ws_sent_bytes_total',
    'Bytes sent to WebSocket peers',
    ws((f) => f.bytesOut),
  );
  new Gauge({
    name: 'quic_relay_ws_connections',
    help: 'WebSocket connections open (upgraded)',
    registers: [registry],
    collect() {
      this.set(src.streams?.connections ?? 0);
    },
  });
  counter(
    'quic_relay_ws_connections_accepted_total',
    'WebSocket connections upgraded',
    ws((f) => f.accepted),
  );
  labelled(
    'quic_relay_ws_connections_closed_total',
    'WebSocket connections refused or closed, by reason',
    'reason',
    Object.fromEntries(STREAM_CLOSE_REASONS.map((r) => [r, ws((f) => f.closedBy[r] ?? 0)])),
  );
  counter(
    'quic_relay_tls_reloads_total',
    'Times the TLS certificate and key were re-read (SIGHUP)',
    ws((f) => f.tlsReloads),
  );
  counter('quic_relay_sessions_created_total', 'Sessions created', () => c.sessionsCreated);
  counter('quic_relay_sessions_reaped_total', 'Sessions removed after the session timeout', () => c.sessionsReaped);
  counter('quic_relay_sessions_emptied_total', 'Sessions removed because their last peer moved to another session', () => c.sessionsEmptied);
  counter('quic_relay_replies_suppressed_total', 'Replies not sent because they would be longer than the request', () => c.repliesSuppressed);
  counter('quic_relay_send_errors_total', 'Datagrams the socket failed to send', () => c.sendErrors);
  counter('quic_relay_socket_errors_total', 'Errors reported by the UDP socket', () => c.socketErrors);
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Bounds of the metrics server: it shares the event loop with forwarding, so nothing a scraper does may hold it long. */
export interface MetricsHttpOptions {
  /** Connections held at once; more are closed as they come. @default 16 */
  maxConnections?: number;
  /** A request's headers must arrive within this. @default 5000 */
  headersTimeoutMs?: number;
  /** A whole request must arrive within this. @default 10000 */
  requestTimeoutMs?: number;
  /** An idle kept-alive connection is closed after this. @default 5000 */
  keepAliveTimeoutMs?: number;
  /**
   * Renderings of /metrics are at least this far apart; a scrape that comes
   * sooner waits for the next one (made after it arrived: never stale), and
   * every scrape waiting shares it. Rendering takes about a millisecond, so
   * scraping flat out costs forwarding at most 1% of the core. @default 100
   */
  minRenderGapMs?: number;
  /** Monotonic milliseconds. @default performance.now */
  clock?: () => number;
}

export class MetricsHttpServer {
  private readonly server: http.Server;
  private readonly registry: Registry;
  private readonly minRenderGapMs: number;
  private readonly clock: () => number;
  private lastRenderAt = -Infinity;
  /** The rendering the scrapes that arrived since the last one will get. */
  private nextRender: Promise<string> | undefined;
  private renderTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly src: MetricsSource,
    options: MetricsHttpOptions = {},
  ) {
    this.registry = createRegistry(src);
    this.minRenderGapMs = options.minRenderGapMs ?? 100;
    this.clock = options.clock ?? (() => performance.now());
    this.server = http.createServer(
      {
        headersTimeout: options.headersTimeoutMs ?? 5000,
        requestTimeout: options.requestTimeoutMs ?? 10_000,
        keepAliveTimeout: options.keepAliveTimeoutMs ?? 5000,
        // Node checks the two timeouts on this interval (30 s by default): make it fit them.
        connectionsCheckingInterval: Math.min(options.headersTimeoutMs ?? 5000, 1000),
      },
      (req, res) => this.handle(req, res),
    );
    this.server.maxConnections = options.maxConnections ?? 16;
  }

  /** The metrics text, rendered after the request arrived, at most once per minRenderGapMs. */
  private metricsText(): Promise<string> {
    if (this.nextRender !== undefined) return this.nextRender;
    const wait = this.lastRenderAt + this.minRenderGapMs - this.clock();
    if (wait <= 0) return this.render();
    this.nextRender = new Promise<void>((resolve) => {
      this.renderTimer = setTimeout(resolve, wait);
    }).then(() => {
      this.renderTimer = undefined;
      this.nextRender = undefined; // scrapes from now on wait for a later rendering
      return this.render();
    });
    return this.nextRender;
  }

  private render(): Promise<string> {
    this.lastRenderAt = this.clock();
    return this.registry.metrics();
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  close(): Promise<void> {
    if (this.renderTimer !== undefined) clearTimeout(this.renderTimer);
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      this.metricsText().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    } else if (path === '/healthz') {
      // SPEC 3.6: alive while draining too; only /readyz says "send no one new".
      const body = JSON.stringify({ status: 'ok', version: this.src.version, draining: this.src.draining, ...this.src.summary() });
      res.writeHead(200, { 'content-type': 'application/json' }).end(req.method === 'HEAD' ? undefined : `${body}\n`);
    } else if (path === '/readyz') {
      const ready = !this.src.draining;
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(req.method === 'HEAD' ? undefined : ready ? 'ready\n' : 'draining\n');
    } else if (path === '/debug/sessions' && this.src.debugSessions !== undefined) {
      const asked = Number(new URLSearchParams((req.url ?? '').split('?')[1] ?? '').get('limit') ?? DEBUG_SESSIONS_DEFAULT); // never throws, whatever the URL
      const limit = Number.isInteger(asked) && asked >= 0 ? Math.min(asked, DEBUG_SESSIONS_MAX) : DEBUG_SESSIONS_DEFAULT;
      const body = JSON.stringify(this.src.debugSessions(limit));
      res.writeHead(200, { 'content-type': 'application/json' }).end(req.method === 'HEAD' ? undefined : `${body}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz, /readyz or /debug/sessions\n');
    }
  }
}

// SPEC 3.3: the relay's metrics, each read at scrape time from its plain
// counters, its session table and the WebSocket leg's figures (nothing runs
// per datagram), and the process figures. Their names are a contract
// (docs/contract.md): a name here never changes.

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

type Read = () => number;

/** The four shapes a metric takes here, each read when scraped. */
class Metrics {
  constructor(readonly registry: Registry) {}

  counter(name: string, help: string, read: Read): void {
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }

  labelled(name: string, help: string, label: string, values: Record<string, Read>): void {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [v, read] of Object.entries(values)) this.inc({ [label]: v }, read());
      },
    });
  }

  gauge(name: string, help: string, read: Read): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  /** Always 1, labelled with what is in use (none yet: no sample). */
  info(name: string, help: string, label: string, read: () => string | undefined): void {
    new Gauge({
      name,
      help,
      labelNames: [label],
      registers: [this.registry],
      collect() {
        this.reset();
        const value = read();
        if (value !== undefined) this.set({ [label]: value }, 1);
      },
    });
  }
}

/** The registry with the relay's metrics and the process figures. */
export function createRegistry(src: MetricsSource): Registry {
  const m = new Metrics(new Registry());
  relayMetrics(m, src);
  trafficMetrics(m, src.counters);
  streamMetrics(m, src);
  sessionMetrics(m, src.counters);
  collectDefaultMetrics({ register: m.registry });
  return m.registry;
}

/** The build, the I/O path, the table, the limiter, the drain, the registrations. */
function relayMetrics(m: Metrics, src: MetricsSource): void {
  const c = src.counters;
  m.info('quic_relay_build_info', 'The running build: always 1, labelled with its version', 'version', () => src.version);
  m.info('quic_relay_io_info', 'The I/O path in use: always 1, labelled native or dgram', 'path', () => src.ioKind);
  m.counter('quic_relay_receive_errors_total', 'Errors the kernel reported on receive (the socket carries on)', () => src.ioCounts?.().receiveErrors ?? 0);
  m.counter(
    'quic_relay_sends_queued_total',
    'Datagrams that waited for the socket to take them (EAGAIN; dropped past the queue bound, counted as send errors)',
    () => src.ioCounts?.().sendsQueued ?? 0,
  );
  m.gauge('quic_relay_sessions', 'Sessions open', () => src.table.size);
  m.gauge('quic_relay_sessions_paired', 'Sessions with both peers registered', () => src.table.pairedCount);
  m.gauge('quic_relay_rate_limited_ips', 'Source IPs the registration rate limiter holds a bucket for', () => src.rateTrackedIps);
  m.gauge('quic_relay_draining', '1 while draining (SIGUSR2): no new sessions', () => (src.draining ? 1 : 0));
  m.labelled(
    'quic_relay_registrations_total',
    'Registrations by result',
    'result',
    Object.fromEntries(REGISTRATION_RESULTS.map((r) => [r, () => c.registrations[r]])),
  );
  m.counter('quic_relay_address_queries_total', 'Address queries (ADDR?) answered or suppressed', () => c.addressQueries);
}

/** Datagrams and bytes in, forwarded and dropped (by reason), and rebinds. */
function trafficMetrics(m: Metrics, c: RelayCounters): void {
  m.counter('quic_relay_received_datagrams_total', 'Datagrams received', () => c.datagramsReceived);
  m.counter('quic_relay_received_bytes_total', 'Bytes received', () => c.bytesReceived);
  m.counter('quic_relay_forwarded_datagrams_total', 'Datagrams forwarded to the other peer', () => c.forwardedDatagrams);
  m.counter('quic_relay_forwarded_bytes_total', 'Bytes forwarded to the other peer', () => c.forwardedBytes);
  // One list of drop reasons serves both counters, so neither can miss one.
  const dropped: Record<string, [Read, Read]> = {
    unpaired: [() => c.droppedUnpaired, () => c.droppedUnpairedBytes],
    unknown_source: [() => c.droppedUnknownSource, () => c.droppedUnknownSourceBytes],
    ambiguous_source: [() => c.droppedAmbiguousSource, () => c.droppedAmbiguousSourceBytes],
    rate: [() => c.droppedRate, () => c.droppedRateBytes],
    loop: [() => c.droppedLoop, () => c.droppedLoopBytes],
    source_port_zero: [() => c.droppedPortZero, () => c.droppedPortZeroBytes],
    backpressure: [() => c.droppedBackpressure, () => c.droppedBackpressureBytes],
  };
  const pick = (i: 0 | 1): Record<string, Read> => Object.fromEntries(Object.entries(dropped).map(([reason, reads]) => [reason, reads[i]]));
  m.labelled(
    'quic_relay_dropped_datagrams_total',
    'Datagrams dropped, by reason (data not forwarded; loop and source_port_zero: anything from such a source)',
    'reason',
    pick(0),
  );
  m.labelled('quic_relay_dropped_bytes_total', 'Bytes of the datagrams dropped, by reason', 'reason', pick(1));
  m.labelled('quic_relay_rebinds_total', 'Peers moved to a new port after a NAT change', 'kind', {
    explicit: () => c.rebindsExplicit,
    implicit: () => c.rebindsImplicit,
  });
}

/** SPEC 6: by transport (the totals count both), and the WebSocket leg's connections. */
function streamMetrics(m: Metrics, src: MetricsSource): void {
  const c = src.counters;
  /** One figure of the leg; 0 while it does not run. */
  const ws =
    (key: Exclude<keyof StreamFigures, 'closedBy'>): Read =>
    () =>
      src.streams?.[key] ?? 0;
  const byTransport = (name: string, help: string, total: Read, onWs: Read): void =>
    m.labelled(name, help, 'transport', { udp: () => total() - onWs(), ws: onWs });
  byTransport('quic_relay_received_datagrams_by_transport_total', 'Datagrams received, by transport (udp, ws)', () => c.datagramsReceived, ws('datagramsIn'));
  byTransport('quic_relay_received_bytes_by_transport_total', 'Bytes received, by transport (udp, ws)', () => c.bytesReceived, ws('bytesIn'));
  m.counter('quic_relay_ws_sent_datagrams_total', 'Datagrams sent to WebSocket peers (forwards and replies)', ws('datagramsOut'));
  m.counter('quic_relay_ws_sent_bytes_total', 'Bytes sent to WebSocket peers', ws('bytesOut'));
  m.gauge('quic_relay_ws_connections', 'WebSocket connections open (upgraded)', ws('connections'));
  m.counter('quic_relay_ws_connections_accepted_total', 'WebSocket connections upgraded', ws('accepted'));
  m.labelled(
    'quic_relay_ws_connections_closed_total',
    'WebSocket connections refused or closed, by reason',
    'reason',
    Object.fromEntries(STREAM_CLOSE_REASONS.map((r) => [r, () => src.streams?.closedBy[r] ?? 0])),
  );
  m.counter('quic_relay_tls_reloads_total', 'Times the TLS certificate and key were re-read (SIGHUP)', ws('tlsReloads'));
}

/** Sessions created and removed, replies held back, and errors. */
function sessionMetrics(m: Metrics, c: RelayCounters): void {
  m.counter('quic_relay_sessions_created_total', 'Sessions created', () => c.sessionsCreated);
  m.counter('quic_relay_sessions_reaped_total', 'Sessions removed after the session timeout', () => c.sessionsReaped);
  m.counter('quic_relay_sessions_emptied_total', 'Sessions removed because their last peer moved to another session', () => c.sessionsEmptied);
  m.counter('quic_relay_replies_suppressed_total', 'Replies not sent because they would be longer than the request', () => c.repliesSuppressed);
  m.counter('quic_relay_send_errors_total', 'Datagrams the socket failed to send', () => c.sendErrors);
  m.counter('quic_relay_socket_errors_total', 'Errors reported by the UDP socket', () => c.socketErrors);
}

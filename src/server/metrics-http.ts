// SPEC 3.3: /metrics (Prometheus text) and /healthz over HTTP, on 127.0.0.1
// unless told otherwise. Every figure is read at scrape time from the plain
// counters and the session table; nothing here runs per datagram. Loaded only
// when --metrics-port is given, so an idle relay without metrics pays nothing.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { RelayCounters, RelaySummary } from './counters';

export interface MetricsSource {
  counters: RelayCounters;
  sessionsOpen(): number;
  sessionsPaired(): number;
  summary(): RelaySummary;
}

/** The registry with the relay's metrics and the process figures. */
export function createRegistry(src: MetricsSource): Registry {
  const registry = new Registry();
  const c = src.counters;
  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({
      name, help, registers: [registry],
      collect() { this.reset(); this.inc(read()); },
    });
  };
  const labelled = (name: string, help: string, label: string, values: Record<string, () => number>): void => {
    new Counter({
      name, help, labelNames: [label], registers: [registry],
      collect() {
        this.reset();
        for (const [v, read] of Object.entries(values)) this.inc({ [label]: v }, read());
      },
    });
  };
  new Gauge({ name: 'quic_relay_sessions', help: 'Sessions open', registers: [registry], collect() { this.set(src.sessionsOpen()); } });
  new Gauge({ name: 'quic_relay_sessions_paired', help: 'Sessions with both peers registered', registers: [registry], collect() { this.set(src.sessionsPaired()); } });
  labelled('quic_relay_registrations_total', 'Registrations by result', 'result', {
    created: () => c.regCreated, joined: () => c.regJoined, keepalive: () => c.regKeepalive, rebound: () => c.regRebound,
    full: () => c.regFull, bad: () => c.regBad, busy_rate: () => c.regBusyRate, busy_sessions: () => c.regBusySessions, busy_ip: () => c.regBusyIp,
  });
  counter('quic_relay_received_datagrams_total', 'Datagrams received', () => c.datagramsReceived);
  counter('quic_relay_received_bytes_total', 'Bytes received', () => c.bytesReceived);
  counter('quic_relay_forwarded_datagrams_total', 'Datagrams forwarded to the other peer', () => c.forwardedDatagrams);
  counter('quic_relay_forwarded_bytes_total', 'Bytes forwarded to the other peer', () => c.forwardedBytes);
  labelled('quic_relay_dropped_datagrams_total', 'Data datagrams not forwarded, by reason', 'reason', {
    unpaired: () => c.droppedUnpaired, unknown_source: () => c.droppedUnknownSource, ambiguous_source: () => c.droppedAmbiguousSource,
  });
  labelled('quic_relay_dropped_bytes_total', 'Bytes of data datagrams not forwarded, by reason', 'reason', {
    unpaired: () => c.droppedUnpairedBytes, unknown_source: () => c.droppedUnknownSourceBytes, ambiguous_source: () => c.droppedAmbiguousSourceBytes,
  });
  labelled('quic_relay_rebinds_total', 'Peers moved to a new port after a NAT change', 'kind', {
    explicit: () => c.rebindsExplicit, implicit: () => c.rebindsImplicit,
  });
  counter('quic_relay_sessions_created_total', 'Sessions created', () => c.sessionsCreated);
  counter('quic_relay_sessions_reaped_total', 'Sessions removed after the session timeout', () => c.sessionsReaped);
  counter('quic_relay_sessions_emptied_total', 'Sessions removed because their last peer moved to another session', () => c.sessionsEmptied);
  counter('quic_relay_replies_suppressed_total', 'Replies not sent because they would be longer than the request', () => c.repliesSuppressed);
  counter('quic_relay_send_errors_total', 'Datagrams the socket failed to send', () => c.sendErrors);
  counter('quic_relay_socket_errors_total', 'Errors reported by the UDP socket', () => c.socketErrors);
  collectDefaultMetrics({ register: registry });
  return registry;
}

export class MetricsServer {
  private readonly server: http.Server;
  private readonly registry: Registry;

  constructor(private readonly src: MetricsSource) {
    this.registry = createRegistry(src);
    this.server = http.createServer((req, res) => this.handle(req, res));
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
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    } else if (path === '/healthz') {
      const body = JSON.stringify({ status: 'ok', ...this.src.summary() });
      res.writeHead(200, { 'content-type': 'application/json' }).end(req.method === 'HEAD' ? undefined : `${body}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
    }
  }
}

// SPEC 3.3, 3.6: /metrics (Prometheus text), /healthz and /readyz over HTTP,
// on 127.0.0.1 unless told otherwise. It attaches to a relay from outside;
// which metrics there are, and where each is read from at scrape time, is
// metrics.ts's. Nothing here runs per datagram. The CLI loads this module
// only when --metrics-port is given, so a relay without metrics never
// evaluates prom-client.

import * as http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { createRegistry } from './metrics';
import type { MetricsSource } from './metrics';

export { createRegistry } from './metrics';
export type { MetricsSource, StreamFigures } from './metrics';

/** /debug/sessions shows this many sessions unless ?limit= says otherwise (at most MAX). */
const DEBUG_SESSIONS_DEFAULT = 1000;
const DEBUG_SESSIONS_MAX = 10_000;

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

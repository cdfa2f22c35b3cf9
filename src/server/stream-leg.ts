// SPEC 6: the WebSocket leg, for peers whose network blocks UDP. HTTP, TLS
// and RFC 6455 framing are Node's and the `ws` package's; this file only
// decides who may connect, for how long, and what happens to each message.
// Each connection is one peer address: its IP and a virtual port above the
// UDP range (isStreamPort), so the session table holds UDP and WebSocket
// peers alike and a mixed pair needs nothing special. What a message means is
// datagram-path.ts's, exactly as for a UDP datagram (SPEC 6.2).

import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { WebSocketServer } from 'ws';
import { ipKeyOf } from '../wire/address';
import type { IpKey } from '../wire/address';
import { formatAddress } from '../wire/address';
import { MAX_DATAGRAM, STREAM_HANDSHAKE_TIMEOUT_MS, STREAM_PATH } from '../wire/constants';
import type { RelayConfig } from './config';
import { RelayError } from '../wire/errors';
import type { RelayCounters } from './counters';
import { STREAM_PORT_BASE } from './session-table';
import { StreamAdmission } from './stream-admission';

/** How the leg is configured (validated in config.ts). */
export interface StreamLegConfig {
  port: number;
  host: string;
  /** PEM files; both or neither. SIGHUP re-reads them (reloadTls). */
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  /** SPEC 6.3: open connections at most, overall and per IP (IPv6: per /64). */
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** SPEC 6.3: bytes waiting to be written to one connection; past it datagrams are dropped. */
  sendQueueBytes: number;
  /** SPEC 6.3: upgrade and first REG within this long of the TCP connect. */
  handshakeTimeoutMs: number;
  /** SPEC 6.3: a ping this often; no pong by the next one closes the connection. */
  pingIntervalMs: number;
  /**
   * Reverse proxies (nginx, Caddy) that terminate TLS in front of the leg:
   * a connection from one of these IPs is the peer X-Forwarded-For names
   * last (the hop the proxy added), and counts against that peer's IP.
   */
  trustedProxies: readonly string[];
}

/** What the leg uses of a `ws` WebSocket (named here, so the library's declarations need no @types/ws). */
interface PeerSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: Buffer, options: { binary: boolean; compress: boolean }): void;
  ping(): void;
  close(code: number, reason: string): void;
  terminate(): void;
}

/**
 * SPEC 6: the leg of a relay, listening, its messages into `sink` (the
 * datagram path, which must then be told where stream ports are). `ip` is
 * the relay's resolved --host, used unless --ws-host differs.
 */
export async function startStreamLeg(
  cfg: RelayConfig,
  ip: string,
  sink: StreamSink & { attachStreams(leg: StreamLeg): void },
  counters: RelayCounters,
  clock: () => number,
  sweepMs: number,
): Promise<StreamLeg> {
  const leg = new StreamLeg(
    {
      port: cfg.wsPort!,
      host: cfg.wsHost === cfg.host ? ip : cfg.wsHost,
      tlsCert: cfg.tlsCert,
      tlsKey: cfg.tlsKey,
      trustedProxies: cfg.wsTrustedProxies,
      // SPEC 6.3: each connection is a peer; a session holds two, so twice the session limits.
      maxConnections: Math.min(cfg.wsMaxConnections, 2 * cfg.maxSessions),
      maxConnectionsPerIp: 2 * cfg.maxSessionsPerIp,
      sendQueueBytes: cfg.wsQueueBytes,
      handshakeTimeoutMs: STREAM_HANDSHAKE_TIMEOUT_MS,
      pingIntervalMs: cfg.wsPingSecs * 1000,
    },
    sink,
    counters,
    clock,
  );
  await leg.listen();
  sink.attachStreams(leg);
  leg.startSweeping(sweepMs);
  return leg;
}

/** One connection: one peer address (SPEC 6.2). */
export class StreamPeer {
  /** Registered (or not) under this address, as a UDP peer would be under ip:port. */
  readonly address: string;
  readonly ip: IpKey;
  readonly port: number;
  /** The real TCP source port: what an address query answers (SPEC 1.5). */
  readonly tcpPort: number;
  ws: PeerSocket | undefined;
  /** SPEC 6.3: when the connection must have sent a REG (upgrade included), or Infinity once it has. */
  deadline: number;
  nextPingAt = 0;
  pongPending = false;
  /** Gone from the leg (closed, or cut off): what it still delivers is ignored. */
  private gone = false;
  constructor(address: string, tcpPort: number, port: number, deadline: number) {
    this.address = address;
    this.ip = ipKeyOf(address);
    this.tcpPort = tcpPort;
    this.port = port;
    this.deadline = deadline;
  }
  get dropped(): boolean {
    return this.gone;
  }

  /** Leaves the leg; false when it already had. */
  leave(): boolean {
    if (this.gone) return false;
    this.gone = true;
    return true;
  }
}

/** What the leg hands over: each binary message, and each connection that closes. */
export interface StreamSink {
  onStreamDatagram(peer: StreamPeer, data: Buffer): void;
  onStreamClosed(peer: StreamPeer): void;
}

/** Why connections were refused or closed (quic_relay_ws_connections_closed_total{reason}). */
export const STREAM_CLOSE_REASONS = ['limit_total', 'limit_ip', 'bad_request', 'timeout', 'text_message', 'too_big', 'dead', 'peer', 'relay_closing'] as const;
export type StreamCloseReason = (typeof STREAM_CLOSE_REASONS)[number];

const SEND_OPTIONS = { binary: true, compress: false } as const;
const CLOSE_POLICY = 1008;
const CLOSE_UNSUPPORTED = 1003;

export class StreamLeg {
  private readonly server: http.Server | https.Server;
  private readonly wss: WebSocketServer;
  /** Live peers by virtual port. */
  private readonly peers = new Map<number, StreamPeer>();
  /** SPEC 6.3: the TCP connections, their limits and upgrade deadlines (stream-admission.ts). */
  private readonly admission: StreamAdmission;
  private nextPort = STREAM_PORT_BASE;
  readonly closedBy: Record<StreamCloseReason, number> = Object.fromEntries(STREAM_CLOSE_REASONS.map((r) => [r, 0])) as Record<StreamCloseReason, number>;
  accepted = 0;
  datagramsIn = 0;
  bytesIn = 0;
  datagramsOut = 0;
  bytesOut = 0;
  tlsReloads = 0;
  /** Datagrams for a connection no longer open (RelayServer adds them to the relay's send errors). */
  sendErrors = 0;
  /** Where it listens, once listening. */
  address: AddressInfo | undefined;
  private readonly trusted: Set<string>;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: StreamLegConfig,
    private readonly sink: StreamSink,
    private readonly counters: RelayCounters,
    private readonly clock: () => number,
  ) {
    this.trusted = new Set(config.trustedProxies.map(plainAddress));
    this.admission = new StreamAdmission(config, this.trusted, this.closedBy, clock);
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_DATAGRAM, // SPEC 6.3: a bigger message closes the connection (1009)
      perMessageDeflate: false,
      clientTracking: false,
    });
    const handler = (_req: http.IncomingMessage, res: http.ServerResponse): void => {
      // SPEC 6.1: anything but an upgrade at /quic-relay is an HTTP error.
      this.closedBy.bad_request++;
      res.writeHead(pathOf(_req.url) === STREAM_PATH ? 426 : 404, { 'content-type': 'text/plain', connection: 'close' });
      res.end(pathOf(_req.url) === STREAM_PATH ? 'WebSocket upgrade required\n' : 'not found\n');
    };
    this.server = config.tlsCert !== undefined ? https.createServer(readTlsPair(config.tlsCert, config.tlsKey!), handler) : http.createServer(handler);
    // SPEC 6.3: a slow handshake ends at the deadline anyway (sweep); these stop Node waiting longer.
    this.server.headersTimeout = config.handshakeTimeoutMs;
    this.server.requestTimeout = config.handshakeTimeoutMs;
    this.server.keepAliveTimeout = 1000;
    this.server.on('connection', this.onTcp);
    this.server.on('upgrade', this.onUpgrade);
    this.server.on('clientError', (_err, socket: Socket) => {
      this.closedBy.bad_request++;
      socket.destroy();
    });
    this.server.on('tlsClientError', (_err, socket: Socket) => socket.destroy());
  }

  get tls(): boolean {
    return this.config.tlsCert !== undefined;
  }

  get connections(): number {
    return this.peers.size;
  }

  /** Open TCP connections, upgraded or not. */
  get tcpConnections(): number {
    return this.admission.size;
  }

  /** Listens; a failure says which port and why (--ws-port). */
  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          new RelayError('QR_ERR_BIND', `cannot listen on TCP ${formatAddress(this.config.host, this.config.port)} (--ws-port): ${err.code ?? err.message}`),
        );
      });
      this.server.listen({ port: this.config.port, host: this.config.host, ipv6Only: false }, () => {
        this.server.removeAllListeners('error');
        this.server.on('error', () => undefined); // after listening, errors belong to connections
        this.address = this.server.address() as AddressInfo;
        resolve(this.address);
      });
    });
  }

  /** SPEC 6.3: sweep() every `ms` (deadlines and pings); 0: never (tests call sweep()). */
  startSweeping(ms: number): void {
    if (ms <= 0) return;
    this.sweeper = setInterval(() => this.sweep(this.clock()), ms);
    this.sweeper.unref(); // never what keeps the process alive
  }

  /** SPEC 6.1: re-reads the certificate and key; open connections keep theirs. Throws (and keeps the old ones) when they do not load. */
  reloadTls(): void {
    if (!(this.server instanceof https.Server)) return;
    this.server.setSecureContext(readTlsPair(this.config.tlsCert!, this.config.tlsKey!));
    this.tlsReloads++;
  }

  /**
   * SPEC 6.2: one datagram to the peer behind virtual port `port`. `copy`
   * when `data` is a buffer the caller reuses (a native receive slot): the
   * connection may hold it until the socket drains.
   */
  send(port: number, data: Buffer, length: number, copy: boolean): void {
    const peer = this.peers.get(port);
    const ws = peer?.ws;
    if (ws === undefined || ws.readyState !== 1) {
      this.sendErrors++; // a peer gone between the table's lookup and the send
      return;
    }
    // SPEC 6.3: the queue is bounded; a datagram past it is dropped, as a congested link would.
    if (ws.bufferedAmount + length > this.config.sendQueueBytes) {
      this.counters.droppedBackpressure++;
      this.counters.droppedBackpressureBytes += length;
      return;
    }
    this.datagramsOut++;
    this.bytesOut += length;
    const view = length === data.length ? data : data.subarray(0, length);
    ws.send(copy ? Buffer.from(view) : view, SEND_OPTIONS);
  }

  /** The peer behind a virtual port, for log lines. */
  peer(port: number): StreamPeer | undefined {
    return this.peers.get(port);
  }

  /**
   * SPEC 6.3: closes connections past their handshake/REG deadline, pings
   * the rest, and closes those that did not answer the last ping. Runs once
   * a second (the relay's timer); tests call it with their own `now`.
   */
  sweep(now: number): void {
    for (const peer of this.peers.values()) {
      if (now >= peer.deadline) {
        this.end(peer, 'timeout', CLOSE_POLICY, 'no REG within the handshake timeout');
        continue;
      }
      if (now < peer.nextPingAt) continue;
      if (peer.pongPending) {
        this.closedBy.dead++;
        this.drop(peer);
        peer.ws?.terminate();
        continue;
      }
      peer.pongPending = true;
      peer.nextPingAt = now + this.config.pingIntervalMs;
      peer.ws?.ping();
    }
    this.admission.sweep(now);
  }

  /** Marks a peer as having sent a REG: the deadline no longer applies (SPEC 6.3). */
  registered(peer: StreamPeer): void {
    peer.deadline = Infinity;
  }

  async close(): Promise<void> {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const peer of [...this.peers.values()]) this.end(peer, 'relay_closing', 1001, 'relay closing');
    this.admission.destroyAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.wss.close();
  }

  // ---- connections

  /** SPEC 6.3: every TCP connection counts against the limits from its first byte. */
  private readonly onTcp = (socket: Socket): void => {
    socket.setNoDelay(true); // one datagram, one segment: never held for Nagle
    this.admission.admit(socket, plainAddress(socket.remoteAddress ?? ''));
  };

  private readonly onUpgrade = (req: http.IncomingMessage, socket: Socket, head: Buffer): void => {
    if (pathOf(req.url) !== STREAM_PATH) {
      // SPEC 6.1: another path is an HTTP error.
      this.closedBy.bad_request++;
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    let address = plainAddress(socket.remoteAddress ?? '');
    let port = socket.remotePort ?? 0;
    if (this.trusted.has(address)) {
      const forwarded = lastForwardedFor(req.headers['x-forwarded-for']);
      if (forwarded === undefined) {
        this.closedBy.bad_request++;
        socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      if (!this.admission.countIp(socket, forwarded)) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      address = forwarded;
      port = 0; // the peer's source port is the proxy's to know
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const deadline = this.admission.upgraded(socket); // from here it is the peer's (its first REG)
      const peer = new StreamPeer(address, port, this.nextPort++, deadline);
      peer.ws = ws;
      peer.nextPingAt = this.clock() + this.config.pingIntervalMs;
      this.peers.set(peer.port, peer);
      this.accepted++;
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        // ws may still hand over frames it had read before we closed the
        // connection: a peer that is gone registers and sends nothing.
        if (peer.dropped) return;
        if (!isBinary) {
          // SPEC 6.3: a datagram is a binary message; text is a broken client.
          this.end(peer, 'text_message', CLOSE_UNSUPPORTED, 'binary messages only');
          return;
        }
        this.datagramsIn++;
        this.bytesIn += data.length;
        this.sink.onStreamDatagram(peer, data);
      });
      ws.on('pong', () => {
        peer.pongPending = false;
      });
      ws.on('error', (err: Error & { code?: string }) => {
        // ws closes the connection itself; a message over maxPayload is the one worth naming.
        if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.closedBy.too_big++;
      });
      ws.on('close', () => {
        if (this.drop(peer)) this.closedBy.peer++;
      });
    });
  };

  /** Closes a peer's connection for `reason`. */
  private end(peer: StreamPeer, reason: StreamCloseReason, code: number, text: string): void {
    if (!this.drop(peer)) return;
    this.closedBy[reason]++;
    peer.ws?.close(code, text);
    const ws = peer.ws;
    // A peer that does not complete the closing handshake is cut off.
    if (ws !== undefined) setTimeout(() => ws.terminate(), 1000).unref();
  }

  /** SPEC 6.2: a closed connection leaves its session at once. False when already gone. */
  private drop(peer: StreamPeer): boolean {
    if (!peer.leave()) return false;
    this.sink.onStreamClosed(peer); // first: its log line still finds the peer
    this.peers.delete(peer.port);
    return true;
  }
}

/** SPEC 6.1: the certificate and key, read and checked to parse and match before anything is served with them. */
function readTlsPair(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  const read = (file: string, flag: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new RelayError('QR_ERR_CONFIG', `${flag}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const pair = { cert: read(certFile, '--tls-cert'), key: read(keyFile, '--tls-key') };
  try {
    tls.createSecureContext(pair);
  } catch (err) {
    throw new RelayError('QR_ERR_CONFIG', `--tls-cert/--tls-key: ${(err as Error).message}`);
  }
  return pair;
}

/** The last IP of an X-Forwarded-For header (the one our proxy added), or undefined. */
function lastForwardedFor(header: string | string[] | undefined): string | undefined {
  const text = Array.isArray(header) ? header.join(',') : header;
  const last = text?.split(',').pop()?.trim();
  return last !== undefined && net.isIP(plainAddress(last)) !== 0 ? plainAddress(last) : undefined;
}

/** The path of a request URL, without its query. */
function pathOf(url: string | undefined): string {
  if (url === undefined) return '';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** `::ffff:1.2.3.4` as `1.2.3.4`: a dual-stack server's IPv4 peers, spelled as UDP's are. */
export function plainAddress(address: string): string {
  if (address.startsWith('::ffff:') && net.isIPv4(address.slice(7))) return address.slice(7);
  return address;
}

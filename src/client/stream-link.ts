// SPEC 6.4: the client's WebSocket to one relay, for networks that block UDP.
// Each binary message is one datagram each way; HTTP, TLS and framing are the
// `ws` package's, an HTTP CONNECT proxy is https-proxy-agent's. TCP_NODELAY
// is on (ws sets it on every socket it upgrades): a datagram is never held
// back for Nagle.

import { EventEmitter } from 'node:events';
import type { Agent } from 'node:http';
import { HttpsProxyAgent } from 'https-proxy-agent';
import * as tls from 'node:tls';
import WebSocket from 'ws';
import { MAX_DATAGRAM, STREAM_PATH } from '../wire/constants';
import { formatAddress } from '../wire/address';

/** How the client reaches relays' WebSocket legs. */
export interface StreamOptions {
  /** The relays' WebSocket port. @default 443 (QUIC_RELAY_WS_PORT in the CLI) */
  port?: number;
  /** wss (true) or ws. @default true (QUIC_RELAY_WS_TLS=false in the CLI) */
  tls?: boolean;
  /** Extra CA certificates to trust (NODE_EXTRA_CA_CERTS works too, process-wide). */
  ca?: string | Buffer | Array<string | Buffer>;
  /**
   * The HTTP CONNECT proxy for a relay's URL, or undefined to connect
   * directly; the CLI answers from HTTPS_PROXY, HTTP_PROXY and NO_PROXY.
   * @default none
   */
  proxyFor?: (url: string) => string | undefined;
  /** TCP + TLS + upgrade within this long, or the attempt fails. @default 5000 */
  handshakeTimeoutMs?: number;
}

export interface StreamLinkEvents {
  open: [];
  message: [data: Buffer];
  /** The connection is gone (or never came); `why` for traces. */
  close: [why: string];
}

const SEND_OPTIONS = { binary: true, compress: false } as const;

/** The wss:// (or ws://) URL of a relay's WebSocket leg. */
export function streamUrl(host: string, options: StreamOptions): string {
  const port = options.port ?? 443;
  return `${options.tls === false ? 'ws' : 'wss'}://${formatAddress(host, port)}${STREAM_PATH}`;
}

/** One WebSocket connection to one relay. */
export class StreamLink extends EventEmitter<StreamLinkEvents> {
  readonly url: string;
  private readonly ws: WebSocket;
  private ended = false;

  constructor(host: string, options: StreamOptions) {
    super();
    this.url = streamUrl(host, options);
    const proxy = options.proxyFor?.(this.url);
    const agent: Agent | undefined = proxy !== undefined ? new HttpsProxyAgent(proxy) : undefined;
    this.ws = new WebSocket(this.url, {
      perMessageDeflate: false,
      maxPayload: MAX_DATAGRAM,
      handshakeTimeout: options.handshakeTimeoutMs ?? 5000,
      ...(agent !== undefined ? { agent } : {}),
      // Through a proxy agent the TLS socket is made without the URL's host
      // (an IP is no SNI name), and Node would check the certificate against
      // "localhost": check it against the relay we asked for.
      // (@types/ws types this hook as Node's before v12; Node calls it as tls.connect documents.)
      checkServerIdentity: ((_name: string, cert: tls.PeerCertificate) =>
        tls.checkServerIdentity(host, cert)) as unknown as WebSocket.ClientOptions['checkServerIdentity'],
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
    });
    this.ws.on('open', () => this.emit('open'));
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) this.emit('message', data);
    });
    this.ws.on('error', (err) => this.end(err.message));
    this.ws.on('unexpected-response', (_req, res) => this.end(`HTTP ${res.statusCode} from ${this.url}`));
    this.ws.on('close', (code) => this.end(`closed (${code})`));
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  get connecting(): boolean {
    return this.ws.readyState === WebSocket.CONNECTING;
  }

  /** One datagram; false (dropped) unless the connection is open. Never throws. */
  send(data: Buffer | Uint8Array): boolean {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(data, SEND_OPTIONS);
    return true;
  }

  close(): void {
    this.ended = true;
    this.ws.removeAllListeners('close');
    this.ws.on('error', () => undefined);
    this.ws.terminate();
  }

  private end(why: string): void {
    if (this.ended) return;
    this.ended = true;
    this.ws.terminate();
    this.emit('close', why);
  }
}

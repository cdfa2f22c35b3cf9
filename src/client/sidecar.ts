// The sidecar (SPEC 5.1): carries an unmodified QUIC program through the
// relay, or straight to the peer once PeerLink has confirmed a direct path
// (SPEC 5.3-5.4: the QUIC program never sees the change). One socket carries
// registration, control and data; a second,
// local socket faces the QUIC program:
//   listen mode (dialling side): the QUIC client sends to our local port; we
//     serve the first address that does, and send it whatever the peer sends,
//     until it has been silent for appIdleMs (SPEC 5.6);
//   forward mode (listening side): the peer's datagrams go to the local QUIC
//     server, and only its replies go back to the peer.
// What arrives on the local socket is the QUIC program's data, never relay
// protocol: a datagram the relay or the peer would take as a registration, an
// address query or control is dropped and counted, not sent on.

import * as dgram from 'node:dgram';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { ipKeyOf, literalLookup } from '../wire/address';
import type { IpKey } from '../wire/address';
import { DEFAULT_APP_IDLE_MS, DEFAULT_RECV_BUFFER_BYTES, DEFAULT_SEND_BUFFER_BYTES } from '../wire/constants';
import { classify, isAddressQuery } from '../wire/protocol';
import { looksLikeControl } from './control';
import { PeerLink } from './peer-link';
import type { PeerLinkOptions } from './peer-link';
import type { RelayClient, RelayEndpoint } from './relay-client';
import { realTimers } from './timers';
import type { Timers } from './timers';

export interface SidecarOptions extends Omit<PeerLinkOptions, 'relay'> {
  relay: RelayEndpoint;
  mode: 'listen' | 'forward';
  /** listen: where the QUIC client sends to; forward: where the QUIC server listens. */
  local: RelayEndpoint;
  /** listen mode: another local address is served once the current one has been silent this long (a restarted QUIC client). @default DEFAULT_APP_IDLE_MS (500) */
  appIdleMs?: number;
}

/** SPEC 5.6: what the relay or the peer would read as protocol rather than data. */
function isRelayProtocol(msg: Buffer): boolean {
  const first = msg.length > 0 ? msg[0] : -1;
  if (first === 0x52 /* R */ && classify(msg).kind === 'register') return true;
  if (first === 0x41 /* A */ && isAddressQuery(msg)) return true;
  return looksLikeControl(msg);
}

export class Sidecar {
  readonly link: PeerLink;
  /** The link's relay client: registration events and counters. */
  readonly client: RelayClient;
  private local: dgram.Socket | undefined;
  /** The QUIC program's address: forward mode, the server's; listen mode, learnt from the client's first datagram. */
  private app: { address: string; port: number } | undefined;
  private appIp: IpKey = '';
  /** listen mode: when the served address last sent. */
  private appHeardAt = 0;
  private readonly appIdleMs: number;
  private readonly timers: Timers;
  readonly stats = {
    toPeer: 0,
    toPeerBytes: 0,
    fromPeer: 0,
    fromPeerBytes: 0,
    droppedNoApp: 0,
    localSendErrors: 0,
    droppedForeign: 0,
    droppedProtocol: 0,
    droppedPortZero: 0,
    relayChanges: 0,
  };
  private readonly startedAt: number;
  /** Time spent on the direct path before the current stretch, and when the current one began (undefined: on the relay). */
  private directMs = 0;
  private directSince: number | undefined;
  private closed = false;

  constructor(
    private readonly options: SidecarOptions,
    timers: Timers = realTimers,
  ) {
    this.timers = timers;
    this.link = new PeerLink(options, timers);
    this.client = this.link.client;
    this.appIdleMs = options.appIdleMs ?? DEFAULT_APP_IDLE_MS;
    if (options.mode === 'forward') this.serve(options.local.host, options.local.port);
    this.startedAt = timers.now();
    this.link.on('path', (p) => {
      const now = this.timers.now();
      if (this.directSince !== undefined) this.directMs += now - this.directSince;
      this.directSince = p.kind === 'direct' ? now : undefined;
    });
    this.client.on('relay', () => this.stats.relayChanges++);
  }

  /** What the sidecar has carried, for its exit line and status lines: datagrams and bytes each way, by path, time direct, relay changes. */
  summary(): string {
    const now = this.timers.now();
    const direct = this.directMs + (this.directSince !== undefined ? now - this.directSince : 0);
    const s = this.stats;
    const l = this.link.stats;
    const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;
    return (
      `${s.toPeer} datagrams (${mb(s.toPeerBytes)}) to the peer, ${s.fromPeer} (${mb(s.fromPeerBytes)}) from it; ` +
      `direct ${l.sentDirect} out / ${l.receivedDirect} in, relay ${s.toPeer - l.sentDirect} out / ${s.fromPeer - l.receivedDirect} in; ` +
      `direct for ${(direct / 1000).toFixed(1)} s of ${((now - this.startedAt) / 1000).toFixed(1)} s; ` +
      `${s.relayChanges} relay change${s.relayChanges === 1 ? '' : 's'}; ` +
      `dropped locally: ${s.droppedForeign} from other programs, ${s.droppedProtocol} protocol-shaped`
    );
  }

  /** True once close() was called (a stop during registration is not a failure). */
  get isClosed(): boolean {
    return this.closed;
  }

  private serve(address: string, port: number): void {
    this.app = { address, port };
    this.appIp = ipKeyOf(address);
  }

  /** Binds the local side and registers; resolves on the first ACK. */
  async start(): Promise<void> {
    const { mode, local } = this.options;
    const v6 = net.isIPv6(local.host);
    const family = v6 ? 6 : 4;
    const socket = dgram.createSocket({
      type: v6 ? 'udp6' : 'udp4',
      recvBufferSize: DEFAULT_RECV_BUFFER_BYTES,
      sendBufferSize: DEFAULT_SEND_BUFFER_BYTES,
      lookup: literalLookup(family),
    });
    // Never thrown: counted, and told to the client's 'error' listeners if any.
    socket.on('error', (err) => this.client.reportError(err));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      // listen: bind where the QUIC client will send; forward: any local port
      socket.bind(mode === 'listen' ? local.port : 0, mode === 'listen' ? local.host : v6 ? '::1' : '127.0.0.1', () => {
        socket.off('error', reject);
        resolve();
      });
    });
    this.local = socket;
    socket.on('message', (msg, rinfo) => {
      if (this.closed) return;
      if (rinfo.port === 0) {
        this.stats.droppedPortZero++; // SPEC 1.6: and nothing could be sent back to it
        return;
      }
      const app = this.app;
      const fromApp = app !== undefined && rinfo.port === app.port && (rinfo.address === app.address || ipKeyOf(rinfo.address) === this.appIp);
      if (mode === 'listen') {
        // SPEC 5.6: one QUIC client at a time: another address is served only
        // once this one has been silent for appIdleMs (it restarted, or moved).
        const now = this.timers.now();
        if (!fromApp) {
          if (app !== undefined && now - this.appHeardAt < this.appIdleMs) {
            this.stats.droppedForeign++;
            return;
          }
          this.serve(rinfo.address, rinfo.port);
        }
        this.appHeardAt = now;
      } else if (!fromApp) {
        this.stats.droppedForeign++; // SPEC 5.6: only the forwarded server's replies go to the peer
        return;
      }
      if (isRelayProtocol(msg)) {
        this.stats.droppedProtocol++; // SPEC 5.6: never a registration, query or control of ours
        return;
      }
      if (!this.client.everRegistered) return; // nothing to send through yet
      this.stats.toPeer++;
      this.stats.toPeerBytes += msg.length;
      this.link.send(msg);
    });
    this.link.on('message', (data) => {
      if (this.closed) return; // the local socket may be closing: a send would throw
      const app = this.app;
      if (app === undefined) {
        this.stats.droppedNoApp++; // listen mode before the QUIC client spoke
        return;
      }
      this.stats.fromPeer++;
      this.stats.fromPeerBytes += data.length;
      try {
        socket.send(data, app.port, app.address, this.onLocalSent);
      } catch {
        this.stats.localSendErrors++; // SPEC 1.6: never thrown
      }
    });
    await this.link.start();
  }

  /** The local socket's address (the port a QUIC client dials, in listen mode). */
  localAddress(): AddressInfo {
    if (this.local === undefined) throw new Error('sidecar not started');
    return this.local.address();
  }

  private readonly onLocalSent = (err: Error | null): void => {
    // The QUIC program went away (ICMP port unreachable): count, never throw.
    if (err) this.stats.localSendErrors++;
  };

  async close(): Promise<void> {
    this.closed = true;
    const local = this.local;
    this.local = undefined;
    await this.link.close();
    if (local !== undefined) await new Promise<void>((resolve) => local.close(() => resolve()));
  }
}

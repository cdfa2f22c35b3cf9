// The sidecar (SPEC 5.1): carries an unmodified QUIC program through the
// relay, or straight to the peer once PeerLink has confirmed a direct path
// (SPEC 5.3-5.4: the QUIC program never sees the change). One socket carries
// registration, control and data; a second,
// local socket faces the QUIC program:
//   listen mode (dialling side): the QUIC client sends to our local port; we
//     remember its address and send it whatever the peer sends;
//   forward mode (listening side): the peer's datagrams go to the local QUIC
//     server, and its replies go back to the peer.

import dgram from 'node:dgram';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { literalLookup } from '../wire/address';
import { DEFAULT_RECV_BUFFER_BYTES, DEFAULT_SEND_BUFFER_BYTES } from '../wire/constants';
import { PeerLink } from './peer-link';
import type { PeerLinkOptions } from './peer-link';
import type { RelayClient, RelayEndpoint } from './relay-client';
import type { Timers } from './timers';

export interface SidecarOptions extends Omit<PeerLinkOptions, 'relay'> {
  relay: RelayEndpoint;
  mode: 'listen' | 'forward';
  /** listen: where the QUIC client sends to; forward: where the QUIC server listens. */
  local: RelayEndpoint;
}

export class Sidecar {
  readonly link: PeerLink;
  /** The link's relay client: registration events and counters. */
  readonly client: RelayClient;
  private local: dgram.Socket | undefined;
  /** listen mode: the QUIC client's address, learnt from its first datagram. */
  private app: { address: string; port: number } | undefined;
  readonly stats = { toPeer: 0, fromPeer: 0, droppedNoApp: 0, localSendErrors: 0 };
  private closed = false;

  constructor(private readonly options: SidecarOptions, timers?: Timers) {
    this.link = new PeerLink(options, timers);
    this.client = this.link.client;
    if (options.mode === 'forward') this.app = { address: options.local.host, port: options.local.port };
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
      if (mode === 'listen') {
        // The QUIC client may rebind its own port; follow the latest.
        if (this.app === undefined || this.app.port !== rinfo.port || this.app.address !== rinfo.address) {
          this.app = { address: rinfo.address, port: rinfo.port };
        }
      } else if (rinfo.port !== local.port) {
        return; // only the local server's replies go to the peer
      }
      if (!this.client.registered && this.client.stats.registrations === 0) return; // nothing to send through yet
      this.stats.toPeer++;
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
      socket.send(data, app.port, app.address, this.onLocalSent);
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

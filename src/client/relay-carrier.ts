// How a RelayClient's datagrams reach its listed relays, and come back: one
// UDP socket (which also carries the direct path, SPEC 5.3), or, on the
// stream leg (SPEC 6.4), one WebSocket per relay opened when first needed.
// All the client's I/O is here; what to send and when is relay-client.ts's.

import * as dgram from 'node:dgram';
import * as dns from 'node:dns/promises';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { ipKeyOf, literalLookup } from '../wire/address';
import type { IpKey } from '../wire/address';
import { DEFAULT_RECV_BUFFER_BYTES, DEFAULT_SEND_BUFFER_BYTES } from '../wire/constants';
import type { Endpoint } from '../wire/endpoint';
import { ClosedError } from '../wire/errors';
import { StreamLink } from './stream-link';
import type { StreamOptions } from './stream-link';

/** What the carrier reports; the client decides what each means. */
export interface CarrierEvents {
  /** A datagram from listed relay `i`; `udp` false when it came over its WebSocket. */
  fromRelay(i: number, data: Buffer, udp: boolean): void;
  /** A UDP datagram from anywhere but a listed relay (a peer's direct path, or a stranger). */
  unrelayed(data: Buffer, from: dgram.RemoteInfo): void;
  /** SPEC 6.4: the WebSocket to relay `i` opened, or ended (`why`, for traces). */
  streamOpened(i: number): void;
  streamClosed(i: number, why: string): void;
  /** A socket error, counted; informative. */
  error(err: Error): void;
}

export interface CarrierOptions {
  relays: readonly Endpoint[];
  stream: StreamOptions;
  bindAddress: string | undefined;
  bindPort: number;
  /** SPEC 6.4: start on the relays' WebSockets ('ws' forced). */
  onStream: boolean;
}

export class RelayCarrier {
  /** SPEC 6.4: whether send() goes over the relays' WebSockets rather than UDP (useStream() changes it). */
  private onStream: boolean;
  readonly counts = { sendErrors: 0, droppedPortZero: 0, streamConnects: 0, streamCloses: 0 };
  private relayIps: string[] = [];
  private relayKeys: IpKey[] = [];
  private socket: dgram.Socket | undefined;
  private readonly links: Array<StreamLink | undefined> = [];
  private closed = false;

  constructor(
    private readonly options: CarrierOptions,
    private readonly on: CarrierEvents,
  ) {
    this.onStream = options.onStream;
  }

  /** Resolves the relays' names once, and binds the UDP socket (of the first relay's family). Closed meanwhile: ClosedError, nothing left open. */
  async open(): Promise<void> {
    for (const r of this.options.relays) this.relayIps.push(net.isIP(r.host) !== 0 ? r.host : (await dns.lookup(r.host)).address);
    this.relayKeys = this.relayIps.map(ipKeyOf);
    const family = net.isIPv6(this.relayIps[0]!) ? 6 : 4;
    const socket = dgram.createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      recvBufferSize: DEFAULT_RECV_BUFFER_BYTES,
      sendBufferSize: DEFAULT_SEND_BUFFER_BYTES,
      lookup: literalLookup(family),
    });
    socket.on('message', this.onMessage);
    socket.on('error', (err) => this.on.error(err));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.options.bindPort, this.options.bindAddress ?? (family === 6 ? '::' : '0.0.0.0'), () => {
        socket.off('error', reject);
        resolve();
      });
    });
    if (this.closed) {
      await new Promise<void>((resolve) => socket.close(() => resolve()));
      throw new ClosedError('RelayClient');
    }
    this.socket = socket;
  }

  get isOpen(): boolean {
    return this.socket !== undefined;
  }

  /** The UDP socket's local address. */
  address(): AddressInfo | undefined {
    return this.socket?.address();
  }

  /** One datagram to relay `i` over the current transport. Never throws. */
  send(i: number, data: Buffer | Uint8Array): void {
    if (!this.onStream) this.sendUdp(i, data);
    else if (!this.linkTo(i).send(data)) this.counts.sendErrors++; // while it connects: dropped (the client sends its REG on open)
  }

  /** One datagram to relay `i` over UDP, whatever the transport (SPEC 6.4's "does UDP answer?"). */
  sendUdp(i: number, data: Buffer | Uint8Array): void {
    if (this.socket !== undefined) this.sendOn(this.socket, data, this.options.relays[i]!.port, this.relayIps[i]!);
  }

  /** From the UDP socket straight to address:port (the direct path, SPEC 5.3). */
  sendTo(data: Buffer | Uint8Array, port: number, address: string): void {
    if (this.socket !== undefined) this.sendOn(this.socket, data, port, address);
  }

  /** SPEC 6.4: to or from the stream leg; leaving it closes every WebSocket. */
  useStream(on: boolean): void {
    this.onStream = on;
    if (!on) for (let i = 0; i < this.links.length; i++) this.dropLink(i);
  }

  /** Closes relay `i`'s WebSocket, if any (a fresh one is opened on the next send). */
  dropLink(i: number): void {
    const link = this.links[i];
    this.links[i] = undefined;
    link?.close();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (let i = 0; i < this.links.length; i++) this.dropLink(i);
    const socket = this.socket;
    this.socket = undefined;
    if (socket !== undefined) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  // ---- internals

  private readonly onSent = (err: Error | null): void => {
    if (err) this.counts.sendErrors++;
  };

  /** SPEC 1.6: a send never throws out of the client (dgram throws at once on a bad port): it is a counted send error. */
  private sendOn(socket: dgram.Socket, data: Buffer | Uint8Array, port: number, address: string): void {
    try {
      socket.send(data, port, address, this.onSent);
    } catch {
      this.counts.sendErrors++;
    }
  }

  private readonly onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    if (rinfo.port === 0) {
      this.counts.droppedPortZero++; // SPEC 1.6: nothing can answer it; it is no relay and no peer
      return;
    }
    // (An IPv4 relay seen IPv4-mapped on a dual-stack socket is the same relay.)
    const from = this.relayIndex(rinfo);
    if (from < 0) this.on.unrelayed(msg, rinfo);
    else this.on.fromRelay(from, msg, true);
  };

  /** Which listed relay ip:port is, or -1. A short list: compared in order. */
  private relayIndex(rinfo: dgram.RemoteInfo): number {
    const relays = this.options.relays;
    for (let i = 0; i < relays.length; i++) {
      if (rinfo.port === relays[i]!.port && (rinfo.address === this.relayIps[i] || ipKeyOf(rinfo.address) === this.relayKeys[i])) return i;
    }
    return -1;
  }

  /** SPEC 6.4: the WebSocket to relay `i`, opening one when there is none. */
  private linkTo(i: number): StreamLink {
    const existing = this.links[i];
    if (existing !== undefined) return existing;
    const link = new StreamLink(this.options.relays[i]!.host, this.options.stream);
    this.links[i] = link;
    this.counts.streamConnects++;
    link.on('open', () => {
      if (this.links[i] === link) this.on.streamOpened(i);
    });
    link.on('message', (data) => {
      if (this.links[i] === link) this.on.fromRelay(i, data, false);
    });
    link.on('close', (why) => {
      if (this.links[i] !== link) return;
      this.links[i] = undefined;
      this.counts.streamCloses++;
      this.on.streamClosed(i, why);
    });
    return link;
  }
}

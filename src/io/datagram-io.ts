// How datagrams reach the relay and leave it: one interface, two ways.
//   DgramIo:  node:dgram, one datagram (and one JavaScript call) at a time.
//   NativeIo: the Node-API module (native-io.ts), one call per batch of up to 64.
// The relay's logic sees only DatagramSink: a datagram's bytes, length, source,
// and the slot it sits in (for a forward without a copy).

import * as dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { ipKeyOf, literalLookup } from '../wire/address';
import type { IpKey } from '../wire/address';

/**
 * One datagram. `data` holds at least `length` bytes (with the native path,
 * more: it is the whole receive slot). `ip` is the source's key (ipKeyOf),
 * which each path gets the cheapest way it can. `slot` is where it sits for
 * forward(); -1 with dgram.
 */
export type DatagramSink = (data: Buffer, length: number, address: string, ip: IpKey, port: number, slot: number) => void;

export interface DatagramIo {
  readonly kind: 'native' | 'dgram';
  /** Opens and binds; resolves to the bound address. */
  bind(host: string, port: number, family: 4 | 6, recvBufferBytes: number, sendBufferBytes: number): Promise<AddressInfo>;
  /** Starts delivering datagrams to `sink`; errors (counted, never fatal) to `onError`. */
  start(sink: DatagramSink, onError: (err: Error) => void): void;
  /** Sends the datagram the sink is handling, unchanged, to address:port (the relay's forward). */
  forward(data: Buffer, length: number, slot: number, port: number, address: string): void;
  /** Sends `data` (a reply) to address:port. */
  send(data: Buffer, port: number, address: string): void;
  /** Buffer sizes the kernel granted. */
  readonly recvBufferBytes: number;
  readonly sendBufferBytes: number;
  /** Sends that failed, or were dropped past the send queue's bound (counted, never thrown). */
  readonly sendErrors: number;
  /** Errors the kernel reported on receive (the socket carries on); 0 where the path cannot see them. */
  readonly receiveErrors: number;
  /** Datagrams that waited for the socket to take them (EAGAIN); 0 where the path does not queue. */
  readonly sendsQueued: number;
  close(): Promise<void>;
}

export class DgramIo implements DatagramIo {
  readonly kind = 'dgram';
  private socket: dgram.Socket | undefined;
  recvBufferBytes = 0;
  sendBufferBytes = 0;
  sendErrors = 0;
  readonly receiveErrors = 0; // dgram reports receive errors as 'error' events (onError)
  readonly sendsQueued = 0; // libuv queues sends itself, out of sight
  private sink: DatagramSink | undefined;

  async bind(host: string, port: number, family: 4 | 6, recvBufferBytes: number, sendBufferBytes: number): Promise<AddressInfo> {
    const socket = dgram.createSocket({
      type: family === 6 ? 'udp6' : 'udp4',
      ipv6Only: false, // SPEC 1.1: `::` is dual-stack
      recvBufferSize: recvBufferBytes || undefined,
      sendBufferSize: sendBufferBytes || undefined,
      lookup: literalLookup(family),
    });
    this.socket = socket;
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind({ port, address: host, exclusive: true }, () => {
          socket.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      this.socket = undefined;
      socket.close();
      throw err;
    }
    try {
      this.recvBufferBytes = socket.getRecvBufferSize();
      this.sendBufferBytes = socket.getSendBufferSize();
    } catch {
      // not every platform reports them
    }
    return socket.address();
  }

  start(sink: DatagramSink, onError: (err: Error) => void): void {
    this.sink = sink;
    this.socket!.on('error', onError);
    this.socket!.on('message', this.onMessage);
  }

  private readonly onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    this.sink!(msg, msg.length, rinfo.address, ipKeyOf(rinfo.address), rinfo.port, -1);
  };

  private readonly onSent = (err: Error | null): void => {
    if (err) this.sendErrors++;
  };

  forward(data: Buffer, _length: number, _slot: number, port: number, address: string): void {
    this.send(data, port, address);
  }

  /** SPEC 1.6: never throws. dgram throws synchronously on a bad port or a closed socket; both are counted send errors. */
  send(data: Buffer, port: number, address: string): void {
    const socket = this.socket;
    if (socket === undefined) {
      this.sendErrors++;
      return;
    }
    try {
      socket.send(data, port, address, this.onSent);
    } catch {
      this.sendErrors++;
    }
  }

  async close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (socket === undefined) return;
    socket.off('message', this.onMessage);
    await new Promise<void>((resolve) => {
      try {
        socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

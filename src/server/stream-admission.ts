// SPEC 6.3: which TCP connections the WebSocket leg takes, and how long each
// has to upgrade. Every connection counts against the limits from its first
// byte: overall, and per IP (IPv6: per /64). A trusted reverse proxy's
// connections count against the peers it names instead (countIp from the
// upgrade), never against the proxy.

import type { Socket } from 'node:net';
import { ipKeyOf, limitKeyOf } from '../wire/address';
import type { IpKey } from '../wire/address';
import type { StreamCloseReason } from './stream-leg';

export interface AdmissionLimits {
  maxConnections: number;
  maxConnectionsPerIp: number;
  handshakeTimeoutMs: number;
}

export class StreamAdmission {
  /** TCP connections (upgraded or not) and, until it upgrades, each one's deadline. */
  private readonly sockets = new Map<Socket, number>();
  private readonly perIp = new Map<IpKey | string, number>();

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly trusted: ReadonlySet<string>,
    private readonly closedBy: Record<StreamCloseReason, number>,
    private readonly clock: () => number,
  ) {}

  /** Open TCP connections, upgraded or not. */
  get size(): number {
    return this.sockets.size;
  }

  /** A new TCP connection from `address` (plain: no ::ffff:): kept, or destroyed over a limit. */
  admit(socket: Socket, address: string): void {
    if (this.sockets.size >= this.limits.maxConnections) {
      this.closedBy.limit_total++;
      socket.destroy();
      return;
    }
    if (!this.trusted.has(address) && !this.countIp(socket, address)) {
      socket.destroy();
      return;
    }
    this.sockets.set(socket, this.clock() + this.limits.handshakeTimeoutMs);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** One more connection from `address`'s IP (IPv6: /64), released when the socket closes; false over the limit. */
  countIp(socket: Socket, address: string): boolean {
    const key = limitKeyOf(ipKeyOf(address));
    const onIp = this.perIp.get(key) ?? 0;
    if (onIp >= this.limits.maxConnectionsPerIp) {
      this.closedBy.limit_ip++;
      return false;
    }
    this.perIp.set(key, onIp + 1);
    socket.once('close', () => {
      const n = (this.perIp.get(key) ?? 1) - 1;
      if (n <= 0) this.perIp.delete(key);
      else this.perIp.set(key, n);
    });
    return true;
  }

  /** The connection upgraded: its deadline (for the first REG) from here is the peer's; returns it. */
  upgraded(socket: Socket): number {
    const deadline = this.sockets.get(socket) ?? this.clock() + this.limits.handshakeTimeoutMs;
    if (this.sockets.has(socket)) this.sockets.set(socket, Infinity);
    return deadline;
  }

  /** Destroys the connections that did not upgrade by their deadline. */
  sweep(now: number): void {
    for (const [socket, deadline] of this.sockets) {
      if (now >= deadline) {
        this.closedBy.timeout++;
        socket.destroy();
      }
    }
  }

  destroyAll(): void {
    for (const socket of this.sockets.keys()) socket.destroy();
  }
}

// What a client says about its registration: the detail lines of
// RelayClientOptions.trace (DEBUG=quic-relay:peer: each REG, ACK, refusal,
// failover and change of transport), and the reasons its `relay` and
// `transport` events carry. Nothing per data datagram; a line is built only
// when someone reads it.

import { formatAddress } from '../wire/address';
import type { Endpoint } from '../wire/endpoint';
import type { Reply } from '../wire/protocol';

export type TraceFn = ((format: string, ...args: unknown[]) => void) & { enabled?: boolean };

export class RegistrationTrace {
  private readonly trace: TraceFn | undefined;

  constructor(
    trace: TraceFn | undefined,
    private readonly relays: readonly Endpoint[],
    /** SPEC 6.4: how long UDP has before the fallback. */
    private readonly wsFallbackMs: number,
  ) {
    this.trace = trace?.enabled === false ? undefined : trace;
  }

  /** `host:port` of relay `i`. */
  nameOf(i: number): string {
    return formatAddress(this.relays[i]!.host, this.relays[i]!.port);
  }

  reg(sessionId: string, i: number, overStream: boolean, why: string): void {
    this.trace?.('REG %s to %s%s (%s)', sessionId, this.nameOf(i), overStream ? ' over WebSocket' : '', why);
  }

  reply(reply: Reply, i: number): void {
    this.trace?.('%s from %s', reply === 'ack' ? 'ACK' : `ERR:${reply.toUpperCase()}`, this.nameOf(i));
  }

  streamEnded(i: number, why: string): void {
    this.trace?.('connection to %s ended: %s', this.nameOf(i), why);
  }

  /** SPEC 5.7: relay `to` carries the session now; returns the reason for the `relay` event. */
  failover(to: number, from: number, why: 'no-ack' | 'busy' | 'partner'): string {
    const text = why === 'no-ack' ? `no ACK from ${this.nameOf(from)}` : why === 'busy' ? 'ERR:BUSY' : 'the partner is there';
    this.trace?.('failover to %s: %s', this.nameOf(to), text);
    return text;
  }

  /** SPEC 6.4: the transport changed; returns the reason for the `transport` event. */
  transport(transport: 'udp' | 'ws', home: number): string {
    const many = this.relays.length > 1 ? `any of ${this.relays.length} relays` : this.nameOf(home);
    const why = transport === 'ws' ? `no UDP answer from ${many} in ${this.wsFallbackMs} ms` : 'UDP answers again';
    this.trace?.('transport %s: %s', transport, why);
    return why;
  }
}

// The relay's datagram path (SPEC 1-4): one datagram in -> the pure parts
// (classify, loop guard, registrar, session table, budgets) -> at most one
// datagram out. The hot path (data from a registered peer) is one IP parse
// by the I/O layer, one Map lookup, two field writes and a send: no strings
// built, nothing allocated by us, nothing logged unless asked for.

import { formatAddress } from '../wire/address';
import type { IpKey } from '../wire/address';
import { classify, encodeAddressAnswer, replyFits } from '../wire/protocol';
import type { Classified } from '../wire/protocol';
import type { DatagramIo } from '../io/datagram-io';
import type { RelayConfig } from './config';
import type { RelayCounters } from './counters';
import type { SessionBudget } from './limits';
import type { RelayLog } from './log';
import type { LoopGuard } from './loop-guard';
import { BAD_REGISTRATION, OUTCOMES } from './registrar';
import type { LogContext, OutcomeSpec, Registrar, Registration } from './registrar';
import { STREAM_PORT_BASE } from './session-table';
import type { Session, SessionTable } from './session-table';
import type { StreamLeg, StreamPeer, StreamSink } from './stream-leg';

const R = 0x52; // 'R': the first byte of REG:
const A = 0x41; // 'A': the first byte of ADDR?

/** What the path works with; the relay owns them all. */
export interface DatagramPathParts {
  config: RelayConfig;
  counters: RelayCounters;
  table: SessionTable;
  registrar: Registrar;
  budget: SessionBudget;
  loopGuard: LoopGuard;
  log: RelayLog;
  /** Monotonic integer ms. */
  clock: () => number;
  /** Unix ms (tickets). */
  wallClock: () => number;
  /** SPEC 3.6: draining takes no new session. */
  draining: () => boolean;
  /** A registration may have removed the last session (drain's end). */
  sessionsGone: () => void;
}

export class DatagramPath implements StreamSink {
  // What the forward path reads per datagram, as fields of their own (one hop less); the rest through `parts`.
  private readonly counters: RelayCounters;
  private readonly table: SessionTable;
  private readonly budget: SessionBudget;
  private readonly loopGuard: LoopGuard;
  private readonly log: RelayLog;
  private readonly clock: () => number;
  /** SPEC 6: the WebSocket leg, when --ws-port is set: where datagrams to a stream port go. */
  private streams: StreamLeg | undefined;

  constructor(
    private readonly parts: DatagramPathParts,
    private readonly io: DatagramIo,
  ) {
    ({ counters: this.counters, table: this.table, budget: this.budget, loopGuard: this.loopGuard, log: this.log, clock: this.clock } = parts);
  }

  attachStreams(streams: StreamLeg): void {
    this.streams = streams;
  }

  /**
   * One datagram: `len` bytes of `data` from address:port. With the native
   * path `data` is the whole receive slot (`slot`), longer than the datagram.
   */
  readonly onDatagram = (data: Buffer, len: number, address: string, ip: IpKey, port: number, slot: number): void => {
    const c = this.counters;
    c.datagramsReceived++;
    c.bytesReceived += len;
    if (port === 0) {
      // SPEC 1.6: nothing can be sent back to port 0 (dgram throws on it); never answered, never registered.
      c.droppedPortZero++;
      c.droppedPortZeroBytes += len;
      return;
    }
    const first = len > 0 ? data[0] : -1;

    if (first === R || first === A) {
      // SPEC 4.4: from an address that leads back to a relay, nothing is answered or registered.
      if (this.loopGuard.isLoop(ip, port)) {
        this.dropLoop(len, address, port);
        return;
      }
      // Data may start with these bytes too (a QUIC short header): classified in place, no view made.
      const m = classify(data, len);
      if (m.kind !== 'data' && this.onControl(m, len, ip, address, port, port, undefined)) return;
    }
    const now = this.clock();
    if (!this.onData(data, len, slot, ip, address, port, now)) this.onUnknownData(data, len, slot, ip, address, port, now);
  };

  /**
   * SPEC 1.2-1.5: a datagram of `len` bytes that classify() did not call
   * data. True when it was control (registered, answered or refused); false
   * when it is data after all. `answerPort` is what ADDR? answers (a
   * WebSocket peer's TCP source); `stream` the WebSocket peer it came from, if any.
   */
  private onControl(m: Classified, len: number, ip: IpKey, address: string, port: number, answerPort: number, stream: StreamPeer | undefined): boolean {
    if (m.kind === 'register') {
      if (stream !== undefined) this.streams?.registered(stream); // SPEC 6.3: it sent its REG in time
      this.onRegister(len, m.id, ip, address, port);
      return true;
    }
    if (m.kind === 'address-query') {
      // SPEC 1.5: answered from any address; registers, forwards and refreshes nothing.
      this.counters.addressQueries++;
      this.reply(encodeAddressAnswer(address, answerPort), len, address, port);
      return true;
    }
    if (m.kind === 'bad-register' && this.table.find(ip, address, port) === undefined) {
      // SPEC 1.3: ERR:BAD to an unregistered address, unless that would be
      // longer than the request. (From a registered peer a malformed REG: is
      // data, SPEC 1.4: a QUIC short-header packet may begin with those bytes.)
      if (stream !== undefined) this.streams?.registered(stream); // it tried: the answer says why
      this.settle(BAD_REGISTRATION, OUTCOMES.bad, len, ip, address, port, '', this.clock());
      return true;
    }
    return false;
  }

  /**
   * SPEC 2.3: data from a registered peer goes to its partner, or is dropped
   * while the partner has not arrived. False when the address is in no
   * session (what then is the caller's: SPEC 2.4 for UDP).
   */
  private onData(data: Buffer, len: number, slot: number, ip: IpKey, address: string, port: number, now: number): boolean {
    const session = this.table.dataFrom(ip, address, port, now);
    if (session === undefined) return false;
    if (!session.paired) {
      this.counters.droppedUnpaired++;
      this.counters.droppedUnpairedBytes += len;
      if (this.log.datagram.enabled) this.log.datagram('%d bytes from %s dropped: session %s not paired', len, this.who(address, port), session.id);
      return true;
    }
    this.forward(data, len, slot, session, now);
    return true;
  }

  /** SPEC 4.4: counted, never answered. */
  private dropLoop(len: number, address: string, port: number): void {
    this.counters.droppedLoop++;
    this.counters.droppedLoopBytes += len;
    if (this.log.refusal('loop', this.clock()))
      this.log.limits('%d bytes from %s dropped: that address leads back to a relay (SPEC 4.4)', len, formatAddress(address, port));
  }

  /** Sends to the partner of the slot that sent last (the table has just recorded it). */
  private forward(data: Buffer, len: number, slot: number, s: Session, now: number): void {
    const c = this.counters;
    if (this.budget.active && !this.budget.admit(s, len, now)) {
      // SPEC 4.4: over the packet budget (what any loop costs is bounded), or the byte cap.
      c.droppedRate++;
      c.droppedRateBytes += len;
      if (this.log.datagram.enabled) this.log.datagram('%d bytes of session %s dropped: over its budget', len, s.id);
      return;
    }
    c.forwardedDatagrams++;
    c.forwardedBytes += len;
    s.forwardedDatagrams++;
    s.forwardedBytes += len;
    const toPort = s.toPort;
    // SPEC 6.2: a mixed pair crosses here; a native receive slot is reused, so the stream leg copies it.
    if (toPort >= STREAM_PORT_BASE) this.streams?.send(toPort, data, len, slot >= 0);
    else this.io.forward(data, len, slot, toPort, s.toAddress);
    if (this.log.datagram.enabled) this.log.datagram('%d bytes forwarded to %s', len, this.who(s.toAddress, toPort));
  }

  /** SPEC 2.4: data from an address no session knows. */
  private onUnknownData(data: Buffer, len: number, slot: number, ip: IpKey, address: string, port: number, now: number): void {
    const c = this.counters;
    if (this.loopGuard.isLoop(ip, port)) {
      this.dropLoop(len, address, port); // SPEC 4.4: never rebinds to it
      return;
    }
    if (this.parts.config.implicitRebind) {
      const r = this.table.implicitRebind(ip, address, port, now);
      if (r.outcome === 'rebound') {
        c.rebindsImplicit++;
        if (this.log.event('rebound', now))
          this.log.session('session %s: %s rebound to %s (data)', r.session.id, formatAddress(r.previousAddress, r.previousPort), formatAddress(address, port));
        this.forward(data, len, slot, r.session, now);
        return;
      }
      if (r.outcome === 'ambiguous') {
        c.droppedAmbiguousSource++;
        c.droppedAmbiguousSourceBytes += len;
        if (this.log.datagram.enabled) this.log.datagram('%d bytes from %s dropped: several peers share its IP', len, formatAddress(address, port));
        return;
      }
    }
    c.droppedUnknownSource++;
    c.droppedUnknownSourceBytes += len;
    if (this.log.datagram.enabled) this.log.datagram('%d bytes from unregistered %s dropped', len, formatAddress(address, port));
  }

  /** SPEC 2.2, 3.6, 4.1, 4.3: a well-formed registration; what it means is registrar.ts's. */
  private onRegister(msg: number, id: string, ip: IpKey, address: string, port: number): void {
    const now = this.clock();
    const { registrar, wallClock, draining } = this.parts;
    const r = registrar.register(ip, address, port, id, now, Math.floor(wallClock() / 1000), draining());
    if (r.left !== undefined) {
      if (r.leftRemoved) this.counters.sessionsEmptied++;
      if (this.log.event('left', now))
        this.log.session('%s left session %s%s', this.who(address, port), r.left.id, r.leftRemoved ? ' (now empty, removed)' : '');
    }
    this.settle(r, OUTCOMES[r.outcome], msg, ip, address, port, id, now);
    if (r.leftRemoved) this.parts.sessionsGone(); // X may have left, and emptied, the last session
  }

  /** One registration outcome at the edge: counted, answered and logged as OUTCOMES says. */
  private settle(r: Registration, o: OutcomeSpec, msg: number, ip: IpKey, address: string, port: number, id: string, now: number): void {
    this.counters.registrations[o.result]++;
    if (o.rebind) this.counters.rebindsExplicit++;
    this.reply(o.reply, msg, address, port);
    if (r.outcome === 'keepalive') {
      if (this.log.datagram.enabled) this.log.datagram('keepalive from %s for session %s', this.who(address, port), id);
      return;
    }
    const admitted = o.log.kind === 'event' ? this.log.event(o.log.cause, now) : this.log.refusal(o.log.cause, now);
    if (admitted) (o.log.kind === 'event' ? this.log.session : this.log.limits)(o.log.line(r, { who: this.who(address, port), id }, this.logContext(ip)));
  }

  private logContext(ip: IpKey): LogContext {
    return {
      ip,
      registrationsPerSecPerIp: this.parts.config.registrationsPerSecPerIp,
      sessionsOpen: this.table.size,
      sessionsOnIp: (x) => this.table.sessionsOnIp(x),
      format: (a, p) => this.who(a, p),
    };
  }

  /** SPEC 1.3: one reply datagram to the source, never longer than the request (`requestLength` bytes). */
  private reply(reply: Buffer, requestLength: number, address: string, port: number): void {
    if (!replyFits(reply, requestLength)) {
      this.counters.repliesSuppressed++;
      return;
    }
    if (port >= STREAM_PORT_BASE) this.streams?.send(port, reply, reply.length, false);
    else this.io.send(reply, port, address);
  }

  /** An address as log lines write it: a WebSocket peer by its TCP source. */
  private who(address: string, port: number): string {
    if (port < STREAM_PORT_BASE) return formatAddress(address, port);
    return `ws ${formatAddress(address, this.streams?.peer(port)?.tcpPort ?? 0)}`;
  }

  // ---- SPEC 6.2: the WebSocket leg's messages, under the same rules as datagrams

  /**
   * One binary message from a WebSocket peer: sections 1 to 4 apply as to a
   * datagram, except what only UDP needs: no source port 0 or forged source
   * (TCP's handshake proved it, so the loop guard has nothing to stop), and
   * no implicit rebind (a connection's address never changes).
   */
  onStreamDatagram(peer: StreamPeer, data: Buffer): void {
    const c = this.counters;
    const len = data.length;
    c.datagramsReceived++;
    c.bytesReceived += len;
    const { ip, address, port } = peer;
    // SPEC 1.5: ADDR? answers the TCP source.
    const m = classify(data, len);
    if (m.kind !== 'data' && this.onControl(m, len, ip, address, port, peer.tcpPort, peer)) return;
    if (this.onData(data, len, -1, ip, address, port, this.clock())) return;
    c.droppedUnknownSource++; // no implicit rebind: a connection's address never changes
    c.droppedUnknownSourceBytes += len;
  }

  /** SPEC 6.2: a closed connection leaves its session at once. */
  onStreamClosed(peer: StreamPeer): void {
    const r = this.table.leave(peer.ip, peer.address, peer.port);
    if (r === undefined) return;
    const now = this.clock();
    if (r.removed) this.counters.sessionsEmptied++;
    if (this.log.event('left', now))
      this.log.session(
        '%s closed its connection and left session %s%s',
        this.who(peer.address, peer.port),
        r.session.id,
        r.removed ? ' (now empty, removed)' : '',
      );
    if (r.removed) this.parts.sessionsGone();
  }
}

// PeerLink (SPEC 5.3-5.5): a RelayClient that also finds a direct path to
// the peer and uses it while it works. The relay stays registered as the
// fallback the whole time. The decisions are PathMachine's (pure); this file
// is the I/O around it: the socket, the timer, the address query, and the
// sorting of incoming datagrams:
//   from the relay: control (magic + MAC) goes to the machine, the rest is the peer's;
//   from elsewhere: control goes to the machine; data is the peer's only from
//     the address that answered our probe (SPEC 5.4); anything else is dropped.

import { randomBytes } from 'node:crypto';
import type * as dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as os from 'node:os';
import { RelayClient } from './relay-client';
import type { RelayClientOptions } from './relay-client';
import { controlKey, decodeControl, looksLikeControl, MAX_CANDIDATES } from './control';
import type { Candidate } from './control';
import { PathMachine } from './path-machine';
import type { ControlOutcome, Path, PathTimings } from './path-machine';
import { WakeTimer, realTimers } from './timers';
import type { Timers } from './timers';

export interface PeerLinkOptions extends RelayClientOptions {
  /** SPEC 5.5: send nothing but relay traffic (no address query, no candidates, no probes). @default false */
  relayOnly?: boolean;
  /**
   * The local addresses offered to the peer as candidates, with the socket's
   * port, beside the public address the relay reports. @default the bound
   * address if the socket is bound to one, else this host's interface
   * addresses of the relay's family (loopback and IPv6 link-local left out)
   */
  localAddresses?: readonly string[];
  /** The direct path's timers; see PathTimings for each default. */
  pathTimings?: Partial<PathTimings>;
  /** Address queries per attempt before concluding that the relay has none (the original). @default 3 */
  addressQueryTries?: number;
  /** @default 500 */
  addressQueryTimeoutMs?: number;
}

export interface PeerLinkEvents {
  /** A datagram from the peer, by either path. */
  message: [data: Buffer];
  /** The path that carries data changed (SPEC 5.4). */
  path: [path: Path];
  /** The peer was heard for the first time: it is registered and answering. */
  peer: [via: 'relay' | 'direct'];
}

export type { Path, PathTimings };

export class PeerLink extends EventEmitter<PeerLinkEvents> {
  readonly client: RelayClient;
  readonly relayOnly: boolean;
  private readonly options: PeerLinkOptions;
  private readonly timers: Timers;
  private readonly random: (n: number) => Buffer;
  private readonly key: Buffer;
  private machine: PathMachine | undefined;
  /** The machine's one timer. */
  private readonly wake: WakeTimer;
  private closed = false;
  private heard = false;
  private relaySeesQueries = true;
  private querying = false;
  // Where data goes while direct (the machine's path, copied for the per-datagram send).
  private directAddress = '';
  private directPort = 0;
  readonly stats = { sentDirect: 0, receivedDirect: 0, control: 0, strays: 0, invalidControl: 0 };

  constructor(options: PeerLinkOptions, timers: Timers = realTimers, random: (n: number) => Buffer = randomBytes) {
    super();
    this.options = options;
    this.relayOnly = options.relayOnly ?? false;
    this.timers = timers;
    this.wake = new WakeTimer(timers, this.onTimer);
    this.random = random;
    this.client = new RelayClient(options, timers);
    this.key = controlKey(options.sessionId);
    this.client.on('message', this.onRelayed);
    this.client.on('unrelayed', this.onUnrelayed);
    this.client.on('registered', this.onRegistered);
    // SPEC 6.4: a move between UDP and the WebSocket leg is a change of path (the line names the transport).
    this.client.on('transport', (_transport, why) => {
      if (this.machine === undefined && !this.relayOnly && !this.closed) this.emit('path', { kind: 'relay', reason: why });
    });
  }

  /** The current path; 'relay' until a direct one is confirmed. */
  get path(): Path {
    return (
      this.machine?.path ?? {
        kind: 'relay',
        reason: this.relayOnly ? 'relay-only' : this.client.transport === 'ws' ? 'UDP gets no answer here: over WebSocket' : 'no direct path yet',
      }
    );
  }

  /** Registers (resolves on the first ACK), then looks for a direct path unless relay-only. */
  async start(): Promise<void> {
    await this.client.register();
    if (this.closed) return;
    if (this.relayOnly) {
      this.emit('path', { kind: 'relay', reason: 'relay-only' });
      return;
    }
    if (this.client.transport === 'ws') {
      // SPEC 6.4: on the WebSocket leg UDP is blocked (or forbidden): no direct path to look for.
      this.emit('path', { kind: 'relay', reason: 'UDP gets no answer here: over WebSocket' });
      return;
    }
    const family = net.isIPv6(this.client.address().address) ? 6 : 4;
    this.machine = new PathMachine(this.key, this.actions, this.random, this.timers.now(), {
      family,
      ...(this.options.pathTimings ? { timings: this.options.pathTimings } : {}),
    });
    void this.attempt();
  }

  /** Sends a datagram to the peer: straight to it while the direct path holds, else through the relay. */
  send(data: Buffer | Uint8Array): void {
    if (this.directPort !== 0) {
      this.stats.sentDirect++;
      this.machine!.noteDirectDataSent();
      this.client.sendTo(data, this.directPort, this.directAddress);
    } else {
      this.client.send(data);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake.set(Infinity);
    await this.client.close();
  }

  // ---- receiving

  private readonly onRelayed = (data: Buffer): void => {
    const machine = this.machine;
    if (machine !== undefined) machine.heardViaRelay();
    if (looksLikeControl(data)) {
      // SPEC 5.3: never the QUIC program's, whatever it says.
      if (machine !== undefined) this.control(machine, true, '', 0, data);
      else if (this.countControl(decodeControl(this.key, data) !== undefined ? 'peer' : 'invalid')) this.heardPeer('relay'); // relay-only: heard, not answered
      return;
    }
    this.heardPeer('relay');
    this.emit('message', data);
  };

  private readonly onUnrelayed = (data: Buffer, from: dgram.RemoteInfo): void => {
    const machine = this.machine;
    if (machine === undefined || this.closed) {
      this.stats.strays++; // relay-only answers nothing that does not come from the relay
      return;
    }
    if (looksLikeControl(data)) {
      this.control(machine, false, from.address, from.port, data);
      return;
    }
    // SPEC 5.4: data from an address that answered our probes, at any time; from anywhere else, nothing.
    if (machine.acceptsFrom(from.address, from.port)) {
      this.stats.receivedDirect++;
      machine.noteDirectDataReceived();
      this.heardPeer('direct');
      this.emit('message', data);
      return;
    }
    this.stats.strays++;
  };

  /** A datagram that looks like control, for the machine to judge. */
  private control(machine: PathMachine, viaRelay: boolean, address: string, port: number, data: Buffer): void {
    if (this.countControl(machine.receive(this.timers.now(), viaRelay, address, port, data))) this.heardPeer(viaRelay ? 'relay' : 'direct');
    this.afterMachine();
  }

  /** Counts a control datagram (and the invalid ones apart); true when it was the peer's. */
  private countControl(outcome: ControlOutcome): boolean {
    this.stats.control++;
    if (outcome === 'invalid') this.stats.invalidControl++;
    return outcome === 'peer';
  }

  private heardPeer(via: 'relay' | 'direct'): void {
    if (this.heard) return;
    this.heard = true;
    this.emit('peer', via);
  }

  // ---- the machine's requests

  private readonly actions = {
    viaRelay: (datagram: Buffer): void => {
      if (!this.closed) this.client.send(datagram);
    },
    sendTo: (address: string, port: number, datagram: Buffer): void => {
      if (!this.closed) this.client.sendTo(datagram, port, address);
    },
    pathChanged: (path: Path): void => {
      if (path.kind === 'direct') {
        this.directAddress = path.address;
        this.directPort = path.port;
      } else {
        this.directAddress = '';
        this.directPort = 0;
      }
      this.emit('path', path);
    },
    attemptDue: (): void => {
      void this.attempt();
    },
    relayLost: (): void => {
      this.client.refresh();
    },
  };

  /** After every input: move the timer to the machine's next deadline. */
  private afterMachine(): void {
    if (this.machine !== undefined && !this.closed) this.wake.set(this.machine.nextWake());
  }

  private readonly onTimer = (): void => {
    if (this.closed || this.machine === undefined) return;
    this.machine.tick(this.timers.now());
    this.afterMachine();
  };

  private readonly onRegistered = (): void => {
    // Registered again (after a relay restart, say): a fresh attempt, unless one is under way or direct holds.
    if (this.machine?.waiting && !this.querying) void this.attempt();
  };

  /** SPEC 5.3: learn our public address from the relay (1.5), then offer it and the local ones. */
  private async attempt(): Promise<void> {
    const machine = this.machine;
    if (machine === undefined || this.closed || this.querying) return;
    this.querying = true;
    let publicAddress: Candidate | undefined;
    try {
      const tries = this.options.addressQueryTries ?? 3;
      for (let i = 0; i < tries && publicAddress === undefined && !this.closed; i++) {
        publicAddress = await this.client.queryAddress(this.options.addressQueryTimeoutMs ?? 500);
      }
    } catch {
      return; // closed while asking
    } finally {
      this.querying = false;
    }
    if (this.closed) return;
    if (publicAddress === undefined) {
      // SPEC 5.3: a relay without address queries (the original): carry on through it alone.
      if (this.relaySeesQueries) this.actions.pathChanged({ kind: 'relay', reason: 'the relay does not answer address queries' });
      this.relaySeesQueries = false;
      return;
    }
    this.relaySeesQueries = true;
    machine.begin(this.timers.now(), this.candidates(publicAddress));
    this.afterMachine();
  }

  private candidates(publicAddress: Candidate): Candidate[] {
    const bound = this.client.address();
    const family = net.isIPv6(bound.address) ? 6 : 4;
    const wildcard = bound.address === '0.0.0.0' || bound.address === '::';
    const locals = this.options.localAddresses ?? (wildcard ? interfaceAddresses(family) : [bound.address]);
    const out: Candidate[] = [publicAddress];
    for (const address of locals) {
      if (out.length >= MAX_CANDIDATES) break;
      if (net.isIP(address) !== family) continue;
      if (!out.some((c) => c.address === address && c.port === bound.port)) out.push({ address, port: bound.port });
    }
    return out;
  }
}

/** This host's addresses of one family, as candidates: loopback and IPv6 link-local left out (unreachable from another host). */
function interfaceAddresses(family: 4 | 6): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const i of list ?? []) {
      if (i.internal || (family === 4 ? i.family !== 'IPv4' : i.family !== 'IPv6')) continue;
      if (family === 6 && /^fe[89ab]/i.test(i.address)) continue;
      out.push(i.address);
    }
  }
  return out;
}

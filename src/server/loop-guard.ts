// SPEC 4.4: no loops. The relay never registers, rebinds to, answers or sends
// to an address that leads back to a relay: its own addresses on its own port
// (a forged REG from there would have the relay forward its own ACK to itself
// forever), and the other relays of its fleet (--peer-relays), which could
// bounce datagrams between them. Pure: the addresses are given (the server
// reads the host's interfaces at the edge and refreshes them); isLoop() is
// two integer compares for a source on another port, one Map lookup else.

import { ipKeyOf, isLoopbackKey, isUnspecifiedKey } from '../wire/address';
import type { Endpoint } from '../wire/endpoint';
import type { IpKey } from '../wire/address';

export interface LoopGuardAddresses {
  /** The relay's own UDP port. */
  port: number;
  /** Addresses datagrams to our port reach us on: the bound one, or every address of the host when bound to the wildcard, and --public-address's. */
  ownIps: Iterable<IpKey>;
  /** Bound to the wildcard: all of 127.0.0.0/8 and ::1 are ours too, whatever the interface list says. */
  wildcard: boolean;
  /** Other ip:port pairs that lead back to a relay: --peer-relays, and --public-address entries with a port of their own. */
  others: Iterable<{ ip: IpKey; port: number }>;
}

export class LoopGuard {
  private port = 0;
  private wildcard = false;
  private ownIps = new Set<IpKey>();
  /** ip -> ports of other relays on it (few: a fleet is a handful of hosts). */
  private others = new Map<IpKey, number[]>();

  constructor(a: LoopGuardAddresses) {
    this.update(a);
  }

  /** Replaces every address (the server calls this when the host's interfaces change). */
  update(a: LoopGuardAddresses): void {
    this.port = a.port;
    this.wildcard = a.wildcard;
    this.ownIps = new Set(a.ownIps);
    const others = new Map<IpKey, number[]>();
    for (const { ip, port } of a.others) {
      const ports = others.get(ip);
      if (ports === undefined) others.set(ip, [port]);
      else if (!ports.includes(port)) ports.push(port);
    }
    this.others = others;
  }

  /** True when ip:port leads back to this relay or to another relay of the fleet. */
  isLoop(ip: IpKey, port: number): boolean {
    if (port === this.port && (this.ownIps.has(ip) || isUnspecifiedKey(ip) || (this.wildcard && isLoopbackKey(ip)))) return true;
    if (this.others.size === 0) return false;
    const ports = this.others.get(ip);
    return ports?.includes(port) === true;
  }
}

/** Where a relay's loop-guard addresses come from (configuration and the bind). */
export interface LoopSources {
  /** Bound to 0.0.0.0 or ::. */
  wildcard: boolean;
  /** The address bound to. */
  bound: string;
  /** --public-address; port 0: the relay's own. */
  public: readonly Endpoint[];
  /** --peer-relays, resolved to IPs; port 0: the relay's own. */
  peers: readonly Endpoint[];
}

/** The guard's addresses for a relay bound on `port`; `hostAddresses` lists the host's interfaces (read at the edge). */
export function loopAddresses(src: LoopSources, port: number, hostAddresses: () => string[]): LoopGuardAddresses {
  const ownIps: IpKey[] = (src.wildcard ? hostAddresses() : [src.bound]).map(ipKeyOf);
  const others: Array<{ ip: IpKey; port: number }> = [];
  for (const e of src.public) {
    if (e.port === 0 || e.port === port) ownIps.push(ipKeyOf(e.host));
    else others.push({ ip: ipKeyOf(e.host), port: e.port });
  }
  for (const e of src.peers) others.push({ ip: ipKeyOf(e.host), port: e.port === 0 ? port : e.port });
  return { port, ownIps, wildcard: src.wildcard, others };
}

/**
 * A started relay's guard: built from its sources once the port is known
 * and, when bound to the wildcard, rebuilt from the host's interfaces at
 * most every refreshMs (an address added later is ours too).
 */
export class HostLoopWatch {
  private readAt: number;

  constructor(
    private readonly guard: LoopGuard,
    private readonly src: LoopSources,
    private readonly port: number,
    private readonly hostAddresses: () => string[],
    private readonly refreshMs: number,
    now: number,
  ) {
    this.readAt = now;
    guard.update(loopAddresses(src, port, hostAddresses));
  }

  /** Re-reads the interfaces when bound to the wildcard and refreshMs have passed. */
  refresh(now: number): void {
    if (!this.src.wildcard || now - this.readAt < this.refreshMs) return;
    this.readAt = now;
    this.guard.update(loopAddresses(this.src, this.port, this.hostAddresses));
  }
}

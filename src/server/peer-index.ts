// Which session each registered peer address is in, by IP (SPEC 2.1-2.4,
// 4.1, 4.5). Pure. One entry per IP: the session of the only peer on that IP,
// or an IpGroup (port -> session) when several share it. So "which session
// is ip:port in" is one Map lookup plus the session's own slot compare, and
// "is there exactly one peer on this IP" (SPEC 2.4) is the same lookup: no
// scan. It also counts the sessions an IP (an IPv6 /64) takes part in, for
// the per-IP limits. session-table.ts keeps it in step with every change.

import { limitKeyOf } from '../wire/address';
import type { IpKey } from '../wire/address';

/** Several peers on one IP: their sessions by port; `sessions` counts the distinct sessions they are in. */
class IpGroup<S> {
  readonly byPort = new Map<number, S>();
  sessions = 1;
}

/** SPEC 4.5: whether two IPs count as one for the per-IP limits (IPv6: the same /64). */
export function sameLimitKey(a: IpKey | undefined, b: IpKey): boolean {
  if (a === b) return true;
  return typeof a === 'string' && typeof b === 'string' && limitKeyOf(a) === limitKeyOf(b);
}

export class PeerIndex<S extends object> {
  private readonly byIp = new Map<IpKey, S | IpGroup<S>>();
  /** SPEC 4.5: sessions per IPv6 /64 (IPv4 counts per address, in byIp). */
  private readonly v6PrefixSessions = new Map<string, number>();

  /** The session a peer at ip:port would be in (the session still checks its slot's spelling). One Map lookup. */
  at(ip: IpKey, port: number): S | undefined {
    const v = this.byIp.get(ip);
    return v instanceof IpGroup ? v.byPort.get(port) : v;
  }

  /** SPEC 2.4: the session of the only peer on this IP; 'several' when more share it; undefined when none. */
  only(ip: IpKey): S | 'several' | undefined {
    const v = this.byIp.get(ip);
    return v instanceof IpGroup ? 'several' : v;
  }

  /** SPEC 4.1, 4.5: how many sessions peers from this IP (IPv6: its /64) take part in. */
  sessionsOnIp(ip: IpKey): number {
    if (typeof ip === 'string') return this.v6PrefixSessions.get(limitKeyOf(ip) as string) ?? 0;
    const v = this.byIp.get(ip);
    return v === undefined ? 0 : v instanceof IpGroup ? v.sessions : 1;
  }

  /**
   * Indexes ip:port as a peer of `s`, whose other peer (if any) is on
   * `otherIp`. `portOfOnly` gives the port of the one peer already on this IP
   * (its slot in its session), when the IP turns into a group.
   */
  add(ip: IpKey, port: number, s: S, otherIp: IpKey | undefined, portOfOnly: (only: S) => number): void {
    if (typeof ip === 'string' && !sameLimitKey(otherIp, ip)) this.countPrefix(ip, 1);
    const v = this.byIp.get(ip);
    if (v === undefined) {
      this.byIp.set(ip, s);
      return;
    }
    let group: IpGroup<S>;
    if (v instanceof IpGroup) {
      group = v;
    } else {
      group = new IpGroup<S>(); // sessions = 1: v's
      group.byPort.set(portOfOnly(v), v);
      this.byIp.set(ip, group);
    }
    group.byPort.set(port, s);
    // The IP takes part in one more session unless the partner is on it already.
    if (otherIp !== ip) group.sessions++;
  }

  /** Removes ip:port (a peer whose session's other peer is on `otherIp`). */
  remove(ip: IpKey, port: number, otherIp: IpKey | undefined): void {
    if (typeof ip === 'string' && !sameLimitKey(otherIp, ip)) this.countPrefix(ip, -1);
    const v = this.byIp.get(ip);
    if (v === undefined) return;
    if (!(v instanceof IpGroup)) {
      this.byIp.delete(ip);
      return;
    }
    v.byPort.delete(port);
    if (otherIp !== ip) v.sessions--;
    if (v.byPort.size === 1) {
      // Back to a single peer: its one session is implied.
      for (const only of v.byPort.values()) this.byIp.set(ip, only);
    }
  }

  /** A rebind: the peer of `s` on `ip` moves from oldPort to newPort. */
  move(ip: IpKey, oldPort: number, newPort: number, s: S): void {
    const v = this.byIp.get(ip);
    if (v instanceof IpGroup) {
      v.byPort.delete(oldPort);
      v.byPort.set(newPort, s);
    }
  }

  /** SPEC 4.5: one more (or one fewer) session for the /64 of an IPv6 peer. */
  private countPrefix(ip: string, delta: 1 | -1): void {
    const key = limitKeyOf(ip) as string;
    const n = (this.v6PrefixSessions.get(key) ?? 0) + delta;
    if (n > 0) this.v6PrefixSessions.set(key, n);
    else this.v6PrefixSessions.delete(key);
  }
}

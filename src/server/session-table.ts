// Sessions and their index (SPEC 2.1-2.5). Pure: no sockets, no clock (every
// method that needs the time takes `now`, integer milliseconds), no logging.
// Methods return outcomes; the socket layer turns them into replies, counters
// and log lines.
//
// A session is session.ts's; which session an address is in is
// peer-index.ts's: one Map lookup per datagram, no scan. Every change to a
// session's slots updates the index in the same method.

import { ipKeyOf } from '../wire/address';
import type { IpKey } from '../wire/address';
import { ExpirySchedule } from './expiry';
import { PeerIndex, sameLimitKey } from './peer-index';
import { Session, isStreamPort } from './session';
import type { Slot } from './session';

export { STREAM_PORT_BASE, Session, isStreamPort } from './session';
export type { Slot } from './session';

export interface SessionTableOptions {
  /** SPEC 2.5, in milliseconds. */
  sessionTimeoutMs: number;
  /** SPEC 4.5: a session that never paired goes after this long without a registration (capped by sessionTimeoutMs). */
  unpairedTimeoutMs: number;
  /** SPEC 4.1: new sessions beyond this are refused. */
  maxSessions: number;
  /** SPEC 4.1: sessions one source IP may take part in. */
  maxSessionsPerIp: number;
  /** Granularity of the expiry schedule, in ms; removal happens at most this late plus the reaper's period. */
  expiryTickMs: number;
}

export type TableOutcome =
  | 'keepalive' // SPEC 2.2: X already in S
  | 'created' // a new session holding X
  | 'joined' // X took the free slot: the session is now paired
  | 'replaced-quiet' // X took the slot of a peer that rejoined from a new port before X came (Session.quietSlot)
  | 'rebound' // explicit rebind: a slot with X's IP became X
  | 'full' // ERR:FULL
  | 'busy-sessions' // ERR:BUSY, --max-sessions
  | 'busy-ip' // ERR:BUSY, --max-sessions-per-ip
  | 'busy-draining' // ERR:BUSY, SPEC 3.6: draining takes no new session
  | 'expired'; // ERR:AUTH, SPEC 4.3: an expired ticket may only keep alive or rebind

/**
 * What a registration may do, decided by the caller before the table is asked
 * (SPEC 3.6, 4.3); a refusal is returned before anything changes.
 *   any:         everything in SPEC 2.2
 *   no-create:   draining: keepalives, joins and rebinds, but no new session
 *   rebind-only: an expired ticket: keepalives and rebinds of its own session
 */
export type Admission = 'any' | 'no-create' | 'rebind-only';

export interface RegisterResult {
  outcome: TableOutcome;
  /** The session X is in afterwards (undefined for full/busy). */
  session: Session | undefined;
  /** The session X left first (SPEC 2.2), and whether that emptied and removed it. */
  left: Session | undefined;
  leftRemoved: boolean;
  /** For 'rebound' and 'replaced-quiet': the address the slot had before. */
  previousAddress: string | undefined;
  previousPort: number | undefined;
}

export type ImplicitRebindResult =
  | { outcome: 'rebound'; session: Session; previousAddress: string; previousPort: number }
  | { outcome: 'unknown' | 'ambiguous' | 'unpaired' };

const UNKNOWN = { outcome: 'unknown' } as const;
const AMBIGUOUS = { outcome: 'ambiguous' } as const;
const UNPAIRED = { outcome: 'unpaired' } as const;

export class SessionTable {
  private readonly sessionsById = new Map<string, Session>();
  private readonly peers = new PeerIndex<Session>();
  private pairedSessions = 0;
  private readonly opts: SessionTableOptions;
  private readonly expiry: ExpirySchedule<Session>;
  /** SPEC 4.5: an unpaired session's lifetime, never longer than a paired one's. */
  private readonly unpairedMs: number;

  constructor(opts: SessionTableOptions) {
    this.opts = opts;
    this.expiry = new ExpirySchedule<Session>(opts.expiryTickMs);
    this.unpairedMs = Math.min(opts.unpairedTimeoutMs, opts.sessionTimeoutMs);
  }

  get size(): number {
    return this.sessionsById.size;
  }
  get pairedCount(): number {
    return this.pairedSessions;
  }

  /** The session the address (ip, its spelling as received, port) is registered in: one Map lookup. */
  find(ip: IpKey, address: string, port: number): Session | undefined {
    const s = this.peers.at(ip, port);
    return s !== undefined && s.slotOf(ip, address, port) >= 0 ? s : undefined;
  }

  /** SPEC 4.1, 4.5: how many sessions peers from this IP (IPv6: its /64) take part in. */
  sessionsOnIp(ip: IpKey): number {
    return this.peers.sessionsOnIp(ip);
  }

  /**
   * SPEC 2.3: a data datagram from ip:port. Returns undefined when the address
   * is not registered (SPEC 2.4 is then the caller's next question); else its
   * session, with the datagram recorded as the session's latest (toAddress and
   * toPort now name the partner) and, when the session is paired, as activity.
   * An unpaired session's data is dropped by the caller. One Map lookup.
   */
  dataFrom(ip: IpKey, address: string, port: number, now: number): Session | undefined {
    const s = this.peers.at(ip, port);
    if (s === undefined) return undefined;
    const slot = s.slotOf(ip, address, port);
    if (slot === -1) return undefined;
    s.heardFrom(slot);
    if (s.bPort >= 0) s.lastActive = now;
    return s;
  }

  /** True when a REG for `id` from this address would be a keepalive (SPEC 4.1: never refused). */
  isKeepalive(ip: IpKey, address: string, port: number, id: string): boolean {
    return this.find(ip, address, port)?.id === id;
  }

  /** SPEC 2.2: registration of address X (ip, address, port) for session `id`. */
  register(ip: IpKey, address: string, port: number, id: string, now: number, admission: Admission = 'any'): RegisterResult {
    const existing = this.find(ip, address, port);
    if (existing !== undefined && existing.id === id) {
      // SPEC 2.2: X already in S: this is the keepalive.
      existing.heardFrom(existing.slotOf(ip, address, port) as Slot);
      existing.lastActive = now;
      return result('keepalive', existing);
    }
    let target = this.sessionsById.get(id);
    const full = target?.paired;
    const ipA = target !== undefined ? ipKeyOf(target.aAddress) : undefined;
    const ipB = target?.paired ? ipKeyOf(target.bAddress) : undefined;
    const rebind = full && (ipA === ip || ipB === ip);
    // Both peers on one IP, the first silent since the second came, and X from
    // elsewhere: X is the partner that first peer was waiting for (quietSlot).
    const replaceQuiet = full && !rebind && target!.quietSlot >= 0;

    // SPEC 3.6, 4.3, 4.1: refusals are decided before anything changes; a
    // refused registration leaves X where it was.
    if (admission !== 'any') {
      if (admission === 'rebind-only' && !rebind) return result('expired', undefined);
      if (admission === 'no-create' && target === undefined) return result('busy-draining', undefined);
    }
    if (!full || replaceQuiet) {
      const leaving = existing?.partnerIp(existing.slotOf(ip, address, port) as Slot);
      if (target === undefined && this.sessionsById.size - (existing !== undefined && leaving === null ? 1 : 0) >= this.opts.maxSessions) {
        return result('busy-sessions', undefined);
      }
      if (!sameLimitKey(ipA, ip)) {
        // X's IP joins one more session, unless X leaves one where it was alone on it.
        const freed = existing !== undefined && !sameLimitKey(leaving ?? undefined, ip) ? 1 : 0;
        if (this.sessionsOnIp(ip) - freed + 1 > this.opts.maxSessionsPerIp) return result('busy-ip', undefined);
      }
    }

    // SPEC 2.2: X in another session S' leaves it first.
    const left = existing;
    const leftRemoved = existing !== undefined && this.removeAddress(existing, existing.slotOf(ip, address, port) as Slot, ip);

    if (target === undefined) {
      target = new Session(id, address, port, now);
      this.sessionsById.set(id, target);
      this.expiry.add(target, now + this.unpairedMs);
      this.index(ip, port, target, undefined);
      return { ...result('created', target), left, leftRemoved };
    }
    if (!target.paired) {
      this.join(target, ip, address, port, ipA!, now);
      return { ...result('joined', target), left, leftRemoved };
    }
    if (replaceQuiet) {
      // The quiet slot is a: b, the same peer from its new port, moves into a
      // and X joins as b.
      const previousAddress = target.aAddress;
      const previousPort = target.aPort;
      this.removeAddress(target, 0, ipA!);
      this.join(target, ip, address, port, ipB!, now);
      return { outcome: 'replaced-quiet', session: target, left, leftRemoved, previousAddress, previousPort };
    }
    // SPEC 2.2: full, and a slot has X's IP with another port: explicit rebind
    // after a NAT port change. With both slots on that IP, the one silent longest.
    let slot: Slot | -1 = -1;
    if (ipA === ip && ipB === ip) slot = target.lastFrom === 0 ? 1 : 0;
    else if (ipA === ip) slot = 0;
    else if (ipB === ip) slot = 1;
    if (slot === -1) {
      // SPEC 2.2: nothing about X is stored; having left S', X is in no session.
      return { ...result('full', undefined), left, leftRemoved };
    }
    const previousAddress = target.addressOf(slot);
    const previousPort = target.portOf(slot);
    this.moveSlot(target, slot, ip, address, port);
    target.lastActive = now;
    return { outcome: 'rebound', session: target, left, leftRemoved, previousAddress, previousPort };
  }

  /**
   * SPEC 2.4: data from an unregistered address. When exactly one registered
   * peer has this IP and its session is paired, that slot becomes this address
   * (s.toAddress/toPort then name the partner to forward to). The lookup is the
   * IP index: O(1).
   */
  implicitRebind(ip: IpKey, address: string, port: number, now: number): ImplicitRebindResult {
    const v = this.peers.only(ip);
    if (v === undefined) return UNKNOWN;
    if (v === 'several') return AMBIGUOUS; // a host behind the same NAT cannot take over
    if (!v.paired) return UNPAIRED;
    const slot: Slot = ipKeyOf(v.aAddress) === ip ? 0 : 1;
    // SPEC 6.2: a WebSocket peer's address is its connection, which no NAT
    // rebinds; a datagram from its IP is someone else (a REG may still move it).
    if (isStreamPort(v.portOf(slot))) return UNKNOWN;
    const previousAddress = v.addressOf(slot);
    const previousPort = v.portOf(slot);
    this.moveSlot(v, slot, ip, address, port);
    v.lastActive = now;
    return { outcome: 'rebound', session: v, previousAddress, previousPort };
  }

  /**
   * SPEC 6.2: the peer at ip:port leaves its session (its connection closed).
   * Returns that session and whether it emptied and was removed; undefined
   * when the address is in none.
   */
  leave(ip: IpKey, address: string, port: number): { session: Session; removed: boolean } | undefined {
    const s = this.find(ip, address, port);
    if (s === undefined) return undefined;
    return { session: s, removed: this.removeAddress(s, s.slotOf(ip, address, port) as Slot, ip) };
  }

  /**
   * SPEC 2.5: removes every session whose last activity is `sessionTimeoutMs`
   * or more before `now`, with its peers' index entries, and returns them.
   */
  expire(now: number, max = Infinity): Session[] {
    const removed: Session[] = [];
    const timeout = this.opts.sessionTimeoutMs;
    const unpairedTimeout = this.unpairedMs;
    // Each session is looked at about once per timeout: when its bucket comes
    // due it goes if its deadline passed, else it moves to its real deadline.
    // At most `max` are looked at, so that a mass expiry is taken in slices.
    this.expiry.takeDue(now, max, (s) => {
      const deadline = s.lastActive + (s.pairedOnce ? timeout : unpairedTimeout);
      if (deadline <= now) {
        this.removeSession(s);
        removed.push(s);
      } else {
        this.expiry.add(s, deadline);
      }
    });
    return removed;
  }

  /** Every session, oldest first (insertion order): for introspection, never the datagram path. */
  sessions(): IterableIterator<Session> {
    return this.sessionsById.values();
  }

  /** True when expire(now) has sessions left to look at (a slice stopped short). */
  expiryDue(now: number): boolean {
    return this.expiry.hasDue(now);
  }

  // ---- mutations: each keeps sessionsById, the peer index and pairedSessions in step

  /** X takes the free slot b of `s`, whose peer a is on `ipA`. */
  private join(s: Session, ip: IpKey, address: string, port: number, ipA: IpKey, now: number): void {
    s.join(address, port, now, ipA === ip);
    this.pairedSessions++;
    this.index(ip, port, s, ipA);
  }

  /** Indexes ip:port as a peer of `s`, whose other peer (if any) is on `otherIp`. */
  private index(ip: IpKey, port: number, s: Session, otherIp: IpKey | undefined): void {
    this.peers.add(ip, port, s, otherIp, (only) => (ipKeyOf(only.aAddress) === ip ? only.aPort : only.bPort));
  }

  /** Removes the peer in `slot` (on IP `ip`); removes the session when it empties. Returns true if it did. */
  private removeAddress(s: Session, slot: Slot, ip: IpKey): boolean {
    const port = s.portOf(slot);
    if (!s.paired) {
      this.peers.remove(ip, port, undefined);
      this.sessionsById.delete(s.id);
      this.expiry.remove(s); // SPEC 2.5 bookkeeping: a removed session leaves the schedule at once
      return true;
    }
    const otherIp = ipKeyOf(slot === 0 ? s.bAddress : s.aAddress);
    this.peers.remove(ip, port, otherIp);
    s.vacate(slot); // b may move into a: the index points at sessions, not slots, so it is unchanged
    this.pairedSessions--;
    return false;
  }

  /** A rebind: the slot gets a new port (and address spelling) on the same IP. */
  private moveSlot(s: Session, slot: Slot, ip: IpKey, address: string, port: number): void {
    this.peers.move(ip, s.portOf(slot), port, s);
    s.move(slot, address, port); // and heard from its new port
  }

  private removeSession(s: Session): void {
    const ipA = ipKeyOf(s.aAddress);
    if (s.paired) {
      const ipB = ipKeyOf(s.bAddress);
      this.pairedSessions--;
      // The first unindex still sees the partner; the last sees none, so an IP
      // both peers share loses this session exactly once.
      this.peers.remove(ipA, s.aPort, ipB);
      this.peers.remove(ipB, s.bPort, undefined);
    } else {
      this.peers.remove(ipA, s.aPort, undefined);
    }
    this.sessionsById.delete(s.id);
    this.expiry.remove(s); // a no-op when expire() took it off already
  }
}

function result(outcome: TableOutcome, session: Session | undefined): RegisterResult {
  return { outcome, session, left: undefined, leftRemoved: false, previousAddress: undefined, previousPort: undefined };
}

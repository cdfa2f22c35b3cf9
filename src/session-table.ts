// Sessions and their indexes (SPEC 2.1-2.5). Pure: no sockets, no clock (every
// method that needs the time takes `now`, integer milliseconds), no logging.
// Methods return outcomes; the socket layer turns them into replies, counters
// and log lines.
//
// One index serves both lookups the relay needs per datagram:
//   ipIndex: ip -> the single Peer on that IP, or an IpGroup (by port) when
//   several peers share it.
// So "which peer is ip:port" is one Map lookup plus a port compare, and "is
// there exactly one peer on this IP" (SPEC 2.4) is the same lookup: no scan.
// Every mutation of a session updates the index in the same method.

import type { IpKey } from './address';

export class Peer {
  /** As received from the socket; forwards and replies go here. */
  address: string;
  port: number;
  readonly ip: IpKey;
  session: Session;
  /** Time of this address's last datagram to the relay (SPEC 2.2 tie-break). */
  lastSeen: number;
  constructor(ip: IpKey, address: string, port: number, session: Session, now: number) {
    this.ip = ip;
    this.address = address;
    this.port = port;
    this.session = session;
    this.lastSeen = now;
  }
}

export class Session {
  readonly id: string;
  a: Peer | undefined = undefined;
  b: Peer | undefined = undefined;
  /** Last registration or forwarded datagram (SPEC 2.5). */
  lastActive: number;
  constructor(id: string, now: number) {
    this.id = id;
    this.lastActive = now;
  }
  get paired(): boolean {
    return this.a !== undefined && this.b !== undefined;
  }
}

/** Several peers on one IP: found by port; `sessions` counts the distinct sessions they are in. */
class IpGroup {
  readonly byPort = new Map<number, Peer>();
  sessions = 1;
}

export interface SessionTableOptions {
  /** SPEC 2.5, in milliseconds. */
  sessionTimeoutMs: number;
  /** SPEC 4.1: new sessions beyond this are refused. */
  maxSessions: number;
  /** SPEC 4.1: sessions one source IP may take part in. */
  maxSessionsPerIp: number;
  /** Granularity of the expiry wheel, in ms; removal happens at most this late plus the reaper's period. */
  wheelTickMs: number;
}

export type RegisterOutcome =
  | 'keepalive' // SPEC 2.2: X already in S
  | 'created' // a new session holding X
  | 'joined' // X took the free slot: the session is now paired
  | 'rebound' // explicit rebind: a slot with X's IP became X
  | 'full' // ERR:FULL
  | 'busy-sessions' // ERR:BUSY, --max-sessions
  | 'busy-ip'; // ERR:BUSY, --max-sessions-per-ip

export interface RegisterResult {
  outcome: RegisterOutcome;
  /** The session X is in afterwards (undefined for full/busy). */
  session: Session | undefined;
  /** The session X left first (SPEC 2.2), and whether that emptied and removed it. */
  left: Session | undefined;
  leftRemoved: boolean;
  /** For 'rebound': the address the slot had before. */
  previousAddress: string | undefined;
  previousPort: number | undefined;
}

export type ImplicitRebindResult =
  | { outcome: 'rebound'; peer: Peer; partner: Peer; previousAddress: string; previousPort: number }
  | { outcome: 'unknown' | 'ambiguous' | 'unpaired' };

const UNKNOWN = { outcome: 'unknown' } as const;
const AMBIGUOUS = { outcome: 'ambiguous' } as const;
const UNPAIRED = { outcome: 'unpaired' } as const;

export class SessionTable {
  private readonly sessionsById = new Map<string, Session>();
  private readonly ipIndex = new Map<IpKey, Peer | IpGroup>();
  private pairedSessions = 0;
  private readonly opts: SessionTableOptions;
  // Expiry wheel: tick number -> sessions to look at then. A session sits in
  // exactly one bucket; when its bucket comes due it is removed if its deadline
  // passed, else moved to the bucket of its real deadline. Each session is thus
  // looked at about once per timeout, never on every sweep.
  private readonly wheel = new Map<number, Session[]>();
  private wheelStarted = false;
  private sweptThrough = 0;

  constructor(opts: SessionTableOptions) {
    this.opts = opts;
  }

  get size(): number {
    return this.sessionsById.size;
  }
  get pairedCount(): number {
    return this.pairedSessions;
  }

  /** The registered peer at ip:port, if any: one Map lookup. */
  peerAt(ip: IpKey, port: number): Peer | undefined {
    const v = this.ipIndex.get(ip);
    if (v === undefined) return undefined;
    if (v instanceof Peer) return v.port === port ? v : undefined;
    return v.byPort.get(port);
  }

  session(id: string): Session | undefined {
    return this.sessionsById.get(id);
  }

  /** SPEC 4.1: how many sessions peers from this IP take part in. */
  sessionsOnIp(ip: IpKey): number {
    const v = this.ipIndex.get(ip);
    return v === undefined ? 0 : v instanceof Peer ? 1 : v.sessions;
  }

  /** Registered peers on this IP (for tests and diagnostics). */
  peersOnIp(ip: IpKey): Peer[] {
    const v = this.ipIndex.get(ip);
    return v === undefined ? [] : v instanceof Peer ? [v] : [...v.byPort.values()];
  }

  /** The other peer of this peer's session, if it has arrived. */
  partnerOf(peer: Peer): Peer | undefined {
    const s = peer.session;
    return s.a === peer ? s.b : s.a;
  }

  /**
   * SPEC 2.3: a data datagram from a registered peer. Returns the partner to
   * forward to (and records the activity), or undefined when the session is not
   * paired yet (the caller drops and counts it).
   */
  dataFrom(peer: Peer, now: number): Peer | undefined {
    peer.lastSeen = now;
    const s = peer.session;
    const partner = s.a === peer ? s.b : s.a;
    if (partner !== undefined) s.lastActive = now;
    return partner;
  }

  /** True when a REG for `id` from ip:port would be a keepalive (SPEC 4.1: never refused). */
  isKeepalive(ip: IpKey, port: number, id: string): boolean {
    const p = this.peerAt(ip, port);
    return p !== undefined && p.session.id === id;
  }

  /** SPEC 2.2: registration of address X (ip, address, port) for session `id`. */
  register(ip: IpKey, address: string, port: number, id: string, now: number): RegisterResult {
    const existing = this.peerAt(ip, port);
    if (existing !== undefined && existing.session.id === id) {
      // SPEC 2.2: X already in S: this is the keepalive.
      existing.lastSeen = now;
      existing.session.lastActive = now;
      return result('keepalive', existing.session);
    }
    let target = this.sessionsById.get(id);

    // SPEC 4.1: limits are checked before anything changes; a refused
    // registration leaves X where it was.
    const full = target !== undefined && target.paired;
    const sharesIp = target !== undefined && (target.a?.ip === ip || target.b?.ip === ip);
    if (!full) {
      const leavingEmpties = existing !== undefined && this.partnerOf(existing) === undefined;
      if (target === undefined && this.sessionsById.size - (leavingEmpties ? 1 : 0) >= this.opts.maxSessions) {
        return result('busy-sessions', undefined);
      }
      if (!sharesIp) {
        const leavingFreesIp = existing !== undefined && this.partnerOf(existing)?.ip !== ip;
        if (this.sessionsOnIp(ip) - (leavingFreesIp ? 1 : 0) + 1 > this.opts.maxSessionsPerIp) {
          return result('busy-ip', undefined);
        }
      }
    }

    // SPEC 2.2: X in another session S' leaves it first.
    let left: Session | undefined;
    let leftRemoved = false;
    if (existing !== undefined) {
      left = existing.session;
      leftRemoved = this.removePeer(existing);
    }

    if (target === undefined) {
      target = new Session(id, now);
      this.sessionsById.set(id, target);
      this.schedule(target, now + this.opts.sessionTimeoutMs);
      this.addPeer(target, ip, address, port, now);
      return { ...result('created', target), left, leftRemoved };
    }
    if (!target.paired) {
      this.addPeer(target, ip, address, port, now);
      target.lastActive = now;
      return { ...result('joined', target), left, leftRemoved };
    }
    // SPEC 2.2: full, and a slot has X's IP with another port: explicit rebind
    // after a NAT port change. With both slots on that IP, the one silent longest.
    const a = target.a as Peer, b = target.b as Peer;
    let slot: Peer | undefined;
    if (a.ip === ip && b.ip === ip) slot = a.lastSeen <= b.lastSeen ? a : b;
    else if (a.ip === ip) slot = a;
    else if (b.ip === ip) slot = b;
    if (slot === undefined) {
      // SPEC 2.2: nothing about X is stored; having left S', X is in no session.
      return { ...result('full', undefined), left, leftRemoved };
    }
    const previousAddress = slot.address, previousPort = slot.port;
    this.movePeer(slot, address, port, now);
    target.lastActive = now;
    return { outcome: 'rebound', session: target, left, leftRemoved, previousAddress, previousPort };
  }

  /**
   * SPEC 2.4: data from an unregistered address. When exactly one registered
   * peer has this IP and its session is paired, that slot becomes this address
   * and the partner is returned to forward to. The lookup is the IP index: O(1).
   */
  implicitRebind(ip: IpKey, address: string, port: number, now: number): ImplicitRebindResult {
    const v = this.ipIndex.get(ip);
    if (v === undefined) return UNKNOWN;
    if (!(v instanceof Peer)) return AMBIGUOUS; // a host behind the same NAT cannot take over
    const partner = this.partnerOf(v);
    if (partner === undefined) return UNPAIRED;
    const previousAddress = v.address, previousPort = v.port;
    this.movePeer(v, address, port, now);
    v.session.lastActive = now;
    return { outcome: 'rebound', peer: v, partner, previousAddress, previousPort };
  }

  /**
   * SPEC 2.5: removes every session whose last activity is `sessionTimeoutMs`
   * or more before `now`, with its peers' index entries, and returns them.
   */
  expire(now: number): Session[] {
    const removed: Session[] = [];
    const tick = this.opts.wheelTickMs;
    const last = Math.floor(now / tick);
    if (!this.wheelStarted || last <= this.sweptThrough) return removed;
    const visit = (t: number): void => {
      const bucket = this.wheel.get(t);
      if (bucket === undefined) return;
      this.wheel.delete(t);
      for (const s of bucket) {
        if (this.sessionsById.get(s.id) !== s) continue; // removed earlier: stale entry
        const deadline = s.lastActive + this.opts.sessionTimeoutMs;
        if (deadline <= now) {
          this.removeSession(s);
          removed.push(s);
        } else {
          this.schedule(s, deadline);
        }
      }
    };
    if (last - this.sweptThrough > this.wheel.size * 2 + 16) {
      // A long gap (a clock jump, a suspended VM): visit the buckets that exist.
      const due = [...this.wheel.keys()].filter((t) => t <= last).sort((x, y) => x - y);
      this.sweptThrough = last;
      for (const t of due) visit(t);
    } else {
      while (this.sweptThrough < last) visit(++this.sweptThrough);
    }
    return removed;
  }

  /** Every session (for tests, metrics at scrape time and the stop summary). */
  sessions(): IterableIterator<Session> {
    return this.sessionsById.values();
  }

  /** Every indexed peer (for the consistency checks in tests). */
  *indexedPeers(): Generator<Peer> {
    for (const v of this.ipIndex.values()) {
      if (v instanceof Peer) yield v;
      else yield* v.byPort.values();
    }
  }

  /** Number of IP index entries and IpGroups' session counts, for consistency checks in tests. */
  ipIndexSnapshot(): Map<IpKey, { peers: number; sessions: number }> {
    const out = new Map<IpKey, { peers: number; sessions: number }>();
    for (const [ip, v] of this.ipIndex) {
      out.set(ip, v instanceof Peer ? { peers: 1, sessions: 1 } : { peers: v.byPort.size, sessions: v.sessions });
    }
    return out;
  }

  // ---- mutations: each keeps sessionsById, ipIndex and pairedSessions in step

  /** Puts a session in the bucket of the first tick at or after `deadline`. */
  private schedule(s: Session, deadline: number): void {
    const t = Math.ceil(deadline / this.opts.wheelTickMs);
    if (!this.wheelStarted) {
      // Every later deadline is later than this first one.
      this.wheelStarted = true;
      this.sweptThrough = t - 1;
    }
    const bucket = this.wheel.get(t);
    if (bucket === undefined) this.wheel.set(t, [s]);
    else bucket.push(s);
  }

  private addPeer(s: Session, ip: IpKey, address: string, port: number, now: number): Peer {
    const peer = new Peer(ip, address, port, s, now);
    const other = s.a ?? s.b;
    if (s.a === undefined) s.a = peer;
    else s.b = peer;
    if (other !== undefined) this.pairedSessions++;
    const v = this.ipIndex.get(ip);
    if (v === undefined) {
      this.ipIndex.set(ip, peer);
    } else {
      let group: IpGroup;
      if (v instanceof Peer) {
        group = new IpGroup(); // sessions = 1: v's session
        group.byPort.set(v.port, v);
        this.ipIndex.set(ip, group);
      } else {
        group = v;
      }
      group.byPort.set(port, peer);
      // The IP takes part in one more session unless the partner is on it already.
      if (other?.ip !== ip) group.sessions++;
    }
    return peer;
  }

  /** Removes a peer from its session and the index; removes the session when it empties. Returns true if it did. */
  private removePeer(peer: Peer): boolean {
    const s = peer.session;
    const other = s.a === peer ? s.b : s.a;
    if (other !== undefined) this.pairedSessions--;
    s.a = other;
    s.b = undefined;
    this.unindex(peer, other);
    if (other === undefined) {
      this.sessionsById.delete(s.id);
      return true;
    }
    return false;
  }

  private unindex(peer: Peer, partner: Peer | undefined): void {
    const v = this.ipIndex.get(peer.ip);
    if (v === peer) {
      this.ipIndex.delete(peer.ip);
    } else if (v instanceof IpGroup) {
      v.byPort.delete(peer.port);
      if (partner?.ip !== peer.ip) v.sessions--;
      if (v.byPort.size === 1) {
        // Back to a single peer: its one session is implied.
        for (const only of v.byPort.values()) this.ipIndex.set(peer.ip, only);
      }
    }
  }

  /** A rebind: same IP, new port (and address spelling). The index entry moves with it. */
  private movePeer(peer: Peer, address: string, port: number, now: number): void {
    const v = this.ipIndex.get(peer.ip);
    if (v instanceof IpGroup) {
      v.byPort.delete(peer.port);
      v.byPort.set(port, peer);
    }
    peer.address = address;
    peer.port = port;
    peer.lastSeen = now;
  }

  private removeSession(s: Session): void {
    const a = s.a, b = s.b;
    if (a !== undefined && b !== undefined) this.pairedSessions--;
    // The first unindex still sees the partner in the session; the last sees
    // none, so an IP both peers share loses this session exactly once.
    if (a !== undefined) this.unindex(a, b);
    if (b !== undefined) this.unindex(b, undefined);
    s.a = undefined;
    s.b = undefined;
    this.sessionsById.delete(s.id);
  }
}

function result(outcome: RegisterOutcome, session: Session | undefined): RegisterResult {
  return { outcome, session, left: undefined, leftRemoved: false, previousAddress: undefined, previousPort: undefined };
}

// One session (SPEC 2.1-2.2): its two peers inline (slot a, slot b), one
// object per session and none per peer, which is what memory per session is
// made of (SPEC 4.1's "a thousand sessions", 100k in the benchmark). Pure.
// Its slots change only through session-table.ts, which keeps the index in
// step; the methods here change the session's own fields and nothing else.

import { ipKeyOf } from '../wire/address';
import type { IpKey } from '../wire/address';
import type { ExpiryEntry } from './expiry';

/**
 * SPEC 6.2: a WebSocket peer's port in the table. Each connection is one peer
 * address, its IP and a port above the UDP range, so UDP and WebSocket peers
 * share every rule of the table and can never be mistaken for each other.
 */
export const STREAM_PORT_BASE = 65_536;

export function isStreamPort(port: number): boolean {
  return port >= STREAM_PORT_BASE;
}

/** A slot of a session: 0 is a, 1 is b. */
export type Slot = 0 | 1;

export class Session implements ExpiryEntry<Session> {
  readonly id: string;
  /** Last registration or forwarded datagram (SPEC 2.5). */
  lastActive: number;
  /** Slot a: filled as long as the session exists. Addresses are kept as received (replies and forwards go there). */
  aAddress: string;
  aPort: number;
  /** Slot b: bPort is -1 until the partner arrives. */
  bAddress = '';
  bPort = -1;
  /**
   * The slot whose datagram reached the relay last. With two slots, the other
   * one is "the one silent longest" (SPEC 2.2), so this one field replaces a
   * timestamp per peer. Data handling also uses it: the partner is the other slot.
   */
  lastFrom: Slot = 0;
  /** SPEC 4.1 (opt-in bandwidth cap): theoretical arrival time of the next byte, in ms (GCRA). */
  rateTat = 0;
  /** SPEC 4.4: the packet budget's theoretical arrival time of the next datagram, in ms (GCRA). */
  packetTat = 0;
  /** SPEC 4.5: a session that never paired lives --unpaired-timeout-secs without a registration. */
  pairedOnce = false;
  /** For /debug/sessions: when it was created, and what it has had forwarded (both ways). */
  readonly createdAt: number;
  forwardedDatagrams = 0;
  forwardedBytes = 0;
  /**
   * Slot a when b joined from a's IP and a has not been heard since; else -1.
   * A peer whose NAT port changed before its partner arrived joins its own
   * session from the new port; its partner may then take the stale slot
   * (register()), instead of ERR:FULL for as long as keepalives run.
   */
  quietSlot: Slot | -1 = -1;
  // The expiry schedule's links (expiry.ts): no array or set entry per session.
  expiryTick = -1;
  expiryPrev: Session | null = null;
  expiryNext: Session | null = null;

  constructor(id: string, address: string, port: number, now: number) {
    this.id = id;
    this.aAddress = address;
    this.aPort = port;
    this.lastActive = now;
    this.createdAt = now;
  }

  get paired(): boolean {
    return this.bPort >= 0;
  }

  /**
   * The slot holding ip:port, or -1. One socket always spells an address the
   * same way, so comparing the strings decides at once; only when a port
   * matches but the spelling does not (1.2.3.4 vs ::ffff:1.2.3.4) are the IPs
   * compared, so a peer is one peer however it is written.
   */
  slotOf(ip: IpKey, address: string, port: number): Slot | -1 {
    if (this.aPort === port && this.aAddress === address) return 0;
    if (this.bPort === port && this.bAddress === address) return 1;
    if (this.aPort === port && ipKeyOf(this.aAddress) === ip) return 0;
    if (this.bPort === port && ipKeyOf(this.bAddress) === ip) return 1;
    return -1;
  }

  /** The partner of the slot that sent last: where its data goes. */
  get toAddress(): string {
    return this.lastFrom === 0 ? this.bAddress : this.aAddress;
  }
  get toPort(): number {
    return this.lastFrom === 0 ? this.bPort : this.aPort;
  }

  /** The address of `slot`, as received. */
  addressOf(slot: Slot): string {
    return slot === 0 ? this.aAddress : this.bAddress;
  }

  portOf(slot: Slot): number {
    return slot === 0 ? this.aPort : this.bPort;
  }

  /** The IP of the slot other than `slot`; null when the session is not paired. */
  partnerIp(slot: Slot): IpKey | null {
    return this.paired ? ipKeyOf(slot === 0 ? this.bAddress : this.aAddress) : null;
  }

  /** A datagram or REG from `slot` reached the relay: the other slot is now the one silent longest. */
  heardFrom(slot: Slot): void {
    this.lastFrom = slot;
    if (slot === this.quietSlot) this.quietSlot = -1;
  }

  /** X takes the free slot b; `quietA`: X is on a's IP, and a counts as quiet until heard (quietSlot). */
  join(address: string, port: number, now: number, quietA: boolean): void {
    this.bAddress = address;
    this.bPort = port;
    this.lastFrom = 1;
    this.lastActive = now;
    this.pairedOnce = true;
    this.quietSlot = quietA ? 0 : -1;
  }

  /** A rebind: `slot` gets a new port (and address spelling), and it is heard from there. */
  move(slot: Slot, address: string, port: number): void {
    if (slot === 0) {
      this.aAddress = address;
      this.aPort = port;
    } else {
      this.bAddress = address;
      this.bPort = port;
    }
    this.heardFrom(slot);
  }

  /** The peer in `slot` of a paired session leaves: b moves into a, if need be, and b is free. */
  vacate(slot: Slot): void {
    if (slot === 0) {
      this.aAddress = this.bAddress;
      this.aPort = this.bPort;
    }
    this.bAddress = '';
    this.bPort = -1;
    this.lastFrom = 0;
    this.quietSlot = -1;
  }
}

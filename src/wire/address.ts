// Canonical keys for peers, from the address strings Node gives in rinfo.
// No sockets. The hot path calls ipKeyOf() once per datagram, so it parses
// without allocating: an IPv4 address (or IPv4-mapped IPv6, SPEC 1.1) becomes
// a 32-bit integer, which V8 keeps unboxed; any other IPv6 address keys by the
// canonical string the kernel produced.

export type IpKey = number | string;

const DOT = 0x2e,
  ZERO = 0x30,
  NINE = 0x39;

/** Parses dotted-quad IPv4 from `start` to the end; -1 when it is not one. Returns an unsigned value. */
function parseIPv4(s: string, start: number): number {
  let value = 0,
    octet = 0,
    digits = 0,
    dots = 0;
  for (let i = start; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= ZERO && c <= NINE) {
      octet = octet * 10 + (c - ZERO);
      if (++digits > 3 || octet > 255) return -1;
    } else if (c === DOT) {
      if (digits === 0 || ++dots > 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

/** True for `::ffff:` (any case), the prefix of an IPv4-mapped IPv6 address. */
function hasMappedPrefix(s: string): boolean {
  if (s.length < 14 || s.charCodeAt(0) !== 0x3a || s.charCodeAt(1) !== 0x3a || s.charCodeAt(6) !== 0x3a) return false;
  for (let i = 2; i < 6; i++) if ((s.charCodeAt(i) | 0x20) !== 0x66) return false;
  return true;
}

/**
 * The IP part of a peer's identity: IPv4 and IPv4-mapped IPv6 give the same
 * int32, so a peer is one peer on a dual-stack socket however it is written.
 */
export function ipKeyOf(address: string): IpKey {
  const v4 = parseIPv4(address, hasMappedPrefix(address) ? 7 : 0);
  // Addresses come from the kernel (inet_ntop), so an IPv6 string is already canonical.
  return v4 >= 0 ? v4 | 0 : address;
}

/** SPEC 1.5: the address as a peer should read it: IPv4-mapped IPv6 as its dotted quad, anything else unchanged. */
export function unmappedAddress(address: string): string {
  return hasMappedPrefix(address) && parseIPv4(address, 7) >= 0 ? address.slice(7) : address;
}

/**
 * A dgram `lookup` for sockets that only ever send to IP literals (the relay,
 * the client, the sidecar): it answers at once, so a send does not detour
 * through dns.lookup and process.nextTick as with the default.
 */
export function literalLookup(family: 4 | 6): (address: string, options: unknown, callback: (...args: never[]) => void) => void {
  return (address, _options, callback) => (callback as unknown as (e: null, a: string, f: number) => void)(null, address, family);
}

/** For logs only: `ip:port`, IPv6 in brackets. */
export function formatAddress(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * SPEC 4.5: the key per-IP limits count by. An IPv4 address (or IPv4-mapped)
 * is itself; an IPv6 address counts by its /64, the block one subscriber
 * gets, so one host cannot pose as 2^64 "IPs". Called per registration, not
 * per forwarded datagram.
 */
export function limitKeyOf(ip: IpKey): IpKey {
  if (typeof ip === 'number') return ip;
  const groups = expandIPv6(ip);
  return groups === undefined ? ip : `${groups.slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address in text (any form inet_ntop writes), as hex strings; undefined if it is not one. */
function expandIPv6(address: string): string[] | undefined {
  const zone = address.indexOf('%');
  const text = (zone >= 0 ? address.slice(0, zone) : address).toLowerCase();
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const part = (s: string): string[] | undefined => {
    if (s === '') return [];
    const out: string[] = [];
    for (const g of s.split(':')) {
      if (g.includes('.')) {
        const v4 = parseIPv4(g, 0);
        if (v4 < 0) return undefined;
        out.push((v4 >>> 16).toString(16), (v4 & 0xffff).toString(16));
      } else if (/^[0-9a-f]{1,4}$/.test(g)) {
        out.push(parseInt(g, 16).toString(16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  return [...head, ...Array<string>(missing).fill('0'), ...tail];
}

/** True for 127.0.0.0/8 (as an IpKey) and ::1: addresses that are this host's whatever its interfaces. */
export function isLoopbackKey(ip: IpKey): boolean {
  return typeof ip === 'number' ? ip >>> 24 === 127 : ip === '::1';
}

/** True for 0.0.0.0 and ::, which the kernel delivers to this host when used as a destination. */
export function isUnspecifiedKey(ip: IpKey): boolean {
  return ip === 0 || ip === '::';
}

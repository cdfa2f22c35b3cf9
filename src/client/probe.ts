// The probe: two RelayClients on a random session, datagrams round-tripped
// through the relay; how a user checks a freshly deployed relay. It also asks
// the relay which public address it sees (SPEC 1.5) and, given several relays,
// whether this NAT keeps one public port for every destination: the condition
// for hole punching to work from here.
import { randomBytes } from 'node:crypto';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { formatAddress, ipKeyOf, literalLookup } from '../wire/address';
import { ADDRESS_QUERY_DATAGRAM, encodeRegister, parseAddressAnswer } from '../wire/protocol';
import { RegistrationRefusedError } from '../wire/errors';
import type { RefusalReason } from '../wire/errors';
import { RelayClient } from './relay-client';
import type { RelayEndpoint } from './relay-client';
import { StreamLink } from './stream-link';
import type { StreamOptions } from './stream-link';
import { realTimers } from './timers';

export interface ProbeOptions {
  relay: RelayEndpoint;
  count: number;
  intervalMs: number;
  /** How long to wait for registration, and for the last replies. */
  timeoutMs: number;
  /** A ticket (SPEC 4.3) for a relay that wants one; both probe peers use it. @default a random id */
  ticket?: string;
  /** SPEC 6.4: which way to reach the relay: its UDP port, or its WebSocket leg. @default 'udp' */
  transport?: 'udp' | 'ws';
  /** SPEC 6.4: the WebSocket leg's port, TLS, CA and proxy. */
  stream?: StreamOptions;
}

export interface ProbeResult {
  relay: string;
  /** SPEC 6.4: how it was reached. */
  transport: 'udp' | 'ws';
  answered: boolean;
  registerMs: number | undefined;
  sent: number;
  received: number;
  lossPct: number;
  rttP50Ms: number | undefined;
  rttP99Ms: number | undefined;
  /** SPEC 1.5: this side's address as the relay sees it; undefined when the relay does not answer queries. */
  publicAddress: { address: string; port: number } | undefined;
  /** The relay answered with a refusal (ERR:AUTH, ERR:BUSY, ...): it is up, but would not take the probe. */
  refused: RefusalReason | undefined;
  error: string | undefined;
}

const quantile = (sorted: number[], q: number): number | undefined =>
  sorted.length === 0 ? undefined : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];

export async function probe(o: ProbeOptions): Promise<ProbeResult> {
  const session = o.ticket ?? `probe-${randomBytes(12).toString('hex')}`;
  const transport = o.transport ?? 'udp';
  const opts = {
    relay: o.relay,
    sessionId: session,
    registerTimeoutMs: o.timeoutMs,
    keepaliveSecs: 15,
    transport,
    ...(o.stream !== undefined ? { stream: o.stream } : {}),
  };
  const a = new RelayClient(opts);
  const b = new RelayClient(opts);
  const result: ProbeResult = {
    relay: a.relayName,
    transport,
    answered: false,
    registerMs: undefined,
    sent: 0,
    received: 0,
    lossPct: 100,
    rttP50Ms: undefined,
    rttP99Ms: undefined,
    publicAddress: undefined,
    refused: undefined,
    error: undefined,
  };
  try {
    const t0 = realTimers.now();
    if (transport === 'ws') {
      // A relay without a WebSocket leg refuses the connection at once: say so now, not after the timeout.
      const unreachable = await streamReachable(o.relay.host, o.stream ?? {}, o.timeoutMs);
      if (unreachable !== undefined) throw new Error(`WebSocket leg: ${unreachable}`);
    }
    await a.register();
    result.answered = true;
    if (transport === 'udp') result.publicAddress = await a.queryAddress(Math.min(o.timeoutMs, 1000)); // over a WebSocket it names a TCP port
    await b.register();
    result.registerMs = realTimers.now() - t0;
    const rtts = await roundTrips(a, b, o, () => result.sent++);
    rtts.sort((x, y) => x - y);
    result.received = rtts.length;
    result.lossPct = (100 * (result.sent - result.received)) / Math.max(1, result.sent);
    result.rttP50Ms = quantile(rtts, 0.5);
    result.rttP99Ms = quantile(rtts, 0.99);
  } catch (err) {
    result.error = (err as Error).message;
    if (err instanceof RegistrationRefusedError) {
      result.answered = true; // a refusal is an answer: the relay is up
      result.refused = err.reason;
    }
  } finally {
    if (o.ticket === undefined && transport === 'udp') leaveSession(a, b);
    await Promise.all([a.close(), b.close()]);
  }
  return result;
}

const PING_MAGIC = 0x51525052; // 'QRPR'

/** `o.count` pings from a, `o.intervalMs` apart, echoed by b: the round trips of those that came back. */
async function roundTrips(a: RelayClient, b: RelayClient, o: ProbeOptions, sent: () => void): Promise<number[]> {
  b.on('message', (m) => b.send(m)); // the far side echoes
  const rtts: number[] = [];
  const sentAt = new Map<number, number>();
  let allSent = false;
  let lastReply: () => void = () => undefined;
  a.on('message', (m) => {
    if (m.length < 8 || m.readUInt32BE(0) !== PING_MAGIC) return;
    const seq = m.readUInt32BE(4);
    const at = sentAt.get(seq);
    if (at === undefined) return;
    sentAt.delete(seq);
    rtts.push(realTimers.now() - at);
    if (sentAt.size === 0 && allSent) lastReply();
  });
  for (let seq = 0; seq < o.count; seq++) {
    const ping = Buffer.alloc(64);
    ping.writeUInt32BE(PING_MAGIC, 0);
    ping.writeUInt32BE(seq, 4);
    sentAt.set(seq, realTimers.now());
    a.send(ping);
    sent();
    if (seq < o.count - 1) await new Promise((r) => setTimeout(r, o.intervalMs));
  }
  allSent = true;
  if (sentAt.size > 0) {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      lastReply = resolve;
      timer = setTimeout(resolve, Math.min(o.timeoutMs, 2000));
    });
    clearTimeout(timer); // nothing left running once the probe returns
  }
  return rtts;
}

/**
 * The relay has no "leave": over UDP, each side registers a fresh id, which
 * empties and removes the probe's session now (SPEC 2.2) and leaves two
 * unpaired ones that go after --unpaired-timeout-secs (60 s), not a paired
 * one for 300 s. (A ticket cannot be swapped for a random id; a WebSocket
 * leaves its session when it closes.)
 */
function leaveSession(a: RelayClient, b: RelayClient): void {
  for (const c of [a, b]) if (c.registered) c.send(encodeRegister(`probe-gone-${randomBytes(12).toString('hex')}`));
}

/** Undefined when a WebSocket to the relay opens within timeoutMs; else why not. */
function streamReachable(host: string, stream: StreamOptions, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const link = new StreamLink(host, { handshakeTimeoutMs: timeoutMs, ...stream });
    link.once('open', () => {
      link.close();
      resolve(undefined);
    });
    link.once('close', (why) => resolve(`${link.url}: ${why}`));
  });
}

export function formatProbe(r: ProbeResult): string {
  const ms = (v: number | undefined): string => (v === undefined ? 'n/a' : `${v.toFixed(2)} ms`);
  if (r.transport === 'ws') r = { ...r, relay: `${r.relay} over WebSocket` };
  if (!r.answered) return `relay ${r.relay}: no answer (${r.error ?? 'no ACK'})`;
  if (r.refused === 'auth') return `relay ${r.relay}: answered ERR:AUTH: it wants a ticket (--ticket or QUIC_RELAY_TICKET)`;
  if (r.refused !== undefined) return `relay ${r.relay}: answered ERR:${r.refused.toUpperCase()}${r.refused === 'busy' ? ' (full, or draining)' : ''}`;
  if (r.error !== undefined && r.registerMs === undefined) return `relay ${r.relay}: answered, but the second peer could not register (${r.error})`;
  const seen =
    r.transport === 'ws'
      ? 'the WebSocket leg works from here'
      : r.publicAddress === undefined
        ? 'no address query answer (an older relay)'
        : `public address ${formatAddress(r.publicAddress.address, r.publicAddress.port)}`;
  return (
    `relay ${r.relay}: answered, both peers registered in ${ms(r.registerMs)}; ` +
    `${r.received}/${r.sent} round trips, loss ${r.lossPct.toFixed(1)}%, RTT p50 ${ms(r.rttP50Ms)} p99 ${ms(r.rttP99Ms)}; ${seen}`
  );
}

export interface NatCheck {
  /** Per relay, the address it saw our one socket as (undefined: no answer). */
  seen: Array<{ relay: string; address: { address: string; port: number } | undefined }>;
  /**
   * 'consistent': every relay that answered saw the same public port, so this
   * NAT maps one socket to one port (punching can work); 'varies': ports
   * differ per destination (a symmetric NAT: punching cannot, the relay
   * carries); 'unknown': fewer than two answers.
   */
  mapping: 'consistent' | 'varies' | 'unknown';
}

/**
 * Like `tailscale netcheck`: one socket asks each relay (SPEC 1.5) which
 * address it sees. The relays must share an address family.
 */
export async function natCheck(relays: ReadonlyArray<{ host: string; port: number }>, timeoutMs = 1000): Promise<NatCheck> {
  const ips = relays.map((r) => r.host);
  if (ips.some((ip) => net.isIP(ip) === 0)) throw new Error('natCheck takes relay IP addresses');
  const family = net.isIPv6(ips[0] ?? '') ? 6 : 4;
  const socket = dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', lookup: literalLookup(family) });
  socket.on('error', () => undefined); // counted nowhere, thrown never: an unanswered relay is the result
  const seen: NatCheck['seen'] = relays.map((r) => ({ relay: formatAddress(r.host, r.port), address: undefined }));
  try {
    await new Promise<void>((resolve) => socket.bind(0, () => resolve()));
    await new Promise<void>((resolve) => {
      let pending = relays.length;
      const timer = setTimeout(resolve, timeoutMs);
      socket.on('message', (msg, rinfo) => {
        const i = relays.findIndex((r) => r.port === rinfo.port && ipKeyOf(r.host) === ipKeyOf(rinfo.address));
        const answer = parseAddressAnswer(msg);
        if (i < 0 || answer === undefined || seen[i]!.address !== undefined) return;
        seen[i]!.address = answer;
        if (--pending === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
      for (const r of relays) socket.send(ADDRESS_QUERY_DATAGRAM, r.port, r.host, () => undefined);
    });
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
  const ports = new Set(seen.flatMap((s) => (s.address === undefined ? [] : [s.address.port])));
  const answered = seen.filter((s) => s.address !== undefined).length;
  return { seen, mapping: answered < 2 ? 'unknown' : ports.size === 1 ? 'consistent' : 'varies' };
}

export function formatNatCheck(c: NatCheck): string {
  const each = c.seen
    .map((s) => `${s.relay} sees ${s.address === undefined ? 'nothing (no answer)' : formatAddress(s.address.address, s.address.port)}`)
    .join(', ');
  const verdict =
    c.mapping === 'consistent'
      ? 'one public port for every destination: hole punching can work from here'
      : c.mapping === 'varies'
        ? 'a new public port per destination (symmetric NAT): hole punching cannot work from here, the relay will carry'
        : 'fewer than two relays answered: cannot tell';
  return `NAT check: ${each}; ${verdict}`;
}

/** The probe passes when the relay answered and at most 10% of round trips were lost. */
export function probePassed(r: ProbeResult): boolean {
  return r.answered && r.registerMs !== undefined && r.sent > 0 && r.lossPct <= 10;
}

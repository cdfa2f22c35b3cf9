// SPEC 5.2: where a client app finds its relay. QUIC_RELAY_IP is an address or
// host name with an optional :port (IPv6 in brackets), or a comma-separated
// list of them; with a list, each session id picks one relay by rendezvous
// (highest random weight) hashing, so both peers of a session meet on the
// same relay and adding a relay moves only the sessions it wins.

import { createHash } from 'node:crypto';
import { DEFAULT_PORT } from '../wire/constants';
import { parseBooleanText } from '../wire/checks';
import { ConfigError } from '../wire/errors';
import type { RelayEndpoint } from './relay-client';

export interface RelayEnvironment {
  /** Every relay listed, in order. */
  relays: RelayEndpoint[];
  /** QUIC_RELAY_ONLY=true: skip any direct attempt, always use the relay. */
  relayOnly: boolean;
}

export { parseEndpoint, parseRelayList } from '../wire/endpoint';
import { parsePortText, parseRelayList } from '../wire/endpoint';

/**
 * QUIC_RELAY_PORT: the relay's UDP port, as it is for the relay itself (the
 * same digits, the same range); the default for relay addresses given
 * without one. 0 means "any free port" to a relay, which a client cannot
 * send to, so here it is an error that says so.
 */
export function relayPortFromEnv(env: Record<string, string | undefined>): number {
  const text = env.QUIC_RELAY_PORT?.trim();
  if (text === undefined || text === '') return DEFAULT_PORT;
  if (text === '0') throw new ConfigError('QUIC_RELAY_PORT', 'is 0, which a relay reads as "any free port"; a client needs the port the relay listens on');
  return parsePortText(text, 'QUIC_RELAY_PORT');
}

/** QUIC_RELAY_IP, QUIC_RELAY_PORT and QUIC_RELAY_ONLY from an environment. */
export function relayEnvironment(env: Record<string, string | undefined>): RelayEnvironment {
  const defaultPort = relayPortFromEnv(env);
  const ip = env.QUIC_RELAY_IP;
  if (ip === undefined || ip.trim() === '') throw new ConfigError('QUIC_RELAY_IP', 'not set: give the relay as host[:port] (or a comma-separated list)');
  const relays = parseRelayList(ip, defaultPort, 'QUIC_RELAY_IP');
  return { relays, relayOnly: relayOnlyFromEnv(env) };
}

/** QUIC_RELAY_ONLY=true: skip any direct attempt (SPEC 5.2). */
export function relayOnlyFromEnv(env: Record<string, string | undefined>): boolean {
  const relayOnly = parseBooleanText(env.QUIC_RELAY_ONLY ?? '');
  if (relayOnly === undefined) throw new ConfigError('QUIC_RELAY_ONLY', `must be true or false, got ${JSON.stringify(env.QUIC_RELAY_ONLY)}`);
  return relayOnly;
}

/** Rendezvous hashing: the relay with the highest weight for this session id. */
export function pickRelay(relays: readonly RelayEndpoint[], sessionId: string): RelayEndpoint {
  const best = rankRelays(relays, sessionId)[0];
  if (best === undefined) throw new ConfigError('QUIC_RELAY_IP', 'no relay address given');
  return best;
}

/**
 * SPEC 5.7: every relay, in rendezvous order for this session id (highest
 * weight first): the order both peers walk when a relay fails them, so that
 * they meet on the same one. Ties (practically impossible) keep the listed order.
 */
export function rankRelays(relays: readonly RelayEndpoint[], sessionId: string): RelayEndpoint[] {
  const weighed = relays.map((r, i) => ({
    r,
    i,
    w: createHash('sha256').update(`${sessionId}\n${r.host.toLowerCase()}\n${r.port}`).digest().readBigUInt64BE(0),
  }));
  weighed.sort((x, y) => (x.w === y.w ? x.i - y.i : x.w > y.w ? -1 : 1));
  return weighed.map((x) => x.r);
}

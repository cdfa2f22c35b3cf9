// SPEC 5.2: where a client app finds its relay. QUIC_RELAY_IP is an address or
// host name with an optional :port (IPv6 in brackets), or a comma-separated
// list of them; with a list, each session id picks one relay by rendezvous
// (highest random weight) hashing, so both peers of a session meet on the
// same relay and adding a relay moves only the sessions it wins.

import { createHash } from 'node:crypto';
import net from 'node:net';
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

const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?$/;

function parsePortText(text: string, variable: string, minPort = 1): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < minPort || Number(text) > 65535) {
    throw new ConfigError(variable, `port must be ${minPort}-65535, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/**
 * Parses one `host`, `host:port`, `[v6]` or `[v6]:port`; `variable` names the
 * source in errors. `minPort` 0 allows "any port" (for local addresses).
 */
export function parseEndpoint(text: string, defaultPort: number, variable: string, minPort = 1): RelayEndpoint {
  const s = text.trim();
  const bad = (why: string): never => {
    throw new ConfigError(variable, `${why}: ${JSON.stringify(text)}`);
  };
  if (s === '') bad('empty relay address');
  let host: string;
  let port = defaultPort;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0) bad('missing ] after an IPv6 address');
    host = s.slice(1, end);
    const rest = s.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) bad('expected :port after ]');
      port = parsePortText(rest.slice(1), variable, minPort);
    }
    if (!net.isIPv6(host)) bad('not an IPv6 address in brackets');
  } else if (net.isIPv6(s)) {
    host = s; // bare IPv6, no port
  } else {
    const colon = s.lastIndexOf(':');
    host = colon >= 0 ? s.slice(0, colon) : s;
    if (colon >= 0) port = parsePortText(s.slice(colon + 1), variable, minPort);
    if (net.isIPv4(host)) {
      // fine
    } else if (/^[\d.]+$/.test(host) || !HOST_NAME.test(host) || host.length > 253) {
      bad('not an IP address or host name');
    }
  }
  return { host, port };
}

/** A comma-separated list of endpoints (at least one). */
export function parseRelayList(text: string, defaultPort: number, variable = 'QUIC_RELAY_IP'): RelayEndpoint[] {
  const parts = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) throw new ConfigError(variable, 'no relay address given');
  return parts.map((p) => parseEndpoint(p, defaultPort, variable));
}

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
  let best: RelayEndpoint | undefined;
  let bestWeight = -1n;
  for (const r of relays) {
    const weight = createHash('sha256').update(`${sessionId}\n${r.host.toLowerCase()}\n${r.port}`).digest().readBigUInt64BE(0);
    // Ties (practically impossible) go to the first listed, so every client agrees.
    if (weight > bestWeight) {
      best = r;
      bestWeight = weight;
    }
  }
  if (best === undefined) throw new ConfigError('QUIC_RELAY_IP', 'no relay address given');
  return best;
}

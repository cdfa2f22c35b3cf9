// Endpoints written as text: `host`, `host:port`, `[v6]`, `[v6]:port`, and
// comma-separated lists of them. Shared by the client (QUIC_RELAY_IP, SPEC 5.2)
// and the relay (--peer-relays and --public-address, SPEC 4.4). Pure.

import * as net from 'node:net';
import { ConfigError } from './errors';

/** A host (IP literal or name) and a UDP port. */
export interface Endpoint {
  host: string;
  port: number;
}

const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?$/;

export function parsePortText(text: string, variable: string, minPort = 1): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < minPort || Number(text) > 65535) {
    throw new ConfigError(variable, `port must be ${minPort}-65535, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

/**
 * Parses one `host`, `host:port`, `[v6]` or `[v6]:port`; `variable` names the
 * source in errors. `minPort` 0 allows "any port" (for local addresses).
 */
export function parseEndpoint(text: string, defaultPort: number, variable: string, minPort = 1): Endpoint {
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
export function parseRelayList(text: string, defaultPort: number, variable = 'QUIC_RELAY_IP'): Endpoint[] {
  const parts = text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (parts.length === 0) throw new ConfigError(variable, 'no relay address given');
  return parts.map((p) => parseEndpoint(p, defaultPort, variable));
}

// SPEC 6.4: how a client reaches relays' WebSocket legs, from an environment
// (the CLI passes process.env; the library never reads it): the transport,
// the port and TLS, and the HTTP CONNECT proxy for a URL by HTTPS_PROXY,
// HTTP_PROXY and NO_PROXY as curl reads them. The proxying itself is
// https-proxy-agent's (stream-link.ts); this only says which proxy, if any.
// (proxy-from-env does the same matching but reads process.env itself.)

import { parseBooleanText } from '../wire/checks';
import { DEFAULT_CLIENT_WS_PORT } from '../wire/constants';
import { parsePortText } from '../wire/endpoint';
import { ConfigError } from '../wire/errors';
import { TRANSPORT_MODES } from './relay-client';
import type { TransportMode } from './relay-client';
import type { StreamOptions } from './stream-link';

export interface StreamEnvironment {
  transport: TransportMode;
  stream: StreamOptions;
}

type Env = Record<string, string | undefined>;

/** QUIC_RELAY_TRANSPORT, QUIC_RELAY_WS_PORT, QUIC_RELAY_WS_TLS and the proxy variables; a bad value throws a ConfigError naming it. */
export function streamEnvironment(env: Env): StreamEnvironment {
  const transport = (env.QUIC_RELAY_TRANSPORT?.trim() || 'auto') as TransportMode;
  if (!TRANSPORT_MODES.includes(transport))
    throw new ConfigError('QUIC_RELAY_TRANSPORT', `must be one of ${TRANSPORT_MODES.join(', ')}, got ${JSON.stringify(env.QUIC_RELAY_TRANSPORT)}`);
  const portText = env.QUIC_RELAY_WS_PORT?.trim();
  const port = portText ? parsePortText(portText, 'QUIC_RELAY_WS_PORT') : DEFAULT_CLIENT_WS_PORT;
  const tls = parseBooleanText(env.QUIC_RELAY_WS_TLS?.trim() || 'true');
  if (tls === undefined) throw new ConfigError('QUIC_RELAY_WS_TLS', `must be true or false, got ${JSON.stringify(env.QUIC_RELAY_WS_TLS)}`);
  const proxyFor = proxyFromEnvironment(env);
  return { transport, stream: { port, tls, proxyFor } };
}

/** The proxy for a ws:// or wss:// URL: HTTPS_PROXY for wss, HTTP_PROXY for ws (either case), none for NO_PROXY hosts. */
export function proxyFromEnvironment(env: Env): (url: string) => string | undefined {
  const read = (name: string): string | undefined => (env[name.toLowerCase()] ?? env[name.toUpperCase()])?.trim() || undefined;
  const https = read('https_proxy');
  const http = read('http_proxy');
  const noProxy = (read('no_proxy') ?? '').split(/[\s,]+/).filter((e) => e !== '');
  for (const [name, value] of [
    ['HTTPS_PROXY', https],
    ['HTTP_PROXY', http],
  ] as const) {
    if (value === undefined) continue;
    try {
      const u = new URL(value.includes('://') ? value : `http://${value}`);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
    } catch {
      throw new ConfigError(name, `not a proxy URL: ${JSON.stringify(value)}`);
    }
  }
  return (url: string): string | undefined => {
    const u = new URL(url);
    const proxy = u.protocol === 'wss:' ? https : http;
    if (proxy === undefined || bypassed(u, noProxy)) return undefined;
    return proxy.includes('://') ? proxy : `http://${proxy}`;
  };
}

/** NO_PROXY: `*`, or entries `host`, `.suffix`, `*.suffix`, `host:port`, each matching the host and its subdomains. */
function bypassed(u: URL, entries: readonly string[]): boolean {
  const host = u.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = u.port || (u.protocol === 'wss:' ? '443' : '80');
  for (const raw of entries) {
    if (raw === '*') return true;
    let entry = raw.toLowerCase();
    let entryPort: string | undefined;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    if (bracketed !== null) [, entry = '', entryPort] = bracketed;
    else if (entry.split(':').length === 2) [entry = '', entryPort] = entry.split(':'); // host:port; a bare IPv6 has more colons
    if (entryPort !== undefined && entryPort !== port) continue;
    entry = entry.replace(/^\*?\./, '');
    if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

// Where the client commands find their relay: --relay, else QUIC_RELAY_IP
// (SPEC 5.2), with QUIC_RELAY_PORT as the port of any address given without
// one; a list picks one relay per session by rendezvous hashing. These are
// the only variables the client commands read.
import { InvalidArgumentError } from 'commander';
import { parseEndpoint, parseRelayList, pickRelay, relayEnvironment, relayOnlyFromEnv, relayPortFromEnv } from '../client/relay-pick';
import type { RelayEndpoint } from '../client/relay-client';

/** A local ip:port (port 0: any free port); a bare port means 127.0.0.1. */
export function parseEndpointArg(value: string): RelayEndpoint {
  try {
    return parseEndpoint(/^\d+$/.test(value.trim()) ? `127.0.0.1:${value.trim()}` : value, 0, 'address', 0);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message.replace(/^[^:]*: /, ''));
  }
}

/**
 * Every relay the client commands may use: --relay text if given, else
 * QUIC_RELAY_IP. Throws a ConfigError naming the flag or the variable.
 * QUIC_RELAY_ONLY is checked here too, so a bad value fails either way.
 */
export function relayList(flag: string | undefined, env: Record<string, string | undefined>): RelayEndpoint[] {
  if (flag === undefined) return relayEnvironment(env).relays;
  relayOnlyFromEnv(env);
  return parseRelayList(flag, relayPortFromEnv(env), '--relay');
}

/** The relay for `sessionId`, by rendezvous hashing over relayList(). */
export function chooseRelay(flag: string | undefined, env: Record<string, string | undefined>, sessionId: string): RelayEndpoint {
  return pickRelay(relayList(flag, env), sessionId);
}

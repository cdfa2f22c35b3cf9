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
 * The relay for `sessionId`: from --relay text if given, else from the
 * environment. Throws a ConfigError naming the flag or the variable.
 */
export function chooseRelay(flag: string | undefined, env: Record<string, string | undefined>, sessionId: string): { relay: RelayEndpoint; relayOnly: boolean } {
  if (flag !== undefined) {
    const relays = parseRelayList(flag, relayPortFromEnv(env), '--relay');
    return { relay: pickRelay(relays, sessionId), relayOnly: relayOnlyFromEnv(env) };
  }
  const e = relayEnvironment(env);
  return { relay: pickRelay(e.relays, sessionId), relayOnly: e.relayOnly };
}

// Where the client commands find their relay: --relay, else QUIC_RELAY_IP /
// QUIC_RELAY_PORT (SPEC 5.2), picked per session by rendezvous hashing.
import { InvalidArgumentError } from 'commander';
import { DEFAULT_PORT } from '../wire/constants';
import { RelayError } from '../wire/errors';
import { parseEndpoint, parseRelayList, pickRelay, relayEnvironment } from '../client/relay-pick';
import type { RelayEndpoint } from '../client/relay-client';

/** A local ip:port (port 0: any free port); a bare port means 127.0.0.1. */
export function parseEndpointArg(value: string): RelayEndpoint {
  try {
    return parseEndpoint(/^\d+$/.test(value.trim()) ? `127.0.0.1:${value.trim()}` : value, 0, 'address', 0);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message.replace(/^[^:]*: /, ''));
  }
}

/** --relay accepts the same list syntax as QUIC_RELAY_IP. */
export function parseRelayArg(value: string): RelayEndpoint[] {
  try {
    return parseRelayList(value, DEFAULT_PORT, '--relay');
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message.replace(/^[^:]*: /, ''));
  }
}

/** The relay for `sessionId`: from --relay if given, else from the environment. Throws a RelayError naming the variable. */
export function chooseRelay(flag: RelayEndpoint[] | undefined, env: NodeJS.ProcessEnv, sessionId: string): { relay: RelayEndpoint; relayOnly: boolean } {
  if (flag !== undefined) {
    let relayOnly = false;
    try {
      relayOnly = env.QUIC_RELAY_IP ? relayEnvironment(env).relayOnly : false;
    } catch (err) {
      if (!(err instanceof RelayError)) throw err;
    }
    return { relay: pickRelay(flag, sessionId), relayOnly };
  }
  const e = relayEnvironment(env);
  return { relay: pickRelay(e.relays, sessionId), relayOnly: e.relayOnly };
}

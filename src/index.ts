// The public library surface: re-exports only, nothing runs on import.
// wire/ is shared by both sides; server/ and client/ never import each other.
export * from './wire/errors';
export * from './wire/constants';
export {
  classify,
  encodeRegister,
  isValidSessionId,
  parseReply,
  ADDRESS_QUERY_DATAGRAM,
  isAddressQuery,
  encodeAddressAnswer,
  parseAddressAnswer,
} from './wire/protocol';
export type { Classified, Reply } from './wire/protocol';
export { makeTicket, checkTicket, ticketExpiry, TICKET_LENGTH } from './wire/tickets';
export type { MakeTicketOptions, TicketCheck } from './wire/tickets';
export { VERSION } from './wire/version';
export { RelayServer, createRelayServer } from './server/relay-server';
export type { RelayServerComponents } from './server/relay-server';
export { validateConfig } from './server/config';
export type { RelayConfig, RelayServerOptions } from './server/config';
// Internal, exported for tools and tests only: no compatibility promise from
// one release to the next (docs/contract.md lists what is promised).
// @internal
export { SessionTable } from './server/session-table';
export type { TableOutcome, RegisterResult } from './server/session-table';
export type { Registration, RegistrationOutcome } from './server/registrar';
export { MetricsHttpServer } from './server/metrics-http';
export type { MetricsSource } from './server/metrics-http';
// @internal
export { RelayCounters } from './server/counters';
export type { RelaySummary } from './server/counters';
export { RelayClient, TRANSPORT_MODES } from './client/relay-client';
export type { RelayClientEvents, RelayClientOptions, RelayEndpoint, TransportMode } from './client/relay-client';
export type { StreamOptions } from './client/stream-link';
export { proxyFromEnvironment, streamEnvironment } from './client/stream-environment';
export type { StreamEnvironment } from './client/stream-environment';
export { PeerLink } from './client/peer-link';
export type { Path, PathTimings, PeerLinkEvents, PeerLinkOptions } from './client/peer-link';
export { DEFAULT_PATH_TIMINGS } from './client/path-machine';
export { Sidecar } from './client/sidecar';
export type { SidecarOptions } from './client/sidecar';
export { parseEndpoint, parseRelayList, pickRelay, rankRelays, relayEnvironment, relayOnlyFromEnv, relayPortFromEnv } from './client/relay-pick';
export type { RelayEnvironment } from './client/relay-pick';
export { formatNatCheck, formatProbe, natCheck, probe, probePassed } from './client/probe';
export type { NatCheck, ProbeOptions, ProbeResult } from './client/probe';

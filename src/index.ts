// The public library surface: re-exports only, nothing runs on import.
// wire/ is shared by both sides; server/ and client/ never import each other.
export * from './wire/errors';
export * from './wire/constants';
export { classify, encodeRegister, isValidSessionId, parseReply } from './wire/protocol';
export type { Classified, Reply } from './wire/protocol';
export { RelayServer, createRelayServer } from './server/relay-server';
export type { RelayServerComponents } from './server/relay-server';
export { validateConfig } from './server/config';
export type { RelayConfig, RelayServerOptions } from './server/config';
export { SessionTable } from './server/session-table';
export type { RegisterOutcome, RegisterResult } from './server/session-table';
export { RelayCounters } from './server/counters';
export type { RelaySummary } from './server/counters';
export { RelayClient } from './client/relay-client';
export type { RelayClientEvents, RelayClientOptions, RelayEndpoint } from './client/relay-client';
export { Sidecar } from './client/sidecar';
export type { SidecarOptions } from './client/sidecar';
export { parseEndpoint, parseRelayList, pickRelay, relayEnvironment } from './client/relay-pick';
export type { RelayEnvironment } from './client/relay-pick';
export { formatProbe, probe, probePassed } from './client/probe';
export type { ProbeOptions, ProbeResult } from './client/probe';

// Public library surface. Nothing runs on import.
export { RelayServer, createRelayServer } from './relay-server';
export type { RelayServerComponents } from './relay-server';
export { validateConfig } from './config';
export type { RelayConfig, RelayServerOptions } from './config';
export { SessionTable } from './session-table';
export type { RegisterOutcome, RegisterResult } from './session-table';
export { RelayCounters } from './metrics';
export type { RelaySummary } from './metrics';
export * from './errors';
export * from './constants';
export { classify, encodeRegister, isValidSessionId, parseReply } from './protocol';

// One validation of every relay option, with the defaults written once
// (constants.ts). The CLI's argument parsers call the same checks, so a bad
// value reads the same from a flag, a variable or the library (SPEC 3.1).

import {
  DEFAULT_HOST, DEFAULT_MAX_SESSIONS, DEFAULT_MAX_SESSIONS_PER_IP, DEFAULT_METRICS_HOST, DEFAULT_PORT,
  DEFAULT_RECV_BUFFER_BYTES, DEFAULT_REGISTRATIONS_PER_SEC_PER_IP, DEFAULT_SEND_BUFFER_BYTES,
  DEFAULT_SESSION_TIMEOUT_SECS, MAX_SESSION_TIMEOUT_SECS, REGISTRATION_BURST_SECS,
} from '../wire/constants';
import { checkHost, checkInteger, checkPort } from '../wire/checks';
import { ConfigError } from '../wire/errors';

export interface RelayServerOptions {
  /** UDP port; 0 picks a free one. @default DEFAULT_PORT (4433) */
  port?: number;
  /** Bind address; `::` binds dual-stack. @default DEFAULT_HOST ('0.0.0.0') */
  host?: string;
  /** SPEC 2.5: idle seconds before a session is removed. @default DEFAULT_SESSION_TIMEOUT_SECS (300) */
  sessionTimeoutSecs?: number;
  /** SPEC 3.3: serve /metrics and /healthz on this TCP port; off when undefined. */
  metricsPort?: number | undefined;
  /** @default DEFAULT_METRICS_HOST ('127.0.0.1') */
  metricsHost?: string;
  /** SPEC 4.1: sessions the relay holds at most. @default DEFAULT_MAX_SESSIONS */
  maxSessions?: number;
  /** SPEC 4.1: sessions one source IP may take part in. @default DEFAULT_MAX_SESSIONS_PER_IP */
  maxSessionsPerIp?: number;
  /** SPEC 4.1: registrations/s per source IP (a token bucket holding one second's worth); 0 = unlimited. @default DEFAULT_REGISTRATIONS_PER_SEC_PER_IP */
  registrationsPerSecPerIp?: number;
  /** SPEC 2.4: rebind by IP on data from an unknown port. @default true */
  implicitRebind?: boolean;
  /** SO_RCVBUF asked for; the kernel caps it at net.core.rmem_max. @default DEFAULT_RECV_BUFFER_BYTES (4 MiB) */
  recvBufferBytes?: number;
  /** SO_SNDBUF asked for; capped at net.core.wmem_max. @default DEFAULT_SEND_BUFFER_BYTES (4 MiB) */
  sendBufferBytes?: number;
}

export type RelayConfig = Required<Omit<RelayServerOptions, 'metricsPort'>> & {
  metricsPort: number | undefined;
  registrationBurstPerIp: number;
};

export function validateConfig(o: RelayServerOptions = {}): RelayConfig {
  const rate = checkInteger(o.registrationsPerSecPerIp ?? DEFAULT_REGISTRATIONS_PER_SEC_PER_IP, '--registrations-per-sec-per-ip', 0, 1_000_000);
  if (typeof (o.implicitRebind ?? true) !== 'boolean') throw new ConfigError('--no-implicit-rebind', 'must be a boolean');
  return {
    port: checkPort(o.port ?? DEFAULT_PORT, '--port'),
    host: checkHost(o.host ?? DEFAULT_HOST, '--host'),
    sessionTimeoutSecs: checkInteger(o.sessionTimeoutSecs ?? DEFAULT_SESSION_TIMEOUT_SECS, '--session-timeout-secs', 1, MAX_SESSION_TIMEOUT_SECS),
    metricsPort: o.metricsPort === undefined ? undefined : checkPort(o.metricsPort, '--metrics-port'),
    metricsHost: checkHost(o.metricsHost ?? DEFAULT_METRICS_HOST, '--metrics-host'),
    maxSessions: checkInteger(o.maxSessions ?? DEFAULT_MAX_SESSIONS, '--max-sessions', 1, 100_000_000),
    maxSessionsPerIp: checkInteger(o.maxSessionsPerIp ?? DEFAULT_MAX_SESSIONS_PER_IP, '--max-sessions-per-ip', 1, 100_000_000),
    registrationsPerSecPerIp: rate,
    registrationBurstPerIp: Math.max(1, rate * REGISTRATION_BURST_SECS),
    implicitRebind: o.implicitRebind ?? true,
    recvBufferBytes: checkInteger(o.recvBufferBytes ?? DEFAULT_RECV_BUFFER_BYTES, '--recv-buffer-bytes', 0, 1 << 30),
    sendBufferBytes: checkInteger(o.sendBufferBytes ?? DEFAULT_SEND_BUFFER_BYTES, '--send-buffer-bytes', 0, 1 << 30),
  };
}

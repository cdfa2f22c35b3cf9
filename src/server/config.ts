// One validation of every relay option, with the defaults written once
// (wire/constants.ts). The CLI's argument parsers call the same checks, so a
// bad value reads the same from a flag, a variable or the library (SPEC 3.1).

import {
  DEFAULT_HOST,
  DEFAULT_MAX_SESSION_DATAGRAMS_PER_SEC,
  DEFAULT_MAX_SESSIONS,
  DEFAULT_UNPAIRED_TIMEOUT_SECS,
  DEFAULT_MAX_SESSIONS_PER_IP,
  DEFAULT_PORT,
  DEFAULT_RECV_BUFFER_BYTES,
  DEFAULT_REGISTRATIONS_PER_SEC_PER_IP,
  DEFAULT_SEND_BUFFER_BYTES,
  DEFAULT_SESSION_TIMEOUT_SECS,
  DEFAULT_WS_MAX_CONNECTIONS,
  DEFAULT_WS_PING_SECS,
  DEFAULT_WS_QUEUE_BYTES,
  MAX_DATAGRAM,
  MAX_SESSION_TIMEOUT_SECS,
  REGISTRATION_BURST_SECS,
} from '../wire/constants';
import * as net from 'node:net';
import type { IoMode } from '../io/choose-io';
import { checkHost, checkInteger, checkPort } from '../wire/checks';
import { parseEndpoint } from '../wire/endpoint';
import type { Endpoint } from '../wire/endpoint';
import { ConfigError } from '../wire/errors';

export interface RelayServerOptions {
  /** UDP port; 0 picks a free one. @default DEFAULT_PORT (4433) */
  port?: number;
  /** Bind address; `::` binds dual-stack. @default DEFAULT_HOST ('0.0.0.0') */
  host?: string;
  /** SPEC 2.5: idle seconds before a session is removed. @default DEFAULT_SESSION_TIMEOUT_SECS (300) */
  sessionTimeoutSecs?: number;
  /** SPEC 4.1: sessions the relay holds at most. @default DEFAULT_MAX_SESSIONS */
  maxSessions?: number;
  /** SPEC 4.1: sessions one source IP may take part in. @default DEFAULT_MAX_SESSIONS_PER_IP */
  maxSessionsPerIp?: number;
  /** SPEC 4.1: registrations/s per source IP (a token bucket holding one second's worth); 0 = unlimited. @default DEFAULT_REGISTRATIONS_PER_SEC_PER_IP */
  registrationsPerSecPerIp?: number;
  /** SPEC 4.5: seconds a session that never paired lives without a registration. @default DEFAULT_UNPAIRED_TIMEOUT_SECS (60) */
  unpairedTimeoutSecs?: number;
  /**
   * SPEC 2.4: rebind by IP on data from an unknown port. @default true, but
   * false with authSecrets: on a public relay a new port proves itself with a
   * ticket (a REG), not with one datagram from the same IP.
   */
  implicitRebind?: boolean;
  /**
   * SPEC 4.4: the relay's public addresses (`ip` or `ip:port`; the port
   * defaults to the relay's), such as an Elastic IP that NATs to a private
   * one: the relay never registers, answers or sends to them. @default []
   */
  publicAddresses?: readonly string[];
  /** SPEC 4.4: the other relays of the fleet (`host` or `host:port`; the port defaults to the relay's): treated as in publicAddresses. @default [] */
  peerRelays?: readonly string[];
  /** SPEC 4.4: datagrams per second one session may have forwarded, both ways, a second's burst; 0 = no budget. @default DEFAULT_MAX_SESSION_DATAGRAMS_PER_SEC */
  maxSessionDatagramsPerSec?: number;
  /**
   * SPEC 4.3: when not empty, only tickets made with one of these secrets are
   * accepted as session ids; the first one is the current one (rotation: add
   * the new secret first, drop the old one once its tickets have expired).
   * @default [] (no tickets needed)
   */
  authSecrets?: readonly string[];
  /** Forwarded bytes per second one session may use (both directions, a second's burst); 0 = no cap. @default 0 */
  maxSessionBytesPerSec?: number;
  /** SO_RCVBUF asked for; the kernel caps it at net.core.rmem_max. @default DEFAULT_RECV_BUFFER_BYTES (4 MiB) */
  recvBufferBytes?: number;
  /** SO_SNDBUF asked for; capped at net.core.wmem_max. @default DEFAULT_SEND_BUFFER_BYTES (4 MiB) */
  sendBufferBytes?: number;
  /**
   * How datagrams are received and sent: 'native' (batched recvmmsg/sendmmsg,
   * IPv4; fails when the module cannot load), 'dgram' (node:dgram), or
   * 'auto' (native when it loads, else dgram, saying why). @default 'auto'
   */
  io?: IoMode;
  /** SPEC 6.1: TCP port of the WebSocket leg; 0 picks a free one. @default undefined (off: the relay is UDP only) */
  wsPort?: number;
  /** SPEC 6.1: address of the WebSocket leg (127.0.0.1 behind a reverse proxy on the same host). @default host */
  wsHost?: string;
  /** IPs of reverse proxies in front of the leg (TLS terminated there): their connections are the peer X-Forwarded-For names last. @default [] */
  wsTrustedProxies?: readonly string[];
  /** SPEC 6.1: PEM certificate (chain) and key: the leg is wss. Both or neither; SIGHUP re-reads them (reloadTls()). */
  tlsCert?: string;
  tlsKey?: string;
  /** SPEC 6.3: WebSocket connections at most (per IP: twice maxSessionsPerIp). @default DEFAULT_WS_MAX_CONNECTIONS (10,000) */
  wsMaxConnections?: number;
  /** SPEC 6.3: bytes queued for one connection; datagrams past it are dropped (reason="backpressure"). @default DEFAULT_WS_QUEUE_BYTES (256 KiB) */
  wsQueueBytes?: number;
  /** SPEC 6.3: seconds between pings; a connection that has not answered by the next one is closed. @default DEFAULT_WS_PING_SECS (15) */
  wsPingSecs?: number;
}

export type { IoMode };
export const IO_MODES: readonly IoMode[] = ['auto', 'native', 'dgram'];

export type RelayConfig = Required<
  Omit<RelayServerOptions, 'publicAddresses' | 'peerRelays' | 'wsPort' | 'tlsCert' | 'tlsKey' | 'wsHost' | 'wsTrustedProxies'>
> & {
  wsHost: string;
  wsTrustedProxies: readonly string[];
  /** SPEC 6.1: undefined: no WebSocket leg. */
  wsPort: number | undefined;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  authSecrets: readonly string[];
  registrationBurstPerIp: number;
  /** Parsed; a port of 0 stands for the relay's own port (known once bound). */
  publicAddresses: readonly Endpoint[];
  peerRelays: readonly Endpoint[];
};

/** The shortest secret accepted: 16 bytes, 128 bits if it is random. */
export const MIN_AUTH_SECRET_BYTES = 16;

/** Checks the auth secrets without ever putting one in a message. */
export function checkAuthSecrets(value: unknown, option: string): readonly string[] {
  if (!Array.isArray(value)) throw new ConfigError(option, 'must be a list of secrets');
  value.forEach((secret: unknown, i) => {
    if (typeof secret !== 'string' || Buffer.byteLength(secret, 'utf8') < MIN_AUTH_SECRET_BYTES) {
      throw new ConfigError(option, `secret ${i + 1} of ${value.length} is shorter than ${MIN_AUTH_SECRET_BYTES} bytes`);
    }
    if (/[\r\n,]/.test(secret) || secret.trim() !== secret)
      throw new ConfigError(option, `secret ${i + 1} of ${value.length} has blanks, commas or line breaks at its ends or inside`);
  });
  return Object.freeze([...(value as string[])]);
}

export function validateConfig(o: RelayServerOptions = {}): RelayConfig {
  const rate = checkInteger(o.registrationsPerSecPerIp ?? DEFAULT_REGISTRATIONS_PER_SEC_PER_IP, '--registrations-per-sec-per-ip', 0, 1_000_000);
  if (o.implicitRebind !== undefined && typeof o.implicitRebind !== 'boolean') throw new ConfigError('--no-implicit-rebind', 'must be a boolean');
  const authSecrets = checkAuthSecrets(o.authSecrets ?? [], '--auth-secret');
  const sessionTimeoutSecs = checkInteger(o.sessionTimeoutSecs ?? DEFAULT_SESSION_TIMEOUT_SECS, '--session-timeout-secs', 1, MAX_SESSION_TIMEOUT_SECS);
  return {
    port: checkPort(o.port ?? DEFAULT_PORT, '--port'),
    host: checkHost(o.host ?? DEFAULT_HOST, '--host'),
    sessionTimeoutSecs,
    unpairedTimeoutSecs: checkInteger(o.unpairedTimeoutSecs ?? DEFAULT_UNPAIRED_TIMEOUT_SECS, '--unpaired-timeout-secs', 1, MAX_SESSION_TIMEOUT_SECS),
    maxSessions: checkInteger(o.maxSessions ?? DEFAULT_MAX_SESSIONS, '--max-sessions', 1, 100_000_000),
    maxSessionsPerIp: checkInteger(o.maxSessionsPerIp ?? DEFAULT_MAX_SESSIONS_PER_IP, '--max-sessions-per-ip', 1, 100_000_000),
    registrationsPerSecPerIp: rate,
    registrationBurstPerIp: Math.max(1, rate * REGISTRATION_BURST_SECS),
    // SPEC 2.4: with tickets, off unless asked for.
    implicitRebind: o.implicitRebind ?? authSecrets.length === 0,
    authSecrets,
    publicAddresses: checkEndpoints(o.publicAddresses ?? [], '--public-address', true),
    peerRelays: checkEndpoints(o.peerRelays ?? [], '--peer-relays', false),
    maxSessionDatagramsPerSec: checkInteger(
      o.maxSessionDatagramsPerSec ?? DEFAULT_MAX_SESSION_DATAGRAMS_PER_SEC,
      '--max-session-datagrams-per-sec',
      0,
      100_000_000,
    ),
    maxSessionBytesPerSec: checkInteger(o.maxSessionBytesPerSec ?? 0, '--max-session-bytes-per-sec', 0, 10_000_000_000),
    recvBufferBytes: checkInteger(o.recvBufferBytes ?? DEFAULT_RECV_BUFFER_BYTES, '--recv-buffer-bytes', 0, 1 << 30),
    sendBufferBytes: checkInteger(o.sendBufferBytes ?? DEFAULT_SEND_BUFFER_BYTES, '--send-buffer-bytes', 0, 1 << 30),
    io: checkIoMode(o.io ?? 'auto'),
    wsPort: o.wsPort === undefined ? undefined : checkPort(o.wsPort, '--ws-port'),
    wsHost: checkHost(o.wsHost ?? o.host ?? DEFAULT_HOST, '--ws-host'),
    wsTrustedProxies: checkEndpoints(o.wsTrustedProxies ?? [], '--ws-trusted-proxies', true).map((e) => e.host),
    ...checkTls(o.tlsCert, o.tlsKey),
    wsMaxConnections: checkInteger(o.wsMaxConnections ?? DEFAULT_WS_MAX_CONNECTIONS, '--ws-max-connections', 1, 10_000_000),
    wsQueueBytes: checkInteger(o.wsQueueBytes ?? DEFAULT_WS_QUEUE_BYTES, '--ws-queue-bytes', MAX_DATAGRAM, 1 << 30),
    wsPingSecs: checkInteger(o.wsPingSecs ?? DEFAULT_WS_PING_SECS, '--ws-ping-secs', 1, 3600),
  };
}

/** SPEC 6.1: both files or neither (reading them is the leg's, at start and on SIGHUP). */
function checkTls(cert: unknown, key: unknown): { tlsCert: string | undefined; tlsKey: string | undefined } {
  for (const [v, flag] of [
    [cert, '--tls-cert'],
    [key, '--tls-key'],
  ] as const) {
    if (v !== undefined && (typeof v !== 'string' || v === '')) throw new ConfigError(flag, 'must be a file path');
  }
  if ((cert === undefined) !== (key === undefined))
    throw new ConfigError(cert === undefined ? '--tls-cert' : '--tls-key', 'is needed with --tls-cert and --tls-key alike');
  return { tlsCert: cert as string | undefined, tlsKey: key as string | undefined };
}

/** `host[:port]` entries (IPs only when `ipOnly`); port 0 stands for "the relay's own". */
export function checkEndpoints(value: unknown, option: string, ipOnly: boolean): readonly Endpoint[] {
  if (!Array.isArray(value)) throw new ConfigError(option, 'must be a list of addresses');
  return value.map((text: unknown) => {
    if (typeof text !== 'string') throw new ConfigError(option, 'must be a list of addresses');
    const e = parseEndpoint(text, 0, option);
    if (ipOnly && net.isIP(e.host) === 0) throw new ConfigError(option, `not an IP address: ${JSON.stringify(text)}`);
    return e;
  });
}

function checkIoMode(value: unknown): IoMode {
  if (!IO_MODES.includes(value as IoMode)) throw new ConfigError('--io', `must be one of ${IO_MODES.join(', ')}`);
  return value as IoMode;
}

// The relay command (SPEC 3.1): options -> validateConfig -> RelayServer.
// Every option also reads QUIC_RELAY_<NAME>; a flag beats its variable. It is
// the program's default command, so `quic-relay --port 4433` works as the
// original's does, and its variables are read only when the relay runs: the
// client commands never see them.

import { IO_MODES } from '../server/config';
import type { IoMode } from '../server/config';
import { Command, Option } from 'commander';
import type { RelayServerOptions } from '../server/config';
import {
  DEFAULT_DRAIN_TIMEOUT_SECS,
  DEFAULT_HOST,
  DEFAULT_MAX_SESSION_DATAGRAMS_PER_SEC,
  DEFAULT_MAX_SESSIONS,
  DEFAULT_UNPAIRED_TIMEOUT_SECS,
  DEFAULT_MAX_SESSIONS_PER_IP,
  DEFAULT_METRICS_HOST,
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
} from '../wire/constants';
import { addAuthOptions, authSecretsFrom } from './auth';
import { endpointListParser, integerParser, parseBoolean, parseHost, parsePort } from './options';

export const ENV_PREFIX = 'QUIC_RELAY_';
/** The variable of the negatable flag, read by hand: commander would take any value, even "false", as set. */
export const NO_IMPLICIT_REBIND_ENV = `${ENV_PREFIX}NO_IMPLICIT_REBIND`;
export const IMPLICIT_REBIND_ENV = `${ENV_PREFIX}IMPLICIT_REBIND`;

/** What running the relay takes: the server's options and the process-level ones. */
export interface RelayRun {
  server: RelayServerOptions;
  /** SPEC 3.3: serve metrics here; off when undefined. */
  metrics: { host: string; port: number } | undefined;
  /** SPEC 3.6: after SIGUSR2, stop this long later even if sessions remain. */
  drainTimeoutSecs: number;
}

/** The relay command; `run` is called with the parsed options. */
export function relayCommand(env: Record<string, string | undefined>, run: (r: RelayRun) => Promise<void> | void): Command {
  const cmd = new Command('relay').description('run the relay (the default command)').usage('[options]').allowExcessArguments(false);
  addListenOptions(cmd);
  addSessionOptions(cmd);
  addStreamOptions(cmd);
  addMetricsOptions(cmd);
  addAuthOptions(cmd.optionsGroup('Tickets (SPEC 4.3):'));
  return cmd.action(async (_flags: unknown, c: Command) => run(relayRunFrom(c, env)));
}

/** An option with its QUIC_RELAY_ variable. */
const opt = (flags: string, name: string, help: string): Option => new Option(flags, help).env(ENV_PREFIX + name);

/** Where and how the relay listens, and what leads back to it (SPEC 4.4). */
function addListenOptions(cmd: Command): void {
  cmd
    .optionsGroup('Listening:')
    .addOption(opt('-p, --port <n>', 'PORT', 'UDP port to listen on (0: any free port)').default(DEFAULT_PORT).argParser(parsePort))
    .addOption(opt('--host <addr>', 'HOST', 'address to bind; "::" is dual-stack').default(DEFAULT_HOST).argParser(parseHost))
    .addOption(
      opt('--io <mode>', 'IO', 'how datagrams move: native (batched recvmmsg/sendmmsg, IPv4), dgram (node:dgram), or auto (native if it loads)')
        .default('auto')
        .choices(IO_MODES),
    )
    .addOption(
      opt('--recv-buffer-bytes <n>', 'RECV_BUFFER_BYTES', 'UDP receive buffer to ask for (capped by net.core.rmem_max)')
        .default(DEFAULT_RECV_BUFFER_BYTES)
        .argParser(integerParser(0, 1 << 30)),
    )
    .addOption(
      opt('--send-buffer-bytes <n>', 'SEND_BUFFER_BYTES', 'UDP send buffer to ask for (capped by net.core.wmem_max)')
        .default(DEFAULT_SEND_BUFFER_BYTES)
        .argParser(integerParser(0, 1 << 30)),
    )
    .addOption(
      opt(
        '--public-address <ips>',
        'PUBLIC_ADDRESS',
        "this relay's public IPs (ip or ip:port, comma-separated), e.g. an Elastic IP: never registered, answered or sent to",
      ).argParser(endpointListParser(true)),
    )
    .addOption(
      opt(
        '--peer-relays <list>',
        'PEER_RELAYS',
        'the other relays of the fleet (host or host:port, comma-separated): never registered, answered or sent to',
      ).argParser(endpointListParser(false)),
    );
}

/** Sessions, their limits and the drain (SPEC 2.5, 3.6, 4.1, 4.4, 4.5). */
function addSessionOptions(cmd: Command): void {
  cmd
    .optionsGroup('Sessions and limits:')
    .addOption(
      opt('--session-timeout-secs <n>', 'SESSION_TIMEOUT_SECS', 'remove a session idle this long')
        .default(DEFAULT_SESSION_TIMEOUT_SECS)
        .argParser(integerParser(1, MAX_SESSION_TIMEOUT_SECS)),
    )
    .addOption(
      opt('--unpaired-timeout-secs <n>', 'UNPAIRED_TIMEOUT_SECS', 'remove a session that never paired after this long without a registration')
        .default(DEFAULT_UNPAIRED_TIMEOUT_SECS)
        .argParser(integerParser(1, MAX_SESSION_TIMEOUT_SECS)),
    )
    .addOption(
      opt('--max-sessions <n>', 'MAX_SESSIONS', 'sessions held at most; new ones get ERR:BUSY')
        .default(DEFAULT_MAX_SESSIONS)
        .argParser(integerParser(1, 100_000_000)),
    )
    .addOption(
      opt('--max-sessions-per-ip <n>', 'MAX_SESSIONS_PER_IP', 'sessions one source IP may take part in')
        .default(DEFAULT_MAX_SESSIONS_PER_IP)
        .argParser(integerParser(1, 100_000_000)),
    )
    .addOption(
      opt('--registrations-per-sec-per-ip <n>', 'REGISTRATIONS_PER_SEC_PER_IP', 'registrations per second per source IP (keepalives are free); 0: no limit')
        .default(DEFAULT_REGISTRATIONS_PER_SEC_PER_IP)
        .argParser(integerParser(0, 1_000_000)),
    )
    .addOption(
      opt(
        '--max-session-bytes-per-sec <n>',
        'MAX_SESSION_BYTES_PER_SEC',
        'bytes per second one session may have forwarded (over it: dropped, reason "rate"); 0: no cap',
      )
        .default(0)
        .argParser(integerParser(0, 10_000_000_000)),
    )
    .addOption(
      opt(
        '--max-session-datagrams-per-sec <n>',
        'MAX_SESSION_DATAGRAMS_PER_SEC',
        'datagrams per second one session may have forwarded, zero-length included (over it: dropped, reason "rate"); 0: no budget',
      )
        .default(DEFAULT_MAX_SESSION_DATAGRAMS_PER_SEC)
        .argParser(integerParser(0, 100_000_000)),
    )
    .addOption(
      new Option('--implicit-rebind', `rebind by IP on data from an unregistered port (the default without --auth-secret) [env: ${IMPLICIT_REBIND_ENV}]`),
    )
    .addOption(
      new Option(
        '--no-implicit-rebind',
        `forward nothing from unregistered ports, even when one peer has that IP (the default with --auth-secret) [env: ${NO_IMPLICIT_REBIND_ENV}]`,
      ),
    )
    .addOption(
      opt('--drain-timeout-secs <n>', 'DRAIN_TIMEOUT_SECS', 'after SIGUSR2 (drain), exit this long later even if sessions remain')
        .default(DEFAULT_DRAIN_TIMEOUT_SECS)
        .argParser(integerParser(1, MAX_SESSION_TIMEOUT_SECS)),
    );
}

/** SPEC 6: the WebSocket leg. */
function addStreamOptions(cmd: Command): void {
  cmd
    .optionsGroup('WebSocket leg (networks that block UDP):')
    .addOption(
      opt(
        '--ws-port <n>',
        'WS_PORT',
        'also serve WebSocket peers (networks that block UDP) on this TCP port, at /quic-relay (off by default; 0: any free port)',
      ).argParser(parsePort),
    )
    .addOption(
      opt('--ws-host <addr>', 'WS_HOST', 'address of the WebSocket leg (default: --host; 127.0.0.1 behind nginx or Caddy on the same host)').argParser(
        parseHost,
      ),
    )
    .addOption(
      opt(
        '--ws-trusted-proxies <ips>',
        'WS_TRUSTED_PROXIES',
        'reverse proxies in front of the WebSocket leg (comma-separated IPs): their connections are the peer X-Forwarded-For names last',
      ).argParser(endpointListParser(true)),
    )
    .addOption(opt('--tls-cert <file>', 'TLS_CERT', 'PEM certificate (chain) for the WebSocket leg: wss (SIGHUP re-reads it)'))
    .addOption(opt('--tls-key <file>', 'TLS_KEY', 'PEM private key for --tls-cert'))
    .addOption(
      opt('--ws-max-connections <n>', 'WS_MAX_CONNECTIONS', 'WebSocket connections at most (per IP: twice --max-sessions-per-ip)')
        .default(DEFAULT_WS_MAX_CONNECTIONS)
        .argParser(integerParser(1, 10_000_000)),
    )
    .addOption(
      opt('--ws-queue-bytes <n>', 'WS_QUEUE_BYTES', 'bytes queued for one WebSocket connection; past it datagrams are dropped (reason "backpressure")')
        .default(DEFAULT_WS_QUEUE_BYTES)
        .argParser(integerParser(MAX_DATAGRAM, 1 << 30)),
    )
    .addOption(
      opt('--ws-ping-secs <n>', 'WS_PING_SECS', 'ping WebSocket peers this often; no answer by the next ping closes the connection')
        .default(DEFAULT_WS_PING_SECS)
        .argParser(integerParser(1, 3600)),
    );
}

/** SPEC 3.3 */
function addMetricsOptions(cmd: Command): void {
  cmd
    .optionsGroup('Metrics:')
    .addOption(opt('--metrics-port <n>', 'METRICS_PORT', 'serve /metrics, /healthz and /readyz over HTTP on this port (off by default)').argParser(parsePort))
    .addOption(opt('--metrics-host <addr>', 'METRICS_HOST', 'address for the metrics server').default(DEFAULT_METRICS_HOST).argParser(parseHost));
}

interface RelayFlags {
  port: number;
  host: string;
  sessionTimeoutSecs: number;
  unpairedTimeoutSecs: number;
  maxSessionDatagramsPerSec: number;
  publicAddress?: string[];
  peerRelays?: string[];
  metricsPort?: number;
  metricsHost: string;
  maxSessions: number;
  maxSessionsPerIp: number;
  registrationsPerSecPerIp: number;
  maxSessionBytesPerSec: number;
  implicitRebind?: boolean;
  drainTimeoutSecs: number;
  recvBufferBytes: number;
  sendBufferBytes: number;
  io: IoMode;
  wsPort?: number;
  wsHost?: string;
  wsTrustedProxies?: string[];
  tlsCert?: string;
  tlsKey?: string;
  wsMaxConnections: number;
  wsQueueBytes: number;
  wsPingSecs: number;
}

/**
 * The relay options from a parsed command. `env` supplies the one variable
 * commander does not read itself; a bad value ends in `cmd.error`.
 */
export function relayRunFrom(cmd: Command, env: Record<string, string | undefined>): RelayRun {
  const f = cmd.opts<RelayFlags>();
  // SPEC 2.4: a flag beats a variable; neither leaves the library's default (off with tickets, else on).
  let implicitRebind = cmd.getOptionValueSource('implicitRebind') === 'cli' ? f.implicitRebind : undefined;
  for (const [name, flag, negate] of [
    [IMPLICIT_REBIND_ENV, '--implicit-rebind', false],
    [NO_IMPLICIT_REBIND_ENV, '--no-implicit-rebind', true],
  ] as const) {
    const envValue = env[name];
    if (implicitRebind !== undefined || envValue === undefined) continue;
    try {
      implicitRebind = parseBoolean(envValue) !== negate;
    } catch {
      cmd.error(`error: option '${flag}' value '${envValue}' from env '${name}' is invalid. must be true or false`, {
        code: 'commander.invalidArgument',
        exitCode: 1,
      });
    }
  }
  return {
    server: {
      port: f.port,
      host: f.host,
      sessionTimeoutSecs: f.sessionTimeoutSecs,
      unpairedTimeoutSecs: f.unpairedTimeoutSecs,
      maxSessionDatagramsPerSec: f.maxSessionDatagramsPerSec,
      publicAddresses: f.publicAddress ?? [],
      peerRelays: f.peerRelays ?? [],
      maxSessions: f.maxSessions,
      maxSessionsPerIp: f.maxSessionsPerIp,
      registrationsPerSecPerIp: f.registrationsPerSecPerIp,
      maxSessionBytesPerSec: f.maxSessionBytesPerSec,
      ...(implicitRebind !== undefined ? { implicitRebind } : {}),
      authSecrets: authSecretsFrom(cmd),
      recvBufferBytes: f.recvBufferBytes,
      sendBufferBytes: f.sendBufferBytes,
      io: f.io,
      ...(f.wsPort !== undefined ? { wsPort: f.wsPort } : {}),
      ...(f.wsHost !== undefined ? { wsHost: f.wsHost } : {}),
      wsTrustedProxies: f.wsTrustedProxies ?? [],
      ...(f.tlsCert !== undefined ? { tlsCert: f.tlsCert } : {}),
      ...(f.tlsKey !== undefined ? { tlsKey: f.tlsKey } : {}),
      wsMaxConnections: f.wsMaxConnections,
      wsQueueBytes: f.wsQueueBytes,
      wsPingSecs: f.wsPingSecs,
    },
    metrics: f.metricsPort === undefined ? undefined : { host: f.metricsHost, port: f.metricsPort },
    drainTimeoutSecs: f.drainTimeoutSecs,
  };
}

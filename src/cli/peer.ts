// `quic-relay peer`: the sidecar (SPEC 5.1).
import createDebug from 'debug';
import { type Command, Option } from 'commander';
import { DEFAULT_APP_IDLE_MS, DEFAULT_KEEPALIVE_SECS } from '../wire/constants';
import { isValidSessionId } from '../wire/protocol';
import { Sidecar } from '../client/sidecar';
import type { RelayEndpoint, TransportMode } from '../client/relay-client';
import { streamEnvironment } from '../client/stream-environment';
import type { StreamEnvironment } from '../client/stream-environment';
import * as net from 'node:net';
import { formatAddress } from '../wire/address';
import { rankRelays, relayOnlyFromEnv } from '../client/relay-pick';
import { integerParser } from './options';
import { InvalidArgumentError } from 'commander';
import { parseEndpointArg, relayList } from './client-options';

interface PeerFlags {
  session: string;
  relay?: string;
  listen?: RelayEndpoint;
  forward?: RelayEndpoint;
  keepaliveSecs: number;
  registerTimeoutSecs: number;
  bind?: RelayEndpoint;
  relayOnly?: boolean;
  candidates?: string[];
  appIdleMs: number;
  statusSecs?: number;
  transport?: string;
}

/** `--candidates`: IPs joined by commas, or `none` (only the public address the relay reports). */
function parseCandidates(value: string): string[] {
  const text = value.trim();
  if (text === 'none') return [];
  const list = text.split(',').map((a) => a.trim());
  for (const a of list) if (net.isIP(a) === 0) throw new InvalidArgumentError(`${JSON.stringify(a)} is not an IP address (give IPs joined by commas, or none)`);
  return list;
}

function parseSession(value: string): string {
  if (!isValidSessionId(value)) throw new InvalidArgumentError('must be 1-64 characters of A-Z a-z 0-9 - _');
  return value;
}

export interface PeerIo {
  env: Record<string, string | undefined>;
  /** One line to stderr. */
  say(line: string): void;
  /** Called with the running sidecar, so the entry can stop it on a signal. */
  running(sidecar: Sidecar): void;
}

export function addPeerCommand(program: Command, io: () => PeerIo): Command {
  return program
    .command('peer')
    .description('sidecar: carry an unmodified QUIC program through the relay')
    .addOption(new Option('--session <id>', 'session id shared with the other peer (e.g. a UUID)').argParser(parseSession).makeOptionMandatory())
    .addOption(new Option('--relay <host:port>', 'relay address (or a comma-separated list); default: QUIC_RELAY_IP / QUIC_RELAY_PORT'))
    .addOption(new Option('--listen <ip:port>', 'dialling side: local UDP address your QUIC client sends to').argParser(parseEndpointArg).conflicts('forward'))
    .addOption(new Option('--forward <ip:port>', 'listening side: local address of your QUIC server').argParser(parseEndpointArg))
    .addOption(
      new Option('--keepalive-secs <n>', 'resend REG this often (the worst-case recovery after a NAT change)')
        .default(DEFAULT_KEEPALIVE_SECS)
        .argParser(integerParser(1, 3600)),
    )
    .addOption(
      new Option('--register-timeout-secs <n>', 'give up when the first registration is not acknowledged in time')
        .default(30)
        .argParser(integerParser(1, 86400)),
    )
    .addOption(
      new Option('--app-idle-ms <n>', 'listen mode: serve another local address once the current QUIC client has been silent this long')
        .default(DEFAULT_APP_IDLE_MS)
        .argParser(integerParser(1, 3_600_000)),
    )
    .addOption(new Option('--status-secs <n>', 'print a status line (path, relay, what was carried) this often').argParser(integerParser(1, 86400)))
    .addOption(new Option('--bind <ip:port>', 'local address of the socket that talks to the relay').argParser(parseEndpointArg))
    .addOption(new Option('--relay-only', 'never try a direct path: only relay traffic (default: QUIC_RELAY_ONLY)'))
    .addOption(
      new Option(
        '--transport <mode>',
        'reach the relay over udp, ws (its WebSocket leg, for networks that block UDP), or auto: UDP, then ws if UDP gets no answer (default: QUIC_RELAY_TRANSPORT, else auto)',
      ).choices(['auto', 'udp', 'ws']),
    )
    .addOption(
      new Option(
        '--candidates <ips>',
        "local IPs offered to the peer for a direct path, joined by commas, or 'none' (default: this host's interface addresses)",
      )
        .env('QUIC_RELAY_CANDIDATES')
        .argParser(parseCandidates),
    )
    .action(async (flags: PeerFlags, cmd: Command) => runPeer(flags, cmd, io()));
}

/** Runs the sidecar the flags and variables describe, saying what happens. */
async function runPeer(flags: PeerFlags, cmd: Command, { env, say, running }: PeerIo): Promise<void> {
  const sidecar = sidecarFrom(flags, cmd, env);
  narrate(sidecar, flags.session, say);
  running(sidecar);
  if (flags.statusSecs !== undefined) {
    setInterval(() => {
      const p = sidecar.link.path;
      say(
        `status: path ${p.kind === 'direct' ? `direct ${formatAddress(p.address, p.port)}` : relayPathOf(sidecar)} via ${sidecar.client.relayName}; ${sidecar.summary()}`,
      );
    }, flags.statusSecs * 1000).unref();
  }
  try {
    await sidecar.start();
  } catch (err) {
    if (sidecar.isClosed) return; // stopped by a signal while registering: not a failure (exit 0)
    throw err;
  }
  const l = sidecar.localAddress();
  say(flags.listen ? `point your QUIC client at ${l.address}:${l.port}` : `forwarding the peer's datagrams to ${flags.forward!.host}:${flags.forward!.port}`);
}

/** The sidecar for the flags and variables; a bad one is one line (cmd.error exits). */
function sidecarFrom(flags: PeerFlags, cmd: Command, env: Record<string, string | undefined>): Sidecar {
  if ((flags.listen === undefined) === (flags.forward === undefined)) cmd.error("error: give exactly one of '--listen <ip:port>' or '--forward <ip:port>'");
  let relay: RelayEndpoint;
  let relays: RelayEndpoint[];
  let relayOnly: boolean;
  let streams: StreamEnvironment;
  try {
    streams = streamEnvironment(env);
    relays = rankRelays(relayList(flags.relay, env), flags.session);
    relay = relays[0]!;
    relayOnly = flags.relayOnly === true || relayOnlyFromEnv(env);
  } catch (err) {
    cmd.error(`error: ${(err as Error).message}`);
  }
  const sidecar = new Sidecar({
    relay: relay!,
    relays: relays!,
    sessionId: flags.session,
    mode: flags.listen !== undefined ? 'listen' : 'forward',
    local: (flags.listen ?? flags.forward)!,
    keepaliveSecs: flags.keepaliveSecs,
    registerTimeoutMs: flags.registerTimeoutSecs * 1000,
    appIdleMs: flags.appIdleMs,
    trace: createDebug('quic-relay:peer'), // DEBUG=quic-relay:* shows each REG, ACK, refusal and failover
    relayOnly: relayOnly!,
    transport: (flags.transport ?? streams!.transport) as TransportMode,
    stream: streams!.stream,
    ...(flags.candidates !== undefined ? { localAddresses: flags.candidates } : {}),
    ...(flags.bind ? { bindAddress: flags.bind.host, bindPort: flags.bind.port } : {}),
  });
  return sidecar;
}

/** SPEC 6.4: the relay path names its transport: relay (UDP) or relay-ws. */
const relayPathOf = (sidecar: Sidecar): string => (sidecar.client.transport === 'ws' ? 'relay-ws' : 'relay');

/** SPEC 5.4: each change of path, one line; and once the other side has answered. The client's events, one line each. */
function narrate(sidecar: Sidecar, session: string, say: (line: string) => void): void {
  sidecar.link.on('path', (p) =>
    say(
      p.kind === 'direct'
        ? `path direct ${formatAddress(p.address, p.port)} rtt ${p.rttMs.toFixed(2)}`
        : `path ${relayPathOf(sidecar)} ${p.reason} (via ${sidecar.client.relayName})`,
    ),
  );
  sidecar.link.on('peer', (via) => say(`peer ${session} reachable via ${via}`));
  const c = sidecar.client;
  c.on('registered', () => say(`registered ${c.sessionId} via ${c.relayName}`));
  c.on('unregistered', () => say(`no answer from ${c.relayName} to a keepalive; registering ${c.sessionId} again`));
  c.on('refused', (err) => say(err.message));
  c.on('relay', (r, why) => say(`relay ${formatAddress(r.host, r.port)} now carries ${c.sessionId} (${why})`));
  c.on('transport', (tr, why) => say(`transport ${tr}: ${why}`));
  c.on('error', (err) => say(`socket error: ${err.message}`));
}

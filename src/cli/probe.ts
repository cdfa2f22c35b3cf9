// `quic-relay probe`: check a relay end to end; one line, exit 0 or 1.
import { type Command, InvalidArgumentError, Option } from 'commander';
import { isValidSessionId } from '../wire/protocol';
import { formatNatCheck, formatProbe, natCheck, probe, probePassed } from '../client/probe';
import type { NatCheck, ProbeResult } from '../client/probe';
import * as net from 'node:net';
import type { RelayEndpoint } from '../client/relay-client';
import { integerParser } from './options';
import { relayList } from './client-options';
import { streamEnvironment } from '../client/stream-environment';
import type { StreamEnvironment } from '../client/stream-environment';
import type { TransportMode } from '../client/relay-client';

interface ProbeFlags {
  relay?: string;
  count: number;
  intervalMs: number;
  timeoutSecs: number;
  ticket?: string;
  json?: boolean;
  transport?: string;
}

function parseTicket(value: string): string {
  if (!isValidSessionId(value)) throw new InvalidArgumentError('must be a ticket (48 characters of A-Z a-z 0-9 - _)');
  return value;
}

export function addProbeCommand(
  program: Command,
  io: () => { env: Record<string, string | undefined>; print(line: string): void; exit(code: number): void },
): Command {
  return program
    .command('probe')
    .description(
      'check every listed relay (a netcheck): register two peers on each, round-trip datagrams, print RTT, loss and the public address each sees; with several relays, whether this NAT allows hole punching; exit 0 when every relay works',
    )
    .addOption(new Option('--relay <host:port>', 'relay address, or a comma-separated list; default: QUIC_RELAY_IP / QUIC_RELAY_PORT'))
    .addOption(new Option('--count <n>', 'round trips per relay').default(20).argParser(integerParser(1, 100000)))
    .addOption(new Option('--interval-ms <n>', 'between datagrams').default(10).argParser(integerParser(0, 60000)))
    .addOption(new Option('--timeout-secs <n>', 'wait this long for each relay to answer').default(5).argParser(integerParser(1, 600)))
    .addOption(
      new Option('--ticket <ticket>', 'a ticket, for relays that want one (quic-relay ticket on the relay makes one)')
        .env('QUIC_RELAY_TICKET')
        .argParser(parseTicket),
    )
    .addOption(
      new Option('--transport <mode>', 'udp, ws (the WebSocket leg), or auto: both, and say which work (default: QUIC_RELAY_TRANSPORT, else auto)').choices([
        'auto',
        'udp',
        'ws',
      ]),
    )
    .addOption(new Option('--json', 'one JSON object on stdout instead of lines, for scripts'))
    .action(async (flags: ProbeFlags, cmd: Command) => runProbe(flags, cmd, io()));
}

type ProbeIo = { env: Record<string, string | undefined>; print(line: string): void; exit(code: number): void };

/** Probes every listed relay over each transport asked for, prints what answered, and exits 0 when every relay works. */
async function runProbe(flags: ProbeFlags, cmd: Command, { env, print, exit }: ProbeIo): Promise<void> {
  let all: RelayEndpoint[] = [];
  let streams: StreamEnvironment | undefined;
  try {
    all = relayList(flags.relay, env);
    streams = streamEnvironment(env);
  } catch (err) {
    cmd.error(`error: ${(err as Error).message}`);
  }
  // SPEC 6.4: which transports answer from here; auto tries both.
  const mode = (flags.transport ?? streams!.transport) as TransportMode;
  const transports: Array<'udp' | 'ws'> = mode === 'auto' ? ['udp', 'ws'] : [mode];
  // Every relay at once: a netcheck of the fleet, each probe on its own sockets.
  const perRelay = await Promise.all(
    all.map((relay) =>
      Promise.all(
        transports.map((transport) =>
          probe({
            relay,
            count: flags.count,
            intervalMs: flags.intervalMs,
            timeoutMs: flags.timeoutSecs * 1000,
            transport,
            stream: streams!.stream,
            ...(flags.ticket !== undefined ? { ticket: flags.ticket } : {}),
          }),
        ),
      ),
    ),
  );
  // With several relays (IP literals of one family), how this NAT maps one socket to each.
  const nat =
    all.length >= 2 && all.every((e) => net.isIP(e.host) === net.isIP(all[0]!.host) && net.isIP(e.host) !== 0) ? await natCheck(all, 1000) : undefined;
  // A relay works when one of the transports tried reaches it.
  const ok = perRelay.every((rs) => rs.some(probePassed));
  printProbes(flags.json === true, all.length, transports, perRelay, nat, print);
  exit(ok ? 0 : 1);
}

/** The results as lines (or one JSON object): each probe, the NAT check, and the tallies. */
function printProbes(
  json: boolean,
  relays: number,
  transports: ReadonlyArray<'udp' | 'ws'>,
  perRelay: ProbeResult[][],
  nat: NatCheck | undefined,
  print: (line: string) => void,
): void {
  const results = perRelay.flat();
  const ok = perRelay.every((rs) => rs.some(probePassed));
  if (json) {
    print(JSON.stringify({ ok, relays: results.map((r) => ({ ...r, ok: probePassed(r) })), nat: nat ?? null }));
  } else {
    for (const r of results) print(formatProbe(r));
    if (nat !== undefined) print(formatNatCheck(nat));
    if (transports.length > 1) {
      for (const t of transports)
        print(
          `${t === 'udp' ? 'UDP' : 'WebSocket'}: ${results.filter((r) => r.transport === t && probePassed(r)).length} of ${relays} relays answer from here`,
        );
    }
    if (relays > 1) print(`${perRelay.filter((rs) => rs.some(probePassed)).length} of ${relays} relays work${ok ? '' : ': the others are listed above'}`);
  }
}

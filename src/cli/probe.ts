// `quic-relay probe`: check a relay end to end; one line, exit 0 or 1.
import { Command, Option } from 'commander';
import { formatNatCheck, formatProbe, natCheck, probe, probePassed } from '../client/probe';
import net from 'node:net';
import { pickRelay } from '../client/relay-pick';
import type { RelayEndpoint } from '../client/relay-client';
import { integerParser } from './options';
import { relayList } from './client-options';

interface ProbeFlags {
  relay?: string;
  count: number;
  intervalMs: number;
  timeoutSecs: number;
}

export function addProbeCommand(program: Command, io: () => { env: Record<string, string | undefined>; print(line: string): void; exit(code: number): void }): Command {
  return program
    .command('probe')
    .description('check a relay: register two peers, round-trip datagrams, print RTT, loss and the public address it sees; with several relays, whether this NAT allows hole punching; exit 0 when it works')
    .addOption(new Option('--relay <host:port>', 'relay address; default: QUIC_RELAY_IP / QUIC_RELAY_PORT'))
    .addOption(new Option('--count <n>', 'round trips').default(20).argParser(integerParser(1, 100000)))
    .addOption(new Option('--interval-ms <n>', 'between datagrams').default(10).argParser(integerParser(0, 60000)))
    .addOption(new Option('--timeout-secs <n>', 'wait this long for the relay to answer').default(5).argParser(integerParser(1, 600)))
    .action(async (flags: ProbeFlags, cmd: Command) => {
      const { env, print, exit } = io();
      let all: RelayEndpoint[] = [];
      try {
        all = relayList(flags.relay, env);
      } catch (err) {
        cmd.error(`error: ${(err as Error).message}`);
      }
      const r = await probe({ relay: pickRelay(all, 'probe'), count: flags.count, intervalMs: flags.intervalMs, timeoutMs: flags.timeoutSecs * 1000 });
      print(formatProbe(r));
      // With several relays (IP literals of one family), report how this NAT maps one socket to each.
      if (all.length >= 2 && all.every((e) => net.isIP(e.host) === net.isIP(all[0]!.host) && net.isIP(e.host) !== 0)) {
        print(formatNatCheck(await natCheck(all, 1000)));
      }
      exit(probePassed(r) ? 0 : 1);
    });
}

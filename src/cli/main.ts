#!/usr/bin/env node
// Entry of the bundle (dist/quic-relay.js). The only module that touches
// `process`: argv, env, signals, exit codes.

import createDebug from 'debug';
import { Command } from 'commander';
import v8 from 'node:v8';
import { DEFAULT_LOG_NAMESPACES } from '../server/log';
import { RelayServer } from '../server/relay-server';
import { addPeerCommand } from './peer';
import { addProbeCommand } from './probe';
import { addRelayOptions, relayOptionsFrom } from './relay';

declare const QUIC_RELAY_VERSION: string | undefined;
const VERSION = typeof QUIC_RELAY_VERSION === 'string' ? QUIC_RELAY_VERSION : '0.0.0-dev';

/** The whole command line: the relay itself, and the `peer` and `probe` subcommands. */
export function buildProgram(env: NodeJS.ProcessEnv, runRelay: (cmd: Command) => Promise<void> | void): Command {
  const program = new Command('quic-relay')
    .description('UDP rendezvous relay for peer-to-peer QUIC: peers send REG:<session-id>, get ACK, and every later datagram goes to the other peer')
    .version(VERSION, '-V, --version')
    .enablePositionalOptions()
    .showSuggestionAfterError(true)
    .allowExcessArguments(false);
  addRelayOptions(program);
  program.action(async () => runRelay(program));
  addPeerCommand(program, () => ({
    env,
    say: (line) => process.stderr.write(`${line}\n`),
    running: (sidecar) => stopOnSignals(() => sidecar.close()),
  }));
  addProbeCommand(program, () => ({
    env,
    print: (line) => process.stdout.write(`${line}\n`),
    exit: (code) => {
      process.exitCode = code;
    },
  }));
  return program;
}

/** SIGTERM/SIGINT: run `stop`, then exit 0 (within 1 s in any case). A second signal exits at once. */
function stopOnSignals(stop: () => Promise<unknown>): void {
  let stopping = false;
  const onSignal = (): void => {
    if (stopping) process.exit(0);
    stopping = true;
    setTimeout(() => process.exit(0), 900).unref();
    stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

async function startRelay(cmd: Command, env: NodeJS.ProcessEnv): Promise<void> {
  // A smaller young generation and tighter heap growth: measured 828 -> ~580
  // bytes of RSS per paired session at 100k sessions, with no measurable loss
  // of forwarding rate (npm run bench; see the README's performance section).
  v8.setFlagsFromString('--optimize-for-size');
  const relay = new RelayServer(relayOptionsFrom(cmd, env));
  try {
    await relay.start();
  } catch (err) {
    process.stderr.write(`quic-relay: ${(err as Error).message}\n`);
    process.exit(1);
  }
  // SPEC 3.4: stop, one summary line (logged by close), exit 0 within 1 s.
  stopOnSignals(() => relay.close());
}

export async function main(argv: string[] = process.argv, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  // SPEC 3.2: info and warnings on when DEBUG says nothing.
  if (env.DEBUG === undefined || env.DEBUG === '') createDebug.enable(DEFAULT_LOG_NAMESPACES);
  const program = buildProgram(env, (cmd) => startRelay(cmd, env));
  await program.parseAsync(argv);
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`quic-relay: ${err.message}\n`);
    process.exit(1);
  });
}

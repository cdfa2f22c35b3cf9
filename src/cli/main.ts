#!/usr/bin/env -S node --optimize-for-size
// Entry of the bundle (dist/quic-relay.js). The only module that touches
// `process`: argv, env, signals, exit codes, stdio. V8's --optimize-for-size
// comes from the shebang (and the unit's ExecStart), where Node reads flags
// at start: measured, a third less memory per session at no cost in rate.

import createDebug from 'debug';
import { Command } from 'commander';
import { RelayServer } from '../server/relay-server';
import type { MetricsHttpServer } from '../server/metrics-http';
import { logNamespaces } from '../server/log';
import { formatAddress } from '../wire/address';
import { VERSION } from '../wire/version';
import { addPeerCommand } from './peer';
import { addProbeCommand } from './probe';
import { relayCommand } from './relay';
import type { RelayRun } from './relay';
import { addTicketCommand } from './ticket';

export interface ProgramIo {
  env: Record<string, string | undefined>;
  /** Runs the relay with the parsed options (main: until a signal stops it). */
  runRelay(run: RelayRun): Promise<void> | void;
  /** A line to stdout (ticket, probe). */
  print(line: string): void;
  /** The exit code a command asks for without stopping (probe). @default sets process.exitCode */
  exitCode?(code: number): void;
}

/** The whole command line: the relay (the default command), `peer`, `probe` and `ticket`. */
export function buildProgram(io: ProgramIo): Command {
  const relay = relayCommand(io.env, (r) => io.runRelay(r));
  const program = new Command('quic-relay')
    .description('UDP rendezvous relay for peer-to-peer QUIC: peers send REG:<session-id>, get ACK, and every later datagram goes to the other peer')
    .version(VERSION, '-V, --version')
    .usage('[options] | <command> [options]')
    .enablePositionalOptions()
    .showSuggestionAfterError(true);
  // `quic-relay --help` shows the relay's own options first, as the original's does.
  // Its usage line and description go; its option groups stay, under their headings.
  program.addHelpText('after', () => `\nThe relay (the default command):\n\n${relay.helpInformation().replace(/^Usage:[^\n]*\n\n(?:[^\n]+\n)*\n/, '')}`);
  program.addCommand(relay, { isDefault: true });
  addPeerCommand(program, () => ({
    env: io.env,
    say: (line) => process.stderr.write(`${line}\n`),
    running: (sidecar) => {
      const say = (line: string): void => void process.stderr.write(`${line}\n`);
      ignoreStraySignals(say, () => 'nothing to reload; carrying on');
      stopOnSignals(() => {
        say(`stopped: ${sidecar.summary()}`);
        return sidecar.close();
      });
    },
  }));
  addProbeCommand(program, () => ({
    env: io.env,
    print: io.print,
    exit: (code) => {
      if (io.exitCode !== undefined) io.exitCode(code);
      else process.exitCode = code;
    },
  }));
  addTicketCommand(program, () => ({ print: io.print }));
  return program;
}

/**
 * Signals that must not do their default thing: SIGUSR1 would open Node's
 * inspector on 127.0.0.1:9229 (code execution for any local user), one key
 * away from the drain signal; SIGHUP would kill the process without its
 * summary (a closed terminal, or a habit of reloading). A listener is what
 * keeps Node from either; each is logged, nothing else.
 */
function ignoreStraySignals(say: (line: string) => void, onHup: () => string): void {
  process.on('SIGUSR1', () => say('SIGUSR1 ignored: the inspector stays off (drain is SIGUSR2)'));
  process.on('SIGHUP', () => say(`SIGHUP: ${onHup()}`));
}

/** SIGTERM/SIGINT: run `stop`, then exit 0 (within 1 s in any case). A second signal exits at once. */
function stopOnSignals(stop: () => Promise<unknown>): (why?: string) => void {
  let stopping = false;
  const onSignal = (): void => {
    if (stopping) process.exit(0);
    stopping = true;
    setTimeout(() => process.exit(0), 900).unref();
    stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return onSignal;
}

async function runRelay(r: RelayRun): Promise<void> {
  const relay = new RelayServer(r.server);
  const log = createDebug('quic-relay:relay');
  // SPEC 6.1: SIGHUP re-reads the TLS files; a bad pair is reported and the old one kept.
  ignoreStraySignals(log, () => {
    try {
      return relay.reloadTls()
        ? 'TLS certificate and key reloaded; open connections keep theirs'
        : 'nothing to reload (restart to change options; drain first with SIGUSR2); carrying on';
    } catch (err) {
      return `TLS reload failed, the old certificate stays: ${(err as Error).message}`;
    }
  });
  let metrics: MetricsHttpServer | undefined;
  try {
    await relay.start();
    if (r.metrics !== undefined) {
      // prom-client is evaluated only when metrics are asked for.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { MetricsHttpServer: Http } = require('../server/metrics-http') as typeof import('../server/metrics-http');
      metrics = new Http(relay);
      try {
        const m = await metrics.listen(r.metrics.host, r.metrics.port);
        log('metrics on http://%s/metrics (also /healthz, /readyz)', formatAddress(m.address, m.port));
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new Error(`cannot serve metrics on ${formatAddress(r.metrics.host, r.metrics.port)}: ${e.code ?? e.message}`);
      }
    }
  } catch (err) {
    process.stderr.write(`quic-relay: ${(err as Error).message}\n`);
    await relay.close();
    process.exit(1);
  }
  const stop = async (): Promise<void> => {
    await metrics?.close();
    await relay.close(); // SPEC 3.4: logs the one-line summary
  };
  // SPEC 3.4: SIGTERM/SIGINT stop at once, also in the middle of a drain.
  const stopNow = stopOnSignals(stop);
  // SPEC 3.6: SIGUSR2 drains: no new sessions; exit 0 once none is left or
  // the drain timeout has passed.
  process.on('SIGUSR2', () => {
    if (relay.draining) return;
    const timer = setTimeout(() => {
      log('drain timeout (%d s): stopping with %d sessions open', r.drainTimeoutSecs, relay.table.size);
      stopNow();
    }, r.drainTimeoutSecs * 1000);
    void relay.drain().then(() => {
      clearTimeout(timer);
      stopNow();
    });
  });
}

export async function main(argv: string[] = process.argv, env: Record<string, string | undefined> = process.env): Promise<void> {
  // SPEC 3.2: info and warnings on, whatever else DEBUG names, unless it turns them off.
  createDebug.enable(logNamespaces(env.DEBUG));
  const program = buildProgram({ env, runRelay, print: (line) => process.stdout.write(`${line}\n`) });
  await program.parseAsync(argv);
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`quic-relay: ${err.message}\n`);
    process.exit(1);
  });
}

// SPEC 4.3: where the relay and `quic-relay ticket` get their secrets:
// --auth-secret / QUIC_RELAY_AUTH_SECRET (a comma-separated list, the first
// one current), or --auth-secret-file / QUIC_RELAY_AUTH_SECRET_FILE (one a
// line). A secret is never echoed: not in errors, not in --help, not in logs.

import { readFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { checkAuthSecrets } from '../server/config';
import { ConfigError } from '../wire/errors';

export function addAuthOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--auth-secret <list>',
        'accept only tickets made with one of these secrets (comma-separated, current first); prefer the variable or a file, arguments show in ps',
      )
        .env('QUIC_RELAY_AUTH_SECRET')
        .conflicts('authSecretFile'),
    )
    .addOption(new Option('--auth-secret-file <path>', 'the same, one secret a line (e.g. a systemd credential)').env('QUIC_RELAY_AUTH_SECRET_FILE'));
}

/** The secrets the options name ([] when none); a bad one ends in `cmd.error` without showing it. */
export function authSecretsFrom(cmd: Command): readonly string[] {
  const o = cmd.opts<{ authSecret?: string; authSecretFile?: string }>();
  let secrets: string[] = [];
  let option = '--auth-secret';
  if (o.authSecretFile !== undefined) {
    option = '--auth-secret-file';
    let text: string;
    try {
      text = readFileSync(o.authSecretFile, 'utf8');
    } catch (err) {
      cmd.error(`error: option '--auth-secret-file' cannot read ${o.authSecretFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    secrets = text!
      .split('\n')
      .map((l) => l.replace(/\r$/, ''))
      .filter((l) => l.trim() !== '');
    if (secrets.length === 0) cmd.error(`error: option '--auth-secret-file': ${o.authSecretFile} holds no secret`);
  } else if (o.authSecret !== undefined) {
    secrets = o.authSecret.split(',').filter((s) => s.trim() !== '');
    if (secrets.length === 0) cmd.error("error: option '--auth-secret': no secret given");
  }
  try {
    return checkAuthSecrets(secrets, option);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    cmd.error(`error: option '${option}': ${err.message.replace(/^[^:]*: /, '')}`);
  }
  return [];
}

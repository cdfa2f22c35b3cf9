// `quic-relay ticket` (SPEC 4.3): prints one new ticket, alone on a line of
// stdout, made with the first secret the relay's options name.
import { type Command, Option } from 'commander';
import { DEFAULT_TICKET_TTL_SECS } from '../wire/constants';
import { makeTicket } from '../wire/tickets';
import { addAuthOptions, authSecretsFrom } from './auth';
import { integerParser } from './options';

export interface TicketIo {
  print(line: string): void;
}

export function addTicketCommand(program: Command, io: () => TicketIo): Command {
  const cmd = program
    .command('ticket')
    .description('print a new ticket (a session id a relay with --auth-secret accepts); give it to both peers')
    .addOption(
      new Option('--ttl-secs <n>', 'seconds the ticket may create or join a session')
        .default(DEFAULT_TICKET_TTL_SECS)
        .argParser(integerParser(1, 10 * 365 * 86400)),
    );
  addAuthOptions(cmd);
  return cmd.action((flags: { ttlSecs: number }, c: Command) => {
    const secrets = authSecretsFrom(c);
    if (secrets.length === 0)
      c.error("error: option '--auth-secret' (or '--auth-secret-file', QUIC_RELAY_AUTH_SECRET, QUIC_RELAY_AUTH_SECRET_FILE) is needed to make a ticket");
    io().print(makeTicket(secrets[0]!, { ttlSecs: flags.ttlSecs }));
  });
}

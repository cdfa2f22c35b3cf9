// SPEC 4.3: tickets, the session ids a public relay accepts. 48 characters:
//   q1 | expiry, 8 lowercase hex digits of Unix seconds | nonce, 16 base64url
//   characters (12 random bytes) | MAC, 22 base64url characters: the first 16
//   bytes of HMAC-SHA256(secret as UTF-8, the 26 characters before it).
// Every character is in the session-id alphabet (SPEC 1.2), so a ticket is an
// ordinary session id and clients need no change. Pure apart from the nonce's
// randomness; the time is a parameter.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const TICKET_LENGTH = 48;
const PREFIX = 'q1';
const SIGNED_LENGTH = 26; // prefix + expiry + nonce
const MAC_BYTES = 16;
const NONCE_BYTES = 12;
/** The longest lifetime a ticket can express: its expiry must fit 8 hex digits. */
export const MAX_TICKET_EXPIRY = 0xffffffff;

const SHAPE = /^q1[0-9a-f]{8}[A-Za-z0-9_-]{38}$/;

export type TicketCheck = 'valid' | 'expired' | 'invalid';

export interface MakeTicketOptions {
  /** Seconds the ticket stays valid. @default 3600 */
  ttlSecs?: number;
  /** Unix seconds now. @default the system clock */
  nowSecs?: number;
  /** 12 bytes; random unless given (tests). */
  nonce?: Uint8Array;
}

function mac(secret: string, signed: string): string {
  return createHmac('sha256', secret).update(signed, 'latin1').digest().subarray(0, MAC_BYTES).toString('base64url');
}

/** A new ticket made with `secret`. Throws a RangeError for an empty secret or an impossible lifetime. */
export function makeTicket(secret: string, options: MakeTicketOptions = {}): string {
  if (secret.length === 0) throw new RangeError('the secret is empty');
  const now = options.nowSecs ?? Math.floor(Date.now() / 1000);
  const ttl = options.ttlSecs ?? 3600;
  const expiry = now + ttl;
  if (!Number.isInteger(ttl) || ttl < 1 || !Number.isInteger(now) || expiry > MAX_TICKET_EXPIRY) {
    throw new RangeError(`a ticket's expiry must be a whole Unix second up to ${MAX_TICKET_EXPIRY}`);
  }
  const nonce = options.nonce ?? randomBytes(NONCE_BYTES);
  if (nonce.length !== NONCE_BYTES) throw new RangeError(`the nonce must be ${NONCE_BYTES} bytes`);
  const signed = PREFIX + expiry.toString(16).padStart(8, '0') + Buffer.from(nonce).toString('base64url');
  return signed + mac(secret, signed);
}

/** The expiry (Unix seconds) a well-formed ticket carries, without checking its MAC. */
export function ticketExpiry(ticket: string): number | undefined {
  return SHAPE.test(ticket) ? parseInt(ticket.slice(2, 10), 16) : undefined;
}

/**
 * Whether `ticket` was made with one of `secrets` ('invalid' when with none,
 * or not a ticket at all), and whether it is still valid at `nowSecs`: a
 * ticket is valid before its expiry second. The MAC is compared in constant
 * time, as text, so only the one canonical encoding of it is accepted.
 */
export function checkTicket(ticket: string, secrets: readonly string[], nowSecs: number): TicketCheck {
  if (ticket.length !== TICKET_LENGTH || !SHAPE.test(ticket)) return 'invalid';
  const signed = ticket.slice(0, SIGNED_LENGTH);
  const given = Buffer.from(ticket.slice(SIGNED_LENGTH), 'latin1');
  let authentic = false;
  for (const secret of secrets) {
    // Every secret is tried, so the time taken does not say which one matched.
    if (timingSafeEqual(Buffer.from(mac(secret, signed), 'latin1'), given)) authentic = true;
  }
  if (!authentic) return 'invalid';
  return nowSecs < parseInt(ticket.slice(2, 10), 16) ? 'valid' : 'expired';
}

// The wire layer (SPEC 1.2-1.5): pure functions over bytes. No sockets, no
// clock, no logging. classify() allocates only for a valid registration.

import { formatAddress, unmappedAddress } from './address';
import { SESSION_ID_MAX, SESSION_ID_MIN } from './constants';

export type Classified =
  | { readonly kind: 'register'; readonly id: string }
  | { readonly kind: 'bad-register' }
  | { readonly kind: 'address-query' }
  | { readonly kind: 'data' };

// Shared results: the hot path (data) must not allocate.
const DATA: Classified = Object.freeze({ kind: 'data' });
const BAD_REGISTER: Classified = Object.freeze({ kind: 'bad-register' });
const ADDRESS_QUERY: Classified = Object.freeze({ kind: 'address-query' });

const R = 0x52,
  E = 0x45,
  G = 0x47,
  COLON = 0x3a,
  CR = 0x0d,
  LF = 0x0a;
const A = 0x41,
  D = 0x44,
  QUESTION = 0x3f,
  SPACE = 0x20;

/** SPEC 1.5: an address query is `ADDR?` padded with spaces to at least this many bytes. */
export const ADDRESS_QUERY_MIN_BYTES = 64;

/**
 * SPEC 1.5: exactly `ADDR?` followed by spaces, 64 bytes or more. The padding
 * is what keeps every answer shorter than its query. Looks past the fifth
 * byte only when the first five match.
 */
export function isAddressQuery(buf: Uint8Array, len = buf.length): boolean {
  if (len < ADDRESS_QUERY_MIN_BYTES || buf[0] !== A || buf[1] !== D || buf[2] !== D || buf[3] !== R || buf[4] !== QUESTION) return false;
  for (let i = 5; i < len; i++) if (buf[i] !== SPACE) return false;
  return true;
}

/** The address query a client sends (SPEC 1.5), built once. */
export const ADDRESS_QUERY_DATAGRAM = Buffer.from('ADDR?'.padEnd(ADDRESS_QUERY_MIN_BYTES, ' '), 'latin1');

/**
 * SPEC 1.5: the answer, `ADDR <ip>:<port>\n`, for a source as rinfo gives it:
 * IPv4 and IPv4-mapped IPv6 as a dotted quad, other IPv6 in brackets.
 */
export function encodeAddressAnswer(address: string, port: number): Buffer {
  return Buffer.from(`ADDR ${formatAddress(unmappedAddress(address), port)}\n`, 'latin1');
}

/** A client's reading of an answer: the address and port, or undefined when `buf` is not one. */
export function parseAddressAnswer(buf: Buffer): { address: string; port: number } | undefined {
  if (buf.length < 12 || buf.length > 80 || buf[0] !== A || buf[1] !== D || buf[2] !== D || buf[3] !== R || buf[4] !== SPACE) return undefined;
  const m = /^ADDR (?:\[([0-9A-Fa-f:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})\r?\n$/.exec(buf.toString('latin1'));
  if (m === null) return undefined;
  const port = Number(m[3]);
  return port <= 65535 ? { address: (m[1] ?? m[2])!, port } : undefined;
}

/** Bytes allowed in a session id (SPEC 1.2: A-Z a-z 0-9 - _), as ws does for token chars. */
const ID_BYTE = new Uint8Array(256);
for (let c = 0x30; c <= 0x39; c++) ID_BYTE[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) ID_BYTE[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) ID_BYTE[c] = 1;
ID_BYTE[0x2d] = 1; // -
ID_BYTE[0x5f] = 1; // _

/** True when the datagram (its first `len` bytes) begins with `REG:`. */
export function startsWithReg(buf: Uint8Array, len = buf.length): boolean {
  return len >= 4 && buf[0] === R && buf[1] === E && buf[2] === G && buf[3] === COLON;
}

/**
 * SPEC 1.2/1.4: a datagram is a registration (`REG:` + 1-64 id bytes + optional
 * `\r\n` or `\n`, nothing after), a bad registration (starts with `REG:` but
 * breaks that), or data. Whether a bad registration is really data depends on
 * the sender being registered: that is the caller's decision (SPEC 1.4).
 * `len`: the datagram's length when `buf` is longer (a reused receive slot),
 * so that no view of it is made per datagram.
 */
export function classify(buf: Buffer, len = buf.length): Classified {
  if (len === 0) return DATA;
  if (buf[0] === A) return isAddressQuery(buf, len) ? ADDRESS_QUERY : DATA;
  if (!startsWithReg(buf, len)) return DATA;
  let end = 4;
  while (end < len && ID_BYTE[buf[end] as number] === 1) end++;
  const idLen = end - 4;
  if (idLen < SESSION_ID_MIN || idLen > SESSION_ID_MAX) return BAD_REGISTER;
  // SPEC 1.2: only an optional line end may follow the id.
  const rest = len - end;
  if (rest === 1 ? buf[end] !== LF : rest === 2 ? buf[end] !== CR || buf[end + 1] !== LF : rest !== 0) {
    return BAD_REGISTER;
  }
  return { kind: 'register', id: buf.toString('latin1', 4, end) };
}

/** True when `id` is a valid session id (SPEC 1.2); for clients and option checks. */
export function isValidSessionId(id: string): boolean {
  if (id.length < SESSION_ID_MIN || id.length > SESSION_ID_MAX) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c > 0xff || ID_BYTE[c] !== 1) return false;
  }
  return true;
}

/** The registration datagram a client sends (`REG:<id>\n`). */
export function encodeRegister(id: string): Buffer {
  return Buffer.from(`REG:${id}\n`, 'latin1');
}

// SPEC 1.3: replies, built once.
export const ACK = Buffer.from('ACK\n', 'latin1');
export const ERR_FULL = Buffer.from('ERR:FULL\n', 'latin1');
export const ERR_BAD = Buffer.from('ERR:BAD\n', 'latin1');
export const ERR_BUSY = Buffer.from('ERR:BUSY\n', 'latin1');
/** SPEC 4.3: the session id is not a valid ticket. */
export const ERR_AUTH = Buffer.from('ERR:AUTH\n', 'latin1');

/** SPEC 1.3: a reply is never longer than the datagram that caused it (no amplification). */
export function replyFits(reply: Buffer, requestLength: number): boolean {
  return reply.length <= requestLength;
}

export type Reply = 'ack' | 'full' | 'bad' | 'busy' | 'auth';

/**
 * What a relay reply means to a client: `ACK\n`, `ERR:FULL\n`, `ERR:BUSY\n`,
 * `ERR:BAD\n`, `ERR:AUTH\n` (a trailing `\r\n` is tolerated), or undefined for anything else,
 * which is data from the peer.
 */
export function parseReply(buf: Buffer): Reply | undefined {
  const len = buf.length;
  if (len < 4 || len > 10) return undefined;
  if (matches(buf, ACK)) return 'ack';
  if (matches(buf, ERR_FULL)) return 'full';
  if (matches(buf, ERR_BUSY)) return 'busy';
  if (matches(buf, ERR_BAD)) return 'bad';
  if (matches(buf, ERR_AUTH)) return 'auth';
  return undefined;
}

function matches(buf: Buffer, reply: Buffer): boolean {
  const body = reply.length - 1; // without the \n
  const len = buf.length;
  if (len !== body + 1 && len !== body + 2) return false;
  for (let i = 0; i < body; i++) if (buf[i] !== reply[i]) return false;
  return len === body + 1 ? buf[body] === LF : buf[body] === CR && buf[body + 1] === LF;
}

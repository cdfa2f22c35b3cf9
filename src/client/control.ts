// SPEC 5.3: the control datagrams two peers exchange to find a direct path.
// Pure: bytes in, values out; no sockets, no clock. The relay never looks
// inside them: to it they are data.
//
// A QUIC packet's first byte tells nothing (ngtcp2 greases the fixed bit), so
// a control datagram is told apart by an 8-byte magic and then proven by a
// MAC keyed from the session id. A QUIC packet matches the magic with odds of
// 2^-64, and even then fails the MAC and is dropped, never misread.
//
//   0   8  magic  00 71 72 63 74 6c 01 2a  ("\0qrctl\1*")
//   8   1  type   1 candidates (through the relay), 2 probe, 3 answer
//   9   1  flags  bit 0: candidates: "I have yours"; probe/answer: "I have an
//                 answer from the address this datagram goes to"
//                 probe/answer, bit 1: "I report direct data" (bit 2 is meaningful)
//                 probe/answer, bit 2: "your direct data reached me since my last probe"
//  10   8  sender: random id of the sending link (a reflected datagram is ours)
//  18  12  nonce: random; an answer echoes its probe's
//  30   n  body:  candidates only: "ip/port ip/port ..." in ASCII
// end  16  MAC:   first 16 bytes of HMAC-SHA256(key, all bytes before it)

import { createHmac, timingSafeEqual } from 'node:crypto';
import * as net from 'node:net';

export const CONTROL_MAGIC = Buffer.from([0x00, 0x71, 0x72, 0x63, 0x74, 0x6c, 0x01, 0x2a]);
const MAGIC_HI = CONTROL_MAGIC.readUInt32BE(0);
const MAGIC_LO = CONTROL_MAGIC.readUInt32BE(4);
const HEADER_BYTES = 30;
const MAC_BYTES = 16;
export const SENDER_BYTES = 8;
export const NONCE_BYTES = 12;
/** A probe or an answer: header and MAC, no body. Both are this size, so an answer never amplifies. */
export const PROBE_BYTES = HEADER_BYTES + MAC_BYTES;
/** SPEC 5.3: "a few candidates". More are not sent, and not accepted. */
export const MAX_CANDIDATES = 8;

const TYPE_CANDIDATES = 1,
  TYPE_PROBE = 2,
  TYPE_ANSWER = 3;

export interface Candidate {
  readonly address: string;
  readonly port: number;
}

export type ControlMessage =
  | { readonly type: 'candidates'; readonly sender: string; readonly nonce: string; readonly haveYours: boolean; readonly candidates: readonly Candidate[] }
  | { readonly type: 'probe'; readonly sender: string; readonly nonce: string; readonly confirmed: boolean; readonly dataSeen?: boolean }
  | { readonly type: 'answer'; readonly sender: string; readonly nonce: string; readonly confirmed: boolean; readonly dataSeen?: boolean };

const FLAG_FIRST = 1,
  FLAG_REPORTS_DATA = 2,
  FLAG_DATA_SEEN = 4;

/** The MAC key of a session: both peers derive it from the id they share (SPEC 5.3). */
export function controlKey(sessionId: string): Buffer {
  return createHmac('sha256', 'quic-relay control v1').update(sessionId, 'latin1').digest();
}

/**
 * The cheap test the receive path runs on every datagram: does it start with
 * the magic? Two integer reads, no allocation.
 */
export function looksLikeControl(buf: Uint8Array): boolean {
  if (buf.length < PROBE_BYTES) return false;
  const b = buf;
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0 === MAGIC_HI && ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0 === MAGIC_LO;
}

function mac(key: Buffer, signed: Uint8Array): Buffer {
  return createHmac('sha256', key).update(signed).digest().subarray(0, MAC_BYTES);
}

function encodeCandidates(list: readonly Candidate[]): Buffer {
  return Buffer.from(
    list
      .slice(0, MAX_CANDIDATES)
      .map((c) => `${c.address}/${c.port}`)
      .join(' '),
    'latin1',
  );
}

function parseCandidates(text: string): Candidate[] | undefined {
  if (text.length === 0) return [];
  const parts = text.split(' ');
  if (parts.length > MAX_CANDIDATES) return undefined;
  const out: Candidate[] = [];
  for (const part of parts) {
    const slash = part.lastIndexOf('/');
    const address = part.slice(0, slash);
    const portText = part.slice(slash + 1);
    if (slash <= 0 || net.isIP(address) === 0 || !/^\d{1,5}$/.test(portText)) return undefined;
    const port = Number(portText);
    if (port < 1 || port > 65535) return undefined;
    out.push({ address, port });
  }
  return out;
}

/** Builds a signed control datagram. `sender` and `nonce` are hex strings of 8 and 12 bytes. */
export function encodeControl(key: Buffer, message: ControlMessage): Buffer {
  const body = message.type === 'candidates' ? encodeCandidates(message.candidates) : Buffer.alloc(0);
  const out = Buffer.alloc(HEADER_BYTES + body.length + MAC_BYTES);
  CONTROL_MAGIC.copy(out, 0);
  out[8] = message.type === 'candidates' ? TYPE_CANDIDATES : message.type === 'probe' ? TYPE_PROBE : TYPE_ANSWER;
  let flags = (message.type === 'candidates' ? message.haveYours : message.confirmed) ? FLAG_FIRST : 0;
  if (message.type !== 'candidates' && message.dataSeen !== undefined) flags |= FLAG_REPORTS_DATA | (message.dataSeen ? FLAG_DATA_SEEN : 0);
  out[9] = flags;
  if (out.write(message.sender, 10, SENDER_BYTES, 'hex') !== SENDER_BYTES) throw new RangeError('sender must be 8 bytes of hex');
  if (out.write(message.nonce, 18, NONCE_BYTES, 'hex') !== NONCE_BYTES) throw new RangeError('nonce must be 12 bytes of hex');
  body.copy(out, HEADER_BYTES);
  mac(key, out.subarray(0, out.length - MAC_BYTES)).copy(out, out.length - MAC_BYTES);
  return out;
}

/**
 * The message in `buf`, or undefined when it is not a valid control datagram
 * for this key: wrong magic, wrong MAC (another session, or forged), unknown
 * type, malformed body. Never throws.
 */
export function decodeControl(key: Buffer, buf: Buffer): ControlMessage | undefined {
  if (!looksLikeControl(buf)) return undefined;
  const end = buf.length - MAC_BYTES;
  if (!timingSafeEqual(mac(key, buf.subarray(0, end)), buf.subarray(end))) return undefined;
  const type = buf[8];
  const flags = buf[9]!;
  const flag = (flags & FLAG_FIRST) !== 0;
  const sender = buf.toString('hex', 10, 18);
  const nonce = buf.toString('hex', 18, HEADER_BYTES);
  if (type === TYPE_CANDIDATES) {
    const candidates = parseCandidates(buf.toString('latin1', HEADER_BYTES, end));
    return candidates === undefined ? undefined : { type: 'candidates', sender, nonce, haveYours: flag, candidates };
  }
  if (end !== HEADER_BYTES) return undefined; // probes and answers carry no body
  const report = (flags & FLAG_REPORTS_DATA) !== 0 ? { dataSeen: (flags & FLAG_DATA_SEEN) !== 0 } : {};
  if (type === TYPE_PROBE) return { type: 'probe', sender, nonce, confirmed: flag, ...report };
  if (type === TYPE_ANSWER) return { type: 'answer', sender, nonce, confirmed: flag, ...report };
  return undefined;
}

// What a datagram from a listed relay is, on the client's side (SPEC 1.5,
// 5.1, 5.3, 6.4): the relay's reply, an address answer, something never
// the QUIC program's, or the peer's data. Pure; one parse per datagram and
// no allocation for data.

import { isAddressQuery, parseAddressAnswer, parseReply } from '../wire/protocol';
import type { Reply } from '../wire/protocol';
import type { PublicAddress } from './address-query';

/**
 * `udp`: it came over UDP; `askedUdp`: the client has asked "does UDP answer
 * here?" (SPEC 6.4), whose answer is an `ADDR ...`; `querying`: an address
 * query is under way (SPEC 1.5).
 */
export function classifyFromRelay(msg: Buffer, udp: boolean, askedUdp: boolean, querying: boolean): Reply | PublicAddress | 'swallow' | 'data' {
  // The answer to "does UDP answer here?", never the peer's.
  if (udp && askedUdp && !querying && parseAddressAnswer(msg) !== undefined) return 'swallow';
  // SPEC 5.3: a relay that does not answer address queries (the original)
  // forwards our peer's to us as data; it is never the QUIC program's.
  if (isAddressQuery(msg)) return 'swallow';
  if (querying) {
    // Only while a query is under way: a peer's datagram could, in theory, spell the same.
    const answer = parseAddressAnswer(msg);
    if (answer !== undefined) return answer;
  }
  return parseReply(msg) ?? 'data';
}

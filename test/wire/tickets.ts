// SPEC 4.3: the ticket format, byte for byte, and its checks.
import t from 'tap';
import { createHmac } from 'node:crypto';
import { checkTicket, makeTicket, ticketExpiry, TICKET_LENGTH } from '../../src/wire/tickets';
import { isValidSessionId } from '../../src/wire/protocol';

const SECRET = 'correct horse battery staple';
const NONCE = Buffer.from('000102030405060708090a0b', 'hex');

t.test('the format: q1, expiry in 8 lowercase hex, 16-char nonce, 22-char truncated HMAC-SHA256', async (t) => {
  const ticket = makeTicket(SECRET, { nowSecs: 0x65000000, ttlSecs: 0xabc, nonce: NONCE });
  t.equal(ticket.length, TICKET_LENGTH);
  t.equal(ticket.slice(0, 2), 'q1');
  t.equal(ticket.slice(2, 10), (0x65000000 + 0xabc).toString(16).padStart(8, '0'));
  t.equal(ticket.slice(10, 26), NONCE.toString('base64url'));
  // computed here independently of the module: HMAC over the 26 characters before the MAC
  const mac = createHmac('sha256', Buffer.from(SECRET, 'utf8')).update(ticket.slice(0, 26)).digest().subarray(0, 16).toString('base64url');
  t.equal(ticket.slice(26), mac);
  t.equal(mac.length, 22, 'no padding');
  t.ok(isValidSessionId(ticket), 'a ticket is an ordinary session id (SPEC 1.2)');
  t.equal(ticketExpiry(ticket), 0x65000000 + 0xabc);
  t.equal(ticketExpiry('nope'), undefined);
});

t.test('valid before its expiry second, expired from it on', async (t) => {
  const ticket = makeTicket(SECRET, { nowSecs: 1000, ttlSecs: 60 });
  t.equal(checkTicket(ticket, [SECRET], 1000), 'valid');
  t.equal(checkTicket(ticket, [SECRET], 1059), 'valid');
  t.equal(checkTicket(ticket, [SECRET], 1060), 'expired', 'the expiry second itself is too late');
});

t.test('any of several secrets (rotation); none of them, or any change, is invalid', async (t) => {
  const ticket = makeTicket(SECRET, { nowSecs: 1000 });
  t.equal(checkTicket(ticket, ['another secret entirely', SECRET], 1000), 'valid', 'the old secret still checks');
  t.equal(checkTicket(ticket, ['another secret entirely'], 1000), 'invalid');
  t.equal(checkTicket(ticket, [], 1000), 'invalid');
  for (let i = 0; i < TICKET_LENGTH; i++) {
    // change one character to another of the alphabet, keeping hex digits hex
    const c = ticket[i]!;
    const swapped = i < 2 ? (c === 'q' ? 'r' : '2') : i < 10 ? (c === 'a' ? 'b' : 'a') : c === 'A' ? 'B' : 'A';
    const forged = ticket.slice(0, i) + swapped + ticket.slice(i + 1);
    if (checkTicket(forged, [SECRET], 1000) !== 'invalid') t.fail(`changing character ${i} still checks`);
  }
  t.pass('every one-character change is invalid');
  const last = ticket[TICKET_LENGTH - 1]!;
  // the last base64url character carries 4 unused bits: another spelling of the same MAC must not pass
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const sibling = alphabet[alphabet.indexOf(last) ^ 1]!;
  t.equal(checkTicket(ticket.slice(0, -1) + sibling, [SECRET], 1000), 'invalid', 'only the canonical encoding of the MAC');
  for (const bad of ['', 'q1', `${ticket}x`, ticket.slice(1), ticket.toUpperCase(), `q2${ticket.slice(2)}`])
    t.equal(checkTicket(bad, [SECRET], 1000), 'invalid', JSON.stringify(bad.slice(0, 12)));
});

t.test('misuse throws; nonces are fresh', async (t) => {
  t.throws(() => makeTicket(''), RangeError);
  t.throws(() => makeTicket(SECRET, { ttlSecs: 0 }), RangeError);
  t.throws(() => makeTicket(SECRET, { nowSecs: 0xffffffff, ttlSecs: 1 }), RangeError, 'expiry beyond 8 hex digits');
  t.throws(() => makeTicket(SECRET, { nonce: Buffer.alloc(11) }), RangeError);
  t.not(makeTicket(SECRET), makeTicket(SECRET), 'two tickets differ by their nonce');
});

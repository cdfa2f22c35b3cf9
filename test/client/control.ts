// The control datagram codec (SPEC 5.3): signed with the session's key,
// told from QUIC by magic and MAC, never throwing on anything a peer sends.
import t from 'tap';
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { CONTROL_MAGIC, MAX_CANDIDATES, PROBE_BYTES, controlKey, decodeControl, encodeControl, looksLikeControl } from '../../src/client/control';
import type { ControlMessage } from '../../src/client/control';

const key = controlKey('session-one');
const sender = '0102030405060708';
const nonce = 'a1a2a3a4a5a6a7a8a9aaabac';

t.test('each message survives a round trip', async (t) => {
  const messages: ControlMessage[] = [
    { type: 'probe', sender, nonce, confirmed: false },
    { type: 'probe', sender, nonce, confirmed: true },
    { type: 'answer', sender, nonce, confirmed: true },
    { type: 'candidates', sender, nonce, haveYours: false, candidates: [] },
    {
      type: 'candidates',
      sender,
      nonce,
      haveYours: true,
      candidates: [
        { address: '198.51.100.7', port: 40000 },
        { address: '2001:db8::1', port: 1 },
        { address: '10.0.0.2', port: 65535 },
      ],
    },
  ];
  for (const m of messages) {
    const wire = encodeControl(key, m);
    t.ok(looksLikeControl(wire), `${m.type} starts with the magic`);
    t.same(decodeControl(key, wire), m, `${m.type} decodes to what was sent`);
  }
  const probe = encodeControl(key, messages[0]!);
  const answer = encodeControl(key, messages[2]!);
  t.equal(probe.length, PROBE_BYTES, 'a probe is header and MAC only');
  t.equal(answer.length, probe.length, 'an answer is no bigger than its probe: no amplification');
});

t.test('a datagram signed for another session, or altered, is not a control datagram', async (t) => {
  const wire = encodeControl(key, { type: 'probe', sender, nonce, confirmed: true });
  t.equal(decodeControl(controlKey('session-two'), wire), undefined, 'another session key');
  for (let i = 8; i < wire.length; i++) {
    const bent = Buffer.from(wire);
    bent[i]! ^= 0x01;
    if (decodeControl(key, bent) !== undefined) t.fail(`a flipped bit at byte ${i} still decoded`);
  }
  t.equal(decodeControl(key, wire.subarray(0, wire.length - 1)), undefined, 'truncated');
  t.pass('no single-bit change after the magic decodes');
});

t.test('the magic is what tells control from QUIC: a first byte alone would not', async (t) => {
  // ngtcp2 greases the fixed bit, so QUIC short headers can start with 0x00 too.
  const quicLike = Buffer.alloc(1200, 0);
  t.notOk(looksLikeControl(quicLike), 'a datagram of zeros is not control');
  const almost = Buffer.concat([CONTROL_MAGIC.subarray(0, 7), Buffer.alloc(60, 0xff)]);
  t.notOk(looksLikeControl(almost), 'seven bytes of the magic are not enough');
  const magicOnly = Buffer.concat([CONTROL_MAGIC, Buffer.alloc(60, 0)]);
  t.ok(looksLikeControl(magicOnly), 'the magic is');
  t.equal(decodeControl(key, magicOnly), undefined, 'but without the MAC it decodes to nothing');
  t.notOk(looksLikeControl(CONTROL_MAGIC), 'too short to be one');
  t.notOk(looksLikeControl(Buffer.from('REG:abc\n')), 'a registration is not');
});

t.test('candidates: a few at most, only IPs and ports', async (t) => {
  const many = Array.from({ length: MAX_CANDIDATES + 3 }, (_, i) => ({ address: `10.0.0.${i + 1}`, port: 1000 + i }));
  const sent = decodeControl(key, encodeControl(key, { type: 'candidates', sender, nonce, haveYours: false, candidates: many }));
  t.equal(sent?.type === 'candidates' ? sent.candidates.length : -1, MAX_CANDIDATES, 'the encoder sends no more than the limit');
  // Bodies a peer could sign (it has the key) but that are not candidates: refused, never thrown on.
  const bodies = ['10.0.0.1/0', '10.0.0.1/65536', 'example.com/443', '10.0.0.1', '/443', '10.0.0.1/44 3', many.map((c) => `${c.address}/${c.port}`).join(' ')];
  for (const body of bodies) {
    const wire = encodeControl(key, { type: 'candidates', sender, nonce, haveYours: false, candidates: [] });
    const withBody = resign(Buffer.concat([wire.subarray(0, 30), Buffer.from(body, 'latin1')]));
    t.equal(decodeControl(key, withBody), undefined, `refused: ${JSON.stringify(body.slice(0, 30))}`);
  }
  const probeWithBody = resign(Buffer.concat([encodeControl(key, { type: 'probe', sender, nonce, confirmed: false }).subarray(0, 30), Buffer.from('x')]));
  t.equal(decodeControl(key, probeWithBody), undefined, 'a probe with a body');
  const unknownType = encodeControl(key, { type: 'probe', sender, nonce, confirmed: false }).subarray(0, 30);
  unknownType[8] = 9;
  t.equal(decodeControl(key, resign(unknownType)), undefined, 'an unknown type');
});

t.test('decoding random bytes behind the magic never throws and never decodes', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), (tail) => {
      const buf = Buffer.concat([CONTROL_MAGIC, tail]);
      return decodeControl(key, buf) === undefined;
    }),
    { numRuns: 2000 },
  );
  t.pass('2000 random datagrams');
});

/** Signs a header + body the way a peer that holds the key could. */
function resign(signed: Buffer): Buffer {
  return Buffer.concat([signed, createHmac('sha256', key).update(signed).digest().subarray(0, 16)]);
}

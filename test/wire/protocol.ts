import t from 'tap';
import {
  classify,
  isValidSessionId,
  parseReply,
  replyFits,
  ACK,
  ERR_AUTH,
  ERR_BAD,
  ERR_BUSY,
  ERR_FULL,
  encodeRegister,
  ADDRESS_QUERY_DATAGRAM,
  encodeAddressAnswer,
  isAddressQuery,
  parseAddressAnswer,
} from '../../src/wire/protocol';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const uuid = '123e4567-e89b-12d3-a456-426614174000';

t.test('SPEC 1.2: classify() on a table of raw datagrams', async (t) => {
  const cases: Array<[string, Buffer, 'register' | 'bad-register' | 'data', string?]> = [
    ['uuid with \\n', b(`REG:${uuid}\n`), 'register', uuid],
    ['uuid with \\r\\n', b(`REG:${uuid}\r\n`), 'register', uuid],
    ['uuid, no line end', b(`REG:${uuid}`), 'register', uuid],
    ['1-byte id', b('REG:a'), 'register', 'a'],
    ['64-byte id', b(`REG:${'x'.repeat(64)}\n`), 'register', 'x'.repeat(64)],
    ['all allowed chars', b('REG:AZaz09-_\n'), 'register', 'AZaz09-_'],
    ['case kept', b('REG:AbC\n'), 'register', 'AbC'],
    ['65-byte id', b(`REG:${'x'.repeat(65)}\n`), 'bad-register'],
    ['empty id', b('REG:\n'), 'bad-register'],
    ['bare REG:', b('REG:'), 'bad-register'],
    ['space in id', b('REG:ab cd\n'), 'bad-register'],
    ['dot in id', b('REG:ab.cd\n'), 'bad-register'],
    ['something after \\n', b('REG:abc\nx'), 'bad-register'],
    ['two line ends', b('REG:abc\n\n'), 'bad-register'],
    ['\\r alone', b('REG:abc\r'), 'bad-register'],
    ['\\n\\r', b('REG:abc\n\r'), 'bad-register'],
    ['NUL after id', b('REG:abc\0'), 'bad-register'],
    ['high byte in id', Buffer.from([0x52, 0x45, 0x47, 0x3a, 0x61, 0xe9]), 'bad-register'],
    ['lower-case reg:', b('reg:abc\n'), 'data'],
    ['REG without colon', b('REGabc\n'), 'data'],
    ['REG: with leading space', b(' REG:abc\n'), 'data'],
    ['empty datagram', Buffer.alloc(0), 'data'],
    ['three bytes REG', b('REG'), 'data'],
    ['QUIC long header', Buffer.from([0xc3, 0, 0, 0, 1, 8]), 'data'],
    ['binary', Buffer.from([0x52, 0x45, 0x47, 0x00, 0xff]), 'data'],
  ];
  for (const [name, buf, kind, id] of cases) {
    const c = classify(buf);
    t.equal(c.kind, kind, name);
    if (id !== undefined && c.kind === 'register') t.equal(c.id, id, `${name}: id`);
  }
});

t.test('classify() does not allocate a result for data', async (t) => {
  t.equal(classify(b('hello')), classify(b('world')), 'data result is shared');
  t.equal(classify(b('REG:')), classify(b('REG:!!')), 'bad-register result is shared');
});

t.test('classify(buf, len) reads the first len bytes only (a reused receive slot)', async (t) => {
  const slot = Buffer.alloc(2048, 0x21); // what a previous, longer datagram left behind
  const put = (s: string): number => slot.write(s, 'latin1');
  t.same(classify(slot, put('REG:slot-id\n')), { kind: 'register', id: 'slot-id' });
  t.equal(classify(slot, put('ADDR?'.padEnd(64, ' '))).kind, 'address-query');
  t.equal(classify(slot, put('REG:')).kind, 'bad-register');
  t.equal(classify(slot, 0).kind, 'data', 'an empty datagram');
  t.equal(classify(slot).kind, 'bad-register', 'the whole slot, for contrast: the stale bytes break the id');
});

t.test('SPEC 1.3: replies and the amplification rule', async (t) => {
  t.same(
    [ACK, ERR_FULL, ERR_BAD, ERR_BUSY].map((r) => r.toString()),
    ['ACK\n', 'ERR:FULL\n', 'ERR:BAD\n', 'ERR:BUSY\n'],
  );
  t.ok(replyFits(ACK, b('REG:a').length), 'ACK (4) fits a 5-byte REG');
  t.notOk(replyFits(ERR_FULL, b('REG:abcd').length), 'ERR:FULL (9) does not fit 8 bytes');
  t.ok(replyFits(ERR_FULL, b('REG:abcde').length), 'ERR:FULL fits 9 bytes');
  t.notOk(replyFits(ERR_BAD, b('REG:').length), 'ERR:BAD (8) does not fit 4 bytes');
});

t.test('client helpers', async (t) => {
  t.equal(encodeRegister('abc').toString(), 'REG:abc\n');
  t.ok(isValidSessionId(uuid));
  t.notOk(isValidSessionId(''));
  t.notOk(isValidSessionId('x'.repeat(65)));
  t.notOk(isValidSessionId('a b'));
  t.notOk(isValidSessionId('é'));
  t.equal(parseReply(b('ACK\n')), 'ack');
  t.equal(parseReply(b('ACK\r\n')), 'ack');
  t.equal(parseReply(b('ERR:FULL\n')), 'full');
  t.equal(parseReply(b('ERR:BUSY\n')), 'busy');
  t.equal(parseReply(b('ERR:BAD\n')), 'bad');
  t.equal(parseReply(b('ACK')), undefined, 'no line end: data');
  t.equal(parseReply(b('ACK\nX')), undefined);
  t.equal(parseReply(Buffer.from([0x40, 1, 2, 3])), undefined);
});

t.test('SPEC 1.5: an address query is exactly ADDR? and spaces, 64 bytes or more', async (t) => {
  const q = (s: string) => classify(b(s)).kind;
  t.equal(q('ADDR?'.padEnd(64, ' ')), 'address-query');
  t.equal(q('ADDR?'.padEnd(1200, ' ')), 'address-query', 'longer padding is fine');
  t.equal(q('ADDR?'.padEnd(63, ' ')), 'data', '63 bytes: too short, so data');
  t.equal(q('ADDR?'), 'data');
  t.equal(q(`${'ADDR?'.padEnd(63, ' ')}x`), 'data', 'anything but spaces after ADDR?');
  t.equal(q('ADDR!'.padEnd(64, ' ')), 'data');
  t.equal(q('addr?'.padEnd(64, ' ')), 'data', 'case matters');
  t.equal(q(`${'ADDR?'.padEnd(63, ' ')}\n`), 'data', 'no line end either');
  t.equal(ADDRESS_QUERY_DATAGRAM.length, 64);
  t.ok(isAddressQuery(ADDRESS_QUERY_DATAGRAM));
});

t.test('SPEC 1.5: the answer names the source, dotted quad for IPv4 and mapped, brackets for IPv6', async (t) => {
  t.equal(encodeAddressAnswer('203.0.113.7', 40000).toString(), 'ADDR 203.0.113.7:40000\n');
  t.equal(encodeAddressAnswer('::ffff:203.0.113.7', 1).toString(), 'ADDR 203.0.113.7:1\n');
  t.equal(encodeAddressAnswer('::FFFF:10.1.2.3', 2).toString(), 'ADDR 10.1.2.3:2\n');
  t.equal(encodeAddressAnswer('2001:db8::1', 443).toString(), 'ADDR [2001:db8::1]:443\n');
  const longest = encodeAddressAnswer('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 65535);
  t.ok(longest.length < ADDRESS_QUERY_DATAGRAM.length, `the longest answer (${longest.length} bytes) is shorter than a query`);
  t.same(parseAddressAnswer(b('ADDR 203.0.113.7:40000\n')), { address: '203.0.113.7', port: 40000 });
  t.same(parseAddressAnswer(b('ADDR [2001:db8::1]:443\n')), { address: '2001:db8::1', port: 443 });
  for (const bad of ['ADDR 1.2.3.4:70000\n', 'ADDR 1.2.3.4\n', 'ADDR? ', 'ACK\n', 'ADDR [zz]:1\n'])
    t.equal(parseAddressAnswer(b(bad)), undefined, JSON.stringify(bad));
});

t.test('SPEC 4.3: ERR:AUTH is a reply a client understands', async (t) => {
  t.equal(parseReply(ERR_AUTH), 'auth');
  t.equal(parseReply(b('ERR:AUTH\r\n')), 'auth');
  t.equal(ERR_AUTH.toString(), 'ERR:AUTH\n');
});

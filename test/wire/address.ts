import t from 'tap';
import { formatAddress, ipKeyOf, limitKeyOf, literalLookup } from '../../src/wire/address';

t.test('IPv4 becomes one int32 key, however it is written', async (t) => {
  t.equal(ipKeyOf('127.0.0.1'), 0x7f000001);
  t.equal(ipKeyOf('::ffff:127.0.0.1'), 0x7f000001, 'IPv4-mapped IPv6 is the same peer IP (SPEC 1.1)');
  t.equal(ipKeyOf('::FFFF:127.0.0.1'), 0x7f000001);
  t.equal(ipKeyOf('255.255.255.255'), -1, 'int32: kept unboxed by V8');
  t.equal(ipKeyOf('0.0.0.0'), 0);
  t.not(ipKeyOf('10.0.0.1'), ipKeyOf('10.0.0.2'));
});

t.test('anything else keys by its string', async (t) => {
  t.equal(ipKeyOf('::1'), '::1');
  t.equal(ipKeyOf('2001:db8::1'), '2001:db8::1');
  t.equal(ipKeyOf('1.2.3'), '1.2.3');
  t.equal(ipKeyOf('1.2.3.256'), '1.2.3.256');
  t.equal(ipKeyOf('1.2.3.4.5'), '1.2.3.4.5');
  t.equal(ipKeyOf('1..2.3'), '1..2.3');
  t.equal(ipKeyOf('::ffff:1.2.3'), '::ffff:1.2.3');
});

t.test('formatAddress', async (t) => {
  t.equal(formatAddress('1.2.3.4', 5), '1.2.3.4:5');
  t.equal(formatAddress('::1', 5), '[::1]:5');
});

t.test('literalLookup answers at once, with the socket family', async (t) => {
  let got: unknown[] | undefined;
  literalLookup(6)('::1', {}, ((...args: unknown[]) => (got = args)) as never);
  t.same(got, [null, '::1', 6], 'called before returning: no dns.lookup, no nextTick');
});

t.test('SPEC 4.5: per-IP limits count IPv6 by /64, IPv4 by address', async (t) => {
  t.equal(limitKeyOf(ipKeyOf('10.1.2.3')), ipKeyOf('10.1.2.3'), 'IPv4: itself');
  t.equal(limitKeyOf(ipKeyOf('::ffff:10.1.2.3')), ipKeyOf('10.1.2.3'), 'IPv4-mapped: the IPv4 address');
  t.equal(limitKeyOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  t.equal(limitKeyOf('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64', 'every host of the /64 is one key');
  t.not(limitKeyOf('2001:db8:1:3::1'), limitKeyOf('2001:db8:1:2::1'), 'the next /64 is another');
  t.equal(limitKeyOf('2001:db8::1'), '2001:db8:0:0::/64', 'zeros compressed inside the prefix');
  t.equal(limitKeyOf('::1'), '0:0:0:0::/64');
  t.equal(limitKeyOf('64:ff9b::192.0.2.1'), '64:ff9b:0:0::/64', 'an embedded dotted quad');
  t.equal(limitKeyOf('fe80::1%eth0'), 'fe80:0:0:0::/64', 'a zone is not part of it');
  t.equal(limitKeyOf('not:an:address::x'), 'not:an:address::x', 'anything else keys as itself');
});

// SPEC 4.4: which sources lead back to a relay (pure).
import t from 'tap';
import { ipKeyOf } from '../../src/wire/address';
import { LoopGuard } from '../../src/server/loop-guard';

const k = ipKeyOf;

t.test('bound to one address: that address on our port, and the unspecified address', async (t) => {
  const g = new LoopGuard({ port: 4433, ownIps: [k('10.0.0.5')], wildcard: false, others: [] });
  t.ok(g.isLoop(k('10.0.0.5'), 4433));
  t.ok(g.isLoop(k('::ffff:10.0.0.5'), 4433), 'however it is spelled');
  t.notOk(g.isLoop(k('10.0.0.5'), 4434), 'another port of our host is a peer like any other');
  t.ok(g.isLoop(k('0.0.0.0'), 4433), '0.0.0.0 as a destination is this host');
  t.notOk(g.isLoop(k('127.0.0.2'), 4433), 'loopback reaches another socket when we are bound to one address');
});

t.test('bound to the wildcard: every interface address and all of loopback', async (t) => {
  const g = new LoopGuard({ port: 4433, ownIps: [k('10.0.0.5'), k('fd00::5')], wildcard: true, others: [] });
  t.ok(g.isLoop(k('127.9.9.9'), 4433));
  t.ok(g.isLoop(k('::1'), 4433));
  t.ok(g.isLoop(k('fd00::5'), 4433));
  t.notOk(g.isLoop(k('10.0.0.6'), 4433));
});

t.test('the fleet and public addresses with ports of their own; update() replaces everything', async (t) => {
  const g = new LoopGuard({
    port: 4433,
    ownIps: [],
    wildcard: false,
    others: [
      { ip: k('198.51.100.2'), port: 4433 },
      { ip: k('198.51.100.2'), port: 5000 },
    ],
  });
  t.ok(g.isLoop(k('198.51.100.2'), 4433));
  t.ok(g.isLoop(k('198.51.100.2'), 5000));
  t.notOk(g.isLoop(k('198.51.100.2'), 5001));
  g.update({ port: 4433, ownIps: [], wildcard: false, others: [] });
  t.notOk(g.isLoop(k('198.51.100.2'), 4433));
});

// The socket tests again, on the native I/O path (SPEC behaviour must not
// depend on how datagrams move). Skipped, saying so, where the module was not
// built (no C compiler).
import t from 'tap';
import { builtNativeModule } from '../fixtures/udp';

import { startRelay } from '../fixtures/udp';

if (builtNativeModule() === undefined) {
  t.test('the native path', { skip: 'native I/O module not built (no C compiler): the dgram path alone is tested' }, async () => {});
} else {
  process.env.QUIC_RELAY_TEST_IO = 'native';
  t.test('these relays really are on the native path', async (t) => {
    const { relay } = await startRelay(t);
    t.equal(relay.ioKind, 'native');
  });
  require('./relay-server');
  require('./relay-server-public');
  require('./relay-hardening');
  require('./metrics-http');
  require('./stream-leg');
  require('../client/sidecar');
  require('../client/peer-link');
}

// Which I/O path carries datagrams (--io): the native batches when the module
// loads (IPv4 only), else node:dgram; 'native' insists, 'dgram' never tries.

import { RelayError } from '../wire/errors';
import { DgramIo } from './datagram-io';
import type { DatagramIo } from './datagram-io';
import { NativeIo, loadNative } from './native-io';
import type { NativeModuleSource } from './native-io';

export type IoMode = 'auto' | 'native' | 'dgram';

/** The I/O for `mode`; with 'auto', why native was not used (for the start log). Throws only for 'native' that cannot load. */
export function chooseIo(mode: IoMode, family: 4 | 6, nativeModule: NativeModuleSource | undefined): { io: DatagramIo; fallbackReason?: string } {
  if (mode === 'dgram') return { io: new DgramIo() };
  const loaded = family === 6 ? { error: 'native I/O is IPv4-only' } : loadNative(nativeModule);
  if ('binding' in loaded) return { io: new NativeIo(loaded.binding) };
  if (mode === 'native') throw new RelayError('QR_ERR_NATIVE', `--io native: ${loaded.error}`);
  return { io: new DgramIo(), fallbackReason: loaded.error };
}

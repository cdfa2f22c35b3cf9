// The native I/O path (udp_batch.c): one JavaScript call per batch of up to
// 64 datagrams, received with recvmmsg into memory shared with us, and one
// sendmmsg for the batch's forwards and replies. Forwards go out of the
// receive slot itself: no copy, no Buffer, no rinfo, no send callback.
//
// The bundle carries the compiled module (scripts/build.mjs embeds it). To
// load it, it is written to a private directory (0700, exclusive create),
// checked against the SHA-256 built in, loaded, and removed again. Any
// failure is a reason string: the relay logs it and uses dgram.

import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import * as net from 'node:net';
import * as os from 'node:os';
import { join } from 'node:path';
import { ipKeyOf } from '../wire/address';
import type { DatagramIo, DatagramSink } from './datagram-io';

/** What udp_batch.c exports. */
export interface NativeBinding {
  open(ip: number, port: number, recvBufferBytes: number, sendBufferBytes: number): [unknown, number, number, number];
  start(handle: unknown, rx: ArrayBuffer, rxMeta: ArrayBuffer, txMeta: ArrayBuffer, tx: ArrayBuffer, onBatch: (count: number) => void): void;
  send(handle: unknown, count: number): number;
  stats(handle: unknown): number[];
  close(handle: unknown): void;
  readonly batch: number;
  readonly slotBytes: number;
  readonly scratchBytes: number;
  /** The shared memory's layout, as udp_batch.c names it (EXPECTED_LAYOUT must match). */
  readonly layout?: unknown;
}

/**
 * The layout this file reads and writes (the hot path uses the numbers as
 * constants). A module that reports another one is refused at load, so a
 * change on one side alone fails loudly instead of corrupting datagrams.
 */
export const EXPECTED_LAYOUT = Object.freeze({
  rx: { length: 0, address: 1, port: 2, flags: 3 },
  tx: { where: 0, length: 1, address: 2, port: 3 },
  metaInts: 4,
  regionShift: 24,
  regionScratch: 1,
  stats: ['recvErrors', 'sendErrors', 'truncated', 'queued', 'queueDrops', 'eagain', 'batches'],
});

/** Why the module's layout is not the one this file was written for, or undefined when it is. */
export function layoutMismatch(layout: unknown): string | undefined {
  return JSON.stringify(layout) === JSON.stringify(EXPECTED_LAYOUT)
    ? undefined
    : `the module's shared-memory layout differs from native-io.ts's: ${JSON.stringify(layout)}`;
}

/** The compiled module and what it must hash to. */
export interface NativeModuleSource {
  bytes: Buffer;
  sha256: string;
  /** `${platform}-${arch}` it was built for. */
  target: string;
}

/** Set by scripts/build.mjs: every module it could build (linux-x64, linux-arm64 with the cross compiler). */
declare const QUIC_RELAY_NATIVE: ReadonlyArray<{ b64: string; sha256: string; target: string }> | undefined;

/**
 * The module built into the bundle for this machine; else the first one
 * built (loadNative then says why it does not fit); undefined when the build
 * had no C compiler, or when running from source.
 */
export function embeddedNativeModule(): NativeModuleSource | undefined {
  if (typeof QUIC_RELAY_NATIVE !== 'object' || QUIC_RELAY_NATIVE.length === 0) return undefined;
  const here = `${os.platform()}-${os.arch()}`;
  const m = QUIC_RELAY_NATIVE.find((x) => x.target === here) ?? QUIC_RELAY_NATIVE[0]!;
  return { bytes: Buffer.from(m.b64, 'base64'), sha256: m.sha256, target: m.target };
}

export type NativeLoad = { binding: NativeBinding } | { error: string };

/** Loads `source`; never throws: a failure comes back as the reason. */
export function loadNative(source: NativeModuleSource | undefined): NativeLoad {
  if (source === undefined) return { error: 'this build carries no native module' };
  const here = `${os.platform()}-${os.arch()}`;
  if (source.target !== here) return { error: `the native module is built for ${source.target}, this is ${here}` };
  let dir: string | undefined;
  try {
    dir = mkdtempSync(join(os.tmpdir(), 'quic-relay-')); // 0700
    const file = join(dir, 'udp_batch.node');
    writeFileSync(file, source.bytes, { flag: 'wx', mode: 0o700 });
    // What is loaded is what was written: check the file, not the bytes in memory.
    const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
    if (sha256 !== source.sha256) return { error: `native module checksum mismatch (${sha256.slice(0, 12)}...)` };
    const binding = createRequire(__filename)(file) as NativeBinding;
    if (typeof binding.open !== 'function' || binding.batch <= 0) return { error: 'the native module does not export what it should' };
    const mismatch = layoutMismatch(binding.layout);
    if (mismatch !== undefined) return { error: mismatch };
    return { binding };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { error: `${e.code ? `${e.code}: ` : ''}${e.message.split('\n')[0]}` };
  } finally {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}

const META = EXPECTED_LAYOUT.metaInts; // int32s per entry
const REGION_SCRATCH = EXPECTED_LAYOUT.regionScratch << EXPECTED_LAYOUT.regionShift;
/** stats() indices, by the module's names. */
const STAT = {
  recvErrors: EXPECTED_LAYOUT.stats.indexOf('recvErrors'),
  sendErrors: EXPECTED_LAYOUT.stats.indexOf('sendErrors'),
  queued: EXPECTED_LAYOUT.stats.indexOf('queued'),
  queueDrops: EXPECTED_LAYOUT.stats.indexOf('queueDrops'),
};
const ADDRESS_CACHE_MAX = 65_536;

export class NativeIo implements DatagramIo {
  readonly kind = 'native';
  recvBufferBytes = 0;
  sendBufferBytes = 0;
  private handle: unknown;
  private sink: DatagramSink | undefined;
  private slots: Buffer[] = [];
  private rxMeta = new Int32Array(0);
  private txMeta = new Int32Array(0);
  private scratch = Buffer.alloc(0);
  private pending = 0;
  private inBatch = false;
  private closed = false;
  /** Source addresses as the strings the session table keys by: built once per IP, not per datagram. */
  private readonly addressCache = new Map<number, string>();
  /** Sends refused before they reached the module (too big for a scratch slot). */
  private refused = 0;

  constructor(private readonly b: NativeBinding) {}

  async bind(host: string, port: number, family: 4 | 6, recvBufferBytes: number, sendBufferBytes: number): Promise<AddressInfo> {
    if (family !== 4 || !net.isIPv4(host)) throw Object.assign(new Error('native I/O is IPv4-only'), { code: 'EAFNOSUPPORT' });
    const ip = (ipKeyOf(host) as number) >>> 0;
    const [handle, boundPort, rcv, snd] = this.b.open(ip, port, recvBufferBytes, sendBufferBytes);
    this.handle = handle;
    this.recvBufferBytes = rcv;
    this.sendBufferBytes = snd;
    return { address: host, family: 'IPv4', port: boundPort };
  }

  start(sink: DatagramSink, _onError: (err: Error) => void): void {
    const { batch, slotBytes, scratchBytes } = this.b;
    const rx = new ArrayBuffer(batch * slotBytes);
    const tx = new ArrayBuffer(batch * scratchBytes);
    this.rxMeta = new Int32Array(batch * META);
    this.txMeta = new Int32Array(batch * META);
    this.slots = Array.from({ length: batch }, (_, i) => Buffer.from(rx, i * slotBytes, slotBytes));
    this.scratch = Buffer.from(tx);
    this.sink = sink;
    this.b.start(this.handle, rx, this.rxMeta.buffer as ArrayBuffer, this.txMeta.buffer as ArrayBuffer, tx, this.onBatch);
  }

  private readonly onBatch = (count: number): void => {
    const meta = this.rxMeta;
    const sink = this.sink!;
    this.inBatch = true;
    try {
      for (let i = 0; i < count && !this.closed; i++) {
        const m = i * META;
        if (meta[m + 3] !== 0) continue; // truncated: cannot happen below 64 KiB, counted by the module
        const ip = meta[m + 1]!; // as ipKeyOf gives it: the address as a signed 32-bit integer
        sink(this.slots[i]!, meta[m]!, this.addressOf(ip >>> 0), ip, meta[m + 2]!, i);
      }
    } finally {
      this.inBatch = false;
      this.flush();
    }
  };

  private addressOf(ip: number): string {
    let a = this.addressCache.get(ip);
    if (a === undefined) {
      if (this.addressCache.size >= ADDRESS_CACHE_MAX) this.addressCache.clear(); // bounded, whatever the sources
      a = `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
      this.addressCache.set(ip, a);
    }
    return a;
  }

  forward(data: Buffer, length: number, slot: number, port: number, address: string): void {
    if (slot < 0) {
      this.send(data.subarray(0, length), port, address);
      return;
    }
    const m = this.pending * META;
    const t = this.txMeta;
    t[m] = slot;
    t[m + 1] = length;
    t[m + 2] = ipKeyOf(address) as number;
    t[m + 3] = port;
    if (++this.pending === this.b.batch) this.flush();
  }

  send(data: Buffer, port: number, address: string): void {
    if (this.closed) return;
    const k = this.pending;
    const ip = ipKeyOf(address);
    if (data.length > this.b.scratchBytes || typeof ip !== 'number') {
      this.refused++;
      return;
    }
    this.scratch.set(data, k * this.b.scratchBytes);
    const m = k * META;
    const t = this.txMeta;
    t[m] = REGION_SCRATCH | k;
    t[m + 1] = data.length;
    t[m + 2] = ip;
    t[m + 3] = port;
    this.pending++;
    if (!this.inBatch || this.pending === this.b.batch) this.flush();
  }

  private flush(): void {
    if (this.pending === 0 || this.closed) return;
    const n = this.pending;
    this.pending = 0;
    try {
      this.b.send(this.handle, n);
    } catch {
      this.refused += n; // SPEC 1.6: a send never throws out of the I/O layer
    }
  }

  /** The module's counters: [recvErrors, sendErrors, truncated, queued, queueDrops, eagain, batches, queueLength]. */
  stats(): number[] {
    return this.closed ? [] : this.b.stats(this.handle);
  }

  get sendErrors(): number {
    const s = this.stats();
    return this.refused + (s[STAT.sendErrors] ?? 0) + (s[STAT.queueDrops] ?? 0);
  }

  get receiveErrors(): number {
    return this.stats()[STAT.recvErrors] ?? 0;
  }

  get sendsQueued(): number {
    return this.stats()[STAT.queued] ?? 0;
  }

  async close(): Promise<void> {
    if (this.closed || this.handle === undefined) return;
    this.closed = true;
    this.b.close(this.handle);
    // libuv lets go of the poll handle on the next loop turn.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

// SPEC 5.3: our end of a session's control datagrams: who we are (a random
// sender id), the session key that signs them, fresh nonces, and the replay
// window that takes each of the peer's nonces once. Pure but for the random
// source it is given.

import { decodeControl, encodeControl, NONCE_BYTES, SENDER_BYTES } from './control';
import type { Candidate, ControlMessage } from './control';
import { NonceWindow } from './path-parts';

const REPLAY_WINDOW = 64;

export class ControlChannel {
  /** Our sender id: a datagram that carries it was reflected back to us. */
  readonly id: string;
  private readonly nonces = new NonceWindow(REPLAY_WINDOW);

  constructor(
    private readonly key: Buffer,
    private readonly random: (bytes: number) => Buffer,
  ) {
    this.id = random(SENDER_BYTES).toString('hex');
  }

  /** The peer's message in `datagram`; 'invalid' when it is not one of this session's, 'ignored' when ours reflected or a replay. */
  open(datagram: Buffer): ControlMessage | 'invalid' | 'ignored' {
    const msg = decodeControl(this.key, datagram);
    if (msg === undefined) return 'invalid';
    // An answer reuses its probe's nonce: only probes and candidates are replay-checked.
    if (msg.sender === this.id || (msg.type !== 'answer' && this.nonces.replayed(msg.nonce))) return 'ignored';
    return msg;
  }

  nonce(): string {
    return this.random(NONCE_BYTES).toString('hex');
  }

  candidates(haveYours: boolean, candidates: readonly Candidate[]): Buffer {
    return encodeControl(this.key, { type: 'candidates', sender: this.id, nonce: this.nonce(), haveYours, candidates });
  }

  /** A probe (nonce: ours, remembered by the caller) or the answer to one (nonce: the probe's). */
  probe(type: 'probe' | 'answer', nonce: string, confirmed: boolean, dataSeen: boolean | undefined): Buffer {
    return encodeControl(this.key, { type, sender: this.id, nonce, confirmed, dataSeen });
  }
}

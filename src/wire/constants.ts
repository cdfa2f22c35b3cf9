// Defaults and limits in one place: the CLI help, the library options and the
// README are all built from these (SPEC 1.1, 2.5, 4.1).

/** SPEC 1.1: default UDP port of the relay. */
export const DEFAULT_PORT = 4433;
/** SPEC 1.1: default bind address. `::` binds dual-stack. */
export const DEFAULT_HOST = '0.0.0.0';
/** SPEC 2.5: a session silent this long is removed. */
export const DEFAULT_SESSION_TIMEOUT_SECS = 300;
/** Largest timeout accepted: its milliseconds must fit a 32-bit integer (timer overflow trap). */
export const MAX_SESSION_TIMEOUT_SECS = 2_147_483;
/** SPEC 3.6: a drain ends this long after SIGUSR2 even if sessions remain. */
export const DEFAULT_DRAIN_TIMEOUT_SECS = 300;
/** SPEC 4.3: lifetime of a ticket made by `quic-relay ticket`. */
export const DEFAULT_TICKET_TTL_SECS = 3600;
/** SPEC 3.3: metrics listen on loopback unless told otherwise. */
export const DEFAULT_METRICS_HOST = '127.0.0.1';

/** SPEC 4.1: sessions the whole relay holds (about 60 MB of memory at this count). */
export const DEFAULT_MAX_SESSIONS = 250_000;
/** SPEC 4.1: sessions one source IP may take part in. A thousand from one NAT must fit. */
export const DEFAULT_MAX_SESSIONS_PER_IP = 4_096;
/**
 * SPEC 4.1: registrations per second from one source IP (keepalives are free).
 * High enough that a thousand sessions behind one NAT, both peers included,
 * can register at once; a flood from one address is still cut off.
 */
export const DEFAULT_REGISTRATIONS_PER_SEC_PER_IP = 2_000;
/** Size of the per-IP bucket in seconds of the rate: one, so "N per second" means at most N in any second. */
export const REGISTRATION_BURST_SECS = 1;

/**
 * SPEC 4.5: a session that never paired goes after this long without a
 * registration. A lone peer's keepalives (every 15 s) keep it; a table filled
 * with forged registrations empties in a minute, not in the session timeout.
 */
export const DEFAULT_UNPAIRED_TIMEOUT_SECS = 60;
/**
 * SPEC 4.4: datagrams per second one session may have forwarded, both ways
 * together, with a second's burst: the bound on what a loop nobody foresaw
 * can cost (the loop guard stops the ones we know of). Measured in the lab:
 * QUIC through the sidecars peaks at 15-25k datagrams/s (8 MiB in 0.38-0.48 s,
 * about 7,400 datagrams); ngtcp2 with no sidecar at 756 Mbit/s is about 113k
 * (75k of 1252 bytes one way, an ACK every second one back). Above both.
 */
export const DEFAULT_MAX_SESSION_DATAGRAMS_PER_SEC = 150_000;

/** Socket buffers: a 1200-byte stream at 20k/s fills Linux's 208 KiB default in 10 ms. */
export const DEFAULT_RECV_BUFFER_BYTES = 4 * 1024 * 1024;
export const DEFAULT_SEND_BUFFER_BYTES = 4 * 1024 * 1024;

/** SPEC 1.4: the largest UDP payload over IPv4. */
export const MAX_DATAGRAM = 65_507;
/** SPEC 1.2: session id length bounds, in bytes. */
export const SESSION_ID_MIN = 1;
export const SESSION_ID_MAX = 64;

/** SPEC 2.5: how often the reaper looks; keeps removal well within 1 s of a deadline. */
export const REAP_INTERVAL_MS = 250;
/** SPEC 4.1: repeated refusals are logged at most this often per cause. */
export const REFUSAL_LOG_INTERVAL_MS = 1_000;

/** Client side (SPEC 5.1). */
export const DEFAULT_KEEPALIVE_SECS = 15;
export const REGISTER_BACKOFF_INITIAL_MS = 250;
export const REGISTER_BACKOFF_MAX_MS = 2_000;
export const DEFAULT_REGISTER_TIMEOUT_MS = 30_000;
/** SPEC 5.7: no ACK from a relay for this long moves a client with several relays to the next one. */
export const DEFAULT_FAILOVER_MS = 3_000;
/**
 * SPEC 5.7: a relay that was answering in milliseconds and then left a
 * keepalive unanswered this long is taken for dead. Shorter than the first
 * registration's failover: QUIC's retransmission timer doubles while we wait.
 */
export const DEFAULT_LOST_RELAY_MS = 1_000;
/** SPEC 5.7: registered, and nothing from the partner for this long: also register on the next relay. */
export const DEFAULT_PARTNER_WAIT_MS = 3_000;
/**
 * SPEC 5.6: the sidecar's listen socket serves one QUIC client; another
 * address is served once that one has been silent this long. Shorter than a
 * QUIC client's first Initial retransmission (about 1 s), so a restarted
 * program's connection gets through on its first retry: the lab's second
 * download right after a first one took 7.4 s with 5 s here, 0.5 s with this.
 */
export const DEFAULT_APP_IDLE_MS = 500;

// SPEC 6: the stream (WebSocket) leg.
/** The one path the relay upgrades (SPEC 6.1). */
export const STREAM_PATH = '/quic-relay';
/** The client's WebSocket port when QUIC_RELAY_WS_PORT is not set (SPEC 6.4). */
export const DEFAULT_CLIENT_WS_PORT = 443;
/** SPEC 6.3: the upgrade and the first REG within this long of the TCP connect. */
export const STREAM_HANDSHAKE_TIMEOUT_MS = 10_000;
/** SPEC 6.3: pings this often (iroh's 15 s: half of QUIC's common 30 s idle timeout); none answered by the next one: closed. */
export const DEFAULT_WS_PING_SECS = 15;
/** SPEC 6.3: bytes queued for one connection before datagrams are dropped (about 200 full QUIC datagrams). */
export const DEFAULT_WS_QUEUE_BYTES = 256 * 1024;
/** SPEC 6.3: open WebSocket connections at most (each costs a TCP socket and its buffers). */
export const DEFAULT_WS_MAX_CONNECTIONS = 10_000;
/** SPEC 6.4: no UDP answer from the relay for this long: the client tries the WebSocket leg too. */
export const DEFAULT_WS_FALLBACK_MS = 2_000;

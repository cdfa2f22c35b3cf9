// Batched UDP for the relay (issue: native I/O): recvmmsg into memory that
// JavaScript shares, one JavaScript call per batch, sendmmsg of the batch it
// fills. Node-API for everything JavaScript sees; the socket is watched with
// uv_poll on Node's own loop (four libuv 1.x functions that Node exports to
// addons, declared here because node-api-headers carries no uv.h; their ABI
// is stable across libuv 1.x, so one build serves Node 20 to 26).
//
// Shared memory, set up by JavaScript (native-io.ts) and handed over once:
//   rx data:  BATCH slots of SLOT_BYTES; datagram i starts at i * SLOT_BYTES
//   rx meta:  BATCH x 4 int32: length, IPv4 address, port, flags (1: truncated)  (RX_*)
//   tx meta:  BATCH x 4 int32: (region << 24 | slot index), length, address, port (TX_*)
//             region 0: the rx slot (forward without a copy), 1: a tx scratch slot
//   The same layout is exported to JavaScript as `layout`.
//   tx data:  BATCH scratch slots of SCRATCH_BYTES (replies: ACK, ERR, ADDR;
//             and datagrams from WebSocket peers to UDP ones, SPEC 6.2, up to 65507)
// IPv4 only: addresses are host-order 32-bit numbers.

#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <node_api.h>

// ---- the libuv we use (Node exports it; see above)
typedef struct uv_loop_s uv_loop_t;
typedef struct uv_poll_s uv_poll_t;
typedef struct uv_handle_s uv_handle_t;
typedef void (*uv_poll_cb)(uv_poll_t *handle, int status, int events);
typedef void (*uv_close_cb)(uv_handle_t *handle);
extern int uv_poll_init(uv_loop_t *loop, uv_poll_t *handle, int fd);
extern int uv_poll_start(uv_poll_t *handle, int events, uv_poll_cb cb);
extern int uv_poll_stop(uv_poll_t *handle);
extern void uv_close(uv_handle_t *handle, uv_close_cb cb);
extern size_t uv_handle_size(int type);
#define UV_POLL_TYPE 8 // UV_POLL in libuv 1.x's uv_handle_type (stable across 1.x)
#define UV_READABLE 1
#define UV_WRITABLE 2
// uv_poll_t is 160 bytes on 64-bit Linux with libuv 1.x; room to spare. Its
// first field is `void *data`, which we do not use: the poll is the first
// member of our struct, so the handle's address is ours.
#define UV_POLL_ROOM 512

#define BATCH 64
#define SLOT_BYTES 65536
#define SCRATCH_BYTES 65536
#define META_INTS 4
// The shared memory's layout, named once here and exported as `layout`
// (native-io.ts refuses a module whose layout it does not know).
enum { RX_LENGTH, RX_ADDRESS, RX_PORT, RX_FLAGS };     // rx meta entry
enum { TX_WHERE, TX_LENGTH, TX_ADDRESS, TX_PORT };     // tx meta entry
#define REGION_SHIFT 24                                  // TX_WHERE: region << REGION_SHIFT | slot
enum { REGION_RX, REGION_SCRATCH };
#define BATCHES_PER_WAKE 16     // then back to the loop, so timers and HTTP get their turn
#define QUEUE_MAX 4096          // datagrams held while the socket cannot send
#define QUEUE_MAX_BYTES (8 << 20)

enum { S_RECV_ERRORS, S_SEND_ERRORS, S_TRUNCATED, S_QUEUED, S_QUEUE_DROPS, S_EAGAIN, S_BATCHES, S_COUNT };
// stats() returns these, in this order, then the queue's length.
static const char *const STAT_NAMES[S_COUNT] = {"recvErrors", "sendErrors", "truncated", "queued", "queueDrops", "eagain", "batches"};

typedef struct queued {
  struct queued *next;
  uint32_t addr;
  uint16_t port;
  uint32_t len;
  unsigned char data[];
} queued_t;

typedef struct {
  _Alignas(16) unsigned char poll[UV_POLL_ROOM];
  napi_env env;
  int fd;
  int polling_events;
  int closed;
  int in_callback;
  napi_ref callback;
  napi_ref buffers[4];
  napi_async_context async;
  unsigned char *rx;
  int32_t *rx_meta;
  int32_t *tx_meta;
  unsigned char *tx;
  struct mmsghdr rx_msgs[BATCH];
  struct iovec rx_iov[BATCH];
  struct sockaddr_in rx_from[BATCH];
  struct mmsghdr tx_msgs[BATCH];
  struct iovec tx_iov[BATCH];
  struct sockaddr_in tx_to[BATCH];
  queued_t *queue_head, *queue_tail;
  uint32_t queue_len, queue_bytes;
  double stats[S_COUNT];
} relay_socket_t;

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, "QR_ERR_NATIVE", "Node-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

/** Throws an Error whose code is the errno's name, as node:dgram's are (EADDRINUSE, ...). */
static napi_value throw_errno(napi_env env, const char *what, int err) {
  const char *code = err == EADDRINUSE ? "EADDRINUSE" : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL" : err == EACCES ? "EACCES"
                   : err == EPERM ? "EPERM" : err == EINVAL ? "EINVAL" : err == ENOMEM ? "ENOMEM" : err == EMFILE ? "EMFILE" : "QR_ERR_NATIVE";
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, code, msg);
  return NULL;
}

// Like CHECK, but first runs `undo` (an error path frees what it made).
#define CHECK_OR(call, undo)                                               \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      undo;                                                                \
      napi_throw_error(env, "QR_ERR_NATIVE", "Node-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static void release(napi_env env, relay_socket_t *s);

static relay_socket_t *unwrap(napi_env env, napi_value v) {
  relay_socket_t *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || s == NULL) {
    napi_throw_type_error(env, "QR_ERR_NATIVE", "not a socket handle");
    return NULL;
  }
  return s;
}

static void set_poll(relay_socket_t *s, int events);

// ---- sending

/** Copies what could not be sent, within bounds; counts the rest as dropped. */
static void enqueue(relay_socket_t *s, const unsigned char *data, uint32_t len, uint32_t addr, uint16_t port) {
  if (s->queue_len >= QUEUE_MAX || s->queue_bytes + len > QUEUE_MAX_BYTES) {
    s->stats[S_QUEUE_DROPS]++;
    return;
  }
  queued_t *q = malloc(sizeof(queued_t) + len);
  if (q == NULL) {
    s->stats[S_QUEUE_DROPS]++;
    return;
  }
  q->next = NULL;
  q->addr = addr;
  q->port = port;
  q->len = len;
  memcpy(q->data, data, len);
  if (s->queue_tail) s->queue_tail->next = q;
  else s->queue_head = q;
  s->queue_tail = q;
  s->queue_len++;
  s->queue_bytes += len;
  s->stats[S_QUEUED]++;
}

/**
 * sendmmsg over prepared headers [0, n). Returns how many went out before an
 * EAGAIN (n if none). A datagram the kernel refuses for another reason (an
 * ICMP error reported late, a bad address) is counted and skipped.
 */
static unsigned send_prepared(relay_socket_t *s, unsigned n) {
  unsigned done = 0;
  while (done < n) {
    int r = sendmmsg(s->fd, s->tx_msgs + done, n - done, MSG_DONTWAIT);
    if (r > 0) {
      done += (unsigned)r;
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      s->stats[S_EAGAIN]++;
      return done;
    }
    if (r < 0 && errno == EINTR) continue;
    s->stats[S_SEND_ERRORS]++;
    done++; // skip the one that failed
  }
  return n;
}

static void prepare(relay_socket_t *s, unsigned i, unsigned char *data, uint32_t len, uint32_t addr, uint16_t port) {
  struct sockaddr_in *to = &s->tx_to[i];
  memset(to, 0, sizeof *to);
  to->sin_family = AF_INET;
  to->sin_port = htons(port);
  to->sin_addr.s_addr = htonl(addr);
  s->tx_iov[i].iov_base = data;
  s->tx_iov[i].iov_len = len;
  struct msghdr *h = &s->tx_msgs[i].msg_hdr;
  memset(h, 0, sizeof *h);
  h->msg_name = to;
  h->msg_namelen = sizeof *to;
  h->msg_iov = &s->tx_iov[i];
  h->msg_iovlen = 1;
}

/** Sends what waited for writability, oldest first; true when the queue is empty. */
static int flush_queue(relay_socket_t *s) {
  while (s->queue_head != NULL) {
    unsigned n = 0;
    queued_t *q = s->queue_head;
    for (; q != NULL && n < BATCH; q = q->next, n++) prepare(s, n, q->data, q->len, q->addr, q->port);
    unsigned sent = send_prepared(s, n);
    for (unsigned i = 0; i < sent; i++) {
      queued_t *head = s->queue_head;
      s->queue_head = head->next;
      s->queue_len--;
      s->queue_bytes -= head->len;
      free(head);
    }
    if (s->queue_head == NULL) s->queue_tail = NULL;
    if (sent < n) return 0;
  }
  return 1;
}

// send(handle, count): the first `count` tx entries. Returns how many were sent
// at once; the rest are queued (bounded) until the socket can take them.
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  relay_socket_t *s = unwrap(env, argv[0]);
  if (s == NULL) return NULL;
  uint32_t count = 0;
  CHECK(napi_get_value_uint32(env, argv[1], &count));
  napi_value result;
  if (s->closed || s->rx == NULL || count == 0) {
    CHECK(napi_create_uint32(env, 0, &result));
    return result;
  }
  if (count > BATCH) count = BATCH;
  unsigned n = 0;
  for (unsigned i = 0; i < count; i++) {
    const int32_t *m = s->tx_meta + i * META_INTS;
    uint32_t where = (uint32_t)m[TX_WHERE], len = (uint32_t)m[TX_LENGTH];
    uint32_t region = where >> REGION_SHIFT, slot = where & ((1u << REGION_SHIFT) - 1);
    unsigned char *data;
    if (slot >= BATCH) { s->stats[S_SEND_ERRORS]++; continue; }
    if (region == REGION_RX && len <= SLOT_BYTES) data = s->rx + (size_t)slot * SLOT_BYTES;
    else if (region == REGION_SCRATCH && len <= SCRATCH_BYTES) data = s->tx + (size_t)slot * SCRATCH_BYTES;
    else { s->stats[S_SEND_ERRORS]++; continue; }
    prepare(s, n++, data, len, (uint32_t)m[TX_ADDRESS], (uint16_t)m[TX_PORT]);
  }
  unsigned sent = 0;
  if (s->queue_head == NULL) sent = send_prepared(s, n); // keep order: behind anything queued
  if (sent < n) {
    for (unsigned i = sent; i < n; i++) {
      struct sockaddr_in *to = &s->tx_to[i];
      enqueue(s, s->tx_iov[i].iov_base, (uint32_t)s->tx_iov[i].iov_len, ntohl(to->sin_addr.s_addr), ntohs(to->sin_port));
    }
    set_poll(s, UV_READABLE | UV_WRITABLE);
  }
  CHECK(napi_create_uint32(env, sent, &result));
  return result;
}

// ---- receiving

static void call_js(relay_socket_t *s, unsigned n) {
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[1], out;
  if (napi_get_reference_value(env, s->callback, &cb) == napi_ok && cb != NULL &&
      napi_get_global(env, &recv) == napi_ok && napi_create_uint32(env, n, &argv[0]) == napi_ok) {
    s->in_callback = 1;
    // make_callback, not call_function: process.nextTick and promise jobs run after it, as for any I/O callback
    napi_status st = napi_make_callback(env, s->async, recv, cb, 1, argv, &out);
    s->in_callback = 0;
    if (st == napi_pending_exception) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  relay_socket_t *s = (relay_socket_t *)(void *)handle;
  if (s->closed) return;
  if (status < 0) {
    // libuv stops a poll handle that reports an error: count it and watch the
    // socket again, or the relay would go deaf without a word.
    s->stats[S_RECV_ERRORS]++;
    s->polling_events = 0;
    set_poll(s, s->queue_head != NULL ? (UV_READABLE | UV_WRITABLE) : UV_READABLE);
    return;
  }
  if ((events & UV_WRITABLE) && flush_queue(s)) set_poll(s, UV_READABLE);
  if (!(events & UV_READABLE)) return;
  for (int round = 0; round < BATCHES_PER_WAKE && !s->closed; round++) {
    for (unsigned i = 0; i < BATCH; i++) {
      s->rx_msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
      s->rx_msgs[i].msg_hdr.msg_flags = 0;
    }
    int r = recvmmsg(s->fd, s->rx_msgs, BATCH, MSG_DONTWAIT, NULL);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR) continue;
      s->stats[S_RECV_ERRORS]++; // an ICMP error queued on the socket: counted, and the socket carries on
      continue;
    }
    if (r == 0) return;
    for (int i = 0; i < r; i++) {
      int32_t *m = s->rx_meta + i * META_INTS;
      int truncated = (s->rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
      if (truncated) s->stats[S_TRUNCATED]++;
      m[RX_LENGTH] = (int32_t)s->rx_msgs[i].msg_len;
      m[RX_ADDRESS] = (int32_t)ntohl(s->rx_from[i].sin_addr.s_addr);
      m[RX_PORT] = ntohs(s->rx_from[i].sin_port);
      m[RX_FLAGS] = truncated;
    }
    s->stats[S_BATCHES]++;
    call_js(s, (unsigned)r);
    if (r < BATCH) return; // the queue is empty: wait for the next wake
  }
}

static void set_poll(relay_socket_t *s, int events) {
  if (s->closed || s->polling_events == events) return;
  if (uv_poll_start((uv_poll_t *)(void *)s->poll, events, on_poll) == 0) s->polling_events = events;
}

// ---- lifecycle

// open(ipv4 as uint32, port, recvBufferBytes, sendBufferBytes) -> [handle, boundPort, recvBuffer, sendBuffer]
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t addr = 0, port = 0, rcv = 0, snd = 0;
  CHECK(napi_get_value_uint32(env, argv[0], &addr));
  CHECK(napi_get_value_uint32(env, argv[1], &port));
  CHECK(napi_get_value_uint32(env, argv[2], &rcv));
  CHECK(napi_get_value_uint32(env, argv[3], &snd));
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (rcv > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  if (snd > 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(addr);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "bind", e);
  }
  socklen_t alen = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &alen);
  int got_rcv = 0, got_snd = 0;
  socklen_t olen = sizeof got_rcv;
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got_rcv, &olen);
  olen = sizeof got_snd;
  getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got_snd, &olen);

  relay_socket_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    close(fd);
    return throw_errno(env, "calloc", ENOMEM);
  }
  s->env = env;
  s->fd = fd;
  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, (uv_poll_t *)(void *)s->poll, fd) != 0) {
    close(fd);
    free(s);
    napi_throw_error(env, "QR_ERR_NATIVE", "cannot watch the socket on the event loop");
    return NULL;
  }
  napi_value handle, out, v;
  // From here a failure hands the socket back to the loop to close and free (release()).
  CHECK_OR(napi_create_external(env, s, NULL, NULL, &handle), release(env, s)); // freed by close(), not by GC: the loop holds it
  CHECK_OR(napi_create_array_with_length(env, 4, &out), release(env, s));
  CHECK_OR(napi_set_element(env, out, 0, handle), release(env, s));
  CHECK_OR(napi_create_uint32(env, ntohs(a.sin_port), &v), release(env, s));
  CHECK_OR(napi_set_element(env, out, 1, v), release(env, s));
  CHECK_OR(napi_create_int32(env, got_rcv, &v), release(env, s));
  CHECK_OR(napi_set_element(env, out, 2, v), release(env, s));
  CHECK_OR(napi_create_int32(env, got_snd, &v), release(env, s));
  CHECK_OR(napi_set_element(env, out, 3, v), release(env, s));
  return out;
}

static int arraybuffer(napi_env env, napi_value v, size_t want, void **data) {
  size_t len = 0;
  bool is_ab = false;
  if (napi_is_arraybuffer(env, v, &is_ab) != napi_ok || !is_ab) return 0;
  if (napi_get_arraybuffer_info(env, v, data, &len) != napi_ok) return 0;
  return len >= want;
}

/** Drops what start() made: its references and async context (each 0 until made). */
static void unstart(napi_env env, relay_socket_t *s) {
  if (s->callback) napi_delete_reference(env, s->callback);
  s->callback = NULL;
  for (int i = 0; i < 4; i++) {
    if (s->buffers[i]) napi_delete_reference(env, s->buffers[i]);
    s->buffers[i] = NULL;
  }
  if (s->async) napi_async_destroy(env, s->async);
  s->async = NULL;
}

// start(handle, rx, rxMeta, txMeta, tx, onBatch(count)): the shared memory, once, and the batch callback.
static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  relay_socket_t *s = unwrap(env, argv[0]);
  if (s == NULL) return NULL;
  if (s->rx != NULL || s->closed) {
    napi_throw_error(env, "QR_ERR_NATIVE", "already started or closed");
    return NULL;
  }
  void *rx, *rx_meta, *tx_meta, *tx;
  if (!arraybuffer(env, argv[1], (size_t)BATCH * SLOT_BYTES, &rx) || !arraybuffer(env, argv[2], BATCH * META_INTS * 4, &rx_meta) ||
      !arraybuffer(env, argv[3], BATCH * META_INTS * 4, &tx_meta) || !arraybuffer(env, argv[4], BATCH * SCRATCH_BYTES, &tx)) {
    napi_throw_range_error(env, "QR_ERR_NATIVE", "shared buffers missing or too small");
    return NULL;
  }
  // A failure part way leaves nothing behind: the references made so far are dropped (unstart()).
  for (int i = 0; i < 4; i++) CHECK_OR(napi_create_reference(env, argv[1 + i], 1, &s->buffers[i]), unstart(env, s));
  CHECK_OR(napi_create_reference(env, argv[5], 1, &s->callback), unstart(env, s));
  napi_value name;
  CHECK_OR(napi_create_string_utf8(env, "quic-relay:udp", NAPI_AUTO_LENGTH, &name), unstart(env, s));
  CHECK_OR(napi_async_init(env, NULL, name, &s->async), unstart(env, s));
  s->rx = rx;
  s->rx_meta = rx_meta;
  s->tx_meta = tx_meta;
  s->tx = tx;
  for (unsigned i = 0; i < BATCH; i++) {
    s->rx_iov[i].iov_base = s->rx + (size_t)i * SLOT_BYTES;
    s->rx_iov[i].iov_len = SLOT_BYTES;
    struct msghdr *h = &s->rx_msgs[i].msg_hdr;
    h->msg_name = &s->rx_from[i];
    h->msg_namelen = sizeof s->rx_from[i];
    h->msg_iov = &s->rx_iov[i];
    h->msg_iovlen = 1;
  }
  set_poll(s, UV_READABLE);
  return NULL;
}

// stats(handle) -> [recvErrors, sendErrors, truncated, queued, queueDrops, eagain, batches, queueLength]
static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  relay_socket_t *s = unwrap(env, argv[0]);
  if (s == NULL) return NULL;
  CHECK(napi_create_array_with_length(env, S_COUNT + 1, &out));
  for (int i = 0; i < S_COUNT; i++) {
    CHECK(napi_create_double(env, s->stats[i], &v));
    CHECK(napi_set_element(env, out, (uint32_t)i, v));
  }
  CHECK(napi_create_double(env, s->queue_len, &v));
  CHECK(napi_set_element(env, out, S_COUNT, v));
  return out;
}

static void on_closed(uv_handle_t *handle) {
  relay_socket_t *s = (relay_socket_t *)(void *)handle;
  while (s->queue_head != NULL) {
    queued_t *q = s->queue_head;
    s->queue_head = q->next;
    free(q);
  }
  free(s);
}

// close(handle): stops watching, closes the socket, frees everything (after
// the loop lets go of the poll). Safe twice, and from inside a batch callback.
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  relay_socket_t *s = unwrap(env, argv[0]);
  if (s == NULL || s->closed) return NULL;
  release(env, s);
  return NULL;
}

/** Stops watching, closes the socket, drops start()'s references; the loop frees the rest (on_closed). */
static void release(napi_env env, relay_socket_t *s) {
  s->closed = 1;
  uv_poll_stop((uv_poll_t *)(void *)s->poll);
  close(s->fd);
  unstart(env, s);
  s->rx = NULL;
  uv_close((uv_handle_t *)(void *)s->poll, on_closed);
}

/* obj[name] = value, a uint32 (what the module exports about its layout). */
static void set_u32(napi_env env, napi_value obj, const char *name, uint32_t value) {
  napi_value v;
  napi_create_uint32(env, value, &v);
  napi_set_named_property(env, obj, name, v);
}

static napi_value init(napi_env env, napi_value exports) {
  // The poll handle lives in room we reserved by hand (no uv.h here): ask the
  // running libuv how big it really is, and refuse to load (the relay then
  // says why and uses dgram) rather than write past the room.
  size_t poll_size = uv_handle_size(UV_POLL_TYPE);
  if (poll_size == 0 || poll_size > UV_POLL_ROOM) {
    napi_throw_error(env, "QR_ERR_NATIVE", "this libuv's poll handle does not fit the room the module reserves");
    return NULL;
  }
  napi_property_descriptor props[] = {
    {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
    {"start", NULL, js_start, NULL, NULL, NULL, napi_enumerable, NULL},
    {"send", NULL, js_send, NULL, NULL, NULL, napi_enumerable, NULL},
    {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
    {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_value v;
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  set_u32(env, exports, "batch", BATCH);
  set_u32(env, exports, "slotBytes", SLOT_BYTES);
  set_u32(env, exports, "scratchBytes", SCRATCH_BYTES);
  // layout: { metaInts, regionShift, regionScratch, rx: {length, address, port, flags}, tx: {where, length, address, port}, stats: [names] }
  napi_value layout, rx, tx, names;
  napi_create_object(env, &layout);
  napi_create_object(env, &rx);
  napi_create_object(env, &tx);
  const char *rx_names[] = {"length", "address", "port", "flags"};
  const char *tx_names[] = {"where", "length", "address", "port"};
  for (uint32_t i = 0; i < META_INTS; i++) {
    set_u32(env, rx, rx_names[i], i);
    set_u32(env, tx, tx_names[i], i);
  }
  napi_set_named_property(env, layout, "rx", rx);
  napi_set_named_property(env, layout, "tx", tx);
  set_u32(env, layout, "metaInts", META_INTS);
  set_u32(env, layout, "regionShift", REGION_SHIFT);
  set_u32(env, layout, "regionScratch", REGION_SCRATCH);
  napi_create_array_with_length(env, S_COUNT, &names);
  for (uint32_t i = 0; i < S_COUNT; i++) {
    napi_create_string_utf8(env, STAT_NAMES[i], NAPI_AUTO_LENGTH, &v);
    napi_set_element(env, names, i, v);
  }
  napi_set_named_property(env, layout, "stats", names);
  napi_set_named_property(env, exports, "layout", layout);
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }

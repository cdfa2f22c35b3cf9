/*
 * quic-relay's load generator: drives a relay over loopback and prints one
 * line `RESULT {json}`. Built by scripts/bench.mjs with plain `cc`; Linux only.
 *
 *   loadgen rate    --relay IP:PORT --sessions N --size B --pps R --secs S
 *       registers N sessions (peer a on 127.10.x.y, peer b on 127.20.x.y, fresh
 *       per run, one socket each), sends R datagrams/s from the a sides round robin for S
 *       seconds, and counts what reaches the b sides: loss, and one-way
 *       latency from a CLOCK_MONOTONIC stamp in each payload.
 *   loadgen regrate --relay IP:PORT --ids FILE --secs S [--sockets K]
 *       K sockets on 127.30.x.y each register one fresh id after another
 *       (closed loop, 16 in flight per socket); answers per second.
 *   loadgen soak    --relay IP:PORT --total N --addresses A --pps R [--cycler-pps C]
 *       (root: a raw socket sends from many loopback addresses) N
 *       registrations from A addresses, pairs of addresses moving together
 *       from one fresh session to the next, plus one address cycling fresh
 *       ids at C/s; prints `progress <n>` every 100000.
 *   loadgen fill    --relay IP:PORT --sessions N [--pps R]
 *       (root) registers N paired sessions from 2N distinct addresses.
 *
 * A sender and a receiver thread share the work, so one core drives a Node
 * relay well past its limit (see the README's performance section).
 */
#define _GNU_SOURCE
#define SEND_BATCH 16
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in relay;
static int sessions = 1, size = 64, secs = 2, sockets_n = 64;
static long pps = 10000, total = 1000000, addresses = 1000, cycler_pps = 2000;
static const char *ids_file;

static void die(const char *what) { perror(what); exit(2); }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void parse_relay(const char *s) {
  char host[64];
  const char *colon = strrchr(s, ':');
  if (!colon || colon - s >= (long)sizeof host) { fprintf(stderr, "--relay IP:PORT\n"); exit(2); }
  memcpy(host, s, colon - s);
  host[colon - s] = 0;
  relay.sin_family = AF_INET;
  relay.sin_port = htons((uint16_t)atoi(colon + 1));
  if (inet_pton(AF_INET, host, &relay.sin_addr) != 1) { fprintf(stderr, "--relay: IPv4 only\n"); exit(2); }
}

static int udp_socket(const char *ip, int nonblock) {
  int fd = socket(AF_INET, SOCK_DGRAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) die("socket");
  int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  struct sockaddr_in a = { .sin_family = AF_INET };
  inet_pton(AF_INET, ip, &a.sin_addr);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  return fd;
}

/* REG:<id>\n until ACK\n, retrying every 100 ms for 5 s. */
static int register_fd(int fd, const char *id) {
  char msg[128], reply[64];
  int len = snprintf(msg, sizeof msg, "REG:%s\n", id);
  for (int attempt = 0; attempt < 50; attempt++) {
    sendto(fd, msg, len, 0, (struct sockaddr *)&relay, sizeof relay);
    uint64_t until = now_ns() + 100000000u;
    while (now_ns() < until) {
      ssize_t n = recv(fd, reply, sizeof reply, MSG_DONTWAIT);
      if (n == 4 && memcmp(reply, "ACK\n", 4) == 0) return 0;
      if (n < 0) usleep(200);
    }
  }
  return -1;
}

/* ---- rate: loss and latency at a fixed rate */

static int *fd_a, *fd_b;
static volatile int sending_done;
static long received_count;
static uint32_t *latencies; /* microseconds */
static long latency_cap, latency_n;

static void *receiver(void *arg) {
  (void)arg;
  int ep = epoll_create1(0);
  for (int i = 0; i < sessions; i++) {
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd_b[i] };
    epoll_ctl(ep, EPOLL_CTL_ADD, fd_b[i], &ev);
  }
  enum { BATCH = 64 };
  static char bufs[BATCH][2048];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  for (int i = 0; i < BATCH; i++) {
    iov[i] = (struct iovec){ bufs[i], sizeof bufs[i] };
    msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
  }
  struct epoll_event evs[256];
  uint64_t quiet_until = 0;
  for (;;) {
    int n = epoll_wait(ep, evs, 256, 20);
    uint64_t t = now_ns();
    if (n <= 0) {
      if (sending_done) {
        if (quiet_until == 0) quiet_until = t + 300000000u; /* stragglers: 300 ms */
        else if (t > quiet_until) break;
      }
      continue;
    }
    for (int e = 0; e < n; e++) {
      int got;
      while ((got = recvmmsg(evs[e].data.fd, msgs, BATCH, MSG_DONTWAIT, NULL)) > 0) {
        t = now_ns();
        for (int i = 0; i < got; i++) {
          received_count++;
          if (msgs[i].msg_len >= 8 && latency_n < latency_cap) {
            uint64_t stamp;
            memcpy(&stamp, bufs[i], 8);
            latencies[latency_n++] = (uint32_t)((t - stamp) / 1000);
          }
        }
      }
    }
    if (sending_done && quiet_until && t > quiet_until) break;
  }
  close(ep);
  return NULL;
}

static int cmp_u32(const void *x, const void *y) {
  uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
  return a < b ? -1 : a > b;
}

static double pct(double q) {
  if (latency_n == 0) return -1;
  long i = (long)(q * latency_n);
  if (i >= latency_n) i = latency_n - 1;
  return latencies[i];
}

static int run_rate(void) {
  fd_a = calloc(sessions, sizeof *fd_a);
  fd_b = calloc(sessions, sizeof *fd_b);
  char id[64], ip_a[32], ip_b[32];
  /* fresh addresses per run (from the pid), so runs never meet a relay's
   * per-IP limits with the sessions of earlier runs */
  unsigned p = (unsigned)getpid();
  snprintf(ip_a, sizeof ip_a, "127.10.%u.%u", (p >> 8) & 255, 1 + p % 254);
  snprintf(ip_b, sizeof ip_b, "127.20.%u.%u", (p >> 8) & 255, 1 + p % 254);
  for (int i = 0; i < sessions; i++) {
    fd_a[i] = udp_socket(ip_a, 0);
    fd_b[i] = udp_socket(ip_b, 1);
    snprintf(id, sizeof id, "bench-%d-%d", (int)getpid(), i);
    if (register_fd(fd_a[i], id) || register_fd(fd_b[i], id)) { fprintf(stderr, "registration %d failed\n", i); return 1; }
  }
  latency_cap = pps * secs + 1;
  latencies = malloc(latency_cap * sizeof *latencies);
  pthread_t rx;
  pthread_create(&rx, NULL, receiver, NULL);
  static struct mmsghdr send_msgs[SEND_BATCH];
  static struct iovec send_iov[SEND_BATCH];
  static char *stamps[SEND_BATCH];
  for (int k = 0; k < SEND_BATCH; k++) {
    stamps[k] = calloc(1, size < 8 ? 8 : size);
    send_iov[k].iov_base = stamps[k];
    send_iov[k].iov_len = size;
    send_msgs[k].msg_hdr.msg_name = &relay;
    send_msgs[k].msg_hdr.msg_namelen = sizeof relay;
    send_msgs[k].msg_hdr.msg_iov = &send_iov[k];
    send_msgs[k].msg_hdr.msg_iovlen = 1;
  }
  long sent = 0, send_errors = 0;
  uint64_t start = now_ns(), end = start + (uint64_t)secs * 1000000000u;
  int next = 0;
  for (;;) {
    uint64_t t = now_ns();
    if (t >= end) break;
    long due = (long)((double)(t - start) * pps / 1e9);
    if (sent >= due) {
      struct timespec ts = { 0, 50000 };
      nanosleep(&ts, NULL);
      continue;
    }
    /* sendmmsg, up to SEND_BATCH per session's socket: with one sendto per
     * datagram this generator, not a batching relay, was the limit */
    for (long burst = 0; sent < due && burst < 256;) {
      int n = (int)(due - sent < SEND_BATCH ? due - sent : SEND_BATCH);
      uint64_t stamp = now_ns();
      for (int k = 0; k < n; k++) memcpy(stamps[k], &stamp, 8);
      int r = sendmmsg(fd_a[next], send_msgs, (unsigned)n, 0);
      if (r < n) send_errors += n - (r < 0 ? 0 : r);
      sent += n;
      burst += n;
      if (++next == sessions) next = 0;
    }
  }
  sending_done = 1;
  pthread_join(rx, NULL);
  qsort(latencies, latency_n, sizeof *latencies, cmp_u32);
  double loss = sent ? 100.0 * (sent - received_count) / sent : 0;
  printf("RESULT {\"mode\":\"rate\",\"sessions\":%d,\"size\":%d,\"pps\":%ld,\"secs\":%d,\"sent\":%ld,\"received\":%ld,\"send_errors\":%ld,"
         "\"loss_pct\":%.3f,\"p50_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f}\n",
         sessions, size, pps, secs, sent, received_count, send_errors, loss, pct(0.5), pct(0.99), pct(0.999));
  return 0;
}

/* ---- regrate: registrations answered per second */

static int run_regrate(void) {
  FILE *f = fopen(ids_file, "r");
  if (!f) die(ids_file);
  long cap = 1 << 20, n = 0;
  char **ids = malloc(cap * sizeof *ids);
  char line[256];
  while (n < cap && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (line[0]) ids[n++] = strdup(line);
  }
  fclose(f);
  int *fds = calloc(sockets_n, sizeof *fds);
  int ep = epoll_create1(0);
  char ip[32], msg[160], reply[64];
  long next = 0, acks = 0, refused = 0;
  for (int i = 0; i < sockets_n; i++) {
    snprintf(ip, sizeof ip, "127.30.%u.%d", (unsigned)getpid() % 250, 1 + i % 250);
    fds[i] = udp_socket(ip, 1);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    for (int k = 0; k < 16 && next < n; k++) {
      int len = snprintf(msg, sizeof msg, "REG:%s\n", ids[next++]);
      sendto(fds[i], msg, len, 0, (struct sockaddr *)&relay, sizeof relay);
    }
  }
  uint64_t start = now_ns(), end = start + (uint64_t)secs * 1000000000u;
  struct epoll_event evs[256];
  while (now_ns() < end && next < n) {
    int got = epoll_wait(ep, evs, 256, 50);
    for (int e = 0; e < got; e++) {
      int fd = fds[evs[e].data.u32];
      ssize_t r;
      while ((r = recv(fd, reply, sizeof reply, 0)) > 0) {
        if (r == 4 && memcmp(reply, "ACK\n", 4) == 0) acks++;
        else refused++;
        if (next < n) {
          int len = snprintf(msg, sizeof msg, "REG:%s\n", ids[next++]);
          sendto(fd, msg, len, 0, (struct sockaddr *)&relay, sizeof relay);
        }
      }
    }
  }
  double took = (now_ns() - start) / 1e9;
  printf("RESULT {\"mode\":\"regrate\",\"acks\":%ld,\"refused\":%ld,\"secs\":%.3f,\"per_sec\":%.0f,\"ids_used\":%ld,\"ids\":%ld}\n",
         acks, refused, took, (acks + refused) / took, next, n);
  return 0;
}

/* ---- raw: registrations from many loopback addresses (root) */

static int raw_fd = -1;

static void raw_send(uint32_t src_ip, uint16_t src_port, const char *payload, int len) {
  char pkt[256];
  struct iphdr *ip = (struct iphdr *)pkt;
  struct udphdr *udp = (struct udphdr *)(pkt + sizeof *ip);
  memset(pkt, 0, sizeof *ip + sizeof *udp);
  ip->version = 4;
  ip->ihl = 5;
  ip->ttl = 64;
  ip->protocol = IPPROTO_UDP;
  ip->saddr = htonl(src_ip);
  ip->daddr = relay.sin_addr.s_addr;
  ip->tot_len = htons((uint16_t)(sizeof *ip + sizeof *udp + len));
  udp->source = htons(src_port);
  udp->dest = relay.sin_port;
  udp->len = htons((uint16_t)(sizeof *udp + len));
  udp->check = 0; /* optional over IPv4 */
  memcpy(pkt + sizeof *ip + sizeof *udp, payload, len);
  while (sendto(raw_fd, pkt, sizeof *ip + sizeof *udp + len, 0, (struct sockaddr *)&relay, sizeof relay) < 0) {
    if (errno != ENOBUFS && errno != EAGAIN) die("raw sendto");
    usleep(100);
  }
}

static void open_raw(void) {
  raw_fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (raw_fd < 0) { fprintf(stderr, "raw socket: %s (this mode needs root)\n", strerror(errno)); exit(3); }
  int buf = 8 << 20;
  setsockopt(raw_fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
}

/* Paces `count` calls of `step(i)` at `rate` per second. */
static void paced(long count, long rate, void (*step)(long)) {
  uint64_t start = now_ns();
  for (long i = 0; i < count;) {
    long due = (long)((double)(now_ns() - start) * rate / 1e9);
    if (i >= due) {
      struct timespec ts = { 0, 100000 };
      nanosleep(&ts, NULL);
      continue;
    }
    while (i < due && i < count) step(i++);
  }
}

#define BASE_IP 0x7f400000u /* 127.64.0.0: clear of the addresses the tests use */

static void fill_step(long i) {
  char msg[64];
  int len = snprintf(msg, sizeof msg, "REG:fill-%ld\n", i / 2);
  raw_send(BASE_IP + (uint32_t)i, 40000, msg, len);
}

static int run_fill(void) {
  open_raw();
  paced(2L * sessions, pps, fill_step);
  printf("RESULT {\"mode\":\"fill\",\"sessions\":%d,\"registrations\":%ld}\n", sessions, 2L * sessions);
  return 0;
}

static double cycler_per_step;
static double cycler_credit;
static long cycler_next;

static void soak_step(long i) {
  char msg[96];
  /* address a (of `addresses`) registers its pair's session of round r: both
   * peers of a pair move to a fresh session together, leaving the old one empty */
  long a = i % addresses, round = i / addresses;
  int len = snprintf(msg, sizeof msg, "REG:soak-%ld-%ld\n", round, a / 2);
  raw_send(BASE_IP + 0x10000u + (uint32_t)a, 40000, msg, len);
  cycler_credit += cycler_per_step;
  while (cycler_credit >= 1) {
    cycler_credit -= 1;
    len = snprintf(msg, sizeof msg, "REG:cycle-%ld\n", cycler_next++);
    raw_send(BASE_IP + 0x20000u, 40001, msg, len); /* one address, fresh ids */
  }
  if ((i + 1) % 100000 == 0) {
    printf("progress %ld\n", i + 1);
    fflush(stdout);
  }
}

static int run_soak(void) {
  open_raw();
  cycler_per_step = (double)cycler_pps / pps;
  paced(total, pps, soak_step);
  printf("RESULT {\"mode\":\"soak\",\"registrations\":%ld,\"addresses\":%ld,\"cycled\":%ld}\n", total, addresses, cycler_next);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: loadgen rate|regrate|soak|fill --relay IP:PORT ...\n"); return 2; }
  for (int i = 2; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--relay")) parse_relay(v);
    else if (!strcmp(k, "--sessions")) sessions = atoi(v);
    else if (!strcmp(k, "--size")) size = atoi(v);
    else if (!strcmp(k, "--pps")) pps = atol(v);
    else if (!strcmp(k, "--secs")) secs = atoi(v);
    else if (!strcmp(k, "--ids")) ids_file = v;
    else if (!strcmp(k, "--sockets")) sockets_n = atoi(v);
    else if (!strcmp(k, "--total")) total = atol(v);
    else if (!strcmp(k, "--addresses")) addresses = atol(v);
    else if (!strcmp(k, "--cycler-pps")) cycler_pps = atol(v);
    else { fprintf(stderr, "unknown option %s\n", k); return 2; }
  }
  if (!relay.sin_port) { fprintf(stderr, "--relay IP:PORT is needed\n"); return 2; }
  if (size < 8 || size > 1472) { fprintf(stderr, "--size 8..1472\n"); return 2; }
  if (!strcmp(argv[1], "rate")) return run_rate();
  if (!strcmp(argv[1], "regrate")) { if (!ids_file) { fprintf(stderr, "--ids FILE\n"); return 2; } return run_regrate(); }
  if (!strcmp(argv[1], "soak")) return run_soak();
  if (!strcmp(argv[1], "fill")) return run_fill();
  fprintf(stderr, "unknown mode %s\n", argv[1]);
  return 2;
}

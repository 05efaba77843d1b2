/* net.h - the few socket calls the server needs, with errors as E* codes.
 *
 * tokio counterpart: tokio::net::TcpListener::bind and the non-blocking
 * mode every tokio socket is in. The model is Redis's anet.c: small
 * wrappers that do one thing and report errors instead of printing them.
 */
#ifndef NET_H
#define NET_H

#include <stddef.h>
#include <stdint.h>

/* net_listen: a non-blocking, close-on-exec TCP listener on host:port
 * (host is a numeric IPv4/IPv6 address or a name; port 0 picks a free
 * one), with SO_REUSEADDR so a restart does not wait out TIME_WAIT.
 * Returns 0 and sets *fd, or an E* code (EADDRINUSE, EACCES, ...);
 * EADDRNOTAVAIL also stands for a host that does not resolve. */
int net_listen(const char *host, uint16_t port, int backlog, int *fd);

/* net_local_addr, net_peer_addr: "127.0.0.1:8080" / "[::1]:8080" of a
 * socket's own or its peer's address, into out[0..size). */
void net_local_addr(int fd, char *out, size_t size);
void net_peer_addr(int fd, char *out, size_t size);

/* net_pipe: a pipe with both ends non-blocking and close-on-exec (a
 * wake-up channel for a poll loop). 0 or an E* code; on error nothing is
 * left open. */
int net_pipe(int p[2]);

/* net_prepare: make an accepted socket non-blocking and close-on-exec and
 * turn off Nagle's algorithm (responses are written whole). 0 or E*. */
int net_prepare(int fd);

#endif /* NET_H */

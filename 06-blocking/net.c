/* net.c - socket helpers (see net.h).
 *
 * tokio counterpart: mio's TcpListener::bind and TcpStream set-up.
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* set_flags: O_NONBLOCK on the file, FD_CLOEXEC on the descriptor.
 * Close-on-exec is set a moment after socket(), pipe() or accept() made
 * the fd, so a fork+exec in another thread in between would leak it into
 * the child. That window does not matter here: these programs never fork
 * or exec. A program that does should make the fd close-on-exec
 * atomically, with the Linux (and BSD) forms SOCK_CLOEXEC, pipe2(O_CLOEXEC)
 * and accept4(SOCK_CLOEXEC), behind a seam like thread.c's. */
static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
        return errno;
    return 0;
}

int net_listen(const char *host, uint16_t port, int backlog, int *fd)
{
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0)
        return gai == EAI_SYSTEM ? errno : EADDRNOTAVAIL;
    int err = EADDRNOTAVAIL;
    /* Bind the first address that works (a name may resolve to several). */
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int s = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (s < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            bind(s, ai->ai_addr, ai->ai_addrlen) != 0 || listen(s, backlog) != 0 ||
            (errno = set_flags(s)) != 0) {
            err = errno;
            close(s);
            continue;
        }
        *fd = s;
        err = 0;
        break;
    }
    freeaddrinfo(res);
    return err;
}

/* format_addr: "ip:port", brackets around an IPv6 address. */
static void format_addr(const struct sockaddr_storage *ss, char *out, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
        snprintf(out, size, "%s:%u", ip, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
        snprintf(out, size, "[%s]:%u", ip, port);
    } else {
        snprintf(out, size, "?");
    }
}

/* sock_addr: format what get (getsockname or getpeername) says of fd. */
static void sock_addr(int fd, int (*get)(int, struct sockaddr *, socklen_t *), char *out,
                      size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (get(fd, (struct sockaddr *)&ss, &len) != 0)
        ss.ss_family = AF_UNSPEC;
    format_addr(&ss, out, size);
}

void net_local_addr(int fd, char *out, size_t size)
{
    sock_addr(fd, getsockname, out, size);
}

void net_peer_addr(int fd, char *out, size_t size)
{
    sock_addr(fd, getpeername, out, size);
}

int net_pipe(int p[2])
{
    if (pipe(p) != 0)
        return errno;
    int err = set_flags(p[0]);
    if (err == 0)
        err = set_flags(p[1]);
    if (err != 0) {
        close(p[0]);
        close(p[1]);
    }
    return err;
}

int net_prepare(int fd)
{
    int err = set_flags(fd);
    if (err != 0)
        return err;
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        return errno;
    return 0;
}

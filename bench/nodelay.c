/* A diagnostic for bench/run.sh, not part of missive: preloaded into a process, it sets
 * TCP_NODELAY on every TCP socket before it connects. Comparing missive with and without it
 * shows what Nagle's algorithm costs the send engine (lettre does not set TCP_NODELAY and writes
 * the end of DATA, "\r\n.\r\n", as a separate small segment). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real_connect)(int, const struct sockaddr *, socklen_t);
    if (!real_connect)
        real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
    if (addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return real_connect(fd, addr, len);
}

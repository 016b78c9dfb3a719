/* A resolver that never answers, for tests (LD_PRELOAD).
 *
 * getaddrinfo() for a name ending in STALL_SUFFIX (default ".stall.test") never returns: it
 * records the name in STALL_LOG (if set: one line per lookup, appended) and then sleeps until
 * the process ends, as a lookup does when every name server drops its queries. Every other
 * name, and a lookup with AI_NUMERICHOST (which never asks a name server), goes to the real
 * getaddrinfo (dlsym RTLD_NEXT), so the stand-in conda, Python's own start-up and loopback
 * servers are untouched.
 *
 * Build: cc -shared -fPIC -O1 -o stall_getaddrinfo.so stall_getaddrinfo.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);

static int stalls(const char *node) {
    const char *suffix = getenv("STALL_SUFFIX");
    size_t n, s;
    if (!suffix || !*suffix) suffix = ".stall.test";
    if (!node) return 0;
    n = strlen(node);
    s = strlen(suffix);
    return n >= s && strcasecmp(node + n - s, suffix) == 0;
}

static void note(const char *node) {
    const char *log = getenv("STALL_LOG");
    int fd;
    if (!log || !*log) return;
    fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return;
    if (write(fd, node, strlen(node)) < 0 || write(fd, "\n", 1) < 0) { /* best effort */ }
    close(fd);
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
    static getaddrinfo_fn real;
    /* AI_NUMERICHOST never asks a name server: answered (EAI_NONAME) by the real one */
    if (stalls(node) && !(hints && (hints->ai_flags & AI_NUMERICHOST))) {
        note(node);
        for (;;) pause();  /* a signal handler may run; the lookup still never ends */
    }
    if (!real) real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    return real(node, service, hints, res);
}

/* Closed-loop HTTP GET load over keep-alive connections, one thread per connection (what
 * `wrk -t N -c N` does; wrk is not installed here).
 *
 * Usage: http_load <port> <path> <connections> <seconds> [bearer-token]
 *
 * Each thread connects to 127.0.0.1:<port> and sends `GET <path>` again as soon as the previous
 * response is read whole (Content-Length; a response without one, or a status other than 200,
 * is an error). Prints one line:
 *   requests seconds requests_per_s p50_us p99_us body_bytes
 * (body_bytes: of the last response). Exits 1 on any error. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAMPLES 4000000

static int port;
static const char *path, *token;
static double deadline;
static char request[2048];
static size_t request_len;

typedef struct {
    double *lat;
    size_t n;
    long body;
    int failed;
} worker;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int connect_once(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) { close(fd); return -1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* One request and its whole response; the body size, or -1. */
static long one_request(int fd, char *buf, size_t cap) {
    for (size_t done = 0; done < request_len;) {
        ssize_t n = write(fd, request + done, request_len - done);
        if (n <= 0) return -1;
        done += (size_t)n;
    }
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        if (have == cap - 1) return -1;
        ssize_t n = read(fd, buf + have, cap - 1 - have);
        if (n <= 0) return -1;
        have += (size_t)n;
        buf[have] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0) {
        fprintf(stderr, "http_load: %.*s\n", (int)(strchr(buf, '\r') - buf), buf);
        return -1;
    }
    long length = -1;
    for (char *line = strstr(buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "content-length:", 15) == 0) length = atol(line + 15);
    }
    if (length < 0) { fprintf(stderr, "http_load: a response without Content-Length\n"); return -1; }
    size_t header = (size_t)(end + 4 - buf);
    long left = length - (long)(have - header);
    while (left > 0) {
        ssize_t n = read(fd, buf, left < (long)cap ? (size_t)left : cap);
        if (n <= 0) return -1;
        left -= n;
    }
    return left == 0 ? length : -1;
}

static void *run(void *arg) {
    worker *w = arg;
    size_t cap = 1 << 22;
    char *buf = malloc(cap);
    int fd = connect_once();
    if (fd < 0 || !buf) { w->failed = 1; return NULL; }
    while (now_us() < deadline && w->n < MAX_SAMPLES) {
        double t = now_us();
        long body = one_request(fd, buf, cap);
        if (body < 0) { w->failed = 1; break; }
        w->lat[w->n++] = now_us() - t;
        w->body = body;
    }
    close(fd);
    free(buf);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: http_load <port> <path> <connections> <seconds> [bearer-token]\n");
        return 2;
    }
    port = atoi(argv[1]);
    path = argv[2];
    int conns = atoi(argv[3]);
    double seconds = atof(argv[4]);
    token = argc > 5 ? argv[5] : NULL;
    int len = token ? snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n\r\n", path, port, token)
                    : snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", path, port);
    if (len <= 0 || (size_t)len >= sizeof request || conns < 1) return 2;
    request_len = (size_t)len;
    worker *ws = calloc((size_t)conns, sizeof *ws);
    pthread_t *ts = calloc((size_t)conns, sizeof *ts);
    double start = now_us();
    deadline = start + seconds * 1e6;
    for (int i = 0; i < conns; i++) {
        ws[i].lat = malloc(MAX_SAMPLES * sizeof(double));
        if (!ws[i].lat || pthread_create(&ts[i], NULL, run, &ws[i]) != 0) return 1;
    }
    size_t total = 0;
    for (int i = 0; i < conns; i++) {
        pthread_join(ts[i], NULL);
        if (ws[i].failed) { fprintf(stderr, "http_load: a connection failed\n"); return 1; }
        total += ws[i].n;
    }
    double wall = (now_us() - start) / 1e6;
    double *all = malloc((total ? total : 1) * sizeof(double));
    size_t k = 0;
    for (int i = 0; i < conns; i++) for (size_t j = 0; j < ws[i].n; j++) all[k++] = ws[i].lat[j];
    qsort(all, total, sizeof(double), cmp);
    double p50 = total ? all[total / 2] : 0, p99 = total ? all[(size_t)(total * 0.99)] : 0;
    printf("%zu %.3f %.1f %.1f %.1f %ld\n", total, wall, total / wall, p50, p99, ws[0].body);
    return 0;
}

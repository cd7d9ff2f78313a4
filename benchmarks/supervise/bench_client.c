/* Load generator for the supervisor benchmark: MCP tools/call over a direct stdio session, or
 * over streamable HTTP (raw HTTP/1.1 keep-alive, JSON or SSE responses, chunked or not), so the
 * client costs next to nothing and the proxy in between is what is measured.
 *
 *   bench_client stdio N CMD [ARGS...]     N sequential calls; prints latency percentiles (us)
 *   bench_client http URL AUTH N           same over HTTP (AUTH: "Bearer ..." or "-")
 *   bench_client load URL AUTH SESSIONS SECONDS
 *                                          SESSIONS sessions, each its own connection and
 *                                          thread, calling as fast as answers come; prints msgs/s
 * The tool called is "echo", or $BENCH_TOOL (the gateway benchmark calls "<id>__echo").
 * Output is one JSON object on stdout. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report_latency(const char *mode, double *lat, int n) {
    qsort(lat, n, sizeof *lat, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += lat[i];
    printf("{\"mode\":\"%s\",\"calls\":%d,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"mean_us\":%.1f}\n", mode, n,
           lat[n / 2], lat[(int)(n * 0.9)], lat[(int)(n * 0.99)], sum / n);
}

static const char *CALL = "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\",\"arguments\":{\"text\":\"hello\"}}}";

static const char *tool_name(void) {
    const char *t = getenv("BENCH_TOOL");
    return t && *t && strlen(t) < 200 && !strpbrk(t, "\"\\") ? t : "echo";
}
static const char *INIT = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}}";
static const char *INITIALIZED = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";

/* ---- stdio ---- */
static int run_stdio(int n, char **argv) {
    int in[2], out[2];
    if (pipe(in) || pipe(out)) return 1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0); dup2(out[1], 1);
        close(in[1]); close(out[0]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(in[0]); close(out[1]);
    FILE *w = fdopen(in[1], "w"), *r = fdopen(out[0], "r");
    char *line = NULL; size_t cap = 0;
    fprintf(w, "%s\n%s\n", INIT, INITIALIZED); fflush(w);
    if (getline(&line, &cap, r) <= 0) return 1;
    double *lat = malloc(sizeof(double) * n);
    for (int i = 0; i < n; i++) {
        double t = now_us();
        fprintf(w, CALL, i + 1, tool_name()); fputc('\n', w); fflush(w);
        if (getline(&line, &cap, r) <= 0) { fprintf(stderr, "stdio: server ended\n"); return 1; }
        lat[i] = now_us() - t;
    }
    report_latency("stdio", lat, n);
    fclose(w); fclose(r);
    waitpid(pid, NULL, 0);
    return 0;
}

/* ---- HTTP ---- */
typedef struct {
    int fd;
    char host[128];
    int port;
    char path[256];
    char auth[512];
    char session[256];
    char buf[1 << 16];
    size_t have;
} conn;

static int parse_url(const char *url, conn *c) {
    if (sscanf(url, "http://%127[^:]:%d%255s", c->host, &c->port, c->path) != 3) return -1;
    return 0;
}

static int connect_to(conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(c->port);
    inet_pton(AF_INET, c->host, &a.sin_addr);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return connect(c->fd, (struct sockaddr *)&a, sizeof a);
}

static int fill(conn *c) {
    if (c->have >= sizeof c->buf) return -1;
    ssize_t n = read(c->fd, c->buf + c->have, sizeof c->buf - c->have);
    if (n <= 0) return -1;
    c->have += (size_t)n;
    return 0;
}

static void consume(conn *c, size_t n) {
    memmove(c->buf, c->buf + n, c->have - n);
    c->have -= n;
}

/* Reads one response; returns the status, or -1. The body is dropped (its size in *body_len). */
static int read_response(conn *c, size_t *body_len) {
    char *end;
    while (!(end = memmem(c->buf, c->have, "\r\n\r\n", 4))) if (fill(c)) return -1;
    size_t head = (size_t)(end - c->buf) + 4;
    int status = atoi(c->buf + 9);
    long length = -1;
    int chunked = 0;
    for (char *p = c->buf; p < end; ) {
        char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
        if (!eol) break;
        if (strncasecmp(p, "content-length:", 15) == 0) length = atol(p + 15);
        if (strncasecmp(p, "transfer-encoding:", 18) == 0 && strstr(p, "chunked") && strstr(p, "chunked") < eol) chunked = 1;
        if (strncasecmp(p, "mcp-session-id:", 15) == 0) {
            char *v = p + 15;
            while (*v == ' ') v++;
            size_t n = (size_t)(eol - v);
            if (n < sizeof c->session) { memcpy(c->session, v, n); c->session[n] = 0; }
        }
        p = eol + 2;
    }
    consume(c, head);
    *body_len = 0;
    if (chunked) {
        for (;;) {
            char *eol;
            while (!(eol = memmem(c->buf, c->have, "\r\n", 2))) if (fill(c)) return -1;
            long size = strtol(c->buf, NULL, 16);
            size_t line = (size_t)(eol - c->buf) + 2;
            while (c->have < line + (size_t)size + 2) if (fill(c)) return -1;
            consume(c, line + (size_t)size + 2);
            *body_len += (size_t)size;
            if (size == 0) break;
        }
    } else if (length >= 0) {
        while (c->have < (size_t)length) if (fill(c)) return -1;
        consume(c, (size_t)length);
        *body_len = (size_t)length;
    }
    return status;
}

static int post(conn *c, const char *body) {
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\nContent-Length: %zu\r\n%s%s%s%s%s%s\r\n%s",
                     c->path, c->host, c->port, strlen(body),
                     c->auth[0] ? "Authorization: " : "", c->auth, c->auth[0] ? "\r\n" : "",
                     c->session[0] ? "Mcp-Session-Id: " : "", c->session, c->session[0] ? "\r\n" : "", body);
    for (int off = 0; off < n; ) {
        ssize_t w = write(c->fd, req + off, (size_t)(n - off));
        if (w <= 0) return -1;
        off += (int)w;
    }
    size_t len;
    return read_response(c, &len);
}

static int open_session(conn *c, const char *url, const char *auth) {
    memset(c, 0, sizeof *c);
    if (parse_url(url, c)) { fprintf(stderr, "bad url %s\n", url); return -1; }
    if (strcmp(auth, "-") != 0) snprintf(c->auth, sizeof c->auth, "%s", auth);
    if (connect_to(c)) { perror("connect"); return -1; }
    int s = post(c, INIT);
    if (s != 200 || !c->session[0]) { fprintf(stderr, "initialize: HTTP %d\n", s); return -1; }
    s = post(c, INITIALIZED);
    if (s != 202 && s != 200) { fprintf(stderr, "initialized: HTTP %d\n", s); return -1; }
    return 0;
}

static int run_http(const char *url, const char *auth, int n) {
    conn *c = malloc(sizeof *c);
    if (open_session(c, url, auth)) return 1;
    double *lat = malloc(sizeof(double) * n);
    for (int i = 0; i < n; i++) {
        double t = now_us();
        char body[512];
        snprintf(body, sizeof body, CALL, i + 1, tool_name());
        if (post(c, body) != 200) { fprintf(stderr, "call %d failed\n", i); return 1; }
        lat[i] = now_us() - t;
    }
    report_latency("http", lat, n);
    return 0;
}

static const char *load_url, *load_auth;
static double load_seconds;
static atomic_long total_calls, failures;
static atomic_int ready_count;

static void *load_thread(void *arg) {
    (void)arg;
    conn *c = malloc(sizeof *c);
    if (open_session(c, load_url, load_auth)) { atomic_fetch_add(&failures, 1); atomic_fetch_add(&ready_count, 1); return NULL; }
    atomic_fetch_add(&ready_count, 1);
    double end = now_us() + load_seconds * 1e6;
    long calls = 0;
    char body[512];
    while (now_us() < end) {
        snprintf(body, sizeof body, CALL, (int)calls + 1, tool_name());
        if (post(c, body) != 200) { atomic_fetch_add(&failures, 1); break; }
        calls++;
    }
    atomic_fetch_add(&total_calls, calls);
    close(c->fd);
    return NULL;
}

static int run_load(const char *url, const char *auth, int sessions, double seconds) {
    load_url = url; load_auth = auth; load_seconds = seconds;
    pthread_t *t = malloc(sizeof(pthread_t) * sessions);
    double start = now_us();
    for (int i = 0; i < sessions; i++) pthread_create(&t[i], NULL, load_thread, NULL);
    for (int i = 0; i < sessions; i++) pthread_join(t[i], NULL);
    double elapsed = (now_us() - start) / 1e6;
    printf("{\"mode\":\"load\",\"sessions\":%d,\"seconds\":%.2f,\"calls\":%ld,\"failures\":%ld,\"calls_per_s\":%.0f}\n",
           sessions, elapsed, atomic_load(&total_calls), atomic_load(&failures), atomic_load(&total_calls) / elapsed);
    return atomic_load(&failures) ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "stdio") == 0) return run_stdio(atoi(argv[2]), argv + 3);
    if (argc == 5 && strcmp(argv[1], "http") == 0) return run_http(argv[2], argv[3], atoi(argv[4]));
    if (argc == 6 && strcmp(argv[1], "load") == 0) return run_load(argv[2], argv[3], atoi(argv[4]), atof(argv[5]));
    fprintf(stderr, "usage: bench_client stdio N CMD... | http URL AUTH N | load URL AUTH SESSIONS SECONDS\n");
    return 64;
}

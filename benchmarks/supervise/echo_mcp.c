/* A minimal, fast stdio MCP server for the supervisor benchmark: the bridge is measured, not
 * the backend. Newline-delimited JSON-RPC on stdin/stdout; answers initialize, ping,
 * tools/list (one tool, "echo") and tools/call (a fixed text result; the tool "crash" exits 1,
 * for restart timings); ignores notifications.
 * Not a general JSON parser: it finds "id" and "method" by scanning, which is enough for the
 * compact messages MCP clients and proxies send. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies the raw JSON value of member `key` (number or string) into out; 0 if absent. */
static int member(const char *line, const char *key, char *out, size_t cap) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *p = line;
    while ((p = strstr(p, pattern)) != NULL) {
        const char *v = p + strlen(pattern);
        while (*v == ' ') v++;
        const char *end = v;
        if (*v == '"') {
            end = v + 1;
            while (*end && *end != '"') { if (*end == '\\' && end[1]) end++; end++; }
            if (*end) end++;
        } else {
            while (*end && *end != ',' && *end != '}' && *end != ' ') end++;
        }
        size_t n = (size_t)(end - v);
        if (n == 0 || n >= cap) return 0;
        memcpy(out, v, n);
        out[n] = 0;
        return 1;
    }
    return 0;
}

int main(void) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    while ((len = getline(&line, &cap, stdin)) > 0) {
        char id[256], method[128];
        if (!member(line, "method", method, sizeof method)) continue; /* a response: ignore */
        if (!member(line, "id", id, sizeof id)) continue;             /* a notification */
        if (strcmp(method, "\"initialize\"") == 0) {
            printf("{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"protocolVersion\":\"2025-06-18\","
                   "\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"echo-c\",\"version\":\"1\"}}}\n", id);
        } else if (strcmp(method, "\"tools/list\"") == 0) {
            printf("{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"tools\":[{\"name\":\"echo\",\"description\":\"echo\","
                   "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}}}}]}}\n", id);
        } else if (strcmp(method, "\"tools/call\"") == 0) {
            if (strstr(line, "\"crash\"")) { fputs("echo_mcp: crash requested\n", stderr); exit(1); }
            printf("{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}],\"isError\":false}}\n", id);
        } else if (strcmp(method, "\"ping\"") == 0) {
            printf("{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}\n", id);
        } else {
            printf("{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":-32601,\"message\":\"Method not found\"}}\n", id);
        }
        fflush(stdout);
    }
    return 0;
}

/* The raw floor: what one durable replace of the registry file costs with nothing but system
 * calls — flock + write + fsync + rename + fsync of the directory — for a file of a given size.
 * Usage: floor <dir> <bytes> <iterations>; prints "p50_us p99_us mean_us cpu_us" (cpu: user +
 * system time per write). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
static double cpu_us(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec * 1e6 + (double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_sec * 1e6 + (double)u.ru_stime.tv_usec;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    size_t n = (size_t)atol(argv[2]);
    int iterations = atoi(argv[3]);
    char *buf = malloc(n);
    memset(buf, ' ', n);
    char lock[4096], tmp[4096], file[4096];
    snprintf(lock, sizeof lock, "%s/floor.lock", argv[1]);
    snprintf(tmp, sizeof tmp, "%s/floor.tmp", argv[1]);
    snprintf(file, sizeof file, "%s/floor.json", argv[1]);
    int lk = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    double *t = malloc(sizeof(double) * (size_t)iterations), sum = 0, cpu0 = cpu_us();
    for (int i = 0; i < iterations; i++) {
        double a = now_us();
        flock(lk, LOCK_EX);
        int f = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (write(f, buf, n) != (ssize_t)n) return 1;
        fsync(f);
        close(f);
        rename(tmp, file);
        fsync(dir);
        flock(lk, LOCK_UN);
        t[i] = now_us() - a;
        sum += t[i];
    }
    double cpu = (cpu_us() - cpu0) / iterations;
    qsort(t, (size_t)iterations, sizeof(double), cmp);
    printf("%.1f %.1f %.1f %.1f\n", t[iterations / 2], t[(int)(iterations * 0.99)], sum / iterations, cpu);
    return 0;
}

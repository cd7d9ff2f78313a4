/* The raw floor: what one durable replace of the registry file costs with nothing but system
 * calls — flock + write + fsync + rename + fsync of the directory — for a file of a given size.
 * Usage: floor <dir> <bytes> <iterations>; prints "p50_us p99_us mean_us cpu_us" (cpu: user +
 * system time per write). The write itself is floor_write() in floor.h. */
#define _GNU_SOURCE
#include "bench_common.h"
#include "floor.h"

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    int iterations = atoi(argv[3]);
    struct floor_writer f;
    if (floor_open(&f, argv[1], (size_t)atol(argv[2]))) { perror("floor"); return 1; }
    double *t = malloc(sizeof(double) * (size_t)iterations), sum = 0, cpu0 = cpu_time_us();
    for (int i = 0; i < iterations; i++) {
        double a = now_us();
        if (floor_write(&f)) { perror("floor"); return 1; }
        t[i] = now_us() - a;
        sum += t[i];
    }
    double cpu = (cpu_time_us() - cpu0) / iterations;
    size_t n = (size_t)iterations;
    printf("%.1f %.1f %.1f %.1f\n", quantile(t, n, 0.5), quantile(t, n, 0.99), sum / iterations, cpu);
    return 0;
}

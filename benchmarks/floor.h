/* The raw floor: one durable replace of a file with nothing but system calls — flock + write +
 * fsync + rename + fsync of the directory. Used by floor.c (a program) and by registry_bench.c
 * (in the same process, alternating with the library's writes). */
#ifndef BENCH_FLOOR_H
#define BENCH_FLOOR_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct floor_writer {
    char tmp[4352], file[4352];
    char *buf;
    size_t bytes;
    int lock_fd, dir_fd;
};

/* Prepares writes of `bytes` bytes into <dir>/floor.json (lock: <dir>/floor.lock). 0 on success. */
static inline int floor_open(struct floor_writer *f, const char *dir, size_t bytes) {
    char lock[4352];
    snprintf(lock, sizeof lock, "%s/floor.lock", dir);
    snprintf(f->tmp, sizeof f->tmp, "%s/floor.tmp", dir);
    snprintf(f->file, sizeof f->file, "%s/floor.json", dir);
    f->bytes = bytes;
    f->buf = malloc(bytes ? bytes : 1);
    if (!f->buf) return -1;
    memset(f->buf, ' ', bytes);
    f->lock_fd = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    f->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return f->lock_fd < 0 || f->dir_fd < 0 ? -1 : 0;
}

/* One durable replace. 0 on success. */
static inline int floor_write(struct floor_writer *f) {
    flock(f->lock_fd, LOCK_EX);
    int fd = open(f->tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || write(fd, f->buf, f->bytes) != (ssize_t)f->bytes) return -1;
    fsync(fd);
    close(fd);
    rename(f->tmp, f->file);
    fsync(f->dir_fd);
    flock(f->lock_fd, LOCK_UN);
    return 0;
}

#endif

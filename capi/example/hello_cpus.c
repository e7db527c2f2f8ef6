/*
 * The C example of multicore's C interface: a static-pie C program (musl) that, running in
 * ring 0 on the one CPU of a kernel without SMP (Unikraft, or the stand-in host), starts the
 * others with mc_start_cpus. On a kernel the library knows (Unikraft, by uname) it needs no
 * settings; elsewhere give phys-offset=0x... and low-free=0x...-0x... (and phys-limit=0x...).
 * Each AP prints "Hello World from CPU N (APIC ID A)" and adds its index to a counter, then
 * joins the library's runtime; main sums a range in parallel on every CPU (mc_parallel_for),
 * checks it against the sequential sum, reports "N/N CPUs online" and exits 0 (1 if a CPU
 * failed or the sums differ, 2 if no CPU could be started).
 *
 * What an AP may call: mc_print, mc_current_ap, pure computation (snprintf into a buffer).
 * Never the C library's stdio, malloc or anything that makes a system call: the host kernel
 * has no SMP support.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "multicore.h"

static atomic_uint finished;
static atomic_ulong index_sum;

static void ap_entry(const mc_ap_info *info, uintptr_t arg) {
    char line[96];
    snprintf(line, sizeof line, "Hello World from CPU %u (APIC ID %u) [C, arg %lu]\n",
             info->index, info->apic_id, (unsigned long)arg);
    mc_print(line);
    atomic_fetch_add(&index_sum, info->index);
    atomic_fetch_add(&finished, 1);
}

/* A few microseconds of arithmetic on i: one leaf of the parallel sum. */
static uint64_t leaf(size_t i) {
    uint64_t x = i + 1;
    for (int k = 0; k < 1000; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

static atomic_ulong parallel_total;

/* mc_parallel_for's body: runs on any CPU, only computes (and one atomic add). */
static void sum_range(size_t begin, size_t end, void *ctx) {
    (void)ctx;
    uint64_t sum = 0;
    for (size_t i = begin; i < end; i++) sum += leaf(i);
    atomic_fetch_add(&parallel_total, sum);
}

static uint64_t clock_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* "0x1000-0x11000,..." into ranges; returns how many, or -1 if malformed. */
static int parse_ranges(const char *s, mc_range *out, int max) {
    int n = 0;
    while (*s) {
        char *end;
        unsigned long long a = strtoull(s, &end, 16);
        if (*end != '-' || n == max) return -1;
        unsigned long long b = strtoull(end + 1, &end, 16);
        if (b <= a || (*end != ',' && *end != 0)) return -1;
        out[n++] = (mc_range){.base = a, .len = b - a};
        s = (*end == ',') ? end + 1 : end;
    }
    return n;
}

static int parse_hex(const char *s, uint64_t *out) {
    char *end;
    *out = strtoull(s, &end, 16);
    return *s != 0 && *end == 0;
}

static int usage(const char *arg) {
    printf("hello_cpus.c: bad argument `%s` (valid: phys-offset=0x... phys-limit=0x... "
           "low-free=0x...-0x...[,...])\n", arg);
    return 2;
}

int main(int argc, char **argv) {
    printf("hello_cpus.c: main runs on the BSP\n");
    mc_config config;
    memset(&config, 0, sizeof config);
    mc_range low[16];
    /* The layout of a known kernel (Unikraft), else what the arguments say. */
    struct utsname host;
    mc_layout layout;
    int known = uname(&host) == 0 && mc_host_layout(host.sysname, host.machine, &layout);
    if (known) {
        printf("hello_cpus.c: host %s %s (%s): its known layout\n", host.sysname, host.version,
               host.release);
        config.phys_offset = layout.phys_offset;
        config.phys_limit = layout.phys_limit;
        memcpy(low, layout.low_free, sizeof layout.low_free);
        config.low_free_count = layout.low_free_count;
    }
    int offset_given = 0, low_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "phys-offset=", 12)) {
            if (!parse_hex(a + 12, &config.phys_offset)) return usage(a);
            offset_given = 1;
            if (!config.phys_limit) config.phys_limit = 1ull << 39;
        } else if (!strncmp(a, "phys-limit=", 11)) {
            if (!parse_hex(a + 11, &config.phys_limit)) return usage(a);
        } else if (!strncmp(a, "low-free=", 9)) {
            int n = parse_ranges(a + 9, low, 16);
            if (n < 0) return usage(a);
            config.low_free_count = (size_t)n;
            low_given = 1;
        } else {
            return usage(a);
        }
    }
    if (!known && !(offset_given && low_given)) {
        printf("hello_cpus.c: unknown host kernel `%s`: give phys-offset= and low-free=\n",
               host.sysname);
        printf("hello_cpus.c: main goes on alone: 1/1 CPUs online\n");
        return 2;
    }
    fflush(stdout);
    config.low_free = low;
    config.memory = NULL; /* sized by the library for the CPUs it finds */
    config.clock_ns = clock_ns;
    config.uart_port = 0x3F8;
    mc_report report;
    char error[512];
    if (mc_start_cpus(&config, ap_entry, 42, &report, error, sizeof error) != 0) {
        printf("hello_cpus.c: cannot start the other CPUs: %s\n", error);
        printf("hello_cpus.c: main goes on alone: 1/1 CPUs online\n");
        return 2;
    }
    /* Bounded wait for the APs' entries (they run on their own). */
    uint64_t deadline = clock_ns() + 10000000000ull;
    while (atomic_load(&finished) < report.online - 1 && clock_ns() < deadline) {
    }
    char line[160];
    snprintf(line, sizeof line, "hello_cpus.c: %u APs ran the entry, index sum %lu\n",
             atomic_load(&finished), (unsigned long)atomic_load(&index_sum));
    mc_print(line);
    snprintf(line, sizeof line, "hello_cpus.c: %lu KiB of %lu KiB taken for %u CPUs used\n",
             (unsigned long)(report.memory_used >> 10), (unsigned long)(report.memory_size >> 10),
             report.cpus);
    mc_print(line);
    /* The range summed on every CPU, against the sequential sum on this one. */
    enum { LEAVES = 20000, GRAIN = 50 };
    uint64_t t0 = clock_ns(), sequential = 0;
    for (size_t i = 0; i < LEAVES; i++) sequential += leaf(i);
    uint64_t t1 = clock_ns();
    int parallel_ok = mc_parallel_for(0, LEAVES, GRAIN, sum_range, NULL) == 0;
    uint64_t t2 = clock_ns(), parallel = atomic_load(&parallel_total);
    snprintf(line, sizeof line,
             "hello_cpus.c: parallel sum of %d leaves = %#llx (sequential %#llx): %llu us against "
             "%llu us alone\n",
             LEAVES, (unsigned long long)parallel, (unsigned long long)sequential,
             (unsigned long long)((t2 - t1) / 1000), (unsigned long long)((t1 - t0) / 1000));
    mc_print(line);
    parallel_ok = parallel_ok && parallel == sequential;
    snprintf(line, sizeof line, "hello_cpus.c: %u/%u CPUs online\n", report.online, report.cpus);
    mc_print(line);
    return report.failed == 0 && atomic_load(&finished) == report.online - 1 && parallel_ok ? 0 : 1;
}

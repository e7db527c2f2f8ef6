/*
 * The C example of multicore's C interface: a static-pie C program (musl) that, running in
 * ring 0 on the one CPU of a kernel without SMP (the stand-in host), starts the others with
 * mc_start_cpus. Each AP prints "Hello World from CPU N (APIC ID A)" and adds its index to a
 * counter; main reports "N/N CPUs online" and exits 0 (1 if a CPU failed).
 *
 * What an AP may call: mc_print, mc_current_ap, pure computation (snprintf into a buffer).
 * Never the C library's stdio, malloc or anything that makes a system call: the host kernel
 * has no SMP support.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static uint64_t clock_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* "0x11000-0x9f000,..." into ranges. */
static size_t parse_ranges(const char *s, mc_range *out, size_t max) {
    size_t n = 0;
    while (s && *s && n < max) {
        char *end;
        unsigned long long a = strtoull(s, &end, 16);
        if (*end != '-') break;
        unsigned long long b = strtoull(end + 1, &end, 16);
        if (b > a) out[n++] = (mc_range){.base = a, .len = b - a};
        s = (*end == ',') ? end + 1 : NULL;
    }
    return n;
}

int main(void) {
    printf("hello_cpus.c: main runs on the BSP\n");
    fflush(stdout);
    const char *offset = getenv("STANDIN_PHYS_OFFSET");
    const char *rsdp = getenv("STANDIN_RSDP");
    mc_range low[16];
    size_t nlow = parse_ranges(getenv("STANDIN_LOWMEM_FREE"), low, 16);
    size_t memory_len = 4u << 20;
    mc_config config;
    memset(&config, 0, sizeof config);
    config.memory = malloc(memory_len); /* handed over for ever */
    config.memory_len = memory_len;
    config.phys_offset = offset ? strtoull(offset, NULL, 16) : 0;
    config.phys_limit = 1ull << 40;
    config.low_free = low;
    config.low_free_count = nlow;
    config.rsdp = rsdp ? strtoull(rsdp, NULL, 16) : 0;
    config.clock_ns = clock_ns;
    config.uart_port = 0x3F8;
    mc_report report;
    char error[160];
    if (mc_start_cpus(&config, ap_entry, 42, &report, error, sizeof error) != 0) {
        printf("hello_cpus.c: cannot start the other CPUs: %s\n", error);
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
    snprintf(line, sizeof line, "hello_cpus.c: %u/%u CPUs online\n", report.online, report.cpus);
    mc_print(line);
    return report.failed == 0 && atomic_load(&finished) == report.online - 1 ? 0 : 1;
}

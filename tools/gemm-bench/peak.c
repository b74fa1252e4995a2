// Peak arithmetic throughput of this machine's cores: what a GEMM kernel can reach at best, in
// fp32 (vfmadd231ps) and in bf16 (vdpbf16ps), and whether AMX (tile matrix multiply) is usable.
//
// Each kernel is a loop of independent accumulator chains (no chain waits on another, enough
// of them to cover the instruction's latency on both FMA ports), sources in registers, nothing
// read from memory:
//   fma-zmm    24 chains of vfmadd231ps zmm   16 lanes × 2 FLOP = 32 FLOP an instruction
//   dpbf16-zmm 24 chains of vdpbf16ps zmm     16 lanes × 2 pairs × 2 FLOP = 64 FLOP
//   fma-ymm    12 chains of vfmadd231ps ymm   8 lanes × 2 FLOP = 16 FLOP (AVX2 reference)
//   mixed      12 chains of each zmm instruction, interleaved (do they share execution ports?)
// Each runs on one thread (one core) and on one thread per core at once (pinned); the clock
// is measured by a chain of dependent integer adds (one a cycle on every x86 core), so
// "FLOP/cycle" is GFLOP/s over that clock. Each thread is timed by its own CPU time
// (CLOCK_THREAD_CPUTIME_ID): these loops touch no memory, so their rate while they run is the
// core's, and time the scheduler gives to other processes on the shared machine is not
// counted (the GEMM benchmark, whose threads wait on each other, needs wall time instead).
// The load average is printed; the median of the repeats is reported.
//
// Build: cc -O2 -o /tmp/peak tools/gemm-bench/peak.c -lpthread
// Run:   /tmp/peak [repeats]
#define _GNU_SOURCE
#include <cpuid.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/// Loop trips of one timed run: ~0.2 s per kernel at ~3 GHz.
#define TRIPS 20000000L

/// CPU seconds of the calling thread.
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define Z24(op) \
    op " %%zmm30, %%zmm31, %%zmm0\n\t" op " %%zmm30, %%zmm31, %%zmm1\n\t" op " %%zmm30, %%zmm31, %%zmm2\n\t" \
    op " %%zmm30, %%zmm31, %%zmm3\n\t" op " %%zmm30, %%zmm31, %%zmm4\n\t" op " %%zmm30, %%zmm31, %%zmm5\n\t" \
    op " %%zmm30, %%zmm31, %%zmm6\n\t" op " %%zmm30, %%zmm31, %%zmm7\n\t" op " %%zmm30, %%zmm31, %%zmm8\n\t" \
    op " %%zmm30, %%zmm31, %%zmm9\n\t" op " %%zmm30, %%zmm31, %%zmm10\n\t" op " %%zmm30, %%zmm31, %%zmm11\n\t" \
    op " %%zmm30, %%zmm31, %%zmm12\n\t" op " %%zmm30, %%zmm31, %%zmm13\n\t" op " %%zmm30, %%zmm31, %%zmm14\n\t" \
    op " %%zmm30, %%zmm31, %%zmm15\n\t" op " %%zmm30, %%zmm31, %%zmm16\n\t" op " %%zmm30, %%zmm31, %%zmm17\n\t" \
    op " %%zmm30, %%zmm31, %%zmm18\n\t" op " %%zmm30, %%zmm31, %%zmm19\n\t" op " %%zmm30, %%zmm31, %%zmm20\n\t" \
    op " %%zmm30, %%zmm31, %%zmm21\n\t" op " %%zmm30, %%zmm31, %%zmm22\n\t" op " %%zmm30, %%zmm31, %%zmm23\n\t"

#define ZCLOBBER "zmm0", "zmm1", "zmm2", "zmm3", "zmm4", "zmm5", "zmm6", "zmm7", "zmm8", "zmm9", "zmm10", "zmm11", \
    "zmm12", "zmm13", "zmm14", "zmm15", "zmm16", "zmm17", "zmm18", "zmm19", "zmm20", "zmm21", "zmm22", "zmm23", \
    "zmm30", "zmm31"

/// The sources hold 0x3F003F00 in every lane: as fp32 ≈ 0.5, as a bf16 pair (0.5, 0.5); the
/// accumulators grow by ≤ 0.5 a trip, so nothing overflows or goes subnormal over a run.
#define SOURCE 0x3F003F00u
#define ZSETUP "vbroadcastss %[half], %%zmm30\n\tvmovaps %%zmm30, %%zmm31\n\t"

__attribute__((target("avx512f,avx512bf16"))) static void fmaZmm(long trips) {
    unsigned half = SOURCE;
    __asm__ volatile(ZSETUP "1:\n\t" Z24("vfmadd231ps") "dec %[n]\n\tjnz 1b"
                     : [n] "+r"(trips) : [half] "m"(half) : ZCLOBBER, "cc");
}

__attribute__((target("avx512f,avx512bf16"))) static void dpbf16Zmm(long trips) {
    unsigned half = SOURCE;
    __asm__ volatile(ZSETUP "1:\n\t" Z24("vdpbf16ps") "dec %[n]\n\tjnz 1b"
                     : [n] "+r"(trips) : [half] "m"(half) : ZCLOBBER, "cc");
}

/// 12 chains of vdpbf16ps (zmm0–11) interleaved with 12 of vfmadd231ps (zmm12–23): whether the
/// two share the same execution ports (the mix then runs no faster than fp32 alone).
#define MIX24 \
    "vdpbf16ps %%zmm30, %%zmm31, %%zmm0\n\tvfmadd231ps %%zmm30, %%zmm31, %%zmm12\n\t" \
    "vdpbf16ps %%zmm30, %%zmm31, %%zmm1\n\tvfmadd231ps %%zmm30, %%zmm31, %%zmm13\n\t" \
    "vdpbf16ps %%zmm30, %%zmm31, %%zmm2\n\tvfmadd231ps %%zmm30, %%zmm31, %%zmm14\n\t" \
    "vdpbf16ps %%zmm30, %%zmm31, %%zmm3\n\tvfmadd231ps %%zmm30, %%zmm31, %%zmm15\n\t" \
    "vdpbf16ps %%zmm30, %%zmm31, %%zmm4\n\tvfmadd231ps %%zmm30, %%zmm31, %%zmm16\n\t" \
    "vdpbf16ps %%zmm30, %%zmm31, %%zmm5\n\tvfmadd231ps %%zmm30, %%zmm31, %%zmm17\n\t" \
    "vdpbf16ps %%zmm30, %%zmm31, %%zmm6\n\tvfmadd231ps %%zmm30, %%zmm31, %%zmm18\n\t" \
    "vdpbf16ps %%zmm30, %%zmm31, %%zmm7\n\tvfmadd231ps %%zmm30, %%zmm31, %%zmm19\n\t" \
    "vdpbf16ps %%zmm30, %%zmm31, %%zmm8\n\tvfmadd231ps %%zmm30, %%zmm31, %%zmm20\n\t" \
    "vdpbf16ps %%zmm30, %%zmm31, %%zmm9\n\tvfmadd231ps %%zmm30, %%zmm31, %%zmm21\n\t" \
    "vdpbf16ps %%zmm30, %%zmm31, %%zmm10\n\tvfmadd231ps %%zmm30, %%zmm31, %%zmm22\n\t" \
    "vdpbf16ps %%zmm30, %%zmm31, %%zmm11\n\tvfmadd231ps %%zmm30, %%zmm31, %%zmm23\n\t"

__attribute__((target("avx512f,avx512bf16"))) static void mixZmm(long trips) {
    unsigned half = SOURCE;
    __asm__ volatile(ZSETUP "1:\n\t" MIX24 "dec %[n]\n\tjnz 1b"
                     : [n] "+r"(trips) : [half] "m"(half) : ZCLOBBER, "cc");
}

/// One chain (every instruction waits for the one before): the latency, in loop trips of 24.
#define CHAIN24(op, reg) ".rept 24\n\t" op " %%" reg "30, %%" reg "31, %%" reg "0\n\t.endr\n\t"

__attribute__((target("avx512f,avx512bf16"))) static void fmaZmmChain(long trips) {
    unsigned half = SOURCE;
    __asm__ volatile(ZSETUP "1:\n\t" CHAIN24("vfmadd231ps", "zmm") "dec %[n]\n\tjnz 1b"
                     : [n] "+r"(trips) : [half] "m"(half) : "zmm0", "zmm30", "zmm31", "cc");
}

__attribute__((target("avx512f,avx512bf16"))) static void dpbf16ZmmChain(long trips) {
    unsigned half = SOURCE;
    __asm__ volatile(ZSETUP "1:\n\t" CHAIN24("vdpbf16ps", "zmm") "dec %[n]\n\tjnz 1b"
                     : [n] "+r"(trips) : [half] "m"(half) : "zmm0", "zmm30", "zmm31", "cc");
}

#define Y12(op) \
    op " %%ymm14, %%ymm15, %%ymm0\n\t" op " %%ymm14, %%ymm15, %%ymm1\n\t" op " %%ymm14, %%ymm15, %%ymm2\n\t" \
    op " %%ymm14, %%ymm15, %%ymm3\n\t" op " %%ymm14, %%ymm15, %%ymm4\n\t" op " %%ymm14, %%ymm15, %%ymm5\n\t" \
    op " %%ymm14, %%ymm15, %%ymm6\n\t" op " %%ymm14, %%ymm15, %%ymm7\n\t" op " %%ymm14, %%ymm15, %%ymm8\n\t" \
    op " %%ymm14, %%ymm15, %%ymm9\n\t" op " %%ymm14, %%ymm15, %%ymm10\n\t" op " %%ymm14, %%ymm15, %%ymm11\n\t"

__attribute__((target("avx2,fma"))) static void fmaYmm(long trips) {
    unsigned half = SOURCE;
    __asm__ volatile("vbroadcastss %[half], %%ymm14\n\tvmovaps %%ymm14, %%ymm15\n\t1:\n\t" Y12("vfmadd231ps")
                     "dec %[n]\n\tjnz 1b\n\tvzeroupper"
                     : [n] "+r"(trips) : [half] "m"(half)
                     : "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9", "ymm10", "ymm11",
                       "ymm14", "ymm15", "cc");
}

/// 24 dependent register adds a trip: 24 cycles a trip (add has a latency of one cycle; an add
/// of an immediate would not do: newer cores fold chains of those at rename, several a cycle).
static void addChain(long trips) {
    long x = 0, one = 1;
    __asm__ volatile("1:\n\t"
                     ".rept 24\n\tadd %[one], %[x]\n\t.endr\n\t"
                     "dec %[n]\n\tjnz 1b"
                     : [n] "+r"(trips), [x] "+r"(x) : [one] "r"(one) : "cc");
}

typedef struct {
    const char *name;
    void (*run)(long trips);
    double flopPerTrip;  // FLOP (or, for the clock and the latencies, instructions) per loop trip
} Kernel;

static const Kernel kernels[] = {
    {"clock (add chain)", addChain, 24},
    {"fma-zmm (fp32)", fmaZmm, 24 * 32},
    {"dpbf16-zmm (bf16)", dpbf16Zmm, 24 * 64},
    {"fma-ymm (fp32)", fmaYmm, 12 * 16},
    {"dpbf16+fma mixed", mixZmm, 12 * 64 + 12 * 32},
};

/// Latency probes, on one core: cycles an instruction = clock / (instructions a second).
static const Kernel chains[] = {
    {"vfmadd231ps zmm", fmaZmmChain, 24},
    {"vdpbf16ps zmm", dpbf16ZmmChain, 24},
};

typedef struct { const Kernel *kernel; int core; pthread_barrier_t *start; double seconds; } Job;

static void *runPinned(void *p) {
    Job *job = p;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(job->core, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    job->kernel->run(TRIPS / 20);  // warm up: the core's clock and the vector units' power state
    pthread_barrier_wait(job->start);
    double t0 = now();
    job->kernel->run(TRIPS);
    job->seconds = now() - t0;
    return NULL;
}

/// Rate (per second, summed over threads) of `kernel` on `threads` cores at once.
static double rate(const Kernel *kernel, int threads) {
    pthread_t t[64];
    Job jobs[64];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, threads);
    for (int i = 0; i < threads; i++) {
        jobs[i] = (Job){kernel, i, &start, 0};
        pthread_create(&t[i], NULL, runPinned, &jobs[i]);
    }
    double sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        sum += kernel->flopPerTrip * TRIPS / jobs[i].seconds;
    }
    pthread_barrier_destroy(&start);
    return sum;
}

/// AMX: CPUID.(7,0):EDX bits 22 (AMX-BF16), 24 (AMX-TILE), 25 (AMX-INT8), then the kernel's
/// permission for the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 18).
static void reportAMX(void) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    int bf16 = (d >> 22) & 1, tile = (d >> 24) & 1, int8 = (d >> 25) & 1;
    long perm = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */);
    printf("AMX: cpuid 7.0 EDX amx-bf16 %d, amx-tile %d, amx-int8 %d; arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) %s\n",
           bf16, tile, int8, perm == 0 ? "granted" : "refused");
    unsigned family = 0, model = 0;
    __get_cpuid(1, &a, &b, &c, &d);
    family = (a >> 8) & 0xF, model = ((a >> 4) & 0xF) | (((a >> 16) & 0xF) << 4);
    printf("CPU: family %u model %u; %ld online cores\n", family, model, sysconf(_SC_NPROCESSORS_ONLN));
}

int main(int argc, char **argv) {
    int repeats = argc > 1 ? atoi(argv[1]) : 5;
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    double load[3];
    getloadavg(load, 3);
    reportAMX();
    printf("load average before: %.2f %.2f %.2f; medians of %d runs\n", load[0], load[1], load[2], repeats);
    double clock[2] = {0, 0};
    printf("%-20s %8s %14s %12s %14s %12s\n", "kernel", "", "1 core GHz/GF", "FLOP/cycle", "all cores GF", "FLOP/cycle");
    for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
        double r[2][64];
        for (int i = 0; i < repeats; i++) {
            r[0][i] = rate(&kernels[k], 1);
            r[1][i] = rate(&kernels[k], cores);
        }
        qsort(r[0], repeats, sizeof(double), cmp);
        qsort(r[1], repeats, sizeof(double), cmp);
        double one = r[0][repeats / 2] / 1e9, all = r[1][repeats / 2] / 1e9;
        if (k == 0) {
            clock[0] = one, clock[1] = all / cores;
            printf("%-20s %8s %14.2f %12s %14.2f %12s\n", kernels[k].name, "GHz", one, "", all / cores, "(per core)");
        } else {
            printf("%-20s %8s %14.1f %12.1f %14.1f %12.1f\n", kernels[k].name, "GFLOP/s", one, one / clock[0], all,
                   all / clock[1] / cores);
        }
        fflush(stdout);
    }
    for (size_t k = 0; k < sizeof chains / sizeof chains[0]; k++) {
        double r[64];
        for (int i = 0; i < repeats; i++) r[i] = rate(&chains[k], 1);
        qsort(r, repeats, sizeof(double), cmp);
        printf("latency of %-16s %5.2f cycles\n", chains[k].name, clock[0] * 1e9 / r[repeats / 2]);
    }
    getloadavg(load, 3);
    printf("load average after: %.2f %.2f %.2f\n", load[0], load[1], load[2]);
    return 0;
}

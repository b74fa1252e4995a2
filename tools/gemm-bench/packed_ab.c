// The packed fp32 kernel (`cfm_f32_gemm`, Sources/CPackedGEMM) against a baseline build of it
// (`base_f32_*`: another version of packed_gemm.c compiled with its exported names prefixed;
// packed.sh builds both) on the ViT's four projections, as a transformer block calls them
// (qkv and fc2's epilogues: bias; proj and fc2 add to c; fc1 applies its GELU), the two kernels
// alternating call by call in one process. Per round and kernel the median of REPEATS calls;
// the report gives each shape's median time over the rounds and the median and range of the
// per-round ratios (new / baseline), then one block's sum.
//   THREADS=1 (default): one core's half of the ViT's rows (393), CPU time of the calling thread.
//   THREADS=2: all 785 rows split between two threads as the engine splits them, wall time.
//   FLUSH_MB=N: before every call, write N MB elsewhere, so the weights come from memory as in
//   the full ViT (340 MB of weights > the L3) instead of from cache.
// Before timing, the outputs of both kernels are compared (largest |new − baseline|: 0 when the
// change keeps every summation order, else the size of the change).
// Usage: packed_ab [ROUNDS] [REPEATS]   (default 11 rounds of 3)
#include "cpackedgemm.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

size_t base_f32_packed_count(int n, int k);
void base_f32_pack_weights(int n, int k, const float *w, int ldw, float *packed);
void base_f32_gemm(int m, int n, int k, const float *a, int lda, const float *packed, const float *bias, float *c,
                   int ldc, int epilogue);

typedef struct {
    size_t (*count)(int, int);
    void (*pack)(int, int, const float *, int, float *);
    void (*gemm)(int, int, int, const float *, int, const float *, const float *, float *, int, int);
} Kernel;
static const Kernel kernels[2] = {{base_f32_packed_count, base_f32_pack_weights, base_f32_gemm},
                                  {cfm_f32_packed_count, cfm_f32_pack_weights, cfm_f32_gemm}};

typedef struct { const char *name; int n, k, epilogue; } Shape;
static const Shape shapes[] = {{"qkv", 2304, 768, 0}, {"proj", 768, 768, CFM_F32_ACCUMULATE},
                               {"fc1", 3072, 768, CFM_F32_GELU}, {"fc2", 768, 3072, CFM_F32_ACCUMULATE}};
enum { SHAPES = sizeof shapes / sizeof shapes[0], MAX_ROUNDS = 101, TOKENS = 785 };

static double seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int ascending(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

static double median(double *values, int count) {
    qsort(values, count, sizeof(double), ascending);
    return values[count / 2];
}

/// One thread's rows of a call.
typedef struct { const Kernel *kernel; const Shape *shape; int rows; const float *a, *packed, *bias; float *c; } Part;

static void *runPart(void *p) {
    const Part *part = p;
    part->kernel->gemm(part->rows, part->shape->n, part->shape->k, part->a, part->shape->k, part->packed, part->bias,
                       part->c, part->shape->n, part->shape->epilogue);
    return NULL;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 11, repeats = argc > 2 ? atoi(argv[2]) : 3;
    int threads = getenv("THREADS") ? atoi(getenv("THREADS")) : 1;
    size_t flushBytes = getenv("FLUSH_MB") ? (size_t)atoi(getenv("FLUSH_MB")) << 20 : 0;
    if (rounds < 1 || rounds > MAX_ROUNDS || repeats < 1 || (threads != 1 && threads != 2)) {
        fprintf(stderr, "usage: packed_ab [ROUNDS 1–%d] [REPEATS ≥ 1] (THREADS=1|2, FLUSH_MB=N)\n", MAX_ROUNDS);
        return 2;
    }
    int rows = threads == 1 ? (TOKENS + 1) / 2 : TOKENS;
    char *flush = flushBytes ? calloc(flushBytes, 1) : NULL;
    printf("%d thread(s), %d rows, %s; %d rounds, median of %d calls each\n", threads, rows,
           flush ? "weights from memory (FLUSH_MB)" : "weights from cache", rounds, repeats);
    double times[SHAPES][2][MAX_ROUNDS], block[2] = {0, 0};
    srand(1);
    for (int s = 0; s < SHAPES; s++) {
        const Shape *shape = &shapes[s];
        int n = shape->n, k = shape->k;
        float *a = malloc(sizeof(float) * rows * k), *w = malloc(sizeof(float) * n * k), *bias = malloc(sizeof(float) * n);
        float *start = malloc(sizeof(float) * rows * n), *c[2], *packed[2];
        for (int i = 0; i < rows * k; i++) a[i] = rand() / (float)RAND_MAX - 0.5f;
        for (int i = 0; i < n * k; i++) w[i] = (rand() / (float)RAND_MAX - 0.5f) * 0.07f;
        for (int i = 0; i < n; i++) bias[i] = rand() / (float)RAND_MAX - 0.5f;
        for (int i = 0; i < rows * n; i++) start[i] = rand() / (float)RAND_MAX - 0.5f;
        for (int v = 0; v < 2; v++) {
            packed[v] = malloc(sizeof(float) * kernels[v].count(n, k));
            kernels[v].pack(n, k, w, k, packed[v]);
            c[v] = malloc(sizeof(float) * rows * n);
        }
        for (int r = 0; r < rounds; r++)
            for (int v = 0; v < 2; v++) {
                double calls[64];
                for (int q = 0; q < repeats && q < 64; q++) {
                    memcpy(c[v], start, sizeof(float) * rows * n);
                    for (size_t z = 0; z < flushBytes; z += 64) flush[z]++;
                    Part parts[2] = {{&kernels[v], shape, (rows + 1) / 2, a, packed[v], bias, c[v]},
                                     {&kernels[v], shape, rows / 2, a + (size_t)(rows + 1) / 2 * k, packed[v], bias,
                                      c[v] + (size_t)(rows + 1) / 2 * n}};
                    if (threads == 1) {
                        parts[0].rows = rows;
                        double t0 = seconds(CLOCK_THREAD_CPUTIME_ID);
                        runPart(&parts[0]);
                        calls[q] = seconds(CLOCK_THREAD_CPUTIME_ID) - t0;
                    } else {
                        pthread_t other;
                        double t0 = seconds(CLOCK_MONOTONIC);
                        pthread_create(&other, NULL, runPart, &parts[1]);
                        runPart(&parts[0]);
                        pthread_join(other, NULL);
                        calls[q] = seconds(CLOCK_MONOTONIC) - t0;
                    }
                }
                times[s][v][r] = median(calls, repeats < 64 ? repeats : 64);
            }
        double largest = 0;
        for (int i = 0; i < rows * n; i++) largest = fmax(largest, fabs((double)c[1][i] - c[0][i]));
        double ratios[MAX_ROUNDS], t[2];
        for (int r = 0; r < rounds; r++) ratios[r] = times[s][1][r] / times[s][0][r];
        for (int v = 0; v < 2; v++) block[v] += t[v] = median(times[s][v], rounds);
        double middle = median(ratios, rounds), flop = 2.0 * rows * n * k;
        printf("%-5s baseline %7.3f ms (%5.1f GFLOP/s)  new %7.3f ms (%5.1f GFLOP/s)  new/baseline %.3f (%.3f–%.3f)"
               "  largest |new − baseline| %.2g\n",
               shape->name, t[0] * 1e3, flop / t[0] * 1e-9, t[1] * 1e3, flop / t[1] * 1e-9, middle, ratios[0],
               ratios[rounds - 1], largest);
        for (int v = 0; v < 2; v++) free(packed[v]), free(c[v]);
        free(a), free(w), free(bias), free(start);
    }
    printf("block baseline %7.3f ms  new %7.3f ms  new/baseline %.3f (sum of the shapes' medians)\n", block[0] * 1e3,
           block[1] * 1e3, block[1] / block[0]);
    free(flush);
    return 0;
}

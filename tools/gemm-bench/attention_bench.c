// One core, CPU time: the fused attention head (`cfm_attention_head`, Sources/CVectorMath) against
// a baseline build of it (`base_attention_head`: another version of vector_math.c compiled with its
// exported names prefixed: attention.sh builds both), on the model's shapes — all heads of one layer per
// timed call, the two kernels alternating call by call in one process, the minimum per round.
// Before timing, both kernels' outputs are compared with a float64 reference on a sample of rows.
// Usage: attention_bench [ROUNDS] [REPEATS] [SHAPE…]   (default 3 rounds of 40, shapes vit pmae)
#include "cvectormath.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

size_t base_attention_scratch_count(size_t tokens);
void base_attention_head(size_t tokens, float scale, const float *q, size_t ldq, const float *k, size_t ldk,
                         const float *v, size_t ldv, float *out, size_t ldo, float *scratch);

typedef void (*HeadKernel)(size_t, float, const float *, size_t, const float *, size_t, const float *, size_t,
                           float *, size_t, float *);

/// One layer's attention: `tokens` tokens, `heads` heads of 64, qkv [tokens, 3·dim] as the model lays it out.
typedef struct { const char *name; size_t tokens, heads; } Shape;
static const Shape shapes[] = {{"vit", 785, 12}, {"pmae", 1024, 6}};

static double cpuSeconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/// Every head of the layer, one after another, as one core of `multiHeadAttention` runs them.
static void layer(HeadKernel kernel, const Shape *s, const float *qkv, float *out, float *scratch) {
    size_t dim = s->heads * CFM_ATTENTION_HEAD_DIM;
    for (size_t h = 0; h < s->heads; h++) {
        const float *q = qkv + h * CFM_ATTENTION_HEAD_DIM;
        kernel(s->tokens, 0.125f, q, 3 * dim, q + dim, 3 * dim, q + 2 * dim, 3 * dim, out + h * CFM_ATTENTION_HEAD_DIM,
               dim, scratch);
    }
}

/// Largest |out − softmax(q·kᵀ/8)·v| (float64) over every 13th row of every head.
static double worstError(const Shape *s, const float *qkv, const float *out) {
    size_t n = s->tokens, dim = s->heads * 64, ld = 3 * dim;
    double *logits = malloc(n * sizeof(double)), worst = 0;
    for (size_t h = 0; h < s->heads; h++)
        for (size_t i = 0; i < n; i += 13) {
            double top = -INFINITY, total = 0;
            for (size_t j = 0; j < n; j++) {
                double dot = 0;
                for (size_t d = 0; d < 64; d++) dot += (double)qkv[i * ld + h * 64 + d] * qkv[j * ld + dim + h * 64 + d];
                logits[j] = dot / 8;
                top = fmax(top, logits[j]);
            }
            for (size_t j = 0; j < n; j++) total += logits[j] = exp(logits[j] - top);
            for (size_t c = 0; c < 64; c++) {
                double expected = 0;
                for (size_t j = 0; j < n; j++) expected += logits[j] * qkv[j * ld + 2 * dim + h * 64 + c];
                worst = fmax(worst, fabs(expected / total - out[i * dim + h * 64 + c]));
            }
        }
    free(logits);
    return worst;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 3, repeats = argc > 2 ? atoi(argv[2]) : 40;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        const Shape *s = &shapes[si];
        int wanted = argc <= 3;
        for (int a = 3; a < argc; a++) wanted |= strcmp(argv[a], s->name) == 0;
        if (!wanted) continue;
        size_t n = s->tokens, dim = s->heads * 64;
        float *qkv = malloc(n * 3 * dim * sizeof(float)), *outBase = malloc(n * dim * sizeof(float)),
              *outNew = malloc(n * dim * sizeof(float));
        size_t scratchCount = cfm_attention_scratch_count(n), baseCount = base_attention_scratch_count(n);
        float *scratch = malloc((scratchCount > baseCount ? scratchCount : baseCount) * sizeof(float));
        // Uniform in ±2: logits' standard deviation ~2.7 (rows neither flat nor one-hot), as in the models.
        uint64_t state = 7;
        for (size_t i = 0; i < n * 3 * dim; i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            qkv[i] = ((float)(state >> 40) / (float)(1 << 24) * 2 - 1) * 2;
        }
        layer(base_attention_head, s, qkv, outBase, scratch);
        layer(cfm_attention_head, s, qkv, outNew, scratch);
        double differs = 0;
        for (size_t i = 0; i < n * dim; i++) differs = fmax(differs, fabs(outBase[i] - outNew[i]));
        printf("%s: %zu tokens × %zu heads; largest error against float64 on sampled rows: baseline %.2e, new %.2e; "
               "largest |new − baseline| %.2e\n",
               s->name, n, s->heads, worstError(s, qkv, outBase), worstError(s, qkv, outNew), differs);
        double flops = 4.0 * n * n * 64 * s->heads;
        for (int r = 0; r < rounds; r++) {
            double best[2] = {INFINITY, INFINITY};
            for (int i = 0; i < repeats; i++)
                for (int which = 0; which < 2; which++) {
                    double start = cpuSeconds();
                    layer(which ? cfm_attention_head : base_attention_head, s, qkv, which ? outNew : outBase, scratch);
                    double t = cpuSeconds() - start;
                    if (t < best[which]) best[which] = t;
                }
            printf("  round %d (min of %d): baseline %.2f ms (%.0f GFLOP/s), new %.2f ms (%.0f GFLOP/s), new/baseline %.3f\n",
                   r + 1, repeats, best[0] * 1e3, flops / best[0] * 1e-9, best[1] * 1e3, flops / best[1] * 1e-9,
                   best[1] / best[0]);
        }
        free(qkv), free(outBase), free(outNew), free(scratch);
    }
    return 0;
}

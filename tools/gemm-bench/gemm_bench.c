// Linear-layer GEMM strategies on this machine's cores, on the model's real shapes, fp32 and bf16.
//
// y[M,N] = x[M,K] · Wᵀ (W stored [N,K]) + y (bias prefilled, beta = 1), as `linear` runs it.
// fp32 strategies:
//   rows         OpenBLAS single-threaded, one row chunk per core (cfm's `linear`)
//   cols         OpenBLAS single-threaded, one column chunk per core (each core packs half of W)
//   obl-mt       OpenBLAS's own threads on one call
//   dnnl-sgemm   oneDNN's dnnl_sgemm on one call (its OpenMP threads)
//   dnnl-matmul  oneDNN's matmul primitive, W reordered once into its blocked layout (at load)
//   cfm-fp32     cfm's AVX-512 kernel (Sources/CPackedGEMM), W packed once (at load), one row
//                chunk per core (cfm's `linear` on a packed weight)
// bf16 strategies (bf16 products, fp32 accumulation and output):
//   cfm-bf16     cfm's kernel (Sources/CBF16), one row chunk per core (cfm's `bf16Linear`)
//   dnnl-bf16    oneDNN's matmul with bf16 source and W (W reordered once), fp32 destination;
//                x is converted to bf16 before the clock starts (OpenVINO keeps activations
//                in bf16 between layers), so it gets that conversion for free where cfm pays it
//
// Three modes:
//   calls   one shape at a time, the same call repeated (weights stay in cache after the first)
//   versus  each shape with STRATEGY and with rows in turn, call by call: the median ratio of their
//           times (STRATEGY's speed as a multiple of OpenBLAS's), which both calls of a pair see
//           under the same machine conditions; GEMM_ROWS_DIVISOR=2 halves M (one core's rows of
//           the 2-core split)
//   stages  a stage's layers back to back as the model runs them, each with weights of its own
//           (the ViT's 12 blocks alone are 340 MB of fp32 weights): what a stage costs,
//           weight traffic from memory included
// Timing is wall time (CLOCK_MONOTONIC) and GFLOP/s = 2·M·N·K / seconds. Process CPU time would
// not do: it counts a thread that waits as free, so a library that leaves one core idle
// (single-threaded calls inside oneDNN) looks up to twice as fast as it is. Wall time counts
// the neighbours as well, so only runs on an idle machine count: the load average is printed
// before and after, and the median of the repeats is reported. On one core (GEMM_CORES=1,
// OMP_NUM_THREADS=1) exactly one thread works and none waits, so there the process's CPU time
// is the kernel's time and the scheduler's other work is not counted: per-core rates are
// valid on a shared machine too, and compare with tools/gemm-bench/peak.c's per-core peak.
//
// Build: cc -O3 -o /tmp/gemm_bench tools/gemm-bench/gemm_bench.c Sources/CBF16/bf16_gemm.c
//          Sources/CPackedGEMM/packed_gemm.c -ISources/CBF16/include -ISources/CPackedGEMM/include -ISources/CVectorMath/include
//          -lopenblas -ldnnl -lpthread -lm
// Output: one line per shape or stage: strategy, shape or stage, median ms, GFLOP/s (tab-separated).
// Run:   OPENBLAS_CORETYPE=COOPERLAKE OMP_NUM_THREADS=2 /tmp/gemm_bench STRATEGY calls|stages|versus [repeats]
//        (GEMM_CORES=1 OMP_NUM_THREADS=1 for one core: against tools/gemm-bench/peak.c's per-core peak)
//        (one strategy per process, so thread pools never overlap; tools/gemm-bench/run.sh runs all)
#include <cblas.h>
#include <math.h>
#include <dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cbf16.h"
#include "cpackedgemm.h"

#define CHECK(call) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) { \
    fprintf(stderr, "%s failed: %d\n", #call, (int)s_); exit(1); } } while (0)

enum { ROWS, COLS, OBL_MT, DNNL_SGEMM, DNNL_MATMUL, CFM_FP32, CFM_BF16, DNNL_BF16, STRATEGIES };
static const char *names[STRATEGIES] = {"rows", "cols", "obl-mt", "dnnl-sgemm", "dnnl-matmul", "cfm-fp32", "cfm-bf16", "dnnl-bf16"};

/// Threads of the strategies that split by hand (rows, cols, cfm-fp32, cfm-bf16) and of obl-mt:
/// `GEMM_CORES`, else 2 (oneDNN's are OMP_NUM_THREADS).
static int cores = 2;
static dnnl_engine_t engine;
static dnnl_stream_t stream;

/// CLOCK_MONOTONIC, or on one core CLOCK_PROCESS_CPUTIME_ID (see above).
static clockid_t timer = CLOCK_MONOTONIC;

static double now(void) {
    struct timespec t;
    clock_gettime(timer, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/// One layer: its shape, its weights in the form the strategy multiplies, and its buffers.
typedef struct {
    int M, N, K;
    const float *x, *w;            // x [M,K], W [N,K] fp32
    float *y;                      // y [M,N]
    uint16_t *packed;              // cfm-bf16: W packed by cfm_bf16_pack_weights
    float *packed32;               // cfm-fp32: W packed by cfm_f32_pack_weights
    dnnl_primitive_t matmul;       // dnnl-matmul / dnnl-bf16
    dnnl_memory_t src, wei, dst;   // (their memory: x or its bf16 copy, reordered W, y)
} Layer;

typedef struct { const Layer *layer; int strategy, part; } Job;

static void *runPart(void *p) {
    const Job *job = p;
    const Layer *l = job->layer;
    if (job->strategy == COLS) {
        int n0 = l->N * job->part / cores, n1 = l->N * (job->part + 1) / cores;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l->M, n1 - n0, l->K, 1, l->x, l->K,
                    l->w + (size_t)n0 * l->K, l->K, 1, l->y + n0, l->N);
        return NULL;
    }
    int m0 = l->M * job->part / cores, m1 = l->M * (job->part + 1) / cores;
    if (job->strategy == ROWS)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m1 - m0, l->N, l->K, 1, l->x + (size_t)m0 * l->K, l->K,
                    l->w, l->K, 1, l->y + (size_t)m0 * l->N, l->N);
    else if (job->strategy == CFM_FP32)
        cfm_f32_gemm(m1 - m0, l->N, l->K, l->x + (size_t)m0 * l->K, l->K, l->packed32, NULL, l->y + (size_t)m0 * l->N,
                     l->N, CFM_F32_ACCUMULATE);
    else
        cfm_bf16_gemm(m1 - m0, l->N, l->K, l->x + (size_t)m0 * l->K, l->K, l->packed, l->y + (size_t)m0 * l->N, l->N, 1);
    return NULL;
}

/// One chunk per core on threads of its own, as cfm's `parallelChunks` does.
static void splitRun(const Layer *l, int strategy) {
    pthread_t t[16];
    Job jobs[16];
    for (int i = 0; i < cores; i++) {
        jobs[i] = (Job){l, strategy, i};
        pthread_create(&t[i], NULL, runPart, &jobs[i]);
    }
    for (int i = 0; i < cores; i++) pthread_join(t[i], NULL);
}

/// oneDNN matmul y += x · Wᵀ with W reordered once into the layout the primitive prefers;
/// `type` is the source's and weights' data type (f32 or bf16), the destination is f32.
static void makeMatmul(Layer *l, dnnl_data_type_t type) {
    dnnl_memory_desc_t srcMd, weiAny, plainW, dstMd, typedW;
    dnnl_dims_t sd = {l->M, l->K}, wd = {l->K, l->N}, dd = {l->M, l->N}, wStrides = {1, l->K};
    CHECK(dnnl_memory_desc_init_by_tag(&srcMd, 2, sd, type, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&weiAny, 2, wd, type, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_strides(&plainW, 2, wd, dnnl_f32, wStrides));  // Wᵀ view of [N,K]
    CHECK(dnnl_memory_desc_init_by_tag(&dstMd, 2, dd, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t desc;
    CHECK(dnnl_matmul_desc_init(&desc, &srcMd, &weiAny, NULL, &dstMd));
    dnnl_primitive_attr_t attr;
    CHECK(dnnl_primitive_attr_create(&attr));
    dnnl_post_ops_t ops;
    CHECK(dnnl_post_ops_create(&ops));
    CHECK(dnnl_post_ops_append_sum(ops, 1.0f));  // y += x·Wᵀ, like beta = 1
    CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL));
    typedW = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    CHECK(dnnl_primitive_create(&l->matmul, pd));
    dnnl_memory_t plain;
    CHECK(dnnl_memory_create(&plain, &plainW, engine, (void *)l->w));
    CHECK(dnnl_memory_create(&l->wei, &typedW, engine, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t rpd;
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, &plainW, engine, &typedW, engine, NULL));
    dnnl_primitive_t reorder;
    CHECK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t wargs[] = {{DNNL_ARG_FROM, plain}, {DNNL_ARG_TO, l->wei}};
    CHECK(dnnl_primitive_execute(reorder, stream, 2, wargs));
    dnnl_memory_desc_t plainX;
    CHECK(dnnl_memory_desc_init_by_tag(&plainX, 2, sd, dnnl_f32, dnnl_ab));
    dnnl_memory_t x;
    CHECK(dnnl_memory_create(&x, &plainX, engine, (void *)l->x));
    if (type == dnnl_f32) {
        l->src = x;
    } else {  // the bf16 copy of x, converted once here (untimed)
        CHECK(dnnl_memory_create(&l->src, &srcMd, engine, DNNL_MEMORY_ALLOCATE));
        CHECK(dnnl_reorder_primitive_desc_create(&rpd, &plainX, engine, &srcMd, engine, NULL));
        CHECK(dnnl_primitive_create(&reorder, rpd));
        dnnl_exec_arg_t xargs[] = {{DNNL_ARG_FROM, x}, {DNNL_ARG_TO, l->src}};
        CHECK(dnnl_primitive_execute(reorder, stream, 2, xargs));
    }
    CHECK(dnnl_stream_wait(stream));
    CHECK(dnnl_memory_create(&l->dst, &dstMd, engine, l->y));
}

static void prepare(Layer *l, int strategy) {
    if (strategy == DNNL_MATMUL) makeMatmul(l, dnnl_f32);
    if (strategy == DNNL_BF16) makeMatmul(l, dnnl_bf16);
    if (strategy == CFM_BF16) {
        l->packed = malloc(cfm_bf16_packed_count(l->N, l->K) * sizeof(uint16_t));
        cfm_bf16_pack_weights(l->N, l->K, l->w, l->K, l->packed);
    }
    if (strategy == CFM_FP32) {
        l->packed32 = malloc(cfm_f32_packed_count(l->N, l->K) * sizeof(float));
        cfm_f32_pack_weights(l->N, l->K, l->w, l->K, l->packed32);
    }
}

static void run(const Layer *l, int strategy) {
    switch (strategy) {
    case ROWS: case COLS: case CFM_FP32: case CFM_BF16: splitRun(l, strategy); break;
    case OBL_MT:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l->M, l->N, l->K, 1, l->x, l->K, l->w, l->K, 1, l->y, l->N);
        break;
    case DNNL_SGEMM: dnnl_sgemm('N', 'T', l->M, l->N, l->K, 1, l->x, l->K, l->w, l->K, 1, l->y, l->N); break;
    case DNNL_MATMUL: case DNNL_BF16: {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, l->src}, {DNNL_ARG_WEIGHTS, l->wei}, {DNNL_ARG_DST, l->dst}};
        CHECK(dnnl_primitive_execute(l->matmul, stream, 3, args));
        CHECK(dnnl_stream_wait(stream));
        break;
    }
    }
}

typedef struct { const char *name; int M, N, K; } Shape;

/// The model's GEMM shapes (full tier, 2 cores): the ViT-B/8 block at 785 tokens, the Point-MAE
/// block at 1024 groups, mini-PointNet's wide convolutions on a chunk of 64 groups × 128
/// points, the 2D→3D mapper on the 4096 pixels of the frame's unmasked subset.
static const Shape vitQKV = {"vit qkv", 785, 2304, 768}, vitProj = {"vit proj", 785, 768, 768},
    vitFC1 = {"vit fc1", 785, 3072, 768}, vitFC2 = {"vit fc2", 785, 768, 3072},
    pmaeQKV = {"pmae qkv", 1024, 1152, 384}, pmaeProj = {"pmae proj", 1024, 384, 384},
    pmaeFC1 = {"pmae fc1", 1024, 1536, 384}, pmaeFC2 = {"pmae fc2", 1024, 384, 1536},
    pnetConv2 = {"pnet conv2", 8192, 256, 128}, pnetConv4 = {"pnet conv4", 8192, 384, 512},
    mapIn = {"map in", 4096, 960, 768}, mapProj = {"map proj", 4096, 960, 960}, mapOut = {"map out", 4096, 1152, 960};

/// A stage: its layers in the order they run, `times` over (blocks), each with its own weights.
typedef struct { const char *name; int times, count; const Shape *layers[4]; } Stage;

static const Stage stages[] = {
    {"vit 12 blocks", 12, 4, {&vitQKV, &vitProj, &vitFC1, &vitFC2}},
    {"vit 1 block", 1, 4, {&vitQKV, &vitProj, &vitFC1, &vitFC2}},
    {"pmae 12 blocks", 12, 4, {&pmaeQKV, &pmaeProj, &pmaeFC1, &pmaeFC2}},
    {"pnet 16 chunks", 16, 2, {&pnetConv2, &pnetConv4}},
    {"mapper", 1, 3, {&mapIn, &mapProj, &mapOut}},
};

/// Deterministic values in [-0.5, 0.5).
static float *filled(size_t count, long seed) {
    float *v = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++) v[i] = (float)(((long)i * seed) % 1000) / 1000 - 0.5f;
    return v;
}

static Layer makeLayer(const Shape *s, const float *x, float *y, int strategy, long seed) {
    Layer l = {s->M, s->N, s->K, x, filled((size_t)s->N * s->K, seed), y, NULL, NULL, NULL, NULL, NULL, NULL};
    prepare(&l, strategy);
    return l;
}

static double median(double *t, int n) {
    qsort(t, n, sizeof(double), cmp);
    return t[n / 2];
}

/// calls: each shape on its own, the same call `repeats` times.
static void benchCalls(int strategy, int repeats) {
    const Shape *all[] = {&vitQKV, &vitProj, &vitFC1, &vitFC2, &pmaeQKV, &pmaeProj, &pmaeFC1, &pmaeFC2,
                          &pnetConv2, &pnetConv4, &mapIn, &mapProj, &mapOut};
    for (size_t s = 0; s < sizeof all / sizeof all[0]; s++) {
        const Shape *shape = all[s];
        float *x = filled((size_t)shape->M * shape->K, 7919), *y = calloc((size_t)shape->M * shape->N, sizeof(float));
        Layer l = makeLayer(shape, x, y, strategy, 104729);
        double t[256];
        run(&l, strategy);  // warm-up: thread pools, first touch
        for (int r = 0; r < repeats; r++) {
            double t0 = now();
            run(&l, strategy);
            t[r] = now() - t0;
        }
        double seconds = median(t, repeats);
        char label[64];
        snprintf(label, sizeof label, "%s %dx%dx%d", shape->name, shape->M, shape->N, shape->K);
        printf("%s\t%-28s\t%8.2f ms\t%6.1f GFLOP/s\n", names[strategy], label, 1e3 * seconds,
               2.0 * shape->M * shape->N * shape->K / seconds / 1e9);
        fflush(stdout);
        free(x); free(y); free((void *)l.w); free(l.packed); free(l.packed32);
    }
}

/// versus: each shape timed with `strategy` and with `rows` (OpenBLAS) in turn, call by call, the
/// median of the per-pair ratios (rows' time / the strategy's): on a machine whose speed drifts
/// between runs, a comparison each pair of calls sees under the same conditions. `rowsDivisor`
/// divides every shape's M (2: the rows one core gets from the 2-core split).
static void benchVersus(int strategy, int repeats, int rowsDivisor) {
    const Shape *all[] = {&vitQKV, &vitProj, &vitFC1, &vitFC2, &pmaeQKV, &pmaeProj, &pmaeFC1, &pmaeFC2,
                          &pnetConv2, &pnetConv4, &mapIn, &mapProj, &mapOut};
    double logSum = 0;
    for (size_t s = 0; s < sizeof all / sizeof all[0]; s++) {
        Shape shape = *all[s];
        shape.M /= rowsDivisor;
        float *x = filled((size_t)shape.M * shape.K, 7919), *y = calloc((size_t)shape.M * shape.N, sizeof(float));
        Layer l = makeLayer(&shape, x, y, strategy, 104729), reference = l;
        run(&l, strategy), run(&reference, ROWS);  // warm-up
        double ratio[256];
        for (int r = 0; r < repeats; r++) {
            double t0 = now();
            run(&l, strategy);
            double t1 = now();
            run(&reference, ROWS);
            ratio[r] = (now() - t1) / (t1 - t0);
        }
        double typical = median(ratio, repeats);
        logSum += log(typical);
        char label[64];
        snprintf(label, sizeof label, "%s %dx%dx%d", shape.name, shape.M, shape.N, shape.K);
        printf("%s\t%-28s\t%.3f × rows' speed\n", names[strategy], label, typical);
        fflush(stdout);
        free(x); free(y); free((void *)l.w); free(l.packed); free(l.packed32);
    }
    printf("%s\tgeometric mean of the shapes\t%.3f × rows' speed\n", names[strategy], exp(logSum / (sizeof all / sizeof all[0])));
}

/// stages: every layer of a stage back to back, each with weights of its own.
static void benchStages(int strategy, int repeats) {
    for (size_t s = 0; s < sizeof stages / sizeof stages[0]; s++) {
        const Stage *stage = &stages[s];
        int layers = stage->times * stage->count;
        size_t xMax = 0, yMax = 0;
        double flop = 0;
        for (int i = 0; i < stage->count; i++) {
            const Shape *shape = stage->layers[i];
            if ((size_t)shape->M * shape->K > xMax) xMax = (size_t)shape->M * shape->K;
            if ((size_t)shape->M * shape->N > yMax) yMax = (size_t)shape->M * shape->N;
            flop += 2.0 * shape->M * shape->N * shape->K * stage->times;
        }
        float *x = filled(xMax, 7919), *y = calloc(yMax, sizeof(float));
        Layer *l = malloc(layers * sizeof(Layer));
        for (int i = 0; i < layers; i++) l[i] = makeLayer(stage->layers[i % stage->count], x, y, strategy, 104729 + 2 * i);
        double t[256];
        for (int i = 0; i < layers; i++) run(&l[i], strategy);  // warm-up
        for (int r = 0; r < repeats; r++) {
            double t0 = now();
            for (int i = 0; i < layers; i++) run(&l[i], strategy);
            t[r] = now() - t0;
        }
        double seconds = median(t, repeats);
        char label[64];
        snprintf(label, sizeof label, "%s (%d layers)", stage->name, layers);
        printf("%s\t%-28s\t%8.2f ms\t%6.1f GFLOP/s\n", names[strategy], label, 1e3 * seconds, flop / seconds / 1e9);
        fflush(stdout);
        for (int i = 0; i < layers; i++) { free((void *)l[i].w); free(l[i].packed); free(l[i].packed32); }
        free(l); free(x); free(y);
    }
}

int main(int argc, char **argv) {
    int strategy = -1;
    for (int k = 0; argc > 1 && k < STRATEGIES; k++)
        if (!strcmp(argv[1], names[k])) strategy = k;
    int stagesMode = argc > 2 && !strcmp(argv[2], "stages"), versusMode = argc > 2 && !strcmp(argv[2], "versus");
    int repeats = argc > 3 ? atoi(argv[3]) : 15;
    if (strategy < 0 || argc < 3 || (!stagesMode && !versusMode && strcmp(argv[2], "calls")) || repeats < 1 || repeats > 256) {
        fprintf(stderr, "usage: gemm_bench rows|cols|obl-mt|dnnl-sgemm|dnnl-matmul|cfm-fp32|cfm-bf16|dnnl-bf16 calls|stages|versus [repeats ≤ 256]\n");
        return 2;
    }
    if ((strategy == CFM_BF16 || strategy == DNNL_BF16) && !cfm_cpu_has_avx512_bf16()) {
        fprintf(stderr, "%s needs AVX512-BF16, which this CPU lacks\n", names[strategy]);
        return 1;
    }
    if (getenv("GEMM_CORES")) cores = atoi(getenv("GEMM_CORES"));
    if (cores < 1 || cores > 16) {
        fprintf(stderr, "GEMM_CORES must be 1–16\n");
        return 2;
    }
    if (cores == 1) {
        const char *omp = getenv("OMP_NUM_THREADS");
        if (!omp || atoi(omp) != 1) {
            fprintf(stderr, "GEMM_CORES=1 needs OMP_NUM_THREADS=1 (its CPU-time clock counts one working thread)\n");
            return 2;
        }
        timer = CLOCK_PROCESS_CPUTIME_ID;
    }
    openblas_set_num_threads(strategy == OBL_MT ? cores : 1);
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    int rowsDivisor = getenv("GEMM_ROWS_DIVISOR") ? atoi(getenv("GEMM_ROWS_DIVISOR")) : 1;
    if (rowsDivisor < 1 || rowsDivisor > 8) {
        fprintf(stderr, "GEMM_ROWS_DIVISOR must be 1–8\n");
        return 2;
    }
    if (versusMode) benchVersus(strategy, repeats, rowsDivisor);
    else if (stagesMode) benchStages(strategy, repeats);
    else benchCalls(strategy, repeats);
    return 0;
}

// Linear-layer GEMM strategies on this machine's cores, on the model's real shapes.
//
// y[M,N] = x[M,K] · Wᵀ (W stored [N,K]) + y (bias prefilled, beta = 1), as `linear` runs it.
// Strategies: OpenBLAS single-threaded per core on row chunks (rows), on column chunks
// (cols: each core packs half of W), OpenBLAS's own threads on one call (obl-mt),
// oneDNN's dnnl_sgemm on one call (dnnl-sgemm), and oneDNN's matmul primitive with W
// reordered once into its blocked layout (dnnl-matmul, weights packed at load time).
// Prints the median GFLOP/s of each over repeated runs, per `cores` cores of CPU time.
//
// Build: cc -O2 -o /tmp/gemm_bench tools/gemm-bench/gemm_bench.c -lopenblas -ldnnl -lgomp -lpthread
// Run:   OMP_NUM_THREADS=2 /tmp/gemm_bench STRATEGY(0-4, -1 all) [repeats]
#include <cblas.h>
#include <dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(call) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) { \
    fprintf(stderr, "%s failed: %d\n", #call, (int)s_); exit(1); } } while (0)

static int cores = 2;

/// Process CPU seconds (all threads, spinning included): on a machine shared with other
/// work, wall time measures the neighbours; CPU time divided by the cores measures the kernel.
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct { int M, N, K; const float *x, *w; float *y; int part, parts, byCols; } Job;

static void *runJob(void *p) {
    Job *j = p;
    if (j->byCols) {
        int n0 = j->N * j->part / j->parts, n1 = j->N * (j->part + 1) / j->parts;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->M, n1 - n0, j->K, 1, j->x, j->K,
                    j->w + (size_t)n0 * j->K, j->K, 1, j->y + n0, j->N);
    } else {
        int m0 = j->M * j->part / j->parts, m1 = j->M * (j->part + 1) / j->parts;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m1 - m0, j->N, j->K, 1, j->x + (size_t)m0 * j->K, j->K,
                    j->w, j->K, 1, j->y + (size_t)m0 * j->N, j->N);
    }
    return NULL;
}

static void splitRun(int M, int N, int K, const float *x, const float *w, float *y, int byCols) {
    pthread_t t[8];
    Job jobs[8];
    for (int i = 0; i < cores; i++) {
        jobs[i] = (Job){M, N, K, x, w, y, i, cores, byCols};
        pthread_create(&t[i], NULL, runJob, &jobs[i]);
    }
    for (int i = 0; i < cores; i++) pthread_join(t[i], NULL);
}

typedef struct { dnnl_primitive_t prim; dnnl_memory_t src, wei, dst; dnnl_stream_t stream; } Matmul;

static Matmul makeMatmul(dnnl_engine_t eng, int M, int N, int K, const float *w, float *x, float *y) {
    Matmul m;
    dnnl_memory_desc_t srcMd, weiMd, dstMd, weiAny, plainW;
    dnnl_dims_t sd = {M, K}, wd = {K, N}, dd = {M, N}, wStrides = {1, K};
    CHECK(dnnl_memory_desc_init_by_tag(&srcMd, 2, sd, dnnl_f32, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&weiAny, 2, wd, dnnl_f32, dnnl_format_tag_any));
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
    CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, eng, NULL));
    weiMd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const char *impl;
    CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
    fprintf(stderr, "  matmul %dx%dx%d impl %s\n", M, N, K, impl);
    CHECK(dnnl_primitive_create(&m.prim, pd));
    CHECK(dnnl_stream_create(&m.stream, eng, dnnl_stream_default_flags));
    dnnl_memory_t plain;
    CHECK(dnnl_memory_create(&plain, &plainW, eng, (void *)w));
    CHECK(dnnl_memory_create(&m.wei, &weiMd, eng, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t rpd;
    CHECK(dnnl_reorder_primitive_desc_create(&rpd, &plainW, eng, &weiMd, eng, NULL));
    dnnl_primitive_t reorder;
    CHECK(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t rargs[] = {{DNNL_ARG_FROM, plain}, {DNNL_ARG_TO, m.wei}};
    CHECK(dnnl_primitive_execute(reorder, m.stream, 2, rargs));
    CHECK(dnnl_stream_wait(m.stream));
    CHECK(dnnl_memory_create(&m.src, &srcMd, eng, x));
    CHECK(dnnl_memory_create(&m.dst, &dstMd, eng, y));
    return m;
}

static void runMatmul(Matmul *m) {
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, m->src}, {DNNL_ARG_WEIGHTS, m->wei}, {DNNL_ARG_DST, m->dst}};
    CHECK(dnnl_primitive_execute(m->prim, m->stream, 3, args));
    CHECK(dnnl_stream_wait(m->stream));
}

int main(int argc, char **argv) {
    int only = argc > 1 ? atoi(argv[1]) : -1;  // one strategy per process: thread pools don't overlap
    int repeats = argc > 2 ? atoi(argv[2]) : 15;
    struct { const char *name; int M, N, K; } shapes[] = {
        {"vit qkv", 785, 2304, 768}, {"vit proj", 785, 768, 768}, {"vit fc1", 785, 3072, 768},
        {"vit fc2", 785, 768, 3072}, {"pmae qkv", 1024, 1152, 384}, {"pmae fc1", 1024, 1536, 384},
        {"pmae fc2", 1024, 384, 1536}, {"pnet conv2", 8192, 256, 128}, {"pnet conv4", 8192, 384, 512},
        {"map full in", 4096, 960, 768}, {"map full proj", 4096, 960, 960}, {"map full out", 4096, 1152, 960},
    };
    const char *names[] = {"rows", "cols", "obl-mt", "dnnl-sgemm", "dnnl-matmul"};
    dnnl_engine_t eng;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s].M, N = shapes[s].N, K = shapes[s].K;
        float *x = malloc(sizeof(float) * M * K), *w = malloc(sizeof(float) * N * K), *y = calloc((size_t)M * N, sizeof(float));
        for (long i = 0; i < (long)M * K; i++) x[i] = (float)((i * 7919) % 1000) / 1000 - 0.5f;
        for (long i = 0; i < (long)N * K; i++) w[i] = (float)((i * 104729) % 1000) / 1000 - 0.5f;
        Matmul mm = makeMatmul(eng, M, N, K, w, x, y);
        double t[5][64];
        for (int r = 0; r < repeats; r++) {
            for (int k = 0; k < 5; k++) {
                if (only >= 0 && k != only) continue;
                memset(y, 0, sizeof(float) * M * N);
                double t0 = now();
                switch (k) {
                case 0: openblas_set_num_threads(1); splitRun(M, N, K, x, w, y, 0); break;
                case 1: openblas_set_num_threads(1); splitRun(M, N, K, x, w, y, 1); break;
                case 2: openblas_set_num_threads(cores);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, x, K, w, K, 1, y, N); break;
                case 3: dnnl_sgemm('N', 'T', M, N, K, 1, x, K, w, K, 1, y, N); break;
                case 4: runMatmul(&mm); break;
                }
                t[k][r] = now() - t0;
            }
        }
        printf("%-14s %5dx%5dx%5d", shapes[s].name, M, N, K);
        for (int k = 0; k < 5; k++) {
            if (only >= 0 && k != only) continue;
            qsort(t[k], repeats, sizeof(double), cmp);
            printf("  %s %6.1f", names[k], 2.0 * M * N * K * cores / t[k][repeats / 2] / 1e9);
        }
        printf("\n");
        fflush(stdout);
        free(x); free(w); free(y);
    }
    return 0;
}

/* netbench.c: see netbench.h. */
#include "netbench.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collective.h"

#define NETBENCH_TAG 7301

int netbench_sizes(const netbench_options *opt, size_t *bytes) {
    int n = 0;
    for (size_t s = opt->min_bytes; s < opt->max_bytes && n < NETBENCH_MAX_SIZES - 1;
         s *= NETBENCH_STEP)
        bytes[n++] = s;
    bytes[n++] = opt->max_bytes;
    return n;
}

netbench_fit netbench_fit_curve(const size_t *bytes, const double *one_way_s, int n) {
    netbench_fit f = {one_way_s[0], (double)bytes[n - 1] / one_way_s[n - 1], 0};
    if (n > 1 && one_way_s[n - 1] >= 2 * one_way_s[0]) {
        f.bandwidth_Bps = (double)(bytes[n - 1] - bytes[0]) / (one_way_s[n - 1] - one_way_s[0]);
        f.slope = 1;
    }
    return f;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double netbench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, compare_doubles);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---------------------------------------------------------------- measurement */

/* What rank 0 learns: one-way times per pair and size, and their summaries. */
typedef struct {
    int ranks, n_pairs, n_sizes; /* pair p is (0, p + 1) */
    size_t bytes[NETBENCH_MAX_SIZES];
    double *one_way;                                              /* [n_pairs][n_sizes] seconds */
    netbench_fit *fit;                                            /* [n_pairs] */
    double worst[NETBENCH_MAX_SIZES], median[NETBENCH_MAX_SIZES]; /* over pairs */
    netbench_fit worst_fit, median_fit;
    char *hosts; /* [ranks][MPI_MAX_PROCESSOR_NAME] */
} bench_result;

/* A barrier that sleeps while it waits: the ranks outside the pair being measured must not
 * poll (MPICH spins in blocking calls) on the cores the pair runs on. Naps of 10 ms, not 1:
 * with more ranks than cores, frequent wake-ups kept the pair on one core and its one-way
 * time became the nap (4 ranks on 2 cores here); at 10 ms the pair gets a core each. */
static void sleeping_barrier(MPI_Comm comm) {
    MPI_Request req;
    int done = 0;
    struct timespec nap = {0, 10000000};
    MPI_Ibarrier(comm, &req);
    for (;;) {
        MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (done) return;
        nanosleep(&nap, NULL);
    }
}

/* One pair, every size: rank 0 sends, the peer echoes. Each round trip is timed on its own
 * (MPI_Wtime on rank 0 only, so no clocks need to agree); one-way = median / 2. */
static void ping_pong(int rank, int peer, MPI_Comm comm, char *buf, const bench_result *res,
                      int repeats, double *rtt, double *one_way) {
    for (int k = 0; k < res->n_sizes; k++) {
        int count = (int)res->bytes[k];
        for (int r = 0; r < NETBENCH_WARMUP + repeats; r++) {
            if (rank == 0) {
                double start = MPI_Wtime();
                MPI_Send(buf, count, MPI_BYTE, peer, NETBENCH_TAG, comm);
                MPI_Recv(buf, count, MPI_BYTE, peer, NETBENCH_TAG, comm, MPI_STATUS_IGNORE);
                double elapsed = MPI_Wtime() - start;
                if (r >= NETBENCH_WARMUP) rtt[r - NETBENCH_WARMUP] = elapsed;
            } else {
                MPI_Recv(buf, count, MPI_BYTE, 0, NETBENCH_TAG, comm, MPI_STATUS_IGNORE);
                MPI_Send(buf, count, MPI_BYTE, 0, NETBENCH_TAG, comm);
            }
        }
        if (rank == 0) one_way[k] = netbench_median(rtt, repeats) / 2;
    }
}

/* Pairs one after another, so no two share the network or the cores. */
static void measure(const netbench_options *opt, MPI_Comm comm, int rank, bench_result *res) {
    char *buf = xmalloc(res->bytes[res->n_sizes - 1]);
    memset(buf, 0x5a, res->bytes[res->n_sizes - 1]); /* pages touched before any timing */
    double *rtt = xmalloc_array((size_t)opt->repeats, sizeof *rtt);
    for (int p = 0; p < res->n_pairs; p++) {
        sleeping_barrier(comm);
        if (rank == 0 || rank == p + 1)
            ping_pong(rank, p + 1, comm, buf, res, opt->repeats, rtt,
                      res->one_way + (size_t)p * res->n_sizes);
    }
    sleeping_barrier(comm);
    free(rtt);
    free(buf);
}

/* Per-pair fits, then the slowest and the median pair at each size and their fits. */
static void summarise(bench_result *res) {
    double *column = xmalloc_array((size_t)res->n_pairs, sizeof *column);
    for (int p = 0; p < res->n_pairs; p++)
        res->fit[p] =
            netbench_fit_curve(res->bytes, res->one_way + (size_t)p * res->n_sizes, res->n_sizes);
    for (int k = 0; k < res->n_sizes; k++) {
        for (int p = 0; p < res->n_pairs; p++)
            column[p] = res->one_way[(size_t)p * res->n_sizes + k];
        res->median[k] = netbench_median(column, res->n_pairs);
        res->worst[k] = column[res->n_pairs - 1]; /* sorted by netbench_median */
    }
    res->worst_fit = netbench_fit_curve(res->bytes, res->worst, res->n_sizes);
    res->median_fit = netbench_fit_curve(res->bytes, res->median, res->n_sizes);
    free(column);
}

/* ---------------------------------------------------------------- output */

static const char *host_of(const bench_result *res, int rank) {
    return res->hosts + (size_t)rank * MPI_MAX_PROCESSOR_NAME;
}

/* "8 B", "4 KiB", "16 MiB", or the byte count when it is no whole power of 1024 units. */
static void format_size(size_t b, char *out, size_t cap) {
    if (b >= (1u << 20) && b % (1u << 20) == 0)
        snprintf(out, cap, "%zu MiB", b >> 20);
    else if (b >= 1024 && b % 1024 == 0)
        snprintf(out, cap, "%zu KiB", b >> 10);
    else
        snprintf(out, cap, "%zu B", b);
}

static void print_table(const netbench_options *opt, const bench_result *res) {
    int many = res->n_pairs > 1;
    char lo[32], hi[32];
    format_size(res->bytes[0], lo, sizeof lo);
    format_size(res->bytes[res->n_sizes - 1], hi, sizeof hi);
    printf("netbench: %d ranks, rank 0 with each other rank (%d pair%s), %d timed round trips "
           "per size after %d warm-up\n",
           res->ranks, res->n_pairs, many ? "s" : "", opt->repeats, NETBENCH_WARMUP);
    printf("one_way = median round trip / 2; bandwidth = bytes / one_way%s\n",
           many ? "; slowest pair, then the median pair" : "");
    printf("%12s %14s %16s", "bytes", "one_way_us", "bandwidth_MB/s");
    if (many) printf(" %14s %16s", "median_us", "median_MB/s");
    printf("\n");
    for (int k = 0; k < res->n_sizes; k++) {
        double b = (double)res->bytes[k];
        printf("%12zu %14.3f %16.2f", res->bytes[k], res->worst[k] * 1e6, b / res->worst[k] / 1e6);
        if (many) printf(" %14.3f %16.2f", res->median[k] * 1e6, b / res->median[k] / 1e6);
        printf("\n");
    }
    printf("%-9s %-40s %12s %16s\n", "pair", "hosts", "latency_us", "bandwidth_MB/s");
    for (int p = 0; p < res->n_pairs; p++) {
        char pair[32], hosts[2 * MPI_MAX_PROCESSOR_NAME + 2];
        snprintf(pair, sizeof pair, "0-%d", p + 1);
        snprintf(hosts, sizeof hosts, "%s/%s", host_of(res, 0), host_of(res, p + 1));
        printf("%-9s %-40s %12.3f %16.2f\n", pair, hosts, res->fit[p].latency_s * 1e6,
               res->fit[p].bandwidth_Bps / 1e6);
    }
    const netbench_fit *f = &res->worst_fit;
    const char *whose = many ? ", slowest pair" : "";
    printf("latency_s     %.6e  (%.3f us: one-way time of %s%s)\n", f->latency_s,
           f->latency_s * 1e6, lo, whose);
    if (f->slope)
        printf("bandwidth_Bps %.6e  (%.2f MB/s: slope from %s to %s%s)\n", f->bandwidth_Bps,
               f->bandwidth_Bps / 1e6, lo, hi, whose);
    else
        printf("bandwidth_Bps %.6e  (%.2f MB/s: %s / its one-way time%s)\n", f->bandwidth_Bps,
               f->bandwidth_Bps / 1e6, hi, whose);
}

/* JSON has no inf or NaN: those (a round trip below the clock's tick) become null. */
static json_t *real_or_null(double x) {
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *size_rows(const bench_result *res, const double *one_way) {
    json_t *rows = json_array();
    for (int k = 0; k < res->n_sizes; k++)
        json_array_append_new(rows,
                              json_pack("{s:I, s:o, s:o}", "bytes", (json_int_t)res->bytes[k],
                                        "one_way_s", real_or_null(one_way[k]), "bandwidth_Bps",
                                        real_or_null((double)res->bytes[k] / one_way[k])));
    return rows;
}

/* One curve into obj: its fit (and which rule gave the bandwidth), then its sizes. */
static json_t *add_curve(json_t *obj, const bench_result *res, const netbench_fit *f,
                         const double *one_way) {
    json_object_set_new(obj, "latency_s", real_or_null(f->latency_s));
    json_object_set_new(obj, "bandwidth_Bps", real_or_null(f->bandwidth_Bps));
    json_object_set_new(obj, "bandwidth_fit", json_string(f->slope ? "slope" : "largest size"));
    json_object_set_new(obj, "sizes", size_rows(res, one_way));
    return obj;
}

static void print_json(const netbench_options *opt, const bench_result *res) {
    json_t *pairs = json_array();
    for (int p = 0; p < res->n_pairs; p++) {
        json_t *pair = json_pack("{s:[i, i], s:[s, s]}", "pair", 0, p + 1, "hosts", host_of(res, 0),
                                 host_of(res, p + 1));
        add_curve(pair, res, &res->fit[p], res->one_way + (size_t)p * res->n_sizes);
        json_array_append_new(pairs, pair);
    }
    /* the top level is the slowest pair (what a cost model should assume, docs/cli.md) */
    json_t *o = json_object();
    json_object_set_new(o, "ranks", json_integer(res->ranks));
    json_object_set_new(o, "repeats", json_integer(opt->repeats));
    json_object_set_new(o, "warmup", json_integer(NETBENCH_WARMUP));
    json_object_set_new(o, "wtick_s", real_or_null(MPI_Wtick()));
    json_object_set_new(o, "summary", json_string("slowest pair at each size"));
    add_curve(o, res, &res->worst_fit, res->worst);
    json_object_set_new(o, "median", add_curve(json_object(), res, &res->median_fit, res->median));
    json_object_set_new(o, "pairs", pairs);
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17) | JSON_PRESERVE_ORDER);
    if (text) printf("%s\n", text);
    free(text);
    json_decref(o);
}

/* ---------------------------------------------------------------- entry */

int netbench_run(const netbench_options *opt, MPI_Comm comm, ccdl_error *err) {
    int ranks, rank;
    MPI_Comm_size(comm, &ranks);
    MPI_Comm_rank(comm, &rank);
    if (ranks < 2)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "needs at least 2 MPI ranks; run it under mpiexec -n 2 or srun");
    bench_result res = {.ranks = ranks, .n_pairs = ranks - 1};
    res.n_sizes = netbench_sizes(opt, res.bytes);
    /* one message buffer a rank, for every rank on this node */
    int node_ranks = ranks_on_node(comm);
    double need = (double)opt->max_bytes * node_ranks, have = (double)memory_limit_bytes();
    int rc = 0;
    if (need > have)
        rc = ccdl_fail(err, CCDL_ERR_INPUT,
                       "--max-bytes %zu on %d ranks of this node needs %.1f GiB; its memory "
                       "limit is %.1f GiB",
                       opt->max_bytes, node_ranks, need / (1 << 30), have / (1 << 30));
    if (agree(rc, err, comm)) return -1;
    char name[MPI_MAX_PROCESSOR_NAME] = "";
    int len;
    MPI_Get_processor_name(name, &len);
    if (rank == 0) {
        res.one_way =
            xmalloc_array(size_mul((size_t)res.n_pairs, (size_t)res.n_sizes), sizeof *res.one_way);
        res.fit = xmalloc_array((size_t)res.n_pairs, sizeof *res.fit);
        res.hosts = xcalloc((size_t)ranks, MPI_MAX_PROCESSOR_NAME);
    }
    MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, res.hosts, MPI_MAX_PROCESSOR_NAME, MPI_CHAR,
               0, comm);
    measure(opt, comm, rank, &res);
    if (rank == 0) {
        summarise(&res);
        if (opt->json)
            print_json(opt, &res);
        else
            print_table(opt, &res);
        fflush(stdout);
    }
    free(res.one_way), free(res.fit), free(res.hosts);
    return 0;
}

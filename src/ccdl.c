/* ccdl.c: the command-line front end (docs/cli.md).
 *
 *   ccdl run SPEC [--out FILE] [--quiet] [--progress [SECONDS]] [--resume] [--force]
 *                                           train; `mpiexec -n P ccdl run ...` spreads workers
 *   ccdl validate SPEC                      check spec, rank count and data, train nothing
 *   ccdl spec-keys                          print the spec key reference (Markdown table)
 *   ccdl trace-columns                      print the trace column reference (Markdown)
 *   ccdl topology [--kinds K,..] [--n N,..] [--json]   degree, spectral gap, mixing rate
 *   ccdl consensus-bench [options]          the consensus averaging problem (under MPI)
 *   ccdl netbench [options]                 latency and bandwidth between ranks (under MPI)
 *   ccdl --help | --version
 *
 * Exit codes: 0 ok, 1 failure while running, 2 bad input, 3 stopped by a signal with a
 * checkpoint written (resumable). Only rank 0 prints errors. */
#include <jansson.h>
#include <mpi.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "consensus_bench.h"
#include "netbench.h"
#include "spec.h"
#include "topology.h"
#include "trace.h"
#include "train.h"
#include "util.h"

/* GNU layout (Usage / or: / option table), which help2man turns into the man page. */
static const char usage[] =
    "Usage: ccdl run SPEC [--out FILE] [--quiet] [--progress [SECONDS]] [--resume] [--force]\n"
    "  or:  ccdl validate SPEC\n"
    "  or:  ccdl spec-keys | trace-columns\n"
    "  or:  ccdl topology [--kinds K1,K2,..] [--n N1,N2,..] [--json]\n"
    "  or:  ccdl consensus-bench [--n N] [--d D] [--kinds K1,..] [--targets F1,..] "
    "[--max-rounds R] [--seed S] [--out FILE.h5]\n"
    "  or:  ccdl netbench [--min-bytes B] [--max-bytes B] [--repeats N] [--json]\n"
    "  or:  ccdl --help | --version\n"
    "Decentralized deep learning experiments with consensus control. Run under MPI to\n"
    "spread the spec's workers over ranks: mpiexec -n P ccdl run SPEC (P must divide the\n"
    "number of workers); the same spec and seed give the same bits on any P.\n"
    "\n"
    "Commands:\n"
    "  run SPEC              train; write the HDF5 trace (docs/trace.md)\n"
    "  validate SPEC         check spec, data and rank count; train nothing\n"
    "  spec-keys             print the spec key reference (Markdown)\n"
    "  trace-columns         print the trace column reference (Markdown)\n"
    "  topology              degree, spectral gap and mixing rate of topologies\n"
    "  consensus-bench       the consensus averaging problem, under MPI\n"
    "  netbench              latency and bandwidth between ranks (ping-pong), under MPI\n"
    "\n"
    "Options of run:\n"
    "  --out FILE            write the trace to FILE instead of the spec's trace.path\n"
    "  --quiet               print no per-epoch or progress lines\n"
    "  --progress [SECONDS]  print a progress line within epochs every SECONDS (default 60)\n"
    "  --resume              continue from the run's checkpoint if there is one\n"
    "  --force               train again over a completed trace\n"
    "\n"
    "Options of netbench (at least 2 ranks; rank 0 with each other rank in turn):\n"
    "  --min-bytes B         smallest message (default 8); sizes grow 8-fold from it\n"
    "  --max-bytes B         largest message (default 16M); B takes a K, M or G suffix\n"
    "  --repeats N           timed round trips per size, after 3 warm-up (default 20)\n"
    "  --json                print one JSON object (latency_s, bandwidth_Bps, sizes, ..)\n"
    "\n"
    "Exit status: 0 ok, 1 failure while running, 2 bad input (spec, data file, checkpoint,\n"
    "command line), 3 stopped by SIGTERM/SIGINT/SIGUSR1 after writing a checkpoint\n"
    "(resumable).\n"
    "\n"
    "See docs/cli.md, docs/spec.md and docs/checkpoint.md (installed in share/doc/ccdl).\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "ccdl: ");
    fprintf(stderr, fmt, arg);
    fputs(" (see ccdl --help)\n", stderr);
    return CCDL_EXIT_INPUT;
}

/* A duration in seconds: a finite number >= 0, nothing after it. */
static int parse_seconds(const char *v, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno == ERANGE || !isfinite(x) || x < 0) return -1;
    *out = x;
    return 0;
}

static int exit_code(const ccdl_error *err) {
    return err->kind == CCDL_ERR_INPUT     ? CCDL_EXIT_INPUT
           : err->kind == CCDL_ERR_STOPPED ? CCDL_EXIT_STOPPED
                                           : CCDL_EXIT_FAILURE;
}

/* Runs with MPI initialised; returns the exit code (same on every rank). */
static int command_with_mpi(const char *cmd, const char *spec_path, const train_options *opt) {
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    ccdl_spec spec;
    ccdl_error err;
    ccdl_error_clear(&err);
    /* Every rank parses the same file: deterministic, so all fail or succeed together. */
    int rc = spec_load(spec_path, &spec, &err);
    if (rc == 0) {
        if (strcmp(cmd, "run") == 0) {
            rc = train_run(&spec, opt, MPI_COMM_WORLD, &err);
        } else {
            rc = train_validate(&spec, MPI_COMM_WORLD, &err);
            if (rc == 0 && rank == 0) printf("%s: ok\n", spec_path);
        }
    }
    if (rc != 0) {
        if (rank == 0) fprintf(stderr, "ccdl: %s\n", err.text);
        return exit_code(&err);
    }
    return CCDL_EXIT_OK;
}

/* ---------------------------------------------------------------- ccdl topology */

/* Split a comma list into at most cap items (pointers into buf). */
static int split_list(char *buf, char **items, int cap) {
    int count = 0;
    for (char *tok = strtok(buf, ","); tok && count < cap; tok = strtok(NULL, ","))
        items[count++] = tok;
    return count;
}

static int command_topology(int argc, char **argv) {
    char kinds_buf[512] = "", n_buf[256] = "16,32,64";
    int as_json = 0;
    for (int k = 0; topology_kind_names[k]; k++) {
        strcat(kinds_buf, k ? "," : "");
        strcat(kinds_buf, topology_kind_names[k]);
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else if (strcmp(argv[i], "--kinds") == 0 && i + 1 < argc)
            snprintf(kinds_buf, sizeof kinds_buf, "%s", argv[++i]);
        else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            snprintf(n_buf, sizeof n_buf, "%s", argv[++i]);
        else
            return usage_error("topology: unexpected argument '%s'", argv[i]);
    }
    char *kinds[TOPO_KIND_COUNT * 4], *ns[64];
    int nk = split_list(kinds_buf, kinds, TOPO_KIND_COUNT * 4), nn = split_list(n_buf, ns, 64);
    if (!as_json)
        printf("%-22s %5s %6s %6s %14s %14s\n", "kind", "n", "degree", "period", "spectral_gap",
               "p");
    for (int a = 0; a < nk; a++) {
        int kind = topology_kind_from_name(kinds[a]);
        if (kind < 0) {
            fprintf(stderr, "ccdl: topology: --kinds: unknown kind \"%s\"\n", kinds[a]);
            return CCDL_EXIT_INPUT;
        }
        for (int b = 0; b < nn; b++) {
            char *end;
            long n = strtol(ns[b], &end, 10);
            ccdl_error err;
            if (*end || n < 1 || n > 4096) {
                fprintf(stderr, "ccdl: topology: --n: expected integers in [1, 4096]; got \"%s\"\n",
                        ns[b]);
                return CCDL_EXIT_INPUT;
            }
            topology t = {(topology_kind)kind, (int)n, 1};
            topology_mixing m;
            if (topology_mixing_stats(&t, &m, &err)) {
                fprintf(stderr, "ccdl: topology: %s\n", err.text);
                return exit_code(&err);
            }
            if (as_json) {
                json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:f, s:f}", "kind", kinds[a], "n",
                                      (int)n, "degree", m.degree, "period", m.period,
                                      "spectral_gap", m.spectral_gap, "p", m.p);
                char *text =
                    json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17) | JSON_PRESERVE_ORDER);
                printf("%s\n", text);
                free(text);
                json_decref(o);
            } else {
                printf("%-22s %5ld %6d %6d %14.10f %14.10f\n", kinds[a], n, m.degree, m.period,
                       m.spectral_gap, m.p);
            }
        }
    }
    return CCDL_EXIT_OK;
}

/* ---------------------------------------------------------------- ccdl consensus-bench */

/* An integer option in [lo, hi]: digits only (no sign, no wrap-around), no overflow.
 * -1 + err (its text names the option) otherwise. */
static int parse_integer(const char *opt, const char *v, unsigned long long lo,
                         unsigned long long hi, unsigned long long *out, ccdl_error *err) {
    char *end = NULL;
    errno = 0;
    unsigned long long x = v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0;
    if (!end || *end || errno == ERANGE || x < lo || x > hi)
        return ccdl_fail(err, CCDL_ERR_INPUT, "%s: expected an integer in [%llu, %llu]; got '%s'",
                         opt, lo, hi, v);
    *out = x;
    return 0;
}

/* Parse the options; 0, or an exit code after printing a one-line error. */
static int parse_bench_options(int argc, char **argv, consensus_bench_options *o, char *kinds_buf,
                               size_t kinds_cap, char *targets_buf, size_t targets_cap) {
    memset(o, 0, sizeof *o);
    o->n = 32, o->d = 100000, o->max_rounds = 5000, o->seed = 1;
    snprintf(kinds_buf, kinds_cap,
             "complete,exponential,random_matching,torus,ring,"
             "one_peer_exponential,bipartite_exponential");
    snprintf(targets_buf, targets_cap, "0.1,0.01,0.001");
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long x = 0;
        ccdl_error err;
        if (!v) return usage_error("consensus-bench: %s needs a value", a);
        if (strcmp(a, "--n") == 0) {
            if (parse_integer(a, v, 1, BENCH_MAX_N, &x, &err))
                return usage_error("consensus-bench: %s", err.text);
            o->n = (int)x;
        } else if (strcmp(a, "--d") == 0) {
            if (parse_integer(a, v, 1, BENCH_MAX_D, &x, &err))
                return usage_error("consensus-bench: %s", err.text);
            o->d = (size_t)x;
        } else if (strcmp(a, "--max-rounds") == 0) {
            if (parse_integer(a, v, 1, BENCH_MAX_ROUNDS, &x, &err))
                return usage_error("consensus-bench: %s", err.text);
            o->max_rounds = (int)x;
        } else if (strcmp(a, "--seed") == 0) {
            if (parse_integer(a, v, 0, ULLONG_MAX, &x, &err))
                return usage_error("consensus-bench: %s", err.text);
            o->seed = x;
        } else if (strcmp(a, "--kinds") == 0) {
            snprintf(kinds_buf, kinds_cap, "%s", v);
        } else if (strcmp(a, "--targets") == 0) {
            snprintf(targets_buf, targets_cap, "%s", v);
        } else if (strcmp(a, "--out") == 0) {
            o->out = v;
        } else {
            return usage_error("consensus-bench: unknown option '%s'", a);
        }
        i++;
    }
    char *items[64];
    int count = split_list(kinds_buf, items, 64);
    for (int k = 0; k < count && o->n_kinds < TOPO_KIND_COUNT; k++) {
        int kind = topology_kind_from_name(items[k]);
        if (kind < 0) return usage_error("consensus-bench: --kinds: unknown kind '%s'", items[k]);
        o->kinds[o->n_kinds++] = kind;
    }
    count = split_list(targets_buf, items, BENCH_MAX_TARGETS);
    for (int k = 0; k < count; k++) {
        char *end;
        o->targets[k] = strtod(items[k], &end);
        if (*end || !(o->targets[k] > 0 && o->targets[k] < 1))
            return usage_error("consensus-bench: --targets: expected fractions in (0, 1); got '%s'",
                               items[k]);
    }
    o->n_targets = count;
    return 0;
}

static int command_consensus_bench(int argc, char **argv) {
    consensus_bench_options o;
    char kinds[512], targets[256];
    int rc = parse_bench_options(argc, argv, &o, kinds, sizeof kinds, targets, sizeof targets);
    if (rc) return rc;
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    ccdl_error err;
    ccdl_error_clear(&err);
    int code = CCDL_EXIT_OK;
    if (consensus_bench_run(&o, MPI_COMM_WORLD, &err)) {
        if (rank == 0) fprintf(stderr, "ccdl: consensus-bench: %s\n", err.text);
        code = exit_code(&err);
    }
    MPI_Finalize();
    return code;
}

/* ---------------------------------------------------------------- ccdl netbench */

/* A message size: digits, optionally K, M or G (KiB, MiB, GiB; "KiB" etc. accepted too),
 * in [1, NETBENCH_MAX_BYTES]. -1 + err naming the option otherwise. */
static int parse_bytes(const char *opt, const char *v, size_t *out, ccdl_error *err) {
    char *end = NULL;
    errno = 0;
    unsigned long long x = v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0, unit = 0;
    if (end && errno != ERANGE) {
        const char *suffix = end[0] && (!end[1] || strcmp(end + 1, "iB") == 0) ? end : "?";
        unit = !end[0]            ? 1
               : suffix[0] == 'K' ? 1ull << 10
               : suffix[0] == 'M' ? 1ull << 20
               : suffix[0] == 'G' ? 1ull << 30
                                  : 0;
    }
    if (!unit || x < 1 || x > NETBENCH_MAX_BYTES / unit)
        return ccdl_fail(err, CCDL_ERR_INPUT,
                         "%s: expected a size in bytes in [1, %u] (or with K, M, G); got '%s'", opt,
                         NETBENCH_MAX_BYTES, v);
    *out = (size_t)(x * unit);
    return 0;
}

/* Options as given; a bound not given follows the other one (--max-bytes 4: one size). */
static int parse_netbench_options(int argc, char **argv, netbench_options *o, ccdl_error *err) {
    o->min_bytes = NETBENCH_DEFAULT_MIN, o->max_bytes = NETBENCH_DEFAULT_MAX;
    o->repeats = NETBENCH_DEFAULT_REPEATS, o->json = 0;
    int min_given = 0, max_given = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long x = 0;
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (a[0] != '-') return ccdl_fail(err, CCDL_ERR_INPUT, "unexpected argument '%s'", a);
        if (strcmp(a, "--min-bytes") && strcmp(a, "--max-bytes") && strcmp(a, "--repeats"))
            return ccdl_fail(err, CCDL_ERR_INPUT, "unknown option '%s'", a);
        if (!v) return ccdl_fail(err, CCDL_ERR_INPUT, "%s needs a value", a);
        i++;
        if (strcmp(a, "--min-bytes") == 0) {
            if (parse_bytes(a, v, &o->min_bytes, err)) return -1;
            min_given = 1;
        } else if (strcmp(a, "--max-bytes") == 0) {
            if (parse_bytes(a, v, &o->max_bytes, err)) return -1;
            max_given = 1;
        } else {
            if (parse_integer(a, v, 1, NETBENCH_MAX_REPEATS, &x, err)) return -1;
            o->repeats = (int)x;
        }
    }
    if (min_given && max_given && o->min_bytes > o->max_bytes)
        return ccdl_fail(err, CCDL_ERR_INPUT, "--min-bytes %zu is larger than --max-bytes %zu",
                         o->min_bytes, o->max_bytes);
    if (!min_given && o->min_bytes > o->max_bytes) o->min_bytes = o->max_bytes;
    if (!max_given && o->max_bytes < o->min_bytes) o->max_bytes = o->min_bytes;
    return 0;
}

/* Options are parsed after MPI_Init (every rank alike, so all fail together) so that only
 * rank 0 prints the error line. */
static int command_netbench(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    netbench_options o;
    ccdl_error err;
    ccdl_error_clear(&err);
    int code = CCDL_EXIT_OK;
    if (parse_netbench_options(argc, argv, &o, &err)) {
        if (rank == 0) fprintf(stderr, "ccdl: netbench: %s (see ccdl --help)\n", err.text);
        code = CCDL_EXIT_INPUT;
    } else if (netbench_run(&o, MPI_COMM_WORLD, &err)) {
        if (rank == 0) fprintf(stderr, "ccdl: netbench: %s\n", err.text);
        code = exit_code(&err);
    }
    MPI_Finalize();
    return code;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage_error("%s", "missing command");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage, stdout);
        return CCDL_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("ccdl %s\n", PACKAGE_VERSION);
        return CCDL_EXIT_OK;
    }
    if (strcmp(cmd, "spec-keys") == 0) {
        spec_print_reference();
        return CCDL_EXIT_OK;
    }
    if (strcmp(cmd, "trace-columns") == 0) {
        trace_print_reference();
        return CCDL_EXIT_OK;
    }
    if (strcmp(cmd, "topology") == 0) return command_topology(argc, argv);
    if (strcmp(cmd, "consensus-bench") == 0) return command_consensus_bench(argc, argv);
    if (strcmp(cmd, "netbench") == 0) return command_netbench(argc, argv);
    if (strcmp(cmd, "run") != 0 && strcmp(cmd, "validate") != 0)
        return usage_error("unknown command '%s'", cmd);
    const char *spec_path = NULL;
    train_options opt = {0};
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && strcmp(cmd, "run") == 0) {
            if (++i == argc) return usage_error("%s", "--out needs a file name");
            opt.trace_path = argv[i];
        } else if (strcmp(argv[i], "--quiet") == 0 && strcmp(cmd, "run") == 0) {
            opt.quiet = 1;
        } else if (strcmp(argv[i], "--progress") == 0 && strcmp(cmd, "run") == 0) {
            /* Lines only when asked (stderr of a default run stays as it was); the value is
             * optional, and whatever looks like a number is taken as it. */
            opt.progress_s = 60;
            const char *v = i + 1 < argc ? argv[i + 1] : "";
            int digit0 = v[0] >= '0' && v[0] <= '9', digit1 = v[0] && v[1] >= '0' && v[1] <= '9';
            if (digit0 || ((v[0] == '.' || v[0] == '+' || v[0] == '-') && digit1)) {
                i++;
                if (parse_seconds(v, &opt.progress_s))
                    return usage_error("--progress: expected seconds >= 0; got '%s'", v);
            }
        } else if (strcmp(argv[i], "--resume") == 0 && strcmp(cmd, "run") == 0) {
            opt.resume = 1;
        } else if (strcmp(argv[i], "--force") == 0 && strcmp(cmd, "run") == 0) {
            opt.force = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error("unknown option '%s'", argv[i]);
        } else if (!spec_path) {
            spec_path = argv[i];
        } else {
            return usage_error("unexpected argument '%s'", argv[i]);
        }
    }
    if (!spec_path) return usage_error("%s", "missing SPEC file");
    MPI_Init(&argc, &argv);
    int code = command_with_mpi(cmd, spec_path, &opt);
    MPI_Finalize();
    return code;
}

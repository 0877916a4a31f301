/* ccdl.c: the command-line front end (docs/cli.md).
 *
 *   ccdl run SPEC [--out FILE] [--quiet]   train; `mpiexec -n P ccdl run ...` spreads workers
 *   ccdl validate SPEC                      check spec, rank count and data, train nothing
 *   ccdl spec-keys                          print the spec key reference (Markdown table)
 *   ccdl --help | --version
 *
 * Exit codes: 0 ok, 1 failure while running, 2 bad input. Only rank 0 prints errors. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "spec.h"
#include "train.h"
#include "util.h"

static const char usage[] =
    "usage: ccdl run SPEC [--out FILE] [--quiet]\n"
    "       ccdl validate SPEC\n"
    "       ccdl spec-keys\n"
    "       ccdl --help | --version\n"
    "\n"
    "Decentralized deep learning experiments with consensus control.\n"
    "Run under MPI to spread the spec's workers over ranks: mpiexec -n P ccdl run SPEC\n"
    "(P must divide the number of workers). Exit codes: 0 ok, 1 failure while running,\n"
    "2 bad input (spec, data file, command line). See docs/cli.md and docs/spec.md.\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "ccdl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return CCDL_EXIT_INPUT;
}

static int exit_code(const ccdl_error *err) {
    return err->kind == CCDL_ERR_INPUT ? CCDL_EXIT_INPUT : CCDL_EXIT_FAILURE;
}

/* Runs with MPI initialised; returns the exit code (same on every rank). */
static int command_with_mpi(const char *cmd, const char *spec_path, const char *out, int quiet) {
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    ccdl_spec spec;
    ccdl_error err;
    ccdl_error_clear(&err);
    /* Every rank parses the same file: deterministic, so all fail or succeed together. */
    int rc = spec_load(spec_path, &spec, &err);
    if (rc == 0) {
        if (strcmp(cmd, "run") == 0) {
            train_options opt = {out, quiet};
            rc = train_run(&spec, &opt, MPI_COMM_WORLD, &err);
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
    if (strcmp(cmd, "run") != 0 && strcmp(cmd, "validate") != 0)
        return usage_error("unknown command '%s'", cmd);
    const char *spec_path = NULL, *out = NULL;
    int quiet = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && strcmp(cmd, "run") == 0) {
            if (++i == argc) return usage_error("%s", "--out needs a file name");
            out = argv[i];
        } else if (strcmp(argv[i], "--quiet") == 0 && strcmp(cmd, "run") == 0) {
            quiet = 1;
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
    int code = command_with_mpi(cmd, spec_path, out, quiet);
    MPI_Finalize();
    return code;
}

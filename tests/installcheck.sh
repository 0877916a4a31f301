# installcheck.sh BINDIR PKGDATADIR MANDIR PYTHONDIR SRCDIR: `make installcheck`. From an
# empty directory, with the source and build trees off PATH and PYTHONPATH, every installed
# command works from the prefix alone: the quickstart, a sweep expansion and submit dry run
# (job script from the prefix), a table, the man page, `import ccdl_analysis` and the
# notebook example.
set -u
bindir=$1 pkgdatadir=$2 mandir=$3 pythondir=$4 srcdir=$5
: "${MPIEXEC:=mpiexec}" "${MPIEXEC_FLAGS:=}" "${PYTHON:=/usr/bin/python3}"
work=$(mktemp -d "${TMPDIR:-/tmp}/ccdl-installcheck.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
export PATH="$bindir:/usr/local/bin:/usr/bin:/bin" OMP_NUM_THREADS=1 HYDRA_LAUNCHER=fork
unset PYTHONPATH CCDL
failures=0
check() {
    local what=$1; shift
    if "$@" > out.txt 2>&1; then echo "ok: $what"; else echo "FAIL: $what"; sed 's/^/  /' out.txt; failures=$((failures + 1)); fi
}

check "ccdl --version from the prefix" sh -c "[ \"\$(command -v ccdl)\" = '$bindir/ccdl' ] && ccdl --version | grep -q '^ccdl [0-9]'"
check "the installed scripts run the configured Python ($PYTHON)" sh -c \
    "head -1 '$bindir/ccdl-sweep' | grep -qx '#!$PYTHON' && head -1 '$bindir/ccdl-analyze' | grep -qx '#!$PYTHON'"
check "ccdl validate the installed quickstart" ccdl validate "$pkgdatadir/examples/quickstart.json"
# the quickstart itself: the installed spec on 2 ranks, trace here
check "quickstart on 2 ranks" "$MPIEXEC" $MPIEXEC_FLAGS -n 2 ccdl run "$pkgdatadir/examples/quickstart.json" \
    --quiet --out quickstart.h5
check "ccdl-analyze table of it" sh -c "ccdl-analyze table quickstart.h5 > table.txt && grep -q test_acc table.txt"
check "ccdl-sweep expand an installed grid" sh -c "ccdl-sweep expand '$pkgdatadir/sweeps/mini/table1.json' --out sweep > /dev/null && test -s sweep/manifest.tsv"
# submit --dry-run prints the sbatch command: its job script must be the installed one
check "ccdl-sweep submit uses the installed job script" sh -c \
    "ccdl-sweep submit sweep --dry-run 2>&1 | grep -q '$pkgdatadir/jobs/ccdl-array.sbatch'"
check "man ccdl" sh -c "MANPATH='$mandir' MANPAGER=cat man ccdl 2>/dev/null | grep -q 'consensus-bench'"
check "import ccdl_analysis on the installed path" env PYTHONPATH="$pythondir" "$PYTHON" -c \
    "import ccdl_analysis, ccdl_sweep; assert ccdl_analysis.__file__.startswith('$pythondir')"
check "the notebook example from the prefix writes a figure" sh -c \
    "PYTHONPATH='$pythondir' '$PYTHON' '$pkgdatadir/examples/notebook_example.py' quickstart.h5 --out nb.png && test -s nb.png"
# every module of the source packages was installed (Makefile.am lists them by hand)
for pkg in tools/ccdl_sweep analysis/ccdl_analysis; do
    for f in "$srcdir/$pkg"/*.py; do
        [ -f "$pythondir/$(basename "$pkg")/$(basename "$f")" ] ||
            { echo "FAIL: $pkg/$(basename "$f") not installed"; failures=$((failures + 1)); }
    done
done
echo "installcheck: $failures failed"
[ "$failures" -eq 0 ]

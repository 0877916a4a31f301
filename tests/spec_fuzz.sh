# spec_fuzz.sh: seeded fuzzing of the spec path (tests/spec_fuzz.py): mutants of the example
# and test specs through validate and run, on 1 and 2 ranks; exit 0 or 2 with one line,
# never a signal or a hang, validate and run agreeing.
. "$(dirname "$0")/lib.sh"
"$PYTHON" "$top_srcdir/tests/spec_fuzz.py" "$CCDL" "$MPIEXEC $MPIEXEC_FLAGS" "$work" \
    "$top_srcdir"/examples/*.json "$top_srcdir"/tests/specs/*.json

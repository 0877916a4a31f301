# diverged.sh: the divergence rule (docs/cli.md) stops any optimizer: Adam at a huge
# learning rate (finite loss ~1e9, which once "finished" at chance accuracy) and SGD
# (non-finite or huge loss); exit 1, one line, exit_reason "diverged at step N: ...",
# completed = 0, on 2 ranks.
. "$(dirname "$0")/lib.sh"
sed 's/"lr": 0.001/"lr": 1000/' "$specs/tiny-adam-dirichlet.json" > "$work/adam.json"
sed 's/"lr": 0.05/"lr": 1e6/' "$specs/tiny-ring.json" > "$work/sgd.json"
for opt in adam sgd; do
    timeout 120 "$MPIEXEC" $MPIEXEC_FLAGS -n 2 "$CCDL" run "$work/$opt.json" --quiet --out "$work/$opt.h5" \
        2> "$work/err"
    rc=$?
    cat "$work/err"
    check "$opt: exit 1 (got $rc)" [ "$rc" = 1 ]
    check "$opt: one line, diverged at step N" \
        sh -c "test \$(wc -l < '$work/err') -eq 1 && grep -q '^ccdl: diverged at step [0-9]*: ' '$work/err'"
    check "$opt: exit_reason diverged, completed 0" \
        sh -c "'$PYTHON' -c 'import h5py,sys; f=h5py.File(sys.argv[1],\"r\"); sys.exit(not (f.attrs[\"completed\"] == 0 and f.attrs[\"exit_reason\"].startswith(\"diverged at step \")))' '$work/$opt.h5'"
done
finish

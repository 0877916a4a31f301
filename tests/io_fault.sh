# io_fault.sh: an I/O error on one rank only, in the middle of a collective checkpoint write
# (an LD_PRELOAD shim, tests/failio.c, fails every write of rank R to the checkpoint): parallel
# HDF5 does not carry the error to the other rank, which waits inside HDF5's collective; the
# run must still end (agree_io aborts after CCDL_IO_AGREE_SECONDS), naming the failed write,
# with a trace whose rows are all real. Rank 0 and rank 1 in turn, on 2 ranks.
. "$(dirname "$0")/lib.sh"
command -v cc > /dev/null || { echo "no C compiler for the shim"; exit 77; }
cc -shared -fPIC -O1 -o "$work/failio.so" "$top_srcdir/tests/failio.c" -ldl || exit 77
sed -e 's/"epochs": 2,/"epochs": 4,/' -e 's/"name": "tiny-ring"/"name": "io-fault"/' \
    -e 's#"communication"#"checkpoint": {"path": "'"$work"'/c.ckpt.h5"}, "communication"#' \
    "$specs/tiny-ring.json" > "$work/spec.json"
mpirun 2 "$CCDL" run "$work/spec.json" --quiet --out "$work/ref.h5" || fail "uninterrupted run"
for r in 0 1; do
    rm -f "$work/t.h5" "$work"/c.ckpt.h5*
    start=$(date +%s)
    CCDL_IO_AGREE_SECONDS=5 FAILIO_RANK=$r FAILIO_SUFFIX=.ckpt.h5.tmp timeout -s KILL 120 \
        "$MPIEXEC" $MPIEXEC_FLAGS -n 2 -genv LD_PRELOAD "$work/failio.so" "$CCDL" run "$work/spec.json" \
        --quiet --out "$work/t.h5" 2> "$work/err"
    rc=$?
    took=$(($(date +%s) - start))
    cat "$work/err"
    check "write error on rank $r: the job ends (exit $rc, $took s), not killed by the timeout" \
        [ "$rc" != 0 -a "$rc" != 137 ]
    check "write error on rank $r: the first line names the failed checkpoint write" \
        sh -c "head -1 '$work/err' | grep -q '^ccdl: .*\(checkpoint\|/workers/\)'"
    check "write error on rank $r: every trace row is the uninterrupted run's" \
        "$PYTHON" - "$work/t.h5" "$work/ref.h5" <<'PY'
import sys, h5py, numpy as np
f, ref = h5py.File(sys.argv[1], "r", swmr=True), h5py.File(sys.argv[2], "r")
ok = f.attrs["completed"] == 0
for g in ("steps", "epochs"):
    for name, d in f[g].items():
        if d.attrs.get("wallclock", 0) != 1:
            a, b = d[()], ref[g][name][()]
            ok &= len(a) <= len(b) and np.array_equal(a, b[: len(a)], equal_nan=a.dtype.kind == "f")
print(f"rows: {len(f['steps/step'])} steps, {len(f['epochs/epoch'])} epochs")
sys.exit(0 if ok else 1)
PY
done
finish

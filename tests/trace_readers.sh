# trace_readers.sh: h5dump and h5py (without ccdl) read every column of a trace, and every
# column carries units and description.
. "$(dirname "$0")/lib.sh"
"$CCDL" run "$specs/tiny-ring.json" --quiet --out "$work/t.h5" || fail "run"
if [ -n "${H5DUMP:-}" ]; then
    "$H5DUMP" -H "$work/t.h5" > "$work/header.txt"
    check "h5dump -H parses the trace" test $? -eq 0
    for col in steps/xi steps/theta steps/loss steps/grad_norm steps/rounds epochs/test_acc phases/max_xi; do
        check "h5dump shows $col" grep -q "DATASET \"$(basename $col)\"" "$work/header.txt"
    done
else
    echo "h5dump not found; skipped that part"
fi
"$PYTHON" - "$work/t.h5" <<'PY' && pass "h5py reads every column with units and description" || fail "h5py"
import sys, json, h5py
f = h5py.File(sys.argv[1], "r")
spec = json.loads(f.attrs["spec"])
ok = spec["workers"] == 4 and f.attrs["n"] == 4 and f.attrs["completed"] == 1
for group in ("steps", "epochs", "phases"):
    lengths = set()
    for name, ds in f[group].items():
        data = ds[()]
        lengths.add(len(data))
        ok &= bool(ds.attrs["units"] is not None and str(ds.attrs["description"]))
    print(group, sorted(f[group]), "rows", lengths)
    ok &= len(lengths) == 1
ok &= len(f["epochs/epoch"]) == 2 and len(f["phases/phase"]) == 3
sys.exit(0 if ok else 1)
PY
# A reader that holds the trace open (a notebook, ccdl-sweep status) while the run flushes
# must not stop the run: the writer takes no HDF5 file lock (it failed with "cannot reopen
# to append" before, exit 1).
sed -e 's/"epochs": 2/"epochs": 200/' -e 's/"name": "tiny-ring"/"name": "held"/' \
    "$specs/tiny-ring.json" > "$work/held.json"
"$CCDL" run "$work/held.json" --quiet --out "$work/held.h5" 2> "$work/held.err" &
pid=$!
"$PYTHON" - "$work/held.h5" "$pid" <<'PY' || fail "the held-open check could not hold the file while the run flushed"
import os, sys, time, h5py
deadline = time.time() + 60
while time.time() < deadline:
    try:  # plain read-only: fails during the milliseconds of a flush, so try again
        f = h5py.File(sys.argv[1], "r")
        if len(f["epochs/epoch"]) >= 1:
            break
        f.close()
    except Exception:
        pass
    time.sleep(0.02)
print("holding the trace open at", len(f["epochs/epoch"]), "epoch rows")
time.sleep(2)
f.close()
os.kill(int(sys.argv[2]), 0)  # still running after 2 s (~60 flushes): they happened while held
PY
wait "$pid"
code=$?
check "a reader holding the trace open does not stop the run (exit $code)" \
    sh -c "test $code -eq 0 && test \$(h5dump -a /completed '$work/held.h5' | grep -c '(0): 1') -eq 1"
finish

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
# the analysis's table of keys a trace's spec leaves out at their defaults is ccdl's: every
# key of `ccdl spec-keys` is in a default run's resolved spec, or empty by default, or in the
# table with ccdl's default value
"$CCDL" spec-keys > "$work/keys.md"
"$PYTHON" - "$top_srcdir" "$work/keys.md" "$work/t.h5" <<'PY' && pass "LATER_DEFAULTS agrees with ccdl spec-keys and a real trace" \
    || fail "LATER_DEFAULTS out of date"
import json, sys
import h5py
sys.path.insert(0, sys.argv[1] + "/analysis")
sys.path.insert(1, sys.argv[1] + "/tools")
from ccdl_analysis.traces import LATER_DEFAULTS, flatten
from ccdl_sweep.specjson import Schema, same
keys = Schema.from_table(open(sys.argv[2]).read()).keys
spec = flatten(json.loads(h5py.File(sys.argv[3], "r").attrs["spec"]))
omitted = {k for k in keys if k not in spec and keys[k]["default"] not in ("", None)}
assert omitted == set(LATER_DEFAULTS), (sorted(omitted ^ set(LATER_DEFAULTS)))
for k, v in LATER_DEFAULTS.items():
    assert same(keys[k]["default"], v) or keys[k]["default"] == v, (k, keys[k]["default"], v)
PY
finish

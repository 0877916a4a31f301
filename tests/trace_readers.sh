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
finish

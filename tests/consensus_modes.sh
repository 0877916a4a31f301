# consensus_modes.sh: in All-Reduce mode Xi is exactly 0 at every step; in ring gossip mode
# Xi > 0, and it is larger with 16 workers than with 4 at the same global batch.
. "$(dirname "$0")/lib.sh"
"$CCDL" run "$specs/tiny-allreduce.json" --quiet --out "$work/ar.h5" || fail "allreduce run"
# 4 x 32 and 16 x 8: global batch 128 in both
sed -e 's/"local_batch": 16/"local_batch": 32/' "$specs/tiny-ring.json" > "$work/ring4.json"
sed -e 's/"workers": 4/"workers": 16/' -e 's/"local_batch": 16/"local_batch": 8/' \
    "$specs/tiny-ring.json" > "$work/ring16.json"
"$CCDL" run "$work/ring4.json" --quiet --out "$work/ring4.h5" || fail "ring n=4 run"
mpirun 2 "$CCDL" run "$work/ring16.json" --quiet --out "$work/ring16.h5" || fail "ring n=16 run"
"$PYTHON" - "$work" <<'PY' && pass "Xi per mode and n" || fail "Xi per mode and n"
import sys, h5py, numpy as np
w = sys.argv[1]
ar = h5py.File(f"{w}/ar.h5")["steps/xi"][()]
r4 = h5py.File(f"{w}/ring4.h5")["steps/xi"][()]
r16 = h5py.File(f"{w}/ring16.h5")["steps/xi"][()]
print(f"allreduce: {len(ar)} steps, max Xi {ar.max()!r}")
print(f"ring n=4: {len(r4)} steps, mean Xi {r4.mean():.4g}; ring n=16: {len(r16)} steps, mean Xi {r16.mean():.4g}")
ok = len(ar) > 0 and np.all(ar == 0.0)
ok &= len(r4) == len(r16) and np.all(r4 > 0) and np.all(r16 > 0)
ok &= r16.mean() > r4.mean()
sys.exit(0 if ok else 1)
PY
finish

"""compare_traces.py A B: exit 0 if two ccdl traces hold bitwise-identical data.

Every dataset is compared bit for bit except those marked with the attribute wallclock = 1
(timings and the /resumes history, which may exist in one file only); root attributes are
compared except the ones that describe the run, not the result (ranks, created). Prints the
first difference and exits 1 otherwise."""
import sys

import h5py
import numpy as np

SKIP_ATTRS = {"ranks", "created"}


def datasets(f):
    """Every dataset that holds results (not marked wallclock = 1), by path."""
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.attrs.get("wallclock", 0) != 1:
            out[name] = obj

    f.visititems(visit)
    return out


def main(a_path, b_path):
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        for key in sorted(set(a.attrs) | set(b.attrs)):
            if key in SKIP_ATTRS:
                continue
            if key not in a.attrs or key not in b.attrs or a.attrs[key] != b.attrs[key]:
                print(f"root attribute {key} differs")
                return 1
        da, db = datasets(a), datasets(b)
        if set(da) != set(db):
            print("different columns:", sorted(set(da) ^ set(db)))
            return 1
        compared = 0
        for name in sorted(da):
            x, y = da[name][()], db[name][()]
            if x.shape != y.shape or x.dtype != y.dtype:
                print(f"/{name}: shapes or types differ: {x.shape} {x.dtype} vs {y.shape} {y.dtype}")
                return 1
            bits = np.dtype(f"u{x.dtype.itemsize}")
            bad = np.flatnonzero(x.view(bits) != y.view(bits))
            if bad.size:
                print(f"/{name} differs in {bad.size} rows, first at row {bad[0]}: {x[bad[0]]!r} vs {y[bad[0]]!r}")
                return 1
            compared += 1
        if compared == 0:
            print("nothing compared")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

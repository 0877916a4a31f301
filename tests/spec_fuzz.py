"""spec_fuzz.py CCDL MPIEXEC WORKDIR SPEC... : seeded fuzzing of ccdl's spec handling.

Mutates the given specs (deleted keys, wrong types, extreme numbers, unknown keys, odd
bytes, non-UTF-8, truncation, deep nesting, duplicate keys) and runs each mutant through
`ccdl validate` and `ccdl run` (stopped by the test hook after its first step). Every case
must end with exit 0 or 2 (run: 0, 2 or 3, or 1 for a divergence at the first step), with
exactly one line on stderr when refused, never a signal and never a hang; `validate` and
`run` must agree (both refuse with the same line, or both accept). Every eighth case runs on
2 ranks. Prints one line per failure and a summary; exit 1 if any case failed.

Environment: FUZZ_SEED (default 20261204), FUZZ_CASES (default 240)."""
import json
import os
import random
import shlex
import subprocess
import sys

EXTREME = [0, -1, 1, -2**31, 2**31, 2**53, 2**63 - 1, 1e308, -1e308, 1e-308, 5e-324, 0.5,
           -0.5, 1e9]
WRONG = ["x", "", [], {}, [1, 2], {"a": 1}, True, False, None, 3.5, -7, "\u00e9\u4e2d",
         "a" * 5000]
ODD_BYTES = [b"\x00", b"\xff", b"\x80", b"\x1b", b"\t", b'"', b"{", b"]", b",", b"\\"]


def paths(doc, prefix=()):
    """Every (path, value) in a JSON document, containers included."""
    out = [(prefix, doc)]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, prefix + (i,))
    return out


def set_at(doc, path, value):
    if not path:
        return value
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


def delete_at(doc, path):
    node = doc
    for p in path[:-1]:
        node = node[p]
    del node[path[-1]]
    return doc


def mutate(rng, text):
    """One mutant of a spec's text, as bytes, and what was done."""
    doc = json.loads(text)
    leaves = [(p, v) for p, v in paths(doc) if p]
    op = rng.choice(["delete", "wrong", "extreme", "extreme", "plausible", "plausible",
                     "unknown", "bytes", "utf8", "truncate", "nest", "duplicate", "empty"])
    if op == "delete":
        p, _ = rng.choice(leaves)
        return json.dumps(delete_at(doc, p)).encode(), f"delete {p}"
    if op == "wrong":
        p, _ = rng.choice(leaves)
        v = rng.choice(WRONG)
        return json.dumps(set_at(doc, p, v)).encode(), f"{p} = {str(v)[:20]!r}"
    if op == "extreme":
        nums = [(p, v) for p, v in leaves if isinstance(v, (int, float)) and
                not isinstance(v, bool)] or leaves
        p, _ = rng.choice(nums)
        v = rng.choice(EXTREME)
        return json.dumps(set_at(doc, p, v)).encode(), f"{p} = {v!r}"
    if op == "plausible":  # in range or nearly: reaches training more often
        nums = [(p, v) for p, v in leaves if isinstance(v, (int, float)) and
                not isinstance(v, bool)] or leaves
        p, v = rng.choice(nums)
        v = rng.choice([2, 3, 5, 8, 12, 64, 0.999, 0.1, 1e-4]) if isinstance(v, (int, float)) \
            else v
        return json.dumps(set_at(doc, p, v)).encode(), f"{p} = {v!r}"
    if op == "unknown":
        objs = [(p, v) for p, v in paths(doc) if isinstance(v, dict)]
        p, node = rng.choice(objs)
        node["no_such_key"] = 1
        return json.dumps(doc).encode(), f"unknown key under {p}"
    raw = json.dumps(doc).encode()
    if op == "bytes":
        at = rng.randrange(len(raw) + 1)
        b = rng.choice(ODD_BYTES)
        return raw[:at] + b + raw[at:], f"byte {b!r} at {at}"
    if op == "utf8":
        strs = [(p, v) for p, v in leaves if isinstance(v, str)]
        if strs:
            p, v = rng.choice(strs)
            marker = "@@NONUTF8@@"
            raw = json.dumps(set_at(doc, p, marker)).encode()
            return raw.replace(marker.encode(), b"ab\xc3\x28cd"), f"non-UTF-8 {p}"
        return raw + b"\xfe", "non-UTF-8 tail"
    if op == "truncate":
        at = rng.randrange(len(raw))
        return raw[:at], f"truncated at {at}"
    if op == "nest":
        p, v = rng.choice(leaves)
        depth = rng.choice([10, 100, 3000, 100000])
        marker = '"@@NEST@@"'
        raw = json.dumps(set_at(doc, p, "@@NEST@@")).encode()
        return raw.replace(marker.encode(), b"[" * depth + b"1" + b"]" * depth), \
            f"{p} nested {depth} deep"
    if op == "duplicate":
        return raw[:-1] + b', "workers": 8}', "duplicate key workers"
    return rng.choice([b"", b"   \n", b"null", b"[]", b"42", b'"spec"']), "empty or not an object"


def run(cmd, env, timeout):
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    return p.returncode, p.stderr.decode("utf-8", "replace")


def lines(err):
    return [l for l in err.splitlines() if l.strip()]


def main(ccdl, mpiexec, work, specs):
    seed = int(os.environ.get("FUZZ_SEED", "20261204"))
    cases = int(os.environ.get("FUZZ_CASES", "240"))
    rng = random.Random(seed)
    texts = [(s, open(s).read()) for s in specs]
    env = dict(os.environ, CCDL_TEST_SIGNAL="TERM@0", OMP_NUM_THREADS="1")
    failures = accepted = 0
    for k in range(cases):
        base, text = rng.choice(texts)
        data, what = mutate(rng, text)
        path = os.path.join(work, f"m{k}.json")
        with open(path, "wb") as f:
            f.write(data)
        ranks = 2 if k % 8 == 7 else 1
        launch = shlex.split(mpiexec) + ["-n", str(ranks)] if ranks > 1 else []
        case = f"case {k} ({os.path.basename(base)}: {what}, {ranks} rank(s))"
        vrc, verr = run(launch + [ccdl, "validate", path], env, 60)
        out = os.path.join(work, f"m{k}.h5")
        rrc, rerr = run(launch + [ccdl, "run", path, "--quiet", "--out", out], env, 120)
        problems = []
        if vrc not in (0, 2):
            problems.append(f"validate exit {vrc}: {verr.strip()[:300]}")
        elif vrc == 2 and len(lines(verr)) != 1:
            problems.append(f"validate printed {len(lines(verr))} lines: {verr.strip()[:300]}")
        diverged = rrc == 1 and len(lines(rerr)) == 1 and "diverged at step" in rerr
        if rrc not in (0, 2, 3) and not diverged:
            problems.append(f"run exit {rrc}: {rerr.strip()[:300]}")
        elif rrc == 2 and len(lines(rerr)) != 1:
            problems.append(f"run printed {len(lines(rerr))} lines: {rerr.strip()[:300]}")
        if not problems:
            if vrc == 2 and (rrc != 2 or lines(verr) != lines(rerr)):
                problems.append(f"validate refused ({verr.strip()}) but run exit {rrc}: "
                                f"{rerr.strip()[:200]}")
            if vrc == 0 and rrc == 2:
                problems.append(f"validate accepted but run refused: {rerr.strip()[:200]}")
        accepted += vrc == 0
        for name in os.listdir(work):  # keep the directory small
            if name.startswith(f"m{k}."):
                os.remove(os.path.join(work, name))
        for p in problems:
            failures += 1
            print(f"FAIL: {case}: {p}")
    print(f"spec fuzz: seed {seed}, {cases} mutants of {len(texts)} specs, {accepted} accepted, "
          f"{cases - accepted} refused, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))

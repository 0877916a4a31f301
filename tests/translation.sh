# translation.sh: a translation run end to end (data.dataset "text", the transformer) on a
# small corpus this test writes: word-for-word "translation" through a fixed 16-word
# dictionary, which a tiny transformer learns within a few epochs.
# Oracles: the same bits on 1, 2 and 4 ranks; a resumed run equals the uninterrupted one;
# perplexity is exp(test loss); BLEU of a learnable task climbs far above its first epoch;
# the vocabularies stored in the trace are the corpus's (rebuilt here in Python by the rules
# of docs/text.md); a changed corpus is refused on resume; bad text specs refused.
. "$top_srcdir/tests/lib.sh"

corpus="$work/corpus"
"$PYTHON" - "$corpus" <<'PY'
import os, random, sys
out = sys.argv[1]
os.makedirs(out)
en = "the a man woman dog cat sees eats runs red blue small big house tree river".split()
de = "der ein mann frau hund katze sieht isst rennt rote blaue kleine grosse haus baum fluss".split()
rng = random.Random(7)
def pairs(k):
    for _ in range(k):
        idx = [rng.randrange(len(en)) for _ in range(rng.randint(3, 7))]
        yield " ".join(en[i] for i in idx), " ".join(de[i] for i in idx)
for split, k in (("train", 1200), ("val", 48), ("test", 48)):
    rows = list(pairs(k))
    with open(f"{out}/{split}.en", "w") as f:
        f.writelines(a + "\n" for a, _ in rows)
    with open(f"{out}/{split}.de", "w") as f:
        f.writelines(b + "\n" for _, b in rows)
PY

cat > "$work/run.json" <<EOF
{
  "name": "translation", "seed": 3, "workers": 4,
  "data": {"dataset": "text", "path": "$corpus", "tokens_per_batch": 160},
  "model": {"kind": "transformer", "d_model": 32, "heads": 2, "d_ff": 64,
            "enc_layers": 1, "dec_layers": 1, "dropout": 0.1, "label_smoothing": 0.1},
  "optimizer": {"kind": "adam", "beta2": 0.98, "weight_decay": 0},
  "schedule": {"kind": "inverse_sqrt", "epochs": 20, "lr": 0.01, "warmup_epochs": 1,
               "scaling": "none"},
  "topology": {"kind": "ring"},
  "communication": {"mode": "gossip"}
}
EOF

for p in 1 2 4; do
    mpirun "$p" "$CCDL" run "$work/run.json" --quiet --out "$work/p$p.h5" 2> "$work/p$p.err" ||
        { fail "run on $p rank(s): $(head -c 300 "$work/p$p.err")"; }
done
check "the trace on 2 ranks is the one on 1" \
    "$PYTHON" "$top_srcdir/tests/compare_traces.py" "$work/p1.h5" "$work/p2.h5"
check "the trace on 4 ranks is the one on 1" \
    "$PYTHON" "$top_srcdir/tests/compare_traces.py" "$work/p1.h5" "$work/p4.h5"

"$PYTHON" - "$work/p1.h5" "$corpus" <<'PY' && pass "metrics: ppl = exp(loss), BLEU learns, vocabularies stored" || fail "metrics"
import math, sys
from collections import Counter
import h5py
import numpy as np
f = h5py.File(sys.argv[1], "r")
e = f["epochs"]
loss, ppl = e["test_loss"][()], e["test_ppl"][()]
val, test = e["val_bleu"][()], e["test_bleu"][()]
print("test_loss", np.round(loss, 3), "val_bleu", np.round(val, 1), "test_bleu", np.round(test, 1))
assert np.allclose(ppl, np.exp(loss), rtol=1e-12), "ppl is not exp(test_loss)"
assert np.isnan(e["test_acc"][()]).all() and np.isnan(e["worker_test_acc"][()]).all()
assert ((val >= 0) & (val <= 100) & (test >= 0) & (test <= 100)).all()
assert test[-1] > 50 and test[-1] > test[0] + 30, "test BLEU did not climb"
assert loss[-1] < loss[0], "test loss did not fall"
# vocabularies: specials, then tokens of the training files by count (desc), then bytes
for lang, attr in (("en", "src_vocab"), ("de", "tgt_vocab")):
    counts = Counter(w for line in open(f"{sys.argv[2]}/train.{lang}") for w in line.split())
    want = ["<pad>", "<unk>", "<bos>", "<eos>"] + [w for w, c in sorted(counts.items(), key=lambda x: (-x[1], x[0].encode())) if c >= 2]
    have = f.attrs[attr]
    have = (have.decode() if isinstance(have, bytes) else have).split("\n")[:-1]
    assert have == want, (attr, have[:8], want[:8])
PY

# stopped mid-run and resumed: the same trace
rm -f "$work/r.h5" "$work/r.ckpt.h5"
CCDL_TEST_SIGNAL="TERM@40" mpirun 2 "$CCDL" run "$work/run.json" --quiet --out "$work/r.h5" 2> /dev/null
check "stopped at step 40 (exit 3)" test $? -eq 3
mpirun 2 "$CCDL" run "$work/run.json" --quiet --resume --out "$work/r.h5" || fail "resume"
check "resumed trace bitwise equal to the uninterrupted one" \
    "$PYTHON" "$top_srcdir/tests/compare_traces.py" "$work/p1.h5" "$work/r.h5"

# a corpus whose vocabulary changed under a stopped run: refused on resume
rm -f "$work/v.h5" "$work/v.ckpt.h5"
CCDL_TEST_SIGNAL="TERM@10" mpirun 1 "$CCDL" run "$work/run.json" --quiet --out "$work/v.h5" 2> /dev/null
sed -i 's/\bdog\b/wolf/g' "$corpus/train.en"
mpirun 2 "$CCDL" run "$work/run.json" --quiet --resume --out "$work/v.h5" 2> "$work/err"
code=$?
check "a changed corpus is refused on resume: $(cat "$work/err")" \
    sh -c "test $code -eq 2 && test \$(wc -l < '$work/err') -eq 1 && grep -q 'src_vocab: the vocabulary' '$work/err'"

# bad text input: one line naming the key or file, every rank count
sed -e 's/"transformer"/"mlp"/' "$work/run.json" > "$work/mlp.json"
sed -e "s#\"path\": \"$corpus\"#\"path\": \"$work/nowhere\"#" "$work/run.json" > "$work/nopath.json"
for p in 1 2; do
    for case in "mlp:model.kind: mlp reads images" "nopath:nowhere"; do
        name=${case%%:*} want=${case#*:}
        timeout 60 "$MPIEXEC" $MPIEXEC_FLAGS -n "$p" "$CCDL" run "$work/$name.json" \
            --out "$work/bad.h5" 2> "$work/err" > /dev/null
        code=$?
        check "$name refused on $p rank(s): $(cat "$work/err")" \
            sh -c "test $code -eq 2 && test \$(wc -l < '$work/err') -eq 1 && grep -qF '$want' '$work/err'"
    done
done
finish

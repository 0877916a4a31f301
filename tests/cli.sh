# cli.sh: the command line: help, version, usage errors, validate, missing files, exit codes.
. "$(dirname "$0")/lib.sh"
check "--help exits 0 and shows usage" sh -c "'$CCDL' --help | grep -q 'Usage: ccdl run SPEC'"
check "--version prints the version" sh -c "'$CCDL' --version | grep -Eq '^ccdl [0-9]+\.[0-9]+'"
"$CCDL" frobnicate 2> "$work/e"; code=$?
check "unknown command: exit 2" test "$code" -eq 2
check "unknown command: named" grep -q "unknown command 'frobnicate'" "$work/e"
"$CCDL" run 2> "$work/e"; code=$?
check "run without SPEC: exit 2" test "$code" -eq 2
"$CCDL" run "$specs/tiny-ring.json" --bogus 2> "$work/e"; code=$?
check "unknown option: exit 2" test "$code" -eq 2
"$CCDL" run "$work/nonexistent.json" 2> "$work/e"; code=$?
check "missing spec file: exit 2" test "$code" -eq 2
check "missing spec file: one line naming it" \
    sh -c "test \$(wc -l < '$work/e') -eq 1 && grep -q 'nonexistent.json: cannot open' '$work/e'"
# usage errors: one line naming the problem and pointing at --help, not the whole usage
for args in "frobnicate" "run" "run $specs/tiny-ring.json --bogus" "run --out" \
    "consensus-bench --d -5" "consensus-bench --n 99999999999999999999"; do
    # shellcheck disable=SC2086
    "$CCDL" $args > /dev/null 2> "$work/e"; code=$?
    check "usage error '$args': exit 2, one line with see ccdl --help" \
        sh -c "test $code -eq 2 && test \$(wc -l < '$work/e') -eq 1 && grep -q 'see ccdl --help' '$work/e'"
done
# spec files that are not text files: a NUL byte, a FIFO, a directory; 1 and 2 ranks
printf '{"name": "x"}\0{"workers": "garbage"' > "$work/nul.json"
mkfifo "$work/fifo.json"
for p in 1 2; do
    for bad in "nul.json:a NUL byte at offset 13" "fifo.json:is a FIFO, not a file" \
        ".:is a directory, not a file"; do
        file=${bad%%:*} want=${bad#*:}
        for cmd in run validate; do
            timeout 30 "$MPIEXEC" $MPIEXEC_FLAGS -n "$p" "$CCDL" "$cmd" "$work/$file" > /dev/null 2> "$work/e"
            code=$?
            check "$cmd $file on $p rank(s): exit 2, one line: $want" \
                sh -c "test $code -eq 2 && test \$(wc -l < '$work/e') -eq 1 && grep -qF '$want' '$work/e'"
        done
    done
done
# within the documented ranges but beyond this node's memory: refused up front by name
sed -e 's/"workers": 4,/"workers": 4096,/' -e 's/"hidden": \[32\]/"hidden": [4096, 4096]/' \
    -e 's/"train_subset": 2048, "test_subset": 1000/"test_subset": 8192/' -e 's/"local_batch": 16/"local_batch": 8/' \
    "$specs/tiny-ring.json" > "$work/huge.json"
for p in 1 2; do
    for cmd in validate run; do
        timeout 60 "$MPIEXEC" $MPIEXEC_FLAGS -n "$p" "$CCDL" "$cmd" "$work/huge.json" > /dev/null 2> "$work/e"
        code=$?
        check "$cmd beyond memory on $p rank(s): exit 2, one line naming workers and GiB" \
            sh -c "test $code -eq 2 && test \$(wc -l < '$work/e') -eq 1 && grep -q '^ccdl: workers: 4096 workers of .* GiB of worker state' '$work/e'"
    done
    timeout 60 "$MPIEXEC" $MPIEXEC_FLAGS -n "$p" "$CCDL" consensus-bench --n 4096 --d 1073741824 --kinds ring \
        > /dev/null 2> "$work/e"
    code=$?
    check "consensus-bench beyond memory on $p rank(s): exit 2, one line" \
        sh -c "test $code -eq 2 && test \$(wc -l < '$work/e') -eq 1 && grep -q 'needs .* GiB' '$work/e'"
done
check "validate a good spec" sh -c "'$CCDL' validate '$specs/tiny-ring.json' | grep -q ': ok'"
check "validate on 2 ranks" sh -c "'$MPIEXEC' $MPIEXEC_FLAGS -n 2 '$CCDL' validate '$specs/tiny-ring.json' | grep -q ': ok'"
check "spec-keys lists every section" sh -c "'$CCDL' spec-keys | grep -q '| \`topology.kind\` |'"
# a corrupt data file: exit 2, one line naming the file, no completed trace
mkdir -p "$work/data"
printf 'not gzip, not idx' > "$work/data/train-images-idx3-ubyte.gz"
cp /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz "$work/data/" 2>/dev/null
sed "s#\"train_subset\": 2048#\"path\": \"$work/data\", \"train_subset\": 2048#" "$specs/tiny-ring.json" > "$work/corrupt.json"
"$CCDL" run "$work/corrupt.json" --out "$work/corrupt.h5" 2> "$work/e"; code=$?
check "corrupt data file: exit 2" test "$code" -eq 2
check "corrupt data file: one line naming the file" \
    sh -c "test \$(wc -l < '$work/e') -eq 1 && grep -q 'train-images-idx3-ubyte.gz' '$work/e'"
check "corrupt data file: no trace" test ! -e "$work/corrupt.h5"
# a good run: exit 0, progress on stderr, completed trace
"$CCDL" run "$specs/tiny-ring.json" --out "$work/ok.h5" 2> "$work/progress"; code=$?
check "run exits 0" test "$code" -eq 0
check "one progress line per epoch" test "$(grep -c 'epoch [0-9]*/2 .*test_acc .*eta' "$work/progress")" -eq 2
check "trace completed = 1" test "$(h5attr "$work/ok.h5" completed)" = 1
check "trace exit_reason = finished" test "$(h5attr "$work/ok.h5" exit_reason)" = finished
# every example validates (one needs its reference trace, which only a run creates)
for ex in "$top_srcdir"/examples/*.json; do
    if grep -q '"reference"' "$ex"; then
        "$CCDL" validate "$ex" 2> "$work/e" > /dev/null
        check "$(basename "$ex"): validates but for its reference trace" grep -q 'control.reference: .*cannot open' "$work/e"
    else
        check "$(basename "$ex"): validates" sh -c "'$CCDL' validate '$ex' > /dev/null"
    fi
done
check "docs/spec.md key table matches spec-keys" \
    bash "$top_srcdir/tools/doc-table.sh" --check "$CCDL" spec-keys "$top_srcdir/docs/spec.md"
check "docs/trace.md column tables match trace-columns" \
    bash "$top_srcdir/tools/doc-table.sh" --check "$CCDL" trace-columns "$top_srcdir/docs/trace.md"
finish

# bad_specs.sh: the corpus under tests/bad-specs. Each NAME.json must make `ccdl run` exit 2
# with exactly one line on stderr that contains NAME.expect, and must leave no trace that
# claims completed. NAME.ranks (optional) gives the rank count.
. "$(dirname "$0")/lib.sh"
dir="$top_srcdir/tests/bad-specs"
count=0
for spec in "$dir"/*.json; do
    base=$(basename "$spec" .json)
    want=$(cat "$dir/$base.expect")
    ranks=1
    [ -f "$dir/$base.ranks" ] && ranks=$(cat "$dir/$base.ranks")
    # no --out: the spec's own trace path must be the one checked; defaults land in $work
    out="$work/ccdl.h5"
    rm -f "$out"
    (cd "$work" && mpirun "$ranks" "$CCDL" run "$spec" --quiet 2> "$base.err" > /dev/null)
    code=$?
    lines=$(wc -l < "$work/$base.err")
    count=$((count + 1))
    if [ "$code" -ne 2 ]; then
        fail "$base: exit $code, expected 2 ($(head -c 300 "$work/$base.err"))"
    elif [ "$lines" -ne 1 ]; then
        fail "$base: $lines lines on stderr, expected 1: $(cat "$work/$base.err")"
    elif ! grep -qF -- "$want" "$work/$base.err"; then
        fail "$base: '$(cat "$work/$base.err")' lacks '$want'"
    elif [ -e "$out" ] && [ "$(h5attr "$out" completed 2>/dev/null)" = 1 ]; then
        fail "$base: left a trace claiming completed"
    else
        pass "$base: $(cat "$work/$base.err")"
    fi
    # validate agrees with run on every bad spec
    mpirun "$ranks" "$CCDL" validate "$spec" > /dev/null 2>&1
    code=$?
    [ "$code" -eq 2 ] || fail "$base: validate exited $code, expected 2"
done
[ "$count" -ge 15 ] || fail "corpus has only $count specs"
finish

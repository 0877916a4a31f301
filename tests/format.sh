# format.sh: sources follow .clang-format (skipped when clang-format is not installed).
. "$(dirname "$0")/lib.sh"
if [ -z "${CLANG_FORMAT:-}" ]; then echo "clang-format not found"; exit 77; fi
cd "$top_srcdir" || exit 1
for f in src/*.c src/*.h src/*/*.c src/*/*.h tests/*.c tests/*.h bench/*.c; do
    [ -e "$f" ] || continue
    if "$CLANG_FORMAT" --dry-run --Werror "$f" 2> /dev/null; then :; else fail "$f is not clang-formatted (run: clang-format -i $f)"; fi
done
[ "$failures" -eq 0 ] && pass "all sources formatted"
finish

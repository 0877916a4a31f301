# debian_corpus.sh: tools/debian_corpus.py (docs/corpus.md) on small .mo files written here in
# pure Python: the cleaning rules (placeholders, accelerators, context, plurals, markup, space,
# length), English-side dedup, split determinism (two runs are identical; adding a catalog moves
# no pair between splits), line alignment, refusals (corrupt, truncated or missing .mo, a
# non-empty OUT_DIR) with one line naming the file. Then, when the pinned packages are installed,
# the real corpus: built twice, identical, pair counts in range; setup.sh installs the pinned list.
. "$(dirname "$0")/lib.sh"
export PYTHONDONTWRITEBYTECODE=1
conv="$top_srcdir/tools/debian_corpus.py"
corpus() { "$PYTHON" "$conv" "$@"; }

# mkmo.py OUT.mo JSON | OUT.mo --numbered FIRST LAST [PREFIX]: a little-endian .mo file with a
# UTF-8 header. JSON is a list of [msgid, msgstr]; a plural is [[singular, plural], [forms...]],
# a context is "ctxt\u0004msgid". --numbered writes FIRST..LAST aligned sentences that name
# their number on both sides, so alignment can be checked line by line.
cat > "$work/mkmo.py" <<'PY'
import json, struct, sys

def write_mo(path, entries):
    header = "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n != 1);\n"
    items = [(b"", header.encode())]
    for msgid, msgstr in entries:
        if isinstance(msgid, list):  # a plural: ids and forms joined by NUL
            msgid, msgstr = "\0".join(msgid), "\0".join(msgstr)
        items.append((msgid.encode(), msgstr.encode()))
    items.sort()
    n = len(items)
    orig, trans = 28, 28 + 8 * n
    data = 28 + 16 * n
    blob, otab, ttab = b"", b"", b""
    for table, index in (("o", 0), ("t", 1)):
        for item in items:
            s = item[index]
            entry = struct.pack("<II", len(s), data + len(blob))
            blob += s + b"\0"
            if table == "o":
                otab += entry
            else:
                ttab += entry
    with open(path, "wb") as f:
        f.write(struct.pack("<7I", 0x950412DE, 0, n, orig, trans, 0, 0) + otab + ttab + blob)

out = sys.argv[1]
if sys.argv[2] == "--numbered":
    first, last = int(sys.argv[3]), int(sys.argv[4])
    prefix = sys.argv[5] if len(sys.argv) > 5 else "Message"
    write_mo(out, [(f"{prefix} number {i} was sent today", f"Nachricht Nummer {i} wurde heute gesendet")
                   for i in range(first, last + 1)])
else:
    with open(sys.argv[2], encoding="utf-8") as f:
        write_mo(out, json.load(f))
PY
mkmo() { "$PYTHON" "$work/mkmo.py" "$@"; }
# pair_in DIR ENGLISH GERMAN: the pair is on one line number of some split's .en and .de
pair_in() {
    local s
    for s in train val test; do
        paste -d '\t' "$1/$s.en" "$1/$s.de" | grep -qxF "$2	$3" && return 0
    done
    return 1
}
# en_count DIR ENGLISH: how many lines of all .en files are exactly ENGLISH
en_count() { cat "$1"/train.en "$1"/val.en "$1"/test.en | grep -cxF "$2"; }
# one_line_naming FILE TEXT: FILE (stderr) is a single line that contains TEXT
one_line_naming() { test "$(wc -l < "$1")" -eq 1 && grep -qF "$2" "$1"; }

# ---------------------------------------------------------------- the cleaning rules
long_en="one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty twentyone"
long_de="eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn vierzehn fünfzehn sechzehn siebzehn achtzehn neunzehn zwanzig einundzwanzig"
cat > "$work/rules.json" <<EOF
[["Open the file now", "Die Datei jetzt öffnen"],
 ["Cannot open %s right now", "Kann %s gerade nicht öffnen"],
 ["Copied %1\$s files to the disk", "%1\$s Dateien auf die Platte kopiert"],
 ["Saving the file at 100% speed", "Die Datei mit voller Geschwindigkeit speichern"],
 ["Hello {name} and good morning", "Hallo {name} und guten Morgen"],
 ["Remove \$HOME from the list", "\$HOME aus der Liste entfernen"],
 ["_Save the document", "Das Dokument _speichern"],
 ["Save _As another file", "Ö_ffnen als andere Datei"],
 ["&Close this window", "Dieses Fenster &schließen"],
 ["Drag & drop the files", "Die Dateien ziehen & ablegen"],
 ["Open in new ~window", "In neuem ~Fenster öffnen"],
 ["menu\u0004Quit the program", "Das Programm beenden"],
 [["One file was removed", "Many files were removed"], ["Eine Datei wurde entfernt", "Viele Dateien wurden entfernt"]],
 ["Too short", "Zu kurz"],
 ["$long_en", "$long_de"],
 ["<b>Bold text here</b> and more", "<b>Fetter Text hier</b> und mehr"],
 ["Tom &amp; Jerry went home", "Tom &amp; Jerry gingen heim"],
 ["A line\nbroken in   two\tparts  ", "Eine Zeile\nin   zwei\tTeilen  "],
 ["   Leading and trailing space   ", "  Leerraum vorn und hinten "],
 ["git add [<options>] <pathspec>", "git add [<Optionen>] <Pfadspezifikation>"],
 ["-v, --verbose be more verbose", "-v, --verbose mehr Ausgaben"],
 ["Invalid value for core_editor setting", "Ungültiger Wert für core_editor Einstellung"],
 ["Same text on both", "Same text on both"],
 ["Error reading the well-known file", "Fehler beim Lesen der wohlbekannten Datei"]]
EOF
mkmo "$work/rules.mo" "$work/rules.json"
corpus "$work/rules" --mo-files "$work/rules.mo" > "$work/out" 2> "$work/err"
check "rules: converter exits 0" test $? -eq 0
r="$work/rules"
check "rules: a plain pair is kept" pair_in "$r" "Open the file now" "Die Datei jetzt öffnen"
for e in "Cannot open %s right now" "Copied %1\$s files to the disk" "Saving the file at 100% speed" \
    "Hello {name} and good morning" "Remove \$HOME from the list"; do
    check "rules: placeholder pair dropped: $e" test "$(en_count "$r" "$e")" -eq 0
done
check "rules: GTK mnemonic stripped on both sides" pair_in "$r" "Save the document" "Das Dokument speichern"
check "rules: mid-word German mnemonic stripped" pair_in "$r" "Save As another file" "Öffnen als andere Datei"
check "rules: KDE accelerator stripped" pair_in "$r" "Close this window" "Dieses Fenster schließen"
check "rules: a spaced & is text, kept" pair_in "$r" "Drag & drop the files" "Die Dateien ziehen & ablegen"
check "rules: ~ hotkey stripped" pair_in "$r" "Open in new window" "In neuem Fenster öffnen"
check "rules: msgctxt stripped" pair_in "$r" "Quit the program" "Das Programm beenden"
check "rules: no context separator left" sh -c "! cat '$r'/*.en '$r'/*.de | grep -q \"\$(printf '\\004')\""
check "rules: plural entries dropped" sh -c "! cat '$r'/*.en | grep -q 'file was removed\|files were removed'"
check "rules: under 3 words dropped" test "$(en_count "$r" "Too short")" -eq 0
check "rules: over 20 words dropped" test "$(en_count "$r" "$long_en")" -eq 0
check "rules: markup stripped" pair_in "$r" "Bold text here and more" "Fetter Text hier und mehr"
check "rules: XML entities decoded" pair_in "$r" "Tom & Jerry went home" "Tom & Jerry gingen heim"
check "rules: newlines, tabs and runs of spaces are one space" \
    pair_in "$r" "A line broken in two parts" "Eine Zeile in zwei Teilen"
check "rules: leading and trailing space stripped" \
    pair_in "$r" "Leading and trailing space" "Leerraum vorn und hinten"
check "rules: command syntax dropped" sh -c "! cat '$r'/*.en | grep -q 'git add\|verbose'"
check "rules: identifiers dropped" test "$(en_count "$r" "Invalid value for core_editor setting")" -eq 0
check "rules: an untranslated copy dropped" test "$(en_count "$r" "Same text on both")" -eq 0
check "rules: a hyphenated word is text, kept" \
    pair_in "$r" "Error reading the well-known file" "Fehler beim Lesen der wohlbekannten Datei"
check "rules: exactly the 12 expected pairs" test "$(cat "$r"/*.en | wc -l)" -eq 12
check "rules: MANIFEST counts the drops" \
    grep -qx "dropped: duplicate 0, identical 1, length 2, placeholder 5, plural 1, syntax 3" "$r/MANIFEST"

# ---------------------------------------------------------------- dedup on the English side
cat > "$work/dup1.json" <<'EOF'
[["Open the file now", "Öffne die Datei jetzt"], ["Close all the windows", "Alle Fenster schließen"],
 ["Print the page twice", "Die Seite zweimal drucken"]]
EOF
cat > "$work/dup2.json" <<'EOF'
[["open the file now.", "Öffne die Datei jetzt."], ["Open the file now", "Öffne die Datei jetzt"],
 ["Close all the windows", "Schließe alle Fenster"],
 ["Print the page twice", "Seite zweimal drucken"], ["Print the page two times", "Die Seite zweimal drucken"]]
EOF
mkmo "$work/dup1.mo" "$work/dup1.json"
mkmo "$work/dup2.mo" "$work/dup2.json"
corpus "$work/dup" --mo-files "$work/rules.mo" "$work/dup1.mo" "$work/dup2.mo" > /dev/null 2>&1
d="$work/dup"
check "dedup: one line for an English sentence found 4 times (case, final dot)" \
    sh -c "test \$(cat '$d'/*.en | grep -ci '^open the file now') -eq 1"
check "dedup: the pair found in two catalogs wins" pair_in "$d" "Open the file now" "Öffne die Datei jetzt"
check "dedup: a 1:1 tie goes to the smallest German" pair_in "$d" "Close all the windows" "Alle Fenster schließen"
check "dedup: one German for two English sentences: both kept" \
    test "$(cat "$d"/*.de | grep -cx 'Die Seite zweimal drucken')" -eq 2
check "dedup: MANIFEST counts 5 duplicates" grep -q "^dropped: duplicate 5," "$d/MANIFEST"

# ---------------------------------------------------------------- splits: determinism, stability
mkmo "$work/n1.mo" --numbered 1 3000
mkmo "$work/n2.mo" --numbered 3001 4000 Letter
corpus "$work/s1" --mo-files "$work/n1.mo" > /dev/null 2>&1
corpus "$work/s1b" --mo-files "$work/n1.mo" > /dev/null 2>&1
corpus "$work/s2" --mo-files "$work/n1.mo" "$work/n2.mo" > /dev/null 2>&1
check "split: two runs give identical files" diff -r "$work/s1" "$work/s1b"
check "split: all 3000 pairs written" test "$(cat "$work"/s1/*.en | wc -l)" -eq 3000
for s in val test; do
    n=$(wc -l < "$work/s1/$s.en")
    check "split: $s holds 3.1%..5.5% of 3000 pairs ($n)" test "$n" -ge 93 -a "$n" -le 165
done
# every pair of the first build is in the same split of the build with one catalog more
moved=0
for s in train val test; do
    paste -d '\t' "$work/s1/$s.en" "$work/s1/$s.de" | sort > "$work/a" 
    paste -d '\t' "$work/s2/$s.en" "$work/s2/$s.de" | sort > "$work/b"
    moved=$((moved + $(comm -23 "$work/a" "$work/b" | wc -l)))
done
check "split: adding a catalog moves no existing pair between splits (moved $moved)" test "$moved" -eq 0
check "split: the added catalog's pairs are there" test "$(cat "$work"/s2/*.en | wc -l)" -eq 4000
aligned() {  # every line of DIR/SPLIT.en and .de names the same number
    for s in train val test; do
        test "$(wc -l < "$1/$s.en")" -eq "$(wc -l < "$1/$s.de")" || return 1
        paste -d '\t' "$1/$s.en" "$1/$s.de" | awk -F '\t' '{ split($1, e, " "); split($2, g, " ");
            if (e[3] != g[3]) bad++ } END { exit bad > 0 }' || return 1
    done
}
check "split: .en and .de line-aligned in every split" aligned "$work/s2"
check "split: UTF-8, one sentence a line, no blank line" \
    sh -c "! grep -qx '' '$work'/s2/*.en '$work'/s2/*.de && iconv -f UTF-8 -t UTF-8 '$work/s2/train.de' > /dev/null"
check "MANIFEST: checksums match the files" \
    sh -c "cd '$work/s2' && sed -n 's/^  \([0-9a-f]\{64\}\)  /\1  /p' MANIFEST | sha256sum --quiet -c"
check "MANIFEST: counts per split" \
    sh -c "grep -qx \"pairs: train \$(wc -l < '$work/s2/train.en'), val \$(wc -l < '$work/s2/val.en'), test \$(wc -l < '$work/s2/test.en')\" '$work/s2/MANIFEST'"

# ---------------------------------------------------------------- refusals
head -c 200 /dev/urandom > "$work/garbage.mo"
printf '\336\022\004\225garbage' > "$work/badmagic.mo"   # right magic, then too short
head -c 100 "$work/n1.mo" > "$work/truncated.mo"
for bad in garbage.mo badmagic.mo truncated.mo; do
    rm -rf "$work/out_bad"
    corpus "$work/out_bad" --mo-files "$work/n1.mo" "$work/$bad" > /dev/null 2> "$work/err"; code=$?
    check "refuse corrupt $bad: exit non-zero" test "$code" -ne 0
    check "refuse corrupt $bad: one line naming it" one_line_naming "$work/err" "$work/$bad: corrupt .mo file"
    check "refuse corrupt $bad: no corpus written" test ! -e "$work/out_bad/MANIFEST"
done
corpus "$work/out_bad" --mo-files "$work/n1.mo" "$work/nonexistent.mo" > /dev/null 2> "$work/err"; code=$?
check "refuse a missing .mo: exit non-zero" test "$code" -ne 0
check "refuse a missing .mo: one line naming it" one_line_naming "$work/err" "$work/nonexistent.mo: missing"
before=$(cat "$work"/s1/* | sha256sum)
corpus "$work/s1" --mo-files "$work/n2.mo" > /dev/null 2> "$work/err"; code=$?
check "refuse a non-empty OUT_DIR: exit non-zero" test "$code" -ne 0
check "refuse a non-empty OUT_DIR: one line naming it" \
    one_line_naming "$work/err" "$work/s1: output directory is not empty"
check "refuse a non-empty OUT_DIR: the finished corpus is untouched" test "$(cat "$work"/s1/* | sha256sum)" = "$before"
corpus "$work/s1" --force --mo-files "$work/n1.mo" "$work/n2.mo" > /dev/null 2>&1
check "--force replaces the corpus" diff -r "$work/s1" "$work/s2"
: > "$work/plainfile"
corpus "$work/plainfile" --mo-files "$work/n1.mo" > /dev/null 2> "$work/err"; code=$?
check "refuse an OUT_DIR that is a file: exit non-zero, one line naming it" \
    sh -c "test $code -ne 0" && one_line_naming "$work/err" "$work/plainfile: exists and is not a directory"
mkdir -p "$work/empty"
corpus "$work/empty" --mo-files "$work/n1.mo" > /dev/null 2>&1
check "an existing empty OUT_DIR is fine" test -s "$work/empty/MANIFEST"

# the pinned-list refusals, on a pinned list replaced from Python: a package that is not
# installed; a missing domain file where dpkg is told to drop translations (a config dir here)
with_pinned() {  # with_pinned PINNED_DICT CFG_DIR OUT: run main() with those settings
    "$PYTHON" -c "import sys; sys.path.insert(0, sys.argv[1]); import debian_corpus as d
d.PINNED = eval(sys.argv[2]); d.DPKG_CFG_DIR = sys.argv[3]; sys.exit(d.main([sys.argv[4]]))" \
        "$top_srcdir/tools" "$1" "$2" "$3"
}
with_pinned "{'ccdl-no-such-package': ['x']}" "$work" "$work/out_pkg" > /dev/null 2> "$work/err"; code=$?
check "refuse a pinned package that is not installed: exit non-zero" test "$code" -ne 0
check "refuse a pinned package that is not installed: one line naming it" \
    one_line_naming "$work/err" "ccdl-no-such-package: package not installed"
mkdir -p "$work/dpkg.cfg.d"
echo "path-exclude /usr/share/locale/*" > "$work/dpkg.cfg.d/excludes"
with_pinned "{'dpkg': ['ccdl-no-such-domain']}" "$work/dpkg.cfg.d" "$work/out_pkg" > /dev/null 2> "$work/err"
code=$?
check "a .mo dropped by dpkg path-exclude: exit non-zero" test "$code" -ne 0
check "a .mo dropped by dpkg path-exclude: one line naming the file and the rule" \
    one_line_naming "$work/err" "ccdl-no-such-domain.mo: missing (from package dpkg); dpkg drops translations ($work/dpkg.cfg.d/excludes: path-exclude /usr/share/locale/*)"

# ---------------------------------------------------------------- the pinned packages
pinned=$("$PYTHON" "$conv" --list-packages | cut -d' ' -f1)
check "the pinned list is not empty" test -n "$pinned"
# the words of setup.sh's packages=( ... ) array, comments removed
setup_packages=" $(sed -n '/^packages=(/,/^)/{s/#.*//;s/packages=(//;s/)//;p}' "$top_srcdir/tools/setup.sh" | tr -s ' \n' '  ') "
missing_setup=""
for p in $pinned; do
    case "$setup_packages" in *" $p "*) ;; *) missing_setup="$missing_setup $p" ;; esac
done
check "tools/setup.sh installs every pinned package (missing:${missing_setup:- none})" test -z "$missing_setup"
absent=""
for p in $pinned; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || absent="$absent $p"
done
if [ -n "$absent" ]; then
    echo "skip: the real corpus: not installed:$absent (tools/setup.sh installs them)"
else
    corpus "$work/real1" > "$work/real.log" 2>&1
    check "real: built from the pinned packages" test -s "$work/real1/MANIFEST"
    corpus "$work/real2" > /dev/null 2>&1
    check "real: two builds are identical (sha256 of every file)" \
        test "$(cd "$work/real1" && sha256sum ./*)" = "$(cd "$work/real2" && sha256sum ./*)"
    echo "real: $(cat "$work/real.log"); train.en sha256 $(sha256sum < "$work/real1/train.en" | cut -c1-16)"
    total=$(cat "$work"/real1/*.en | wc -l)
    check "real: 20000..27000 pairs ($total)" test "$total" -ge 20000 -a "$total" -le 27000
    for s in val test; do
        n=$(wc -l < "$work/real1/$s.en")
        check "real: $s has 850..1150 pairs ($n)" test "$n" -ge 850 -a "$n" -le 1150
    done
    check "real: every split line-aligned" sh -c "for s in train val test; do
        test \$(wc -l < '$work/real1/'\$s.en) -eq \$(wc -l < '$work/real1/'\$s.de) || exit 1; done"
    check "real: no placeholder, tab or control character left" \
        sh -c "! LC_ALL=C grep -q '%\|	' '$work'/real1/*.en '$work'/real1/*.de"
    versions_recorded() {
        local p
        for p in $pinned; do
            grep -qF "  $p $(dpkg-query -W -f='${Version}' "$p") " "$work/real1/MANIFEST" || return 1
        done
    }
    check "real: MANIFEST names every pinned package with its version" versions_recorded
fi
finish

#!/usr/bin/python3
"""debian_corpus.py: an English-German corpus from Debian's German message catalogs.

Usage: /usr/bin/python3 tools/debian_corpus.py OUT_DIR [--force] [--locale-dir DIR]
       /usr/bin/python3 tools/debian_corpus.py OUT_DIR [--force] --mo-files FILE.mo...
       /usr/bin/python3 tools/debian_corpus.py --survey [--locale-dir DIR]
       /usr/bin/python3 tools/debian_corpus.py --list-packages

It stands in for Multi30k (which cannot be downloaded here): the .mo files of a pinned list
of Debian 12 packages (PINNED below; msgid = English, msgstr = German) are read with Python's
gettext module, cleaned, filtered to 3..20 words per side, deduplicated on the English side,
and split by a hash of the English sentence into OUT_DIR/{train,val,test}.{en,de} (UTF-8, one
sentence per line, line-aligned) plus OUT_DIR/MANIFEST (packages, versions, counts, sha256).
docs/corpus.md has the rules and the reasons for them.

  --locale-dir DIR   read the pinned domains from DIR (default /usr/share/locale/de/LC_MESSAGES)
  --mo-files F...    read exactly these .mo files instead of the pinned packages (tests);
                     the files are all the arguments after it
  --force            replace the corpus files of a non-empty OUT_DIR
  --survey           print the usable pairs of every .mo in the locale dir, with its package
  --list-packages    print the pinned packages and their domains, one package a line

Errors (a missing package or .mo, a corrupt .mo, a non-empty OUT_DIR) are one line on stderr
naming the file, and exit status 1. Standard library only.
"""
import collections
import gettext
import glob
import hashlib
import html
import io
import os
import re
import subprocess
import sys

LOCALE_DIR = "/usr/share/locale/de/LC_MESSAGES"
DPKG_CFG_DIR = "/etc/dpkg/dpkg.cfg.d"

# The pinned packages and the gettext domains (LOCALE_DIR/<domain>.mo) each ships; docs/corpus.md
# has their pairs and why these. Changing this list changes the corpus. tools/setup.sh installs
# these packages (tests/debian_corpus.sh checks that).
PINNED = {
    "apt": ["apt"],
    "aptitude-common": ["aptitude"],
    "binutils-common": ["gprof", "ld", "opcodes"],
    "coreutils": ["coreutils"],
    "dpkg": ["dpkg"],
    "e2fsprogs-l10n": ["e2fsprogs"],
    "elinks-data": ["elinks"],
    "evolution-data-server-common": ["evolution-data-server"],
    "gawk": ["gawk"],
    "gcc-12-locales": ["cpplib-12", "gcc-12"],
    "gettext": ["gettext-tools"],
    "git": ["git"],
    "gnupg-l10n": ["gnupg2"],
    "gsettings-desktop-schemas": ["gsettings-desktop-schemas"],
    "krb5-locales": ["mit-krb5"],
    "ktexteditor-data": ["ktexteditor5"],
    "libc-l10n": ["libc"],
    "libglib2.0-data": ["glib20"],
    "libgnutls30": ["gnutls30"],
    "libgphoto2-l10n": ["libgphoto2-6"],
    "libgtk2.0-common": ["gtk20", "gtk20-properties"],
    "libparted-i18n": ["parted"],
    "libsane-common": ["sane-backends"],
    "libvirt-l10n": ["libvirt"],
    "lynx-common": ["lynx"],
    "mailutils-common": ["mailutils"],
    "mc-data": ["mc"],
    "nano": ["nano"],
    "tar": ["tar"],
    "util-linux-locales": ["util-linux"],
    "weechat-core": ["weechat"],
    "wx3.2-i18n": ["wxstd-3.2"],
}

MIN_WORDS, MAX_WORDS = 3, 20
# Split by the first 8 bytes of sha256 of the English sentence's dedup key, modulo 1000: a pair's
# split depends on its own sentence only, so adding a package adds pairs but never moves
# existing ones between splits.
VAL_PERMILLE, TEST_PERMILLE = 43, 43  # about 1000 each of the ~23,000 pairs, as Multi30k has
SPLITS = ("train", "val", "test")
OUTPUTS = [f"{s}.{lang}" for s in SPLITS for lang in ("en", "de")] + ["MANIFEST"]


class CorpusError(Exception):
    """A refusal: one line naming the file, printed as is."""


# ----------------------------------------------------------------------------------- reading
def read_catalog(path):
    """The catalog dict of one .mo file, as gettext.GNUTranslations parses it.

    Keys are msgid strings ("ctxt\\x04msgid" with a context) or (msgid, n) tuples for plural
    forms; "" is the header. _catalog is the only way gettext exposes every message."""
    if not os.path.exists(path):
        raise CorpusError(f"{path}: missing")
    if not os.path.isfile(path):
        raise CorpusError(f"{path}: not a regular file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CorpusError(f"{path}: unreadable: {e.strerror}") from e
    try:
        return gettext.GNUTranslations(io.BytesIO(data))._catalog
    except OSError as e:  # gettext's own "Bad magic number", "File is corrupt"
        raise CorpusError(f"{path}: corrupt .mo file: {e.strerror or e}") from e
    except Exception as e:  # struct.error, UnicodeDecodeError, a bad Plural-Forms header...
        raise CorpusError(f"{path}: corrupt .mo file: {e}") from e


# ---------------------------------------------------------------------------------- cleaning
# A "%" anywhere: in a catalog it is nearly always a conversion (printf's %s, %1$s, %lu; GCC's
# %qs, %<...%>; Python's %(name)s; Qt's %1), since a literal percent in a format string is "%%",
# and the rare plain "50% done" cannot be told apart reliably. Also the brace fields of
# str.format / ICU ({0}, {name}) and shell variables (${var}, $var).
PLACEHOLDER = re.compile(r"%|\{\w*(:[^{}]*)?\}|\$\{?[A-Za-z_]\w*")
# The markup Pango and Qt rich text put in UI strings; other <...> is command syntax.
MARKUP = re.compile(r"</?(b|i|u|s|tt|big|small|sub|sup|span|a|em|strong|kbd|code|p|br|qt"
                    r"|html|body|ul|ol|li|h\d)(\s[^<>]*)?/?>", re.IGNORECASE)
XML_ENTITIES = ("&lt;", "&gt;", "&amp;", "&quot;", "&apos;", "&#39;", "&nbsp;")
ZERO_WIDTH = dict.fromkeys(map(ord, "\ufeff\u200b\u200c\u200d\u2060"))
# A GTK mnemonic: "_" before a letter; a KDE/Qt accelerator: "&" before a letter that is not
# an entity ("&&" is a literal "&" there); ELinks and Midnight Commander mark hotkeys with "~".
GTK_MNEMONIC = re.compile(r"_(?=\w)")
KDE_ACCEL = re.compile(r"&(?=\w)(?!\w+;)")
TILDE_HOTKEY = re.compile(r"~(?=\w)")
# What remains after cleaning and means the string is syntax, not a sentence: command lines
# (<file>, [--opt], a|b), identifiers (snake_case, key=value), escapes, paths in backquotes.
SYNTAX = re.compile(r"[<>\[\]{}|\\=`_@#~^*]|(^|\s)--?\w|\w\(\)|://|/\w+/")


def drop_context(msgid):
    """msgctxt is stored as "context\\x04msgid"; the context is for translators, not text."""
    return msgid.rsplit("\x04", 1)[-1]


def is_mnemonic(english, german):
    """One "_" before a letter in each side, and the English word that has it is not copied
    verbatim into the German: a mnemonic moves with the translation ("Save _As" -> "Speichern
    _unter"), an identifier stays (core_editor)."""
    if english.count("_") != 1 or german.count("_") != 1 or not GTK_MNEMONIC.search(english):
        return False
    word = next(w for w in english.split() if "_" in w)
    return word not in german


def strip_accelerators(english, german):
    """Remove GTK "_", KDE "&" and "~" hotkey markers, from both sides or from neither.

    The English side decides: a marker there means the German has one too, anywhere in a word
    ("Ö_ffnen"). An identifier with "_" is left for the SYNTAX filter to drop, as is a marker
    on one side only."""
    if is_mnemonic(english, german):
        english, german = GTK_MNEMONIC.sub("", english), GTK_MNEMONIC.sub("", german)
    if KDE_ACCEL.search(english.replace("&&", "")) and KDE_ACCEL.search(german.replace("&&", "")):
        english, german = (KDE_ACCEL.sub("", s).replace("&&", "&") for s in (english, german))
    if english.count("~") == 1 and TILDE_HOTKEY.search(english) and german.count("~") == 1:
        english, german = TILDE_HOTKEY.sub("", english), TILDE_HOTKEY.sub("", german)
    return english, german


def strip_markup(text):
    """Drop Pango/HTML tags and decode the XML entities markup strings need."""
    text = MARKUP.sub("", text)
    if "&" in text:
        for entity in XML_ENTITIES:
            text = text.replace(entity, html.unescape(entity).replace("\xa0", " "))
    return text


def normalise_space(text):
    """Newlines, tabs, no-break and runs of spaces become one space; no leading or trailing
    space; zero-width characters (a stray BOM, U+200B) go."""
    return " ".join(text.translate(ZERO_WIDTH).split())


def word_count_ok(text):
    return MIN_WORDS <= len(text.split()) <= MAX_WORDS


def clean_pair(msgid, msgstr):
    """The cleaned (English, German) pair, or None with the reason it is dropped."""
    english = drop_context(msgid)
    german = msgstr
    # Placeholders are dropped, not stripped: removing "%s" from "cannot open %s: %s" leaves a
    # broken sentence, and keeping it teaches the model tokens Multi30k has none of.
    if PLACEHOLDER.search(english) or PLACEHOLDER.search(german):
        return None, "placeholder"
    english, german = strip_accelerators(english, german)
    english, german = normalise_space(strip_markup(english)), normalise_space(strip_markup(german))
    if SYNTAX.search(english) or SYNTAX.search(german):
        return None, "syntax"
    if english == german:  # an untranslated copy, or a name; not a translation
        return None, "identical"
    if not (word_count_ok(english) and word_count_ok(german)):
        return None, "length"
    return (english, german), None


def catalog_pairs(catalog, stats):
    """Cleaned pairs of one catalog; stats counts what was dropped and why."""
    pairs = []
    for key, msgstr in catalog.items():
        if key == "":  # the header
            continue
        if isinstance(key, tuple):
            # Plural forms are dropped: the English is a count template ("%d file") nearly
            # always, and which German form goes with the singular depends on Plural-Forms.
            if key[1] == 0:
                stats["plural"] += 1
            continue
        pair, reason = clean_pair(key, msgstr)
        if pair is None:
            stats[reason] += 1
        else:
            pairs.append(pair)
    return pairs


# ----------------------------------------------------------------------- dedup, split, order
def dedup_key(english):
    """What counts as the same English sentence: "Cannot open file." and "cannot open file"
    are one, so near-copies cannot sit in train and test at once."""
    return english.casefold().rstrip(".:!?… ")


def english_hash(english):
    key = dedup_key(english).encode("utf-8")
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big")


def split_of(english):
    bucket = english_hash(english) % 1000
    if bucket < VAL_PERMILLE:
        return "val"
    if bucket < VAL_PERMILLE + TEST_PERMILLE:
        return "test"
    return "train"


def deduplicate(pairs):
    """One pair per English sentence (per dedup_key): the pair found most often across
    catalogs, ties to the smallest (English, German). Deduplicating on the English side keeps a
    source sentence out of two splits and gives each source one reference, as Multi30k has;
    two English sentences with one German translation are two pairs, both kept."""
    counts = collections.defaultdict(collections.Counter)
    for pair in pairs:
        counts[dedup_key(pair[0])][pair] += 1
    return [min(c.items(), key=lambda item: (-item[1], item[0]))[0] for c in counts.values()]


def split_corpus(pairs):
    """{split: [(english, german)]}, each in hash order (a fixed shuffle that does not depend on
    which other sentences exist), ties by the pair."""
    splits = {s: [] for s in SPLITS}
    for pair in sorted(pairs, key=lambda p: (english_hash(p[0]), p)):
        splits[split_of(pair[0])].append(pair)
    return splits


# ---------------------------------------------------------------------------------- packages
def dpkg_query(*args):
    """dpkg-query's stdout, or None when it fails or is absent."""
    try:
        r = subprocess.run(["dpkg-query", *args], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return r.stdout if r.returncode == 0 else None


def package_version(package):
    out = dpkg_query("-W", "-f=${Status}\t${Version}", package)
    if out is None or not out.startswith("install ok installed\t"):
        return None
    return out.split("\t", 1)[1]


def excluded_by_dpkg():
    """The dpkg config line that keeps /usr/share/locale out of installs, if any (Docker's
    minimal images drop translations with path-exclude)."""
    for cfg in sorted(glob.glob(os.path.join(DPKG_CFG_DIR, "*"))):
        try:
            with open(cfg, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if re.match(r"\s*path-exclude[ =]+/usr/share/locale", line):
                        return f"{cfg}: {line.strip()}"
        except OSError:
            continue
    return None


def owners(paths):
    """{path: package} for the paths dpkg knows (one dpkg-query call for all of them)."""
    out = subprocess.run(["dpkg-query", "-S", *paths], capture_output=True, text=True,
                         check=False).stdout
    found = {}
    for line in out.splitlines():
        packages, _, path = line.partition(": ")
        found[path] = packages.split(",")[0].split(":")[0].strip()  # drop ":amd64"
    return found


def pinned_sources(locale_dir):
    """[(package, version, domain, path)] of the pinned list. From the installed system, each
    package must be installed and own its domain files; from another --locale-dir (say, .debs
    unpacked elsewhere) the files only have to exist, and versions are "-"."""
    installed = locale_dir == LOCALE_DIR
    sources = []
    for package, domains in PINNED.items():
        version = package_version(package) if installed else "-"
        if version is None:
            raise CorpusError(f"{package}: package not installed (tools/setup.sh installs it)")
        for domain in domains:
            path = os.path.join(locale_dir, domain + ".mo")
            if not os.path.exists(path):
                exclude = excluded_by_dpkg() if installed else None
                why = f"; dpkg drops translations ({exclude}), see docs/corpus.md" if exclude else ""
                raise CorpusError(f"{path}: missing (from package {package}){why}")
            sources.append((package, version, domain, path))
    if installed:
        owner = owners([path for _, _, _, path in sources])
        for package, _, _, path in sources:
            if owner.get(path) != package:
                raise CorpusError(f"{path}: belongs to {owner.get(path, 'no package')}, "
                                  f"not the pinned {package}")
    return sources


def file_sources(paths):
    return [("-", "-", os.path.basename(p)[:-3] if p.endswith(".mo") else p, p) for p in paths]


# ----------------------------------------------------------------------------------- writing
def check_out_dir(out, force):
    if os.path.exists(out) and not os.path.isdir(out):
        raise CorpusError(f"{out}: exists and is not a directory")
    if os.path.isdir(out) and os.listdir(out) and not force:
        raise CorpusError(f"{out}: output directory is not empty (a finished corpus?); "
                          "use --force to replace it")


def write_text(path, lines):
    """Write atomically: a crash never leaves a half-written file under the final name."""
    tmp = path + ".part"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)
    os.replace(tmp, path)


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def manifest_lines(sources, per_source, splits, drops, out):
    lines = ["# debian_corpus.py: English-German pairs from Debian's German message catalogs",
             "# (msgid = English, msgstr = German); see docs/corpus.md. A stand-in for Multi30k.",
             f"words per side: {MIN_WORDS}..{MAX_WORDS}; split: sha256(key)[:8] mod 1000, key = English "
             f"casefolded without final .:!?: "
             f"val < {VAL_PERMILLE}, test < {VAL_PERMILLE + TEST_PERMILLE}, else train",
             "", "sources (package version domain pairs-after-cleaning):"]
    lines += [f"  {pkg} {ver} {dom} {per_source[path]}" for pkg, ver, dom, path in sources]
    lines += ["", "dropped: " + ", ".join(f"{k} {drops[k]}" for k in sorted(drops)),
              "pairs: " + ", ".join(f"{s} {len(splits[s])}" for s in SPLITS), "", "sha256:"]
    lines += [f"  {sha256_file(os.path.join(out, name))}  {name}" for name in OUTPUTS[:-1]]
    return lines


def build(out, sources, force):
    check_out_dir(out, force)
    drops, per_source, pairs = collections.Counter(), {}, []
    for _package, _version, _domain, path in sources:
        found = catalog_pairs(read_catalog(path), drops)
        per_source[path] = len(found)
        pairs += found
    unique = deduplicate(pairs)
    drops["duplicate"] = len(pairs) - len(unique)
    splits = split_corpus(unique)
    os.makedirs(out, exist_ok=True)
    if force and os.path.exists(os.path.join(out, "MANIFEST")):
        os.remove(os.path.join(out, "MANIFEST"))  # no MANIFEST means: not a finished corpus
    for split in SPLITS:
        write_text(os.path.join(out, f"{split}.en"), [e for e, _ in splits[split]])
        write_text(os.path.join(out, f"{split}.de"), [g for _, g in splits[split]])
    write_text(os.path.join(out, "MANIFEST"), manifest_lines(sources, per_source, splits, drops, out))
    print(f"{out}: " + ", ".join(f"{s} {len(splits[s])}" for s in SPLITS) + " pairs")


def survey(locale_dir):
    """Usable pairs per .mo file, for choosing PINNED."""
    for path in sorted(glob.glob(os.path.join(locale_dir, "*.mo"))):
        owner = (dpkg_query("-S", path) or "?:").split(":")[0]
        try:
            n = len(catalog_pairs(read_catalog(path), collections.Counter()))
        except CorpusError as e:
            print(e)
            continue
        print(f"{n:6d} {owner} {os.path.basename(path)[:-3]}")


# -------------------------------------------------------------------------------------- main
def parse_args(argv):
    opts = {"out": None, "force": False, "locale_dir": LOCALE_DIR, "mo_files": None,
            "survey": False}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--force":
            opts["force"] = True
        elif arg == "--survey":
            opts["survey"] = True
        elif arg == "--list-packages":
            for package, domains in PINNED.items():
                print(package, *domains)
            sys.exit(0)
        elif arg == "--locale-dir" and i + 1 < len(argv):
            i += 1
            opts["locale_dir"] = argv[i]
        elif arg == "--mo-files":
            opts["mo_files"] = argv[i + 1:]
            break
        elif arg in ("-h", "--help"):
            print(__doc__)
            sys.exit(0)
        elif arg.startswith("-") or opts["out"] is not None:
            raise CorpusError(f"{arg}: unexpected argument; see --help")
        else:
            opts["out"] = arg
        i += 1
    if not opts["survey"] and opts["out"] is None:
        raise CorpusError("no OUT_DIR given; see --help")
    if opts["mo_files"] is not None and not opts["mo_files"]:
        raise CorpusError("--mo-files: no files given")
    return opts


def main(argv):
    try:
        opts = parse_args(argv)
        if opts["survey"]:
            survey(opts["locale_dir"])
            return 0
        if opts["mo_files"] is not None:
            sources = file_sources(opts["mo_files"])
        else:
            sources = pinned_sources(opts["locale_dir"])
        build(opts["out"], sources, opts["force"])
        return 0
    except CorpusError as e:
        print(f"debian_corpus: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # writing OUT_DIR: a full disk, no permission
        print(f"debian_corpus: {e.filename or opts.get('out')}: {e.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

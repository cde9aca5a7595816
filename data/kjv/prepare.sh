#!/bin/sh
# Turns Debian's King James Bible (packages bible-kjv-text + bible-kjv, public domain text)
# into the plain-text corpus the shipped tiny model is pretrained on.
#
#   sh data/kjv/prepare.sh [DATADIR]
#
# DATADIR holds bible.data and bible.data.conc (default /usr/lib, where bible-kjv-text
# installs them); the root of a `dpkg -x` extraction works too. The text is stored compressed in a format of its own, so it
# is read through the package's `bible` program (from bible-kjv; set BIBLE=path to use another).
#
# Writes, next to this script (or into $OUT):
#   train.txt   verse text, one verse per line, no references, in Bible order
#   valid.txt   the held-out verses: every chapter numbered 10, 30, 50, ... of every book
#               (about 5%), minus any verse whose exact text also occurs in train.txt
#   verses.tsv  book<TAB>chapter<TAB>verse<TAB>split<TAB>text for all 31,102 verses
#               (split is train or valid); data/sft/make.sh builds the SFT task from it
# and prints each file's size, line count and sha256.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here}
dir=${1:-/usr/lib}

install_hint='install it with: sudo apt-get install bible-kjv-text bible-kjv
(without root: apt-get download bible-kjv-text bible-kjv, then dpkg -x each .deb into DIR
and run: sh data/kjv/prepare.sh DIR)'

if [ ! -f "$dir/bible.data" ] && [ -f "$dir/usr/lib/bible.data" ]; then
    root=$dir
    dir=$dir/usr/lib
else
    root=
fi
for f in bible.data bible.data.conc; do  # bible crashes without the concordance file
    if [ ! -f "$dir/$f" ]; then
        printf 'prepare.sh: no %s in %s (Debian package bible-kjv-text)\n%s\n' "$f" "$dir" "$install_hint" >&2
        exit 1
    fi
done

bible=${BIBLE:-}
if [ -z "$bible" ]; then
    if [ -n "$root" ] && [ -x "$root/usr/bin/bible" ]; then
        bible=$root/usr/bin/bible
    elif command -v bible >/dev/null 2>&1; then
        bible=$(command -v bible)
    else
        printf 'prepare.sh: the bible program (Debian package bible-kjv) is needed to read %s\n%s\n' \
            "$dir/bible.data" "$install_hint" >&2
        exit 1
    fi
fi

mkdir -p "$out"
tmp=$out/.prepare.$$
trap 'rm -f "$tmp" "$tmp.tsv" "$tmp.train" "$tmp.valid"' EXIT INT TERM

# -f: one verse per line as "Ge1:1 In the beginning ...", not the pretty-printed layout.
# The whole Bible in one range; run from $out so no stray ./bible.data is picked up.
if ! (cd "$out" && "$bible" -f -p "$dir" 'Gen1:1-Rev22:21' </dev/null) >"$tmp"; then
    printf '\nprepare.sh: %s failed to read %s\n' "$bible" "$dir/bible.data" >&2
    exit 1
fi

# Books are named by their order, not by the program's abbreviations (Ge, Exo, 1Sm, ...),
# which differ between versions of bible-kjv.
LC_ALL=C awk -v tsv="$tmp.tsv" '
BEGIN {
    n = split("Genesis|Exodus|Leviticus|Numbers|Deuteronomy|Joshua|Judges|Ruth|1 Samuel|" \
        "2 Samuel|1 Kings|2 Kings|1 Chronicles|2 Chronicles|Ezra|Nehemiah|Esther|Job|Psalms|" \
        "Proverbs|Ecclesiastes|Song of Solomon|Isaiah|Jeremiah|Lamentations|Ezekiel|Daniel|" \
        "Hosea|Joel|Amos|Obadiah|Jonah|Micah|Nahum|Habakkuk|Zephaniah|Haggai|Zechariah|" \
        "Malachi|Matthew|Mark|Luke|John|Acts|Romans|1 Corinthians|2 Corinthians|Galatians|" \
        "Ephesians|Philippians|Colossians|1 Thessalonians|2 Thessalonians|1 Timothy|" \
        "2 Timothy|Titus|Philemon|Hebrews|James|1 Peter|2 Peter|1 John|2 John|3 John|Jude|" \
        "Revelation", name, "|")
    if (n != 66) { print "prepare.sh: internal error: book table" > "/dev/stderr"; exit 2 }
}
{
    if (!match($0, /^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ /)) {
        printf "prepare.sh: line %d of the bible output is not \"BookC:V text\": %.60s\n", NR, $0 > "/dev/stderr"
        bad = 1; exit 2
    }
    ref = substr($0, 1, RLENGTH - 1)
    text = substr($0, RLENGTH + 1)
    gsub(/[ \t\r]+/, " ", text); sub(/^ /, "", text); sub(/ $/, "", text)
    match(ref, /^[1-3]?[A-Za-z]+/)
    abbr = substr(ref, 1, RLENGTH)
    split(substr(ref, RLENGTH + 1), cv, ":")
    if (abbr != prev) { book++; prev = abbr }
    if (book > 66 || text == "") {
        printf "prepare.sh: unexpected verse %s\n", ref > "/dev/stderr"; bad = 1; exit 2
    }
    split_ = (cv[1] % 20 == 10) ? "valid" : "train"
    printf "%s\t%d\t%d\t%s\t%s\n", name[book], cv[1], cv[2], split_, text > tsv
    verses++
}
END {
    if (bad) exit 2
    if (book != 66 || verses != 31102) {
        printf "prepare.sh: expected 66 books and 31102 verses, got %d and %d\n", book, verses > "/dev/stderr"
        exit 2
    }
}' "$tmp"

# train.txt: the train verses. valid.txt: the valid verses whose text is not also a train
# verse (KJV repeats some verses word for word, e.g. Psalm 14 and 53, Numbers 7).
LC_ALL=C awk -F '\t' -v train="$tmp.train" -v valid="$tmp.valid" '
NR == FNR { if ($4 == "train") { seen[$5] = 1; print $5 > train }; next }
$4 == "valid" && !($5 in seen) { print $5 > valid }
' "$tmp.tsv" "$tmp.tsv"
mv "$tmp.tsv" "$out/verses.tsv"
mv "$tmp.train" "$out/train.txt"
mv "$tmp.valid" "$out/valid.txt"

printf 'source: %s (sha256 %s)\n' "$dir/bible.data" "$(sha256sum <"$dir/bible.data" | cut -d' ' -f1)"
for f in train.txt valid.txt verses.tsv; do
    printf '%-10s %8d bytes %6d lines  sha256 %s\n' "$f" "$(wc -c <"$out/$f")" "$(wc -l <"$out/$f")" \
        "$(sha256sum <"$out/$f" | cut -d' ' -f1)"
done

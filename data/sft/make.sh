#!/bin/sh
# Builds the instruction dataset of `make demo`: "which book of the Bible is this verse from?"
# over eight books, from the verse table that data/kjv/prepare.sh writes.
#
#   sh data/sft/make.sh [data/kjv/verses.tsv]
#
# Writes train.jsonl and test.jsonl (Alpaca records) next to this script, or into $OUT.
# Deterministic: the same verses.tsv gives byte-identical files (any POSIX awk).
#   - only verses of 40 to 200 characters whose text occurs once in the whole Bible
#     (KJV repeats some verses word for word; a repeated verse could be in both files)
#   - train: TRAIN_PER_BOOK verses per book from the chapters the tiny model was pretrained on,
#     evenly spaced through the book
#   - test: TEST_PER_BOOK verses per book from the held-out chapters (10, 30, 50, ...), which
#     neither pretraining nor SFT saw, evenly spaced through them
#   - both files in a fixed pseudo-random order (Park-Miller generator, seed SEED)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$here}
tsv=${1:-$here/../kjv/verses.tsv}
TRAIN_PER_BOOK=${TRAIN_PER_BOOK:-250}
TEST_PER_BOOK=${TEST_PER_BOOK:-10}
SEED=${SEED:-20240601}
BOOKS='Genesis|Exodus|Psalms|Proverbs|Matthew|Acts|Romans|Revelation'

if [ ! -f "$tsv" ]; then
    printf 'make.sh: no %s; run: sh data/kjv/prepare.sh\n' "$tsv" >&2
    exit 1
fi
mkdir -p "$out"
tmp=$out/.make.$$
trap 'rm -f "$tmp.train" "$tmp.test"' EXIT INT TERM

LC_ALL=C awk -F '\t' -v books="$BOOKS" -v ntrain="$TRAIN_PER_BOOK" -v ntest="$TEST_PER_BOOK" \
    -v seed="$SEED" -v train="$tmp.train" -v test="$tmp.test" '
function jstr(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
# Park-Miller minimal standard generator: every product stays below 2^46, exact in a double.
function rnd() { state = (state * 16807) % 2147483647; return state }
function emit(file, b, text) {
    printf "%010d\t{\"instruction\": %s, \"input\": %s, \"output\": %s}\n", rnd(), jstr(instr), jstr(text), jstr(b) > file
}
BEGIN {
    nb = split(books, book, "|")
    for (i = 1; i <= nb; i++) want[book[i]] = 1
    instr = "Which book of the Bible is this verse from?"
    state = seed % 2147483647
}
NR == FNR { count[$5]++; next }
($1 in want) && length($5) >= 40 && length($5) <= 200 && count[$5] == 1 {
    k = $1 SUBSEP $4
    pool[k, ++size[k]] = $5
}
END {
    for (i = 1; i <= nb; i++) {
        b = book[i]
        for (s = 1; s <= 2; s++) {
            split_ = (s == 1) ? "train" : "valid"
            want_n = (s == 1) ? ntrain : ntest
            k = b SUBSEP split_
            if (size[k] < want_n) {
                printf "make.sh: %s has %d usable %s verses, %d wanted\n", b, size[k], split_, want_n > "/dev/stderr"
                exit 2
            }
            # evenly spaced picks: j = floor(t * size / want_n), t = 0 .. want_n - 1
            for (t = 0; t < want_n; t++)
                emit(s == 1 ? train : test, b, pool[k, int(t * size[k] / want_n) + 1])
        }
    }
}' "$tsv" "$tsv"

LC_ALL=C sort -t "$(printf '\t')" -k1,1n -k2 "$tmp.train" | cut -f2- >"$out/train.jsonl"
LC_ALL=C sort -t "$(printf '\t')" -k1,1n -k2 "$tmp.test" | cut -f2- >"$out/test.jsonl"

for f in train.jsonl test.jsonl; do
    printf '%-12s %7d bytes %5d records  sha256 %s\n' "$f" "$(wc -c <"$out/$f")" "$(wc -l <"$out/$f")" \
        "$(sha256sum <"$out/$f" | cut -d' ' -f1)"
    LC_ALL=C awk -v books="$BOOKS" '{ sub(/.*"output": "/, ""); sub(/"}$/, ""); c[$0]++ }
    END {
        nb = split(books, book, "|")
        for (i = 1; i <= nb; i++) { printf "  %s %d", book[i], c[book[i]]; if (c[book[i]] > m) m = c[book[i]] }
        printf "\n  majority-class exact match: %d/%d = %.1f%%\n", m, NR, 100 * m / NR
    }' "$out/$f"
done

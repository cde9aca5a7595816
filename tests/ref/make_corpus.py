#!/usr/bin/env python3
"""Regenerate tests/ref/tok_corpus.jsonl (the tokenizer conformance corpus).

The corpus is hand-written; this script only exists so that the long / repetitive
entries (digit runs, space runs, 3000-char words) and the invisible characters
(combining marks, ZWJ, BOM, ...) are spelled out reviewably with escapes.
Order is significant: fixtures under tests/fixtures/tok/ have one line per entry,
in this order.  Append new entries at the END so existing line numbers stay valid.

    python3 tests/ref/make_corpus.py [--out tests/ref/tok_corpus.jsonl]
"""
import argparse
import json
import os
import re

C = []  # the corpus


def add(*xs):
    C.extend(xs)


# ---------------------------------------------------------------- edge cases
add("", " ", "a", "A", "\n", "\t", "\r\n", "\r", "0", ".", "'", "'s")

# ---------------------------------------------------------------- English prose
add(
    "Hello world",
    "Hello, world!",
    "hello world",
    " Hello world",
    "  Hello world",
    "Hello world ",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!",
    "It was the best of times, it was the worst of times, it was the age of wisdom, "
    "it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity.",
    "Call me Ishmael. Some years ago\u2014never mind how long precisely\u2014having little or no money "
    "in my purse, and nothing particular to interest me on shore, I thought I would sail about a little.",
    "In 1969, Neil Armstrong became the first person to walk on the Moon.",
    "Tokenization is the process of splitting text into smaller units called tokens.",
    "She sells sea-shells by the sea-shore; the shells she sells are surely sea-shells.",
    "Mr. and Mrs. Dursley, of number four, Privet Drive, were proud to say that they were perfectly normal.",
    "Dr. Smith (Ph.D.) arrived at 3:45 p.m. on Jan. 5th, 2024 \u2013 late, as usual.",
    "\"Quoted text,\" she said, \"is tricky.\"",
    "\u201cSmart quotes\u201d and \u2018single smart quotes\u2019 are different from ASCII ones.",
    "Wait... what?! Really??? No way!!!",
    "e.g. i.e. etc. vs. a.m. U.S.A.",
    "camelCaseIdentifier and PascalCaseName and snake_case_name and SCREAMING_SNAKE_CASE",
    "HTTPServerError XMLHttpRequest iPhone eBay McDonald's",
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "A B C D E F G H I J K L M N O P Q R S T U V W X Y Z",
    "I", " I", "a a a a a a a a", "the the the the",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore "
    "et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.",
    "One sentence.\nAnother sentence.\n\nA new paragraph starts here.",
    "Price: $19.99 (was $24.99) \u2014 save 20%!",
    "50% off, 3/4 cup, 1st 2nd 3rd 4th, #1, @user, ~tilde, ^caret",
)

# ---------------------------------------------------------------- contractions
add(
    "It's", "it's", "IT'S", "don't", "DON'T", "Don't", "we're", "WE'RE", "they've", "THEY'VE",
    "I'm", "I'M", "you'll", "YOU'LL", "he'd", "HE'D", "She'S", "We'Ll",
    "I'm sure you'll agree that it's what we've wanted, and they'd say they're happy.",
    "Y'all can't won't shouldn't've o'clock rock'n'roll",
    "'s 't 're 've 'm 'll 'd",
    "'S 'T 'RE 'VE 'M 'LL 'D",
    "the dog's bone, the dogs' bones",
    "'twas the night before Christmas",
    "John's book's cover's color",
    "it\u2019s (curly apostrophe) vs it's",
    "'''triple''' and ''double''",
    "x's y'S z'll 5's 5'll",
)

# ---------------------------------------------------------------- code
add(
    "int main(void) {\n    printf(\"Hello, world!\\n\");\n    return 0;\n}\n",
    "#include <stdio.h>\n#include <stdlib.h>\n\nstatic int add(int a, int b) { return a + b; }\n",
    "for (size_t i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}",
    "struct node { struct node *next; void *data; };\ntypedef struct node node_t;",
    "if (x != NULL && x->len >= 0x7fffffff) { abort(); } /* overflow */ // comment",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "class Foo(Bar):\n    \"\"\"Docstring.\"\"\"\n\n    def __init__(self, x: int = 0) -> None:\n        super().__init__()\n        self.x = x\n",
    "import numpy as np\n\narr = np.zeros((3, 4), dtype=np.float32)\nprint(f\"{arr.shape=}\")\n",
    "    indented_line = True\n        more_indented = [1, 2, 3]\n\n\n    back = {'a': 1}",
    "lambda x: x**2 if x > 0 else -x  # inline comment",
    "x = [i for i in range(10) if i % 2 == 0]",
    "{\"name\": \"LargeForge\", \"version\": \"0.1.0\", \"tags\": [\"c\", \"tokenizer\"], \"ok\": true, \"n\": null}",
    "{\n  \"a\": 1,\n  \"b\": [\n    1.5e-10,\n    -2\n  ],\n  \"c\": {\"d\": \"e\\\"f\"}\n}",
    "[{\"id\":1},{\"id\":2},{\"id\":3}]",
    "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do\n  echo \"$f\" | wc -c\ndone\n",
    "ls -la /usr/local/bin | grep -E '^-r' | awk '{print $9}' > out.txt 2>&1 &&",
    "export PATH=\"$HOME/.local/bin:$PATH\"; cd ~/src && make -j$(nproc)",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
    "<html>\n<head><title>Test</title></head>\n<body><p class=\"x\">Hi &amp; bye</p></body>\n</html>",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}",
    "const f = async (a, b) => { await g(a ?? b); return a?.b?.c ?? null; };",
    "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
    "a+=1;b-=2;c*=3;d/=4;e%=5;f<<=6;g>>=7;h&=8;i|=9;j^=10;",
    "===!==<=>>=<<>>&&||::->=>...",
    "\t\tif (ok) {\n\t\t\treturn;\n\t\t}\n",
    "key: value\nlist:\n  - item1\n  - item2\nnested:\n  deep: true\n",
    "diff --git a/x.c b/x.c\n--- a/x.c\n+++ b/x.c\n@@ -1,3 +1,4 @@\n-old line\n+new line\n",
    "0x1F 0b1010 0o777 1e10 3.14159 -0.0 1_000_000 .5 5.",
)

# ---------------------------------------------------------------- digits
DIGITS = "12345678901234567890"
for n in range(1, 21):
    add(DIGITS[:n])
add(
    "0000000", "9999999999", "1000000", " 123", "a1b22c333d4444", "abc123def", "123abc",
    "1,234", "1,234,567", "1,234,567,890.12", "1.234.567,89", "1 234 567", "1'000'000",
    "3.14", "-42", "+7", "1e-9", "2024-01-15", "12:34:56", "192.168.0.1", "v1.2.3-rc.4",
    "+1 (555) 123-4567", "$1,000,000.00", "\u20ac1.234,56", "\u00a512,345", "\u00bd \u00bc \u00be",
    "\u0661\u0662\u0663 \u0967\u0968\u0969 \uff11\uff12\uff13",  # Arabic-Indic, Devanagari, fullwidth digits
    "\u2460\u2461\u2462 \u2160\u2161\u2162 \u00b2\u00b3",  # circled, roman numerals, superscripts
    "The year 2023 had 365 days, 8760 hours and 525600 minutes.",
)

# ---------------------------------------------------------------- whitespace
for n in range(2, 41):
    add(" " * n)
add(
    "a  b", "a   b", "a    b", "a          b", "a" + " " * 40 + "b",
    "trailing ", "trailing  ", "trailing   ", "trailing" + " " * 17,
    " leading", "  leading", "   leading", " " * 9 + "leading",
    "  both  ", " x ", "word \n word", "word  \n  word", "x \n", " \n ", "  \n\n  ",
    "\u00a0non-breaking\u00a0space", "thin\u2009space", "em\u2003space", "ideographic\u3000space",
    "\u2028line sep\u2029para sep", "\u000bvertical\u000ctab and form feed", "\u0085next line",
)

# ---------------------------------------------------------------- tabs / newlines / CR
add(
    "\t\t", "\t\t\t\t", "a\tb", "a\t\tb\t", "\tleading tab", "trailing tab\t", " \t \t ", "col1\tcol2\tcol3\n1\t2\t3\n",
    "\n\n", "\n\n\n", "\n\n\n\n\n\n\n\n", "line1\nline2", "line1\n\nline2", "line1\n\n\nline2",
    "line1\r\nline2\r\n", "a\r\n\r\nb", "a\rb\rc", "mixed\r\nendings\nhere\rand\n\rthere",
    "\r\n\r\n\r\n", "\r\r", "\n\r", " \r\n ", "end with newline\n", "\nstart with newline",
    "text.\n\n\n\nMore text.", "   \n   \n   ", "\t\n\t\n",
)

# ---------------------------------------------------------------- accents / NFC
add(
    "caf\u00e9", "cafe\u0301", "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e",
    "Cafe\u0301 cre\u0300me bru\u0302le\u0301e",
    "na\u00efve r\u00e9sum\u00e9 co\u00f6perate fa\u00e7ade",
    "nai\u0308ve re\u0301sume\u0301",
    "\u00c5ngstr\u00f6m", "A\u030angstro\u0308m", "\u212b",  # precomposed, decomposed, ANGSTROM SIGN
    "\u00f1 n\u0303 \u00d1 N\u0303",
    "\u1ec7 e\u0323\u0302 e\u0302\u0323",  # ệ in three spellings (NFC reorders marks)
    "\u01c4 \u01c5 \u01c6 \ufb01 \ufb02 \u2126",  # DŽ ligature, fi fl, OHM SIGN (singletons/compat)
    "\u0041\u030a\u0301",
)

# ---------------------------------------------------------------- European languages
add(
    "Gr\u00fc\u00df Gott! Die Stra\u00dfe ist sch\u00f6n, und die M\u00e4dchen \u00fcben Fu\u00dfball.",
    "Donaudampfschifffahrtselektrizit\u00e4tenhauptbetriebswerkbauunterbeamtengesellschaft",
    "\u00c4RGER \u00d6L \u00dcBER \u1e9e",
    "Le c\u0153ur a ses raisons que la raison ne conna\u00eet point. \u00c7a va? O\u00f9 est l'h\u00f4tel?",
    "Qu'est-ce que c'est? J'ai dit qu'il n'y a pas d'\u00e9l\u00e8ves aujourd'hui.",
    "\u00bfD\u00f3nde est\u00e1 la biblioteca? \u00a1Espa\u00f1a es incre\u00edble! El ni\u00f1o comi\u00f3 pi\u00f1a.",
    "Ti\u1ebfng Vi\u1ec7t c\u00f3 nhi\u1ec1u d\u1ea5u: \u0111\u01b0\u1ee3c, ng\u01b0\u1eddi, tr\u01b0\u1eddng h\u1ecdc, Vi\u1ec7t Nam.",
    "Ti\u00ea\u0301ng Vi\u00ea\u0323t (decomposed marks)",
    "Za\u017c\u00f3\u0142\u0107 g\u0119\u015bl\u0105 ja\u017a\u0144. P\u0159\u00edli\u0161 \u017elu\u0165ou\u010dk\u00fd k\u016f\u0148.",
    "\u00de\u00e6tta er \u00edslenska: \u00f0\u00e6\u00fe\u00f6. Sm\u00f8rrebr\u00f8d p\u00e5 dansk.",
    "T\u00fcrk\u00e7e: \u0130stanbul, \u0131\u015f\u0131k, \u011f\u00fczel \u00e7ok.",
    "Portugu\u00eas: n\u00e3o, cora\u00e7\u00e3o, a\u00e7\u00e3o, p\u00e3es.",
)

# ---------------------------------------------------------------- CJK
add(
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01",
    "\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed\u6563\u6b65\u5427\u3002",
    "\u4e2d\u534e\u4eba\u6c11\u5171\u548c\u56fd\u6210\u7acb\u4e8e1949\u5e7410\u67081\u65e5\u3002",
    "\u6f22\u5b57\u7e41\u9ad4\u4e2d\u6587\u8207\u7b80\u4f53\u4e2d\u6587",
    "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c",
    "\u79c1\u306f\u65e5\u672c\u8a9e\u3092\u52c9\u5f37\u3057\u3066\u3044\u307e\u3059\u3002\u30ab\u30bf\u30ab\u30ca\u3082\u3072\u3089\u304c\u306a\u3082\u3002",
    "\u30b3\u30f3\u30d4\u30e5\u30fc\u30bf\u30fc\u30fb\u30d7\u30ed\u30b0\u30e9\u30df\u30f3\u30b0",
    "\uff8a\uff9d\uff76\uff78\uff76\uff80\uff76\uff85",  # halfwidth katakana
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8\uc785\ub2c8\ub2e4. \uc548\ub155\ud558\uc138\uc694!",
    "\u1100\u1161\u11a8",  # conjoining jamo (NFC composes to 각)
    "\uc11c\uc6b8\ud2b9\ubcc4\uc2dc \uac15\ub0a8\uad6c",
    "\u4e2d\u6587English\u6df7\u5408mixed\u6587\u672c123\u6570\u5b57",
    "\uff21\uff22\uff23\uff41\uff42\uff43\uff01\uff1f",  # fullwidth latin
    "\u300c\u5f15\u7528\u300d\u300e\u4e8c\u91cd\u300f\u3010\u62ec\u5f27\u3011\u3001\u3002",
    "\U00020000\U0002a6d6\U0002b740",  # CJK Ext B/C (supplementary plane)
    "\u6211\u662f\u4e00\u4e2a\u5927\u8bed\u8a00\u6a21\u578b\u3002 \u6211 \u662f \u4e00 \u4e2a",
)

# ---------------------------------------------------------------- emoji
add(
    "\U0001F600", "\U0001F600\U0001F601\U0001F602\U0001F923",
    "I love pizza \U0001F355 and tacos \U0001F32E!",
    "\U0001F44D\U0001F3FB \U0001F44D\U0001F3FF \U0001F44B\U0001F3FD",  # skin tones
    "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466",  # family ZWJ
    "\U0001F469\u200d\U0001F4BB \U0001F3F3\ufe0f\u200d\U0001F308 \U0001F441\ufe0f\u200d\U0001F5E8\ufe0f",
    "\U0001F1FA\U0001F1F8\U0001F1EF\U0001F1F5\U0001F1E9\U0001F1EA\U0001F1EB\U0001F1F7",  # flags
    "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F",  # Scotland tag sequence
    "\u2764\ufe0f \u2764 \u263a\ufe0f \u2714\ufe0e",  # variation selectors
    "1\ufe0f\u20e3 #\ufe0f\u20e3",  # keycaps
    "\U0001F9D1\U0001F3FE\u200d\U0001F91d\u200d\U0001F9D1\U0001F3FC",
    "emoji\U0001F525fire\U0001F525\U0001F525\U0001F525",
    "\u2728\u2b50\u26a1\u2600\u2601",
)

# ---------------------------------------------------------------- other scripts
add(
    "\u0627\u0644\u0633\u0644\u0627\u0645 \u0639\u0644\u064a\u0643\u0645",
    "\u0645\u064e\u0631\u0652\u062d\u064e\u0628\u064b\u0627 \u0628\u0650\u0627\u0644\u0639\u064e\u0627\u0644\u064e\u0645\u0650",  # with harakat
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd",
    "\u05d1\u05bc\u05b0\u05e8\u05b5\u05d0\u05e9\u05b4\u05c1\u05d9\u05ea",  # with niqqud
    "Mixed RTL: \u05e9\u05dc\u05d5\u05dd and \u0645\u0631\u062d\u0628\u0627 in English text.",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e \u092d\u093e\u0930\u0924 \u0915\u0940 \u0930\u093e\u091c\u092d\u093e\u0937\u093e \u0939\u0948\u0964",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a \u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22\u0e44\u0e21\u0e48\u0e21\u0e35\u0e0a\u0e48\u0e2d\u0e07\u0e27\u0e48\u0e32\u0e07",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u041a\u0430\u043a \u0434\u0435\u043b\u0430?",
    "\u0421\u042a\u0415\u0428\u042c \u0416\u0415 \u0415\u0429\u0401 \u042d\u0422\u0418\u0425 \u041c\u042f\u0413\u041a\u0418\u0425 \u0424\u0420\u0410\u041d\u0426\u0423\u0417\u0421\u041a\u0418\u0425 \u0411\u0423\u041b\u041e\u041a",
    "\u0423\u043a\u0440\u0430\u0457\u043d\u0441\u044c\u043a\u0430 \u043c\u043e\u0432\u0430: \u0491\u0454\u0457\u0456",
    "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5! \u0391\u0392\u0393\u0394 \u03b1\u03b2\u03b3\u03b4 \u03c2\u03c3",
    "\u1f08\u03c1\u03c7\u1f74 \u1f10\u03bd \u03c4\u1ff7",  # polytonic Greek
    "\u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8 \u0540\u0561\u0575\u0565\u0580\u0565\u0576",  # Georgian, Armenian
    "\u12a0\u121b\u122d\u129b \u1295\u130d\u130d\u122d",  # Amharic
    "\u09ac\u09be\u0982\u09b2\u09be \u0ba4\u0bae\u0bbf\u0bb4\u0bcd \u0c24\u0c46\u0c32\u0c41\u0c17\u0c41",  # Bengali, Tamil, Telugu
)

# ---------------------------------------------------------------- math / symbols / punctuation
add(
    "\u2200x\u2208\u211d, \u2203y: x\u00b2 + y\u00b2 \u2264 1 \u21d2 |x| \u2264 1",
    "\u222b\u2080^\u221e e^{-x\u00b2} dx = \u221a\u03c0 / 2",
    "\u2211_{i=1}^{n} i = n(n+1)/2; \u220f \u2202 \u2207 \u2248 \u2260 \u2261 \u00b1 \u00d7 \u00f7",
    "$E = mc^2$ and \\frac{a}{b} + \\sqrt{x}",
    "\u2190 \u2191 \u2192 \u2193 \u2194 \u21d4 \u27f6",
    "\u00a9 \u00ae \u2122 \u00a7 \u00b6 \u2020 \u2021 \u2022 \u2030 \u00b0",
    "\u2500\u2500\u2500\u252c\u2500\u2500\u2500\n\u2502 a \u2502 b \u2502\n\u2514\u2500\u2500\u2534\u2500\u2500\u2518",
    "!!!", "???", "...", "\u2026", "---", "***", "___", "~~~", "###", "!?!?", ".,;:!?",
    "!@#$%^&*()_+-=[]{}|;':\",./<>?`~",
    "((((((nested))))))", "<<<>>>", "''''''''", "\"\"\"\"", "\\\\\\\\",
    "-- -- --", "\u2014\u2014\u2014", "a--b", "(a) [b] {c} <d>",
    "......................................................",
    "================================================================",
)

# ---------------------------------------------------------------- URLs / emails / markdown
add(
    "https://www.example.com/path/to/page?query=1&other=two#fragment",
    "Visit http://localhost:8080/api/v1/users/42 for details.",
    "ftp://user:pass@ftp.example.org:21/files/archive.tar.gz",
    "https://en.wikipedia.org/wiki/Byte_pair_encoding",
    "john.doe+filter@example.co.uk", "Contact us at support@largeforge.dev or sales@example.com.",
    "www.example.com/~user/index.html", "git@github.com:owner/repo.git",
    "# Heading 1\n\n## Heading 2\n\nSome **bold** and *italic* and `code` text.\n",
    "- item one\n- item two\n  - nested item\n1. first\n2. second\n",
    "```python\nprint('hello')\n```",
    "| col A | col B |\n|-------|------:|\n| 1     | 2     |\n",
    "[link text](https://example.com) and ![image](img.png \"title\")",
    "> quoted line\n> another quoted line\n\n---\n",
)

# ---------------------------------------------------------------- long words
LONG_MIXED = "".join(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[(i * 7 + i // 13) % 52] for i in range(3000)
)
add(
    "a" * 200,
    "ab" * 150,
    "supercalifragilisticexpialidocious" * 7,
    "x" * 250 + " y",
    "a" * 3000,
    LONG_MIXED,
    "\u00e9" * 300,
    "\u4e2d" * 300,
    "1" * 300,
    " " * 500,
    "\n" * 200,
    "\U0001F600" * 100,
    "Na" * 16 + " Batman!",
    "z" * 1000,
)

# ---------------------------------------------------------------- special-token text embedded
add(
    "<|endoftext|>", "Hello<|endoftext|>world", "Hello <|endoftext|> world", "<|endoftext|><|endoftext|>",
    "end of doc.<|endoftext|>\nNext doc", " <|endoftext|>",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>", "<|im_end|>", "text<|im_end|>text",
    "<think>\nreasoning here\n</think>\n\nanswer", "<tool_call>{\"name\": \"f\"}</tool_call>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n    return 1<|fim_middle|>",
    "<|begin_of_text|>Hello", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|eot_id|>", "<|reserved_special_token_0|>", "<|reserved_special_token_250|>", "<|end_of_text|>",
    "<s>", "</s>", "<unk>", "<s>Hello</s>", "<s> Hello</s>", "Hello <s> world </s> end",
    "<s><s></s></s>", " <s>", "<s> ", "a</s>b", "<s>[INST] What is 2+2? [/INST] 4</s>",
    "[INST]", "[INST] hi [/INST]", "[/INST]", "<<SYS>>\nsystem\n<</SYS>>",
    "<|endoftext", "<|im_start", "endoftext|>", "< s >", "<S>", "<|ENDOFTEXT|>", "<|endoftext|>x<|im_start|>y<|begin_of_text|>z<s>w</s>",
    "<|unknown_token|>", "<|endoftext|>\n\n", "\n<|im_end|>",
)

# ---------------------------------------------------------------- rare unicode
add(
    "\u0301", "a\u0301\u0302\u0303\u0304\u0305", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357\u0334\u0362\u0335\u031c\u0330\u0354L\u0368\u0367\u0369\u0358\u0320G\u0311\u0357\u030e\u0305\u035b\u0341\u0334\u033b\u0348\u034d\u0354\u0339O\u0342\u030c\u030c\u0358\u0328\u0335\u0339\u033b\u031d\u0333",
    "\u200d", "a\u200db", "\u200b", "zero\u200bwidth\u200bspace", "\u200c\u200e\u200f",
    "\ufeff", "\ufeffBOM at start", "mid\ufeffBOM",
    "\ue000\ue001\uf8ff", "private \U000F0000 use",
    "\U0001D400\U0001D401\U0001D402 \U0001D482\U0001D483", "\U00010348 \U00010330\U00010331\U00010332",
    "\U0001D7CE\U0001D7CF\U0001D7D0",  # mathematical digits
    "\U0001F130\U0001F131 \U0001F170",
    "\ufffd replacement char", "\u00ad soft hyphen", "\u2063\u2062\u2061",
    "\U0010FFFD", "\u0000 nul", "\u0001\u0002\u0003\u001f\u007f", "\u0080\u009f",
    "\u02bc\u02bb\u02bd", "\u0e3f\u20bd\u20b9\u20a9\u20ac\u00a3",
    "\u1e9b\u0323",  # NFC/NFKC test string
    "\u0958\u0959",  # composition exclusions (Devanagari)
    "\u0344 \u0340 \u0341",  # singletons decomposing
    "\U0001F468\U0001F3FD\u200d\U0001F9B0",
)

# ---------------------------------------------------------------- mixed / realistic
add(
    "User: What's the capital of France?\nAssistant: The capital of France is Paris.",
    "Q: 2+2=?\nA: 4\n\nQ: 10*10=?\nA: 100",
    "ERROR 2024-03-01T12:00:00Z [main.c:42] failed to open '/tmp/x.bin': No such file or directory (errno=2)",
    "Temperature: -3.5\u00b0C / 25.7\u00b0F; humidity 87%; wind 12 km/h NNW",
    "Tweet: @elonmusk #AI #ML \U0001F680\U0001F680 https://t.co/abc123 RT!!",
    "\"He said 'she said \\\"they said\\\"'\"",
    "C:\\Users\\Admin\\Documents\\file.txt",
    "/home/user/.config/app/settings.json",
    "SHA256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "UUID 123e4567-e89b-12d3-a456-426614174000",
    "base64: SGVsbG8gV29ybGQhIFRoaXMgaXMgYSB0ZXN0Lg==",
    "\u00c9t\u00e9 2024 \u2014 \u5317\u4eac \u2014 \u041c\u043e\u0441\u043a\u0432\u0430 \u2014 \u0627\u0644\u0642\u0627\u0647\u0631\u0629 \u2014 \U0001F30D",
    "\u2581already\u2581has\u2581metaspace \u2581", "\u0120G\u0120with\u0120dot \u010a",
    "<0x41> <0x0A> byte-fallback-looking text",
    "   Leading and trailing whitespace with\ttabs\tand\nnewlines   \n",
)


_ESC = re.compile("[\u007f-\u009f\u2028\u2029\ufeff]")


def dumps(obj):
    """Compact JSON, UTF-8 kept raw except characters that some line readers treat as
    line breaks or that are invisible/confusing (DEL, C1 controls, U+2028/9, BOM)."""
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return _ESC.sub(lambda m: "\\u%04x" % ord(m.group()), s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "tok_corpus.jsonl"))
    a = ap.parse_args()
    for s in C:
        s.encode("utf-8")  # raises on lone surrogates: corpus must be valid UTF-8
    with open(a.out, "w", encoding="utf-8", newline="\n") as f:
        for s in C:
            f.write(dumps(s) + "\n")
    print(f"wrote {len(C)} entries to {a.out}")


if __name__ == "__main__":
    main()

// tests/test_data.c — section 10 (data) and the SFT part of section 9 (objectives):
//   - every dataset format read from the hand-written files in tests/fixtures/data/, format
//     detection, and a table of bad inputs, each with its file:line and field;
//   - SFT tokens and loss masks equal to tests/fixtures/data/sft_ref.jsonl, made by
//     tests/ref/make_sft_fixtures.py with HF tokenizers + transformers' apply_chat_template
//     (and checked there against transformers' return_assistant_tokens_mask);
//   - the seeded split, the tokenized-dataset cache (hit, damage detected), packing and exact
//     resume of the batch order, allocation failures.
// The tokenizers come from $LF_TOKENIZERS, default ../shared/tokenizers (from the repo root);
// tiny_chat's is in the repo.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DATA_DIR "tests/fixtures/data/"
#define DATA_TINY_CHAT "tests/fixtures/models/tiny_chat"

static const char *data_tok_root(void) {
    const char *d = getenv("LF_TOKENIZERS");
    return d && *d ? d : "../shared/tokenizers";
}

// Reads a whole file (all records) into counts; returns the status of the first failure.
static lf_status data_read_all(const char *path, lf_data_format fmt, int *n, lf_data_format *got) {
    lf_data_reader r;
    const lf_data_record *rec;
    *n = 0;
    lf_status s = lf_data_open(&r, path, fmt, 0);
    while (s == LF_OK && (s = lf_data_next(&r, &rec)) == LF_OK && rec) ++*n;
    if (got) *got = r.format;
    lf_data_close(&r);
    return s;
}

static int test_data_formats(void) {
    lf_data_reader r;
    const lf_data_record *rec;
    // Alpaca, JSON Lines: input joined after a blank line; absent, empty or null input: none
    CHECK_OK(lf_data_open(&r, DATA_DIR "alpaca.jsonl", LF_DATA_AUTO, 0));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec && rec->format == LF_DATA_ALPACA && rec->line == 1 && rec->index == 0 && rec->n_msgs == 2);
    CHECK(!strcmp(rec->msgs[0].role, "user") && !strcmp(rec->msgs[0].content, "Give three tips for staying healthy."));
    CHECK(!strcmp(rec->msgs[1].role, "assistant") && !strcmp(rec->msgs[1].content, "1. Eat well.\n2. Exercise.\n3. Sleep enough."));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec->line == 2 && !strcmp(rec->msgs[0].content, "Translate to French.\n\nGood morning, my friend!"));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(!strcmp(rec->msgs[0].content, "Summarize the text in one sentence."));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec->index == 3 && !strcmp(rec->msgs[0].content, "\xC3\x89" "cris un ha\xC3\xAF" "ku sur la mer \xF0\x9F\x8C\x8A"));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec == NULL);
    CHECK_OK(lf_data_next(&r, &rec));  // the end stays the end
    CHECK(rec == NULL && r.format == LF_DATA_ALPACA && r.format_line == 1);
    lf_data_close(&r);
    lf_data_close(&r);  // safe twice

    // Alpaca, one JSON array, pretty-printed: a record's line is the line of its '{'
    CHECK_OK(lf_data_open(&r, DATA_DIR "alpaca.json", LF_DATA_AUTO, 0));
    int64_t lines[3];
    for (int i = 0; i < 3; i++) {
        CHECK_OK(lf_data_next(&r, &rec));
        CHECK(rec && rec->format == LF_DATA_ALPACA && rec->index == i);
        lines[i] = rec->line;
        if (i == 1) CHECK(!strcmp(rec->msgs[0].content, "Add the numbers.\n\n17 and 25"));
    }
    CHECK(lines[0] == 2 && lines[1] == 7 && lines[2] == 12);
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec == NULL);
    lf_data_close(&r);

    // ShareGPT (a JSON array, the last record spread over lines): from -> role
    CHECK_OK(lf_data_open(&r, DATA_DIR "sharegpt.json", LF_DATA_AUTO, 0));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec->format == LF_DATA_SHAREGPT && rec->line == 2 && rec->n_msgs == 3);
    CHECK(!strcmp(rec->msgs[0].role, "system") && !strcmp(rec->msgs[1].role, "user") && !strcmp(rec->msgs[2].role, "assistant"));
    CHECK(!strcmp(rec->msgs[2].content, "4"));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec->line == 3 && rec->n_msgs == 4 && !strcmp(rec->msgs[3].content, "Green."));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec->line == 4 && !strcmp(rec->msgs[1].content, "```python\nprint(\"h\xC3\xA9llo, \xE4\xB8\x96\xE7\x95\x8C\")\n```"));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec == NULL);
    lf_data_close(&r);

    // OpenAI messages
    CHECK_OK(lf_data_open(&r, DATA_DIR "messages.jsonl", LF_DATA_AUTO, 0));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec->format == LF_DATA_MESSAGES && rec->n_msgs == 5 && !strcmp(rec->msgs[0].role, "system"));
    CHECK(!strcmp(rec->msgs[4].content, "4*4 = 16."));
    lf_data_close(&r);

    // prompt/completion: strings, then lists (prompt messages, then completion messages)
    CHECK_OK(lf_data_open(&r, DATA_DIR "prompt_completion.jsonl", LF_DATA_AUTO, 0));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec->format == LF_DATA_PROMPT_COMPLETION && rec->n_msgs == 0);
    CHECK(!strcmp(rec->prompt.text, "The capital of France is") && !strcmp(rec->completion.text, " Paris."));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(!rec->prompt.text && rec->prompt.n_msgs == 1 && rec->completion.n_msgs == 1 && rec->n_msgs == 2);
    CHECK(rec->prompt.msgs == rec->msgs && rec->completion.msgs == rec->msgs + 1);
    CHECK(!strcmp(rec->completion.msgs[0].role, "assistant") && !strcmp(rec->completion.msgs[0].content, "Hi!"));
    lf_data_close(&r);

    // DPO: strings and chat-format lists
    CHECK_OK(lf_data_open(&r, DATA_DIR "dpo.jsonl", LF_DATA_AUTO, 0));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec->format == LF_DATA_DPO && !strcmp(rec->chosen.text, "100 \xC2\xB0" "C (212 \xC2\xB0" "F).") &&
          !strcmp(rec->rejected.text, "About 50 \xC2\xB0" "C."));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec->prompt.n_msgs == 1 && rec->chosen.n_msgs == 1 && rec->rejected.n_msgs == 1);
    CHECK(!strcmp(rec->prompt.msgs[0].content, "Is the earth flat?") && !strcmp(rec->rejected.msgs[0].content, "Yes."));
    CHECK(!strcmp(rec->chosen.msgs[0].role, "assistant"));
    lf_data_close(&r);

    // text, and a .txt file: one document
    int n;
    lf_data_format f;
    CHECK_OK(data_read_all(DATA_DIR "text.jsonl", LF_DATA_AUTO, &n, &f));
    CHECK(n == 3 && f == LF_DATA_TEXT);
    CHECK_OK(lf_data_open(&r, DATA_DIR "doc.txt", LF_DATA_AUTO, 0));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec->format == LF_DATA_TEXT && rec->line == 1 && rec->text_len == strlen(rec->text) &&
          !strncmp(rec->text, "A plain text file is one document.\n\nIt may", 42));
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec == NULL);
    lf_data_close(&r);
    return 0;
}

static int test_data_detection(void) {
    int n;
    lf_data_format f;
    // an explicit format that matches; the detection order (alpaca.jsonl's first record also has "text")
    CHECK_OK(data_read_all(DATA_DIR "alpaca.jsonl", LF_DATA_ALPACA, &n, &f));
    CHECK(n == 4 && f == LF_DATA_ALPACA);
    CHECK_OK(data_read_all(DATA_DIR "alpaca.jsonl", LF_DATA_AUTO, &n, &f));
    CHECK(f == LF_DATA_ALPACA);
    // text is a field of every alpaca.jsonl record? no: only the first, so "text" fails at line 2
    CHECK_ERR(data_read_all(DATA_DIR "alpaca.jsonl", LF_DATA_TEXT, &n, &f), LF_ERR_FORMAT,
              "alpaca.jsonl:2: field 'text': missing (the format asked for is text; this record looks like alpaca)");
    CHECK_ERR(data_read_all(DATA_DIR "messages.jsonl", LF_DATA_SHAREGPT, &n, &f), LF_ERR_FORMAT,
              "messages.jsonl:1: field 'conversations': missing");
    CHECK_ERR(data_read_all(DATA_DIR "doc.txt", LF_DATA_ALPACA, &n, &f), LF_ERR_ARG, "a .txt file is one text document");
    CHECK_ERR(data_read_all(DATA_DIR "no-such-file.jsonl", LF_DATA_AUTO, &n, &f), LF_ERR_IO, "no-such-file.jsonl: cannot open");
    for (int i = 0; i <= LF_DATA_TEXT; i++) {
        lf_data_format g = LF_DATA_AUTO;
        CHECK_OK(lf_data_format_from_name(lf_data_format_name((lf_data_format)i), &g));
        CHECK(g == (lf_data_format)i);
    }
    lf_data_format g = LF_DATA_AUTO;
    CHECK_ERR(lf_data_format_from_name("csv", &g), LF_ERR_ARG, "unknown dataset format 'csv'");
    return 0;
}

// Bad inputs: each fails at open (at == -1) or at the (at+1)-th lf_data_next, with a message
// holding `want`.
typedef struct data_bad {
    const char *name, *text;
    int at;
    lf_status status;
    const char *want;
    size_t max_bytes;
} data_bad;

static const data_bad data_bad_inputs[] = {
    {"t.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"\n", 1, LF_ERR_FORMAT, "t.jsonl:2: invalid JSON at column", 0},
    {"t.jsonl", "{\"text\": \"a\"} x\n", 0, LF_ERR_FORMAT, "t.jsonl:1: more after the record's object at column 15", 0},
    {"train.jsonl", "{\"instruction\": \"a\", \"output\": 5}\n", 0, LF_ERR_FORMAT,
     "train.jsonl:1: field 'output': expected a string, got number", 0},
    {"t.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n\n{\"instruction\": \"c\"}\n", 1, LF_ERR_FORMAT,
     "t.jsonl:3: field 'output': missing (the file is alpaca, from line 1; this record looks like no known format)", 0},
    {"t.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n", 1,
     LF_ERR_FORMAT, "t.jsonl:2: field 'instruction': missing (the file is alpaca, from line 1; this record looks like messages)", 0},
    {"empty.jsonl", "", -1, LF_ERR_FORMAT, "empty.jsonl: empty file (no records)", 0},
    {"blank.jsonl", "\n  \n\r\n", -1, LF_ERR_FORMAT, "blank.jsonl: empty file (no records)", 0},
    {"empty.json", "[ ]", 0, LF_ERR_FORMAT, "empty.json: no records", 0},
    {"empty.txt", "", -1, LF_ERR_FORMAT, "empty.txt: empty file (no records)", 0},
    {"t.jsonl", "{\"text\": \"a\"}\n{\"text\": \"0123456789012345678901234567890123456789012345678901234567890\"}\n", 1,
     LF_ERR_FORMAT, "t.jsonl:2: line longer than the limit of 64 bytes (max_record_bytes)", 64},
    {"t.json", "[{\"text\": \"a\"},\n {\"text\": \"0123456789012345678901234567890123456789012345678901234567890\"}]", 1,
     LF_ERR_FORMAT, "t.json:2: record longer than the limit of 64 bytes", 64},
    {"t.txt", "0123456789", -1, LF_ERR_FORMAT, "t.txt: larger than the limit of 8 bytes for one document", 8},
    {"t.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"caf\xC3\"}\n", 1, LF_ERR_FORMAT,
     "t.jsonl:2: field 'text': invalid UTF-8 at byte 3 of the string", 0},
    {"t.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"\xFF\"}]}\n", 0, LF_ERR_FORMAT,
     "t.jsonl:1: field 'messages[0].content': invalid UTF-8 at byte 0", 0},
    {"t.txt", "line one\nline \xE2\x82 two\n", -1, LF_ERR_FORMAT, "t.txt:2: invalid UTF-8 at column 6", 0},
    {"t.jsonl", "{\"text\": \"a\\u0000b\"}\n", 0, LF_ERR_FORMAT, "t.jsonl:1: \\u0000 in a string is not supported", 0},
    {"t.jsonl", "{\"text\": \"a\"}\n\"text\"\n", 1, LF_ERR_FORMAT, "t.jsonl:2: a record must be a JSON object, got string", 0},
    {"t.jsonl", "{\"foo\": 1, \"bar\": 2}\n", 0, LF_ERR_FORMAT, "t.jsonl:1: cannot tell the dataset format from the keys 'foo', 'bar'", 0},
    {"t.jsonl", "{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"bot\", \"value\": \"b\"}]}\n", 0,
     LF_ERR_FORMAT, "t.jsonl:1: field 'conversations[1].from': unknown role 'bot' (expected human, gpt or system)", 0},
    {"t.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": [\"x\"]}]}\n", 0, LF_ERR_FORMAT,
     "t.jsonl:1: field 'messages[0].content': expected a string, got array", 0},
    {"t.jsonl", "{\"messages\": [{\"content\": \"x\"}]}\n", 0, LF_ERR_FORMAT, "t.jsonl:1: field 'messages[0].role': missing", 0},
    {"t.jsonl", "{\"messages\": [\"hi\"]}\n", 0, LF_ERR_FORMAT, "t.jsonl:1: field 'messages[0]': expected an object, got string", 0},
    {"t.jsonl", "{\"messages\": []}\n", 0, LF_ERR_FORMAT, "t.jsonl:1: field 'messages': an empty list of messages", 0},
    {"t.jsonl", "{\"messages\": {\"role\": \"user\"}}\n", 0, LF_ERR_FORMAT, "field 'messages': expected a list of messages, got object", 0},
    {"t.jsonl", "{\"prompt\": \"p\", \"chosen\": [{\"role\": \"assistant\", \"content\": \"a\"}], \"rejected\": \"r\"}\n", 0,
     LF_ERR_FORMAT, "t.jsonl:1: field 'chosen': is a list but 'prompt' is a string", 0},
    {"t.jsonl", "{\"chosen\": \"a\", \"rejected\": \"b\"}\n", 0, LF_ERR_FORMAT, "t.jsonl:1: field 'prompt': missing", 0},
    {"t.jsonl", "{\"prompt\": 1, \"completion\": \"b\"}\n", 0, LF_ERR_FORMAT,
     "t.jsonl:1: field 'prompt': expected a string or a list of messages, got number", 0},
    {"t.json", "[\n  {\"text\": \"a\"},\n  {\"text\":\n    \"b\" \"c\"}\n]\n", 1, LF_ERR_FORMAT,
     "t.json:4: invalid JSON at column 9 (in the record starting at line 3)", 0},
    {"t.json", "[\n  {\"text\": \"a\"},\n  {\"text\": 7}\n]\n", 1, LF_ERR_FORMAT, "t.json:3: field 'text': expected a string, got number", 0},
    {"t.json", "[{\"text\": \"a\"}\n {\"text\": \"b\"}]", 1, LF_ERR_FORMAT, "t.json:2: expected ',' or ']' after a record, found '{'", 0},
    {"t.json", "[{\"text\": \"a\"},\n {\"text\": \"b\"", 1, LF_ERR_FORMAT, "t.json:2: the record starting here is not closed", 0},
    {"t.json", "[{\"text\": \"a\"}", 1, LF_ERR_FORMAT, "t.json:1: the array is not closed with ']'", 0},
    {"t.json", "[{\"text\": \"a\"}]\n[]", 1, LF_ERR_FORMAT, "t.json:2: data after the closing ']': '['", 0},
    {"t.json", "[{\"text\": \"a\"}, 3]", 1, LF_ERR_FORMAT, "t.json:1: a record must be a JSON object, found '3'", 0},
    {"t.json", "[{\"text\": \"a\"},]", 1, LF_ERR_FORMAT, "t.json:1: a record must be a JSON object, found ']'", 0},
    {"t.jsonl", "\n\nhello\n", -1, LF_ERR_FORMAT,
     "t.jsonl:3: expected JSON Lines (one object per line) or a JSON array of objects, found 'h'", 0},
};

static int test_data_bad_inputs(void) {
    for (size_t i = 0; i < sizeof data_bad_inputs / sizeof *data_bad_inputs; i++) {
        const data_bad *b = &data_bad_inputs[i];
        lf_data_reader r;
        const lf_data_record *rec = NULL;
        lf_status s = lf_data_open_memory(&r, b->text, strlen(b->text), b->name, LF_DATA_AUTO, b->max_bytes);
        int k = 0;
        for (; s == LF_OK; k++) {
            s = lf_data_next(&r, &rec);
            if (s == LF_OK && !rec) break;
        }
        int at = s == LF_OK ? -2 : k - 1;
        if (s != b->status || at != b->at || !strstr(lf_last_error(), b->want)) {
            fprintf(stderr, "    bad input %zu (%s): got %s at %d (\"%s\"), want %s at %d with \"%s\"\n", i, b->name,
                    lf_status_str(s), at, s ? lf_last_error() : "", lf_status_str(b->status), b->at, b->want);
            lf_data_close(&r);
            return 1;
        }
        lf_data_close(&r);
    }
    return 0;
}

// After a bad record the reader goes on, so a validator can list every bad one.
static int test_data_errors_continue(void) {
    const char *text = "{\"instruction\": \"a\", \"output\": \"b\"}\n"
                       "{\"instruction\": \"a\", \"output\": 1}\n"
                       "{\"instruction\": \"c\", \"output\": \"d\"}\n"
                       "{\"instruction\": \"broken\n"
                       "{\"instruction\": \"0123456789012345678901234567890123456789\", \"output\": \"x\"}\n"
                       "{\"instruction\": \"e\", \"output\": \"f\"}\n";
    const char *want[] = {NULL, "x.jsonl:2: field 'output'", NULL, "x.jsonl:4: invalid JSON", "x.jsonl:5: line longer", NULL};
    lf_data_reader r;
    const lf_data_record *rec;
    CHECK_OK(lf_data_open_memory(&r, text, strlen(text), "x.jsonl", LF_DATA_AUTO, 64));
    for (int i = 0; i < 6; i++) {
        lf_status s = lf_data_next(&r, &rec);
        if (want[i]) {
            CHECK(s == LF_ERR_FORMAT && strstr(lf_last_error(), want[i]) && rec == NULL);
        } else {
            CHECK(s == LF_OK && rec && rec->line == i + 1 && rec->index == i);
        }
    }
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec == NULL);
    lf_data_close(&r);
    // a JSON array goes on after a bad item, and stops for good at a broken structure
    const char *arr = "[{\"text\": 1}, {\"text\": \"ok\"}, {\"text\": \"x\"} {\"text\": \"y\"}]";
    CHECK_OK(lf_data_open_memory(&r, arr, strlen(arr), "x.json", LF_DATA_AUTO, 0));
    CHECK_ERR(lf_data_next(&r, &rec), LF_ERR_FORMAT, "x.json:1: field 'text': expected a string, got number");
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec && !strcmp(rec->text, "ok") && rec->index == 1);
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec && !strcmp(rec->text, "x"));
    CHECK_ERR(lf_data_next(&r, &rec), LF_ERR_FORMAT, "x.json:1: expected ',' or ']' after a record, found '{'");
    CHECK_ERR(lf_data_next(&r, &rec), LF_ERR_FORMAT, "x.json: reading stopped after an error");
    lf_data_close(&r);
    return 0;
}

// A JSONL file far larger than the record limit streams through a buffer that stays small.
static int test_data_streaming(void) {
    char dir[] = "/tmp/lf-test-data-XXXXXX", path[256];
    CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/big.jsonl", dir);
    FILE *f = fopen(path, "w");
    CHECK(f);
    long bytes = 0;
    for (int i = 0; i < 20000; i++) {
        int pad = (i * 37) % 900;  // lines of 30..1000 bytes
        bytes += fprintf(f, "{\"text\": \"%d %.*s\"}\n", i, pad,
                         "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                         "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                         "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                         "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                         "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                         "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                         "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                         "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
                         "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
    }
    fprintf(f, "{\"text\": \"%01100d\"}\n", 7);  // one line over the limit, at line 20001
    fclose(f);
    lf_data_reader r;
    const lf_data_record *rec;
    CHECK_OK(lf_data_open(&r, path, LF_DATA_AUTO, 1024));
    int n = 0;
    lf_status s;
    while ((s = lf_data_next(&r, &rec)) == LF_OK && rec) {
        CHECK(rec->line == n + 1 && rec->format == LF_DATA_TEXT && atoi(rec->text) == n);
        n++;
    }
    CHECK(n == 20000 && s == LF_ERR_FORMAT && strstr(lf_last_error(), "big.jsonl:20001: line longer than the limit of 1024 bytes"));
    CHECK(r.text_cap_ <= 2048 && bytes > 8 * 1024 * 1024);  // 9 MB read through about 1 KiB of record buffer
    CHECK_OK(lf_data_next(&r, &rec));
    CHECK(rec == NULL);
    lf_data_close(&r);
    unlink(path);
    rmdir(dir);
    return 0;
}

static int test_data_split(void) {
    int64_t n_val = 0, n = 200000;
    for (int64_t i = 0; i < n; i++) n_val += lf_data_is_validation(42, i, 0.1);
    CHECK(n_val > 19400 && n_val < 20600);  // 0.1 within 3 sigma (sigma = 134)
    int same = 0, diff = 0;
    for (int64_t i = 0; i < 10000; i++) {
        bool a = lf_data_is_validation(42, i, 0.25), b = lf_data_is_validation(42, i, 0.25), c = lf_data_is_validation(7, i, 0.25);
        same += a == b, diff += a != c;
        CHECK(!lf_data_is_validation(42, i, 0.0));
        if (lf_data_is_validation(42, i, 0.1)) CHECK(a);  // a larger ratio keeps the smaller one's records
    }
    CHECK(same == 10000 && diff > 2000);  // the same every call; another seed is another split
    return 0;
}

// -- SFT encoding

// The tokenizers the tests use, opened once (on first use) and kept for the run.
typedef struct data_tok {
    lf_tokenizer tok;
    lf_status st;
    bool tried;
} data_tok;

static const char *const data_tok_names[] = {"tiny_chat", "qwen3", "llama3", "llama2"};
static data_tok data_toks[4];

static const lf_tokenizer *data_get_tok(const char *name) {
    for (size_t i = 0; i < 4; i++) {
        data_tok *t = &data_toks[i];
        if (strcmp(data_tok_names[i], name) != 0) continue;
        if (!t->tried) {
            char dir[1024];
            if (i == 0) snprintf(dir, sizeof dir, "%s", DATA_TINY_CHAT);
            else snprintf(dir, sizeof dir, "%s/%s", data_tok_root(), name);
            t->tried = true;
            t->st = lf_tok_open(&t->tok, dir);
        }
        return t->st == LF_OK ? &t->tok : NULL;
    }
    return NULL;
}

// Encodes record `index` of a fixture file.
static lf_status data_encode_rec(const lf_sft_desc *d, const char *file, int64_t index, lf_sft_sample *out) {
    char path[256];
    snprintf(path, sizeof path, DATA_DIR "%s", file);
    lf_data_reader r;
    const lf_data_record *rec = NULL;
    lf_status s = lf_data_open(&r, path, LF_DATA_AUTO, 0);
    for (int64_t i = 0; s == LF_OK && i <= index; i++) s = lf_data_next(&r, &rec);
    if (s == LF_OK && !rec) s = LF_ERR_ARG;
    if (s == LF_OK) s = lf_data_encode(d, rec, out);
    lf_data_close(&r);
    return s;
}

// Every sample of sft_ref.jsonl: tokens, labels and counters equal.
static int test_sft_reference(void) {
    char *text;
    size_t len;
    CHECK_OK(lf_file_read(DATA_DIR "sft_ref.jsonl", 0, &text, &len));
    int checked = 0, skipped = 0;
    const char *missing = NULL;
    for (char *p = text, *end; p < text + len; p = end + 1) {
        end = memchr(p, '\n', (size_t)(text + len - p));
        if (!end) end = text + len;
        if (end == p) continue;
        lf_doc doc;
        CHECK_OK(lf_json_parse(&doc, p, (size_t)(end - p), "sft_ref.jsonl"));
        const lf_node *o = doc.root, *tk = lf_node_get(o, "tokens"), *lb = lf_node_get(o, "labels");
        const char *name = lf_node_get(o, "case")->str, *file = lf_node_get(o, "file")->str;
        int64_t index = (int64_t)lf_node_get(o, "index")->num;
        lf_sft_desc d;
        memset(&d, 0, sizeof d);
        char tname[32];
        snprintf(tname, sizeof tname, "%.*s", (int)strcspn(name, "_"), name);
        if (!strncmp(name, "tiny_chat", 9)) snprintf(tname, sizeof tname, "tiny_chat");
        d.tok = data_get_tok(tname);
        if (!strcmp(name, "tiny_chat_max16")) d.max_length = 16;
        if (!strcmp(name, "qwen3_nothink")) d.chat_flags = LF_CHAT_NO_THINKING;
        if (!strcmp(name, "llama2_plain")) d.chat = LF_CHAT_PLAIN;
        if (!d.tok) {
            skipped++, missing = name;
            lf_doc_deinit(&doc);
            continue;
        }
        lf_sft_sample s;
        lf_status st = data_encode_rec(&d, file, index, &s);
        if (st != LF_OK) {
            fprintf(stderr, "    %s %s[%lld]: %s\n", name, file, (long long)index, lf_last_error());
            return 1;
        }
        bool ok = s.n == tk->n && s.prefix_mismatch == (int)lf_node_get(o, "prefix_mismatch")->num &&
                  s.realigned == (int)lf_node_get(o, "realigned")->num && s.truncated == (lf_node_get(o, "truncated")->num != 0);
        for (int t = 0; ok && t < s.n; t++) ok = s.tokens[t] == (int32_t)tk->kids[t].num && s.labels[t] == (int32_t)lb->kids[t].num;
        if (!ok) {
            fprintf(stderr, "    %s %s[%lld]: differs from the reference (n %d vs %d, mismatch %d, realigned %d)\n", name, file,
                    (long long)index, s.n, tk->n, s.prefix_mismatch, s.realigned);
            return 1;
        }
        lf_sft_sample_deinit(&s);
        lf_doc_deinit(&doc);
        checked++;
    }
    lf_free(text);
    CHECK(checked >= 20);  // tiny_chat's cases at least
    if (skipped) SKIP("%d of %d reference samples (e.g. case %s): no tokenizer under %s", skipped, checked + skipped, missing,
                      data_tok_root());
    return 0;
}

// Decodes the runs of trained labels of a sample, joined with '|'.
static int data_trained_text(const lf_tokenizer *tok, const lf_sft_sample *s, char *out, size_t cap) {
    size_t k = 0;
    out[0] = 0;
    for (int t = 0; t < s->n;) {
        if (s->labels[t] == LF_IGNORE_INDEX) {
            t++;
            continue;
        }
        int e = t;
        while (e < s->n && s->labels[e] != LF_IGNORE_INDEX) {
            if (s->labels[e] != s->tokens[e]) return 1;
            e++;
        }
        char *piece;
        size_t len;
        if (lf_tok_decode(tok, s->tokens + t, (size_t)(e - t), false, &piece, &len) != LF_OK) return 1;
        k += (size_t)snprintf(out + k, cap - k, "%s%s", k ? "|" : "", piece);
        lf_free(piece);
        t = e;
    }
    return 0;
}

// What is trained, decoded: exactly each assistant turn and the template's end of turn.
static int test_sft_masks(void) {
    char got[1024];
    lf_sft_sample s;
    lf_sft_desc d;
    memset(&d, 0, sizeof d);
    d.tok = data_get_tok("tiny_chat");
    CHECK(d.tok);
    CHECK_OK(data_encode_rec(&d, "messages.jsonl", 1, &s));
    CHECK(data_trained_text(d.tok, &s, got, sizeof got) == 0);
    CHECK(!strcmp(got, "3*3 = 9.<|im_end|>\n|4*4 = 16.<|im_end|>\n"));
    CHECK(s.labels[0] == LF_IGNORE_INDEX && s.n_trained > 0 && !s.truncated);
    lf_sft_sample_deinit(&s);
    CHECK_OK(data_encode_rec(&d, "alpaca.jsonl", 1, &s));
    CHECK(data_trained_text(d.tok, &s, got, sizeof got) == 0 && !strcmp(got, "Bonjour, mon ami !<|im_end|>\n"));
    lf_sft_sample_deinit(&s);
    CHECK_OK(data_encode_rec(&d, "prompt_completion.jsonl", 0, &s));  // raw text: completion + EOS
    CHECK(data_trained_text(d.tok, &s, got, sizeof got) == 0 && !strcmp(got, " Paris.<|im_end|>"));
    lf_sft_sample_deinit(&s);
    CHECK_OK(data_encode_rec(&d, "text.jsonl", 0, &s));  // pretraining text: all of it + EOS
    CHECK(s.n_trained == s.n && s.tokens[s.n - 1] == d.tok->eos_id);
    lf_sft_sample_deinit(&s);
    d.max_length = 10;  // truncation keeps the start: here only prompt tokens remain
    CHECK_OK(data_encode_rec(&d, "messages.jsonl", 1, &s));
    CHECK(s.n == 10 && s.truncated && s.n_trained == 0);
    lf_sft_sample_deinit(&s);
    d.max_length = 0;
    d.chat = LF_CHAT_PLAIN;  // base models: BOS from the post-processor (tiny_chat has none)
    CHECK_OK(data_encode_rec(&d, "alpaca.jsonl", 1, &s));
    CHECK(data_trained_text(d.tok, &s, got, sizeof got) == 0 && !strcmp(got, " Bonjour, mon ami !\nEND\n"));
    lf_sft_sample_deinit(&s);

    // errors: DPO is not SFT; an assistant turn first; no EOS for text
    CHECK_ERR(data_encode_rec(&d, "dpo.jsonl", 0, &s), LF_ERR_UNSUPPORTED, "dpo.jsonl:1: dpo records are for the preference");
    lf_chat_msg first[2] = {{"assistant", "a", NULL, NULL, 0}, {"user", "b", NULL, NULL, 0}};
    CHECK_ERR(lf_sft_encode_chat(&d, first, 2, 0, &s), LF_ERR_FORMAT, "cannot start with an assistant turn");
    CHECK_ERR(lf_sft_encode_chat(&d, first, 2, 3, &s), LF_ERR_ARG, "bad conversation");
    lf_sft_desc bad;
    memset(&bad, 0, sizeof bad);
    CHECK_ERR(lf_sft_encode_text(&bad, NULL, "x", &s), LF_ERR_ARG, "tok is required");
    char *json;
    size_t len;
    CHECK_OK(lf_file_read(DATA_TINY_CHAT "/tokenizer.json", 0, &json, &len));
    lf_tokenizer noeos;
    CHECK_OK(lf_tok_load(&noeos, json, len, NULL, 0, "tokenizer.json"));
    lf_free(json);
    bad.tok = &noeos;
    CHECK_ERR(lf_sft_encode_text(&bad, NULL, "x", &s), LF_ERR_CONFIG, "has no eos_token");
    lf_tok_close(&noeos);

    const lf_tokenizer *q = data_get_tok("qwen3");
    if (q) {  // Qwen3: the last turn carries the empty <think> block, which is trained
        d.tok = q, d.chat = LF_CHAT_DEFAULT;
        CHECK_OK(data_encode_rec(&d, "sharegpt.json", 1, &s));
        CHECK(data_trained_text(q, &s, got, sizeof got) == 0);
        CHECK(!strcmp(got, "Blue.<|im_end|>\n|<think>\n\n</think>\n\nGreen.<|im_end|>\n") && s.realigned == 1);
        lf_sft_sample_deinit(&s);
        d.chat_flags = LF_CHAT_NO_THINKING;  // the empty block is then part of the prompt
        CHECK_OK(data_encode_rec(&d, "sharegpt.json", 1, &s));
        CHECK(data_trained_text(q, &s, got, sizeof got) == 0 && !strcmp(got, "Blue.<|im_end|>\n|Green.<|im_end|>\n"));
        lf_sft_sample_deinit(&s);
        d.chat_flags = 0;
    }
    const lf_tokenizer *l3 = data_get_tok("llama3");
    if (l3) {  // Llama 3 trims the content, writes BOS itself (once), ends turns with <|eot_id|>
        d.tok = l3;
        CHECK_OK(data_encode_rec(&d, "messages.jsonl", 2, &s));
        CHECK(data_trained_text(l3, &s, got, sizeof got) == 0 && !strcmp(got, "padded answer<|eot_id|>"));
        CHECK(s.tokens[0] == l3->bos_id && s.tokens[1] != l3->bos_id);
        lf_sft_sample_deinit(&s);
        CHECK_OK(data_encode_rec(&d, "text.jsonl", 0, &s));  // raw text: the post-processor's BOS
        CHECK(s.tokens[0] == l3->bos_id && s.tokens[1] != l3->bos_id && s.tokens[s.n - 1] == l3->eos_id);
        lf_sft_sample_deinit(&s);
    }
    if (!q || !l3) SKIP("the qwen3/llama3 checks: no tokenizers under %s", data_tok_root());
    return 0;
}

// -- datasets, cache, batches

// Writes a JSONL of n generated conversations (1 or 2 turns) into dir; returns its path.
static void data_gen_file(const char *dir, const char *name, int n, bool text, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    for (int i = 0; f && i < n; i++) {
        if (text) fprintf(f, "{\"text\": \"Document %d: %.*s\"}\n", i, 5 + (i * 13) % 60,
                          "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun");
        else if (i % 3 == 0)
            fprintf(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"Q%d: add %d and %d\"}, {\"role\": \"assistant\", "
                       "\"content\": \"%d\"}, {\"role\": \"user\", \"content\": \"times 2?\"}, {\"role\": \"assistant\", "
                       "\"content\": \"%d\"}]}\n", i, i, 2 * i, 3 * i, 6 * i);
        else
            fprintf(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"Question %d: %.*s\"}, {\"role\": \"assistant\", "
                       "\"content\": \"Answer %d.\"}]}\n", i, (i * 7) % 40, "tell me something about the weather today", i);
    }
    if (f) fclose(f);
}

static bool data_same(const lf_dataset *a, const lf_dataset *b) {
    if (a->n != b->n || a->format != b->format || a->n_train != b->n_train || a->stats.tokens != b->stats.tokens) return false;
    for (int64_t i = 0; i < a->n; i++) {
        const int32_t *ta, *la, *tb, *lb;
        int na, nb;
        lf_dataset_sample(a, i, &ta, &la, &na);
        lf_dataset_sample(b, i, &tb, &lb, &nb);
        if (na != nb || memcmp(ta, tb, (size_t)na * 4) || memcmp(la, lb, (size_t)na * 4) || a->record[i] != b->record[i])
            return false;
    }
    return true;
}

static int test_dataset_cache(void) {
    char dir[] = "/tmp/lf-test-data-XXXXXX", path[256], cache[300];
    CHECK(mkdtemp(dir));
    data_gen_file(dir, "chat.jsonl", 300, false, path, sizeof path);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    lf_dataset_desc d;
    memset(&d, 0, sizeof d);
    d.path = path, d.tok = data_get_tok("tiny_chat"), d.validation_split = 0.1, d.seed = 3;
    d.cache_dir = cache, d.tokenizer_path = DATA_TINY_CHAT;
    CHECK(d.tok);
    lf_dataset a, b;
    uint64_t t0 = lf_time_ns();
    CHECK_OK(lf_dataset_open(&a, &d));
    uint64_t t1 = lf_time_ns();
    CHECK(a.cache == LF_DATASET_CACHE_WRITTEN && lf_path_exists(a.cache_path) && a.n == 300 && a.format == LF_DATA_MESSAGES);
    CHECK(a.stats.records == 300 && a.stats.samples == 300 && a.stats.dropped == 0 && a.n_train + a.n_val == 300);
    CHECK(a.n_val > 10 && a.n_val < 60);
    for (int64_t i = 0; i < a.n_val; i++) CHECK(lf_data_is_validation(3, a.record[a.val[i]], 0.1));
    uint64_t t2 = lf_time_ns();
    CHECK_OK(lf_dataset_open(&b, &d));  // the second open maps the cache
    uint64_t t3 = lf_time_ns();
    CHECK(b.cache == LF_DATASET_CACHE_HIT && data_same(&a, &b) && !strcmp(a.cache_path, b.cache_path));
    if (getenv("LF_TEST_VERBOSE"))
        fprintf(stderr, "    build %.1f ms, cache hit %.1f ms\n", (double)(t1 - t0) * 1e-6, (double)(t3 - t2) * 1e-6);
    lf_dataset_close(&b);
    // a maps the cache file that is damaged below: the reference from here on is built in memory
    char cpath[1024];
    snprintf(cpath, sizeof cpath, "%s", a.cache_path);
    lf_dataset_close(&a);
    const char *keep_dir = d.cache_dir;
    d.cache_dir = NULL;
    CHECK_OK(lf_dataset_open(&a, &d));
    CHECK(a.cache == LF_DATASET_CACHE_OFF);
    d.cache_dir = keep_dir;

    // one flipped byte anywhere is found by the checksum; the cache is rebuilt the same
    FILE *f = fopen(cpath, "r+b");
    CHECK(f);
    CHECK(fseek(f, 1000, SEEK_SET) == 0);
    int c = fgetc(f);
    CHECK(fseek(f, 1000, SEEK_SET) == 0 && fputc(c ^ 0x10, f) != EOF);
    fclose(f);
    CHECK_OK(lf_dataset_open(&b, &d));
    CHECK(b.cache == LF_DATASET_CACHE_REBUILT && strstr(b.cache_error, "checksum mismatch") && data_same(&a, &b));
    lf_dataset_close(&b);
    CHECK_OK(lf_dataset_open(&b, &d));
    CHECK(b.cache == LF_DATASET_CACHE_HIT && data_same(&a, &b));
    lf_dataset_close(&b);
    // a cut file
    CHECK(truncate(cpath, 1000) == 0);
    CHECK_OK(lf_dataset_open(&b, &d));
    CHECK(b.cache == LF_DATASET_CACHE_REBUILT && strstr(b.cache_error, "do not match the file size") && data_same(&a, &b));
    lf_dataset_close(&b);
    // the split is not in the key; max_length and the data are
    d.validation_split = 0.5;
    CHECK_OK(lf_dataset_open(&b, &d));
    CHECK(b.cache == LF_DATASET_CACHE_HIT && b.n_val > 100 && b.n_val < 200);
    lf_dataset_close(&b);
    d.validation_split = 0.1, d.max_length = 40;
    CHECK_OK(lf_dataset_open(&b, &d));
    CHECK(b.cache == LF_DATASET_CACHE_WRITTEN && strcmp(cpath, b.cache_path) != 0);
    CHECK(b.stats.truncated > 0 && b.stats.truncated < 300 && b.stats.dropped + b.n == 300);
    for (int64_t i = 0; i < b.n; i++) CHECK(b.offsets[i + 1] - b.offsets[i] <= 40);
    unlink(b.cache_path);
    lf_dataset_close(&b);
    d.max_length = 0;
    // without a cache: the same samples
    d.cache_dir = NULL;
    CHECK_OK(lf_dataset_open(&b, &d));
    CHECK(b.cache == LF_DATASET_CACHE_OFF && data_same(&a, &b));
    lf_dataset_close(&b);
    unlink(cpath);
    lf_dataset_close(&a);

    // errors name the field or file:line
    lf_dataset_desc e = d;
    e.validation_split = 1.0;
    CHECK_ERR(lf_dataset_open(&b, &e), LF_ERR_CONFIG, "data.validation_split");
    e = d, e.cache_dir = cache, e.tokenizer_path = NULL;
    CHECK_ERR(lf_dataset_open(&b, &e), LF_ERR_CONFIG, "data.cache_dir: needs the tokenizer's path");
    e = d, e.format = LF_DATA_SHAREGPT;
    CHECK_ERR(lf_dataset_open(&b, &e), LF_ERR_FORMAT, "chat.jsonl:1: field 'conversations': missing");
    e = d, e.max_length = 3;
    CHECK_ERR(lf_dataset_open(&b, &e), LF_ERR_FORMAT, "none of its 300 records has a token to train on");
    rmdir(cache);
    unlink(path);
    rmdir(dir);
    return 0;
}

// Checks one batch of a SAMPLES or NONE batcher: every run of positions from 0 is a sample of
// the split (its first label -100 when packed), or padding; marks the samples seen.
static int data_check_batch(const lf_batcher *bt, const int32_t *tok, const int32_t *lab, const int32_t *pos, int rows,
                            int *seen) {
    const lf_dataset *ds = bt->ds;
    int B = bt->d.B, T = bt->d.T;
    for (int r = 0; r < B; r++) {
        const int32_t *tk = tok + r * T, *lb = lab + r * T, *ps = pos + r * T;
        if (r >= rows) {
            for (int t = 0; t < T; t++) CHECK(tk[t] == bt->d.pad_id && lb[t] == LF_IGNORE_INDEX && ps[t] == t);
            continue;
        }
        if (bt->d.pack == LF_PACK_NONE) {
            for (int t = 0; t < T; t++) CHECK(ps[t] == t);
        }
        for (int t = 0; t < T;) {
            int e = t + 1;
            if (bt->d.pack == LF_PACK_SAMPLES) {
                CHECK(ps[t] == 0);
                while (e < T && ps[e] != 0) e++;
            } else e = T;
            int found = -1;  // the sample these tokens are (unseen first: cut samples can look alike)
            for (int64_t k = 0; k < ds->n_train && found < 0; k++) {
                if (seen[k]) continue;
                const int32_t *st, *sl;
                int m;
                lf_dataset_sample(ds, ds->train[k], &st, &sl, &m);
                int len = m < T ? m : T;
                if (len > e - t || memcmp(st, tk + t, (size_t)len * 4) != 0) continue;
                if (bt->d.pack == LF_PACK_SAMPLES && len != e - t) continue;
                for (int j = 0; j < len; j++)
                    CHECK(lb[t + j] == (j == 0 && bt->d.pack == LF_PACK_SAMPLES ? LF_IGNORE_INDEX : sl[j]));
                for (int j = len; j < e - t; j++) CHECK(tk[t + j] == bt->d.pad_id && lb[t + j] == LF_IGNORE_INDEX);
                found = (int)k;
            }
            if (found < 0 && t == 0) {
                fprintf(stderr, "    row %d: no unseen sample matches\n", r);
                return 1;
            }
            if (found < 0) {  // padding, only at the end of a row
                CHECK(e == T && t > 0);
                for (int j = t; j < T; j++) CHECK(tk[j] == bt->d.pad_id && lb[j] == LF_IGNORE_INDEX);
            } else seen[found]++;
            t = e;
        }
    }
    return 0;
}

static int test_batches(void) {
    char dir[] = "/tmp/lf-test-data-XXXXXX", path[256];
    CHECK(mkdtemp(dir));
    data_gen_file(dir, "chat.jsonl", 60, false, path, sizeof path);
    lf_dataset_desc d;
    memset(&d, 0, sizeof d);
    d.path = path, d.tok = data_get_tok("tiny_chat"), d.validation_split = 0.2, d.seed = 1;
    CHECK(d.tok);
    lf_dataset ds;
    CHECK_OK(lf_dataset_open(&ds, &d));
    int64_t maxlen = 0;
    for (int64_t i = 0; i < ds.n; i++) maxlen = LF__MAX(maxlen, ds.offsets[i + 1] - ds.offsets[i]);
    enum { B = 3, T = 160 };
    static int32_t tok[B * T], lab[B * T], pos[B * T];
    int seen[64];
    for (int mode = 0; mode < 3; mode++) {  // packed; one per row; one per row cut at T = 16
        lf_batch_desc bd = lf_batch_desc_default();
        bd.B = B, bd.T = mode == 2 ? 16 : T, bd.pack = mode == 0 ? LF_PACK_SAMPLES : LF_PACK_NONE, bd.seed = 9;
        CHECK(maxlen <= T && maxlen > 16);
        lf_batcher bt;
        CHECK_OK(lf_batcher_init(&bt, &ds, &bd));
        CHECK(bt.d.pad_id == d.tok->eos_id && bt.n == ds.n_train);
        for (int64_t ep = 0; ep < 2; ep++) {
            int64_t want_batches, want_rows, batches = 0, rows_total = 0;
            CHECK_OK(lf_batcher_count(&bt, ep, &want_batches, &want_rows));
            memset(seen, 0, sizeof seen);
            while (bt.epoch == ep) {
                int rows;
                CHECK_OK(lf_batcher_next(&bt, tok, lab, pos, &rows));
                CHECK(rows > 0 && rows <= B);
                if (data_check_batch(&bt, tok, lab, pos, rows, seen)) return 1;
                batches++, rows_total += rows;
            }
            CHECK(batches == want_batches && rows_total == want_rows);
            for (int64_t k = 0; k < ds.n_train; k++) CHECK(seen[k] == 1);  // each sample once per epoch
            if (mode == 0) CHECK(rows_total < ds.n_train);                  // packing saves rows
            else CHECK(rows_total == ds.n_train);
        }
        lf_batcher_deinit(&bt);
    }

    // exact resume: positions saved after each batch replay the same batches
    lf_batch_desc bd = lf_batch_desc_default();
    bd.B = 2, bd.T = 96, bd.pack = LF_PACK_SAMPLES, bd.seed = 5;
    lf_batcher a, b;
    CHECK_OK(lf_batcher_init(&a, &ds, &bd));
    CHECK_OK(lf_batcher_init(&b, &ds, &bd));
    enum { N = 40 };
    static int32_t all[N][3][2 * 96];
    int64_t ep[N], idx[N];
    for (int i = 0; i < N; i++) {
        int rows;
        CHECK_OK(lf_batcher_next(&a, all[i][0], all[i][1], all[i][2], &rows));
        ep[i] = a.epoch, idx[i] = a.index;
    }
    CHECK(a.epoch >= 2);  // crossed epochs
    for (int k = 0; k < N - 1; k += 7) {
        CHECK_OK(lf_batcher_seek(&b, ep[k], idx[k]));
        for (int i = k + 1; i < N; i++) {
            int rows;
            CHECK_OK(lf_batcher_next(&b, tok, lab, pos, &rows));
            CHECK(!memcmp(tok, all[i][0], sizeof all[i][0]) && !memcmp(lab, all[i][1], sizeof all[i][1]) &&
                  !memcmp(pos, all[i][2], sizeof all[i][2]));
        }
    }
    CHECK_ERR(lf_batcher_seek(&b, 0, b.n + 1), LF_ERR_ARG, "outside epochs");
    lf_batcher_deinit(&a);
    lf_batcher_deinit(&b);
    bd.split = LF_SPLIT_VALIDATION, bd.shuffle = false;  // validation: file order
    CHECK_OK(lf_batcher_init(&b, &ds, &bd));
    CHECK(b.n == ds.n_val);
    lf_batcher_deinit(&b);
    bd.T = 0;
    CHECK_ERR(lf_batcher_init(&b, &ds, &bd), LF_ERR_CONFIG, "B and T must be > 0");
    lf_dataset_close(&ds);

    // pretraining: documents + EOS concatenated and cut into blocks of T
    data_gen_file(dir, "text.jsonl", 50, true, path, sizeof path);
    d.path = path;
    CHECK_OK(lf_dataset_open(&ds, &d));
    CHECK(ds.format == LF_DATA_TEXT);
    int64_t total = 0;
    for (int64_t k = 0; k < ds.n_train; k++) total += ds.offsets[ds.train[k] + 1] - ds.offsets[ds.train[k]];
    int32_t *cat = (int32_t *)malloc((size_t)total * 4);
    CHECK(cat);
    for (int64_t k = 0, o = 0; k < ds.n_train; k++) {
        const int32_t *st, *sl;
        int m;
        lf_dataset_sample(&ds, ds.train[k], &st, &sl, &m);
        CHECK(st[m - 1] == d.tok->eos_id && !memcmp(st, sl, (size_t)m * 4));
        memcpy(cat + o, st, (size_t)m * 4), o += m;
    }
    bd = lf_batch_desc_default();
    bd.B = 4, bd.T = 32, bd.pack = LF_PACK_CONCAT;
    CHECK_OK(lf_batcher_init(&b, &ds, &bd));
    CHECK(b.n == total / 32);
    static int blocks_seen[4096];
    memset(blocks_seen, 0, sizeof blocks_seen);
    CHECK(b.n < 4096);
    while (b.epoch == 0) {
        int rows;
        CHECK_OK(lf_batcher_next(&b, tok, lab, pos, &rows));
        for (int r = 0; r < rows; r++) {
            int64_t which = -1;
            for (int64_t k = 0; k < b.n && which < 0; k++)
                if (!memcmp(cat + k * 32, tok + r * 32, 32 * 4)) which = k;
            CHECK(which >= 0 && !memcmp(lab + r * 32, tok + r * 32, 32 * 4));
            for (int t = 0; t < 32; t++) CHECK(pos[r * 32 + t] == t);
            blocks_seen[which]++;
        }
    }
    for (int64_t k = 0; k < b.n; k++) CHECK(blocks_seen[k] == 1);
    free(cat);
    lf_batcher_deinit(&b);
    lf_dataset_close(&ds);
    unlink(path);
    snprintf(path, sizeof path, "%s/chat.jsonl", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}

// Every allocation failing in turn: LF_ERR_NOMEM and nothing left behind.
static lf_status data_session(const void *ctx) {
    const lf_tokenizer *tok = (const lf_tokenizer *)ctx;
    static const char *const srcs[][2] = {
        {"a.jsonl", "{\"instruction\": \"Hi\", \"input\": \"there\", \"output\": \"Hello!\"}\n{\"instruction\": \"x\", \"output\": \"y\"}\n"},
        {"m.json", "[{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]},\n"
                   " {\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"c\"}, "
                   "{\"role\": \"assistant\", \"content\": \"d\"}]}]"},
        {"c.jsonl", "{\"prompt\": [{\"role\": \"user\", \"content\": \"a\"}], \"completion\": [{\"role\": \"assistant\", \"content\": \"b\"}]}\n"},
        {"p.jsonl", "{\"prompt\": \"The sky is\", \"completion\": \" blue.\"}\n"},
        {"d.txt", "A document."},
    };
    lf_sft_desc sd;
    memset(&sd, 0, sizeof sd);
    sd.tok = tok;
    lf_status s = LF_OK;
    for (size_t i = 0; i < sizeof srcs / sizeof *srcs && s == LF_OK; i++) {
        lf_data_reader r;
        const lf_data_record *rec;
        s = lf_data_open_memory(&r, srcs[i][1], strlen(srcs[i][1]), srcs[i][0], LF_DATA_AUTO, 0);
        while (s == LF_OK && (s = lf_data_next(&r, &rec)) == LF_OK && rec) {
            lf_sft_sample smp;
            s = lf_data_encode(&sd, rec, &smp);
            if (s == LF_OK) lf_sft_sample_deinit(&smp);
        }
        lf_data_close(&r);
    }
    lf_dataset_desc d;
    memset(&d, 0, sizeof d);
    d.path = DATA_DIR "alpaca.json", d.tok = tok, d.validation_split = 0.3;
    lf_dataset ds;
    if (s == LF_OK) s = lf_dataset_open(&ds, &d);
    if (s != LF_OK) return s;
    lf_batch_desc bd = lf_batch_desc_default();
    bd.B = 2, bd.T = 64, bd.pack = LF_PACK_SAMPLES;
    lf_batcher bt;
    int32_t tk[128], lb[128], ps[128];
    int rows;
    int64_t nb, nr;
    s = lf_batcher_init(&bt, &ds, &bd);
    if (s == LF_OK) s = lf_batcher_next(&bt, tk, lb, ps, &rows);
    if (s == LF_OK) s = lf_batcher_count(&bt, 1, &nb, &nr);
    lf_batcher_deinit(&bt);
    lf_dataset_close(&ds);
    return s;
}

static int test_data_allocation_failures(void) {
    const lf_tokenizer *tok = data_get_tok("tiny_chat");
    CHECK(tok);
    return lf_test_each_allocation_fails(data_session, tok);
}

// DPO records: two samples sharing the masked prompt, each training its own completion (and the
// end-of-turn or EOS after it).
static int test_data_encode_pair(void) {
    const lf_tokenizer *tok = data_get_tok("tiny_chat");
    CHECK(tok);
    lf_data_reader r;
    const lf_data_record *rec;
    CHECK_OK(lf_data_open(&r, DATA_DIR "dpo.jsonl", LF_DATA_AUTO, 0));
    lf_sft_desc d;
    memset(&d, 0, sizeof d);
    d.tok = tok;
    int pairs = 0;
    while (lf_data_next(&r, &rec) == LF_OK && rec) {
        lf_sft_sample c, j;
        CHECK_OK(lf_data_encode_pair(&d, rec, &c, &j));
        int pc = 0, pj = 0;  // the masked prompts are the same tokens
        while (pc < c.n && c.labels[pc] == LF_IGNORE_INDEX) pc++;
        while (pj < j.n && j.labels[pj] == LF_IGNORE_INDEX) pj++;
        CHECK(pc == pj && pc > 0 && memcmp(c.tokens, j.tokens, (size_t)pc * 4) == 0 && c.n_trained == c.n - pc);
        for (int k = 0; k < 2; k++) {  // each trains its own completion first
            const lf_sft_sample *smp = k ? &j : &c;
            const lf_data_field *f = k ? &rec->rejected : &rec->chosen;
            const char *want = f->text ? f->text : f->msgs[0].content;
            char *text = NULL;
            size_t len = 0;
            CHECK_OK(lf_tok_decode(tok, smp->tokens + pc, (size_t)(smp->n - pc), false, &text, &len));
            CHECK(strncmp(text, want, strlen(want)) == 0 && len > strlen(want));  // + EOS or end of turn
            lf_free(text);
        }
        // truncated: the prompt keeps its last 3 tokens, then each sample its first 5
        lf_sft_desc t = d;
        t.max_prompt_length = 3, t.max_length = 5;
        lf_sft_sample tc, tj;
        CHECK_OK(lf_data_encode_pair(&t, rec, &tc, &tj));
        CHECK(tc.n == LF__MIN(5, c.n - pc + 3) && tj.n == LF__MIN(5, j.n - pc + 3) && tc.truncated && tj.truncated);
        CHECK(memcmp(tc.tokens, c.tokens + pc - 3, (size_t)tc.n * 4) == 0 && memcmp(tj.tokens, j.tokens + pj - 3, (size_t)tj.n * 4) == 0);
        CHECK(memcmp(tc.labels, c.labels + pc - 3, (size_t)tc.n * 4) == 0 && tc.n_trained == tc.n - 3);
        lf_sft_sample_deinit(&tc), lf_sft_sample_deinit(&tj);
        t.max_prompt_length = 0, t.max_length = 0;  // no limits: as encoded whole
        CHECK_OK(lf_data_encode_pair(&t, rec, &tc, &tj));
        CHECK(tc.n == c.n && tj.n == j.n && !tc.truncated && memcmp(tc.tokens, c.tokens, (size_t)c.n * 4) == 0);
        lf_sft_sample_deinit(&tc), lf_sft_sample_deinit(&tj);
        lf_sft_sample_deinit(&c), lf_sft_sample_deinit(&j);
        pairs++;
    }
    CHECK(pairs == 3);
    lf_data_close(&r);
    CHECK_OK(lf_data_open(&r, DATA_DIR "alpaca.jsonl", LF_DATA_AUTO, 0));
    CHECK_OK(lf_data_next(&r, &rec));
    lf_sft_sample c, j;
    CHECK_ERR(lf_data_encode_pair(&d, rec, &c, &j), LF_ERR_ARG, "alpaca.jsonl:1: not a preference pair (the format is alpaca)");
    lf_data_close(&r);
    return 0;
}

// A DPO dataset: two samples per record (chosen, rejected) that the split keeps together, and
// batches of pairs with the chosen rows first; a cache built from them maps back the same.
static int test_data_pairs(void) {
    const lf_tokenizer *tok = data_get_tok("tiny_chat");
    CHECK(tok);
    char dir[] = "/tmp/lf_pairs_XXXXXX", path[128], cache[128];
    CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/pairs.jsonl", dir), snprintf(cache, sizeof cache, "%s/cache", dir);
    FILE *f = fopen(path, "w");
    CHECK(f);
    for (int i = 0; i < 40; i++)
        fprintf(f, "{\"prompt\": \"question %d?\", \"chosen\": \"yes %d\", \"rejected\": \"no, no %d\"}\n", i, i, i);
    fprintf(f, "{\"prompt\": \"bad\", \"chosen\": 3, \"rejected\": \"x\"}\n");
    fclose(f);
    lf_dataset_desc d = {.path = path, .tok = tok, .validation_split = 0.25, .seed = 3, .cache_dir = cache,
                         .tokenizer_path = LF_TEST_MODELS "tiny_chat"};
    lf_dataset ds;
    CHECK_ERR(lf_dataset_open(&ds, &d), LF_ERR_FORMAT, "pairs.jsonl:41: field 'chosen'");
    CHECK((f = fopen(path, "w")));
    for (int i = 0; i < 40; i++)
        fprintf(f, "{\"prompt\": \"question %d?\", \"chosen\": \"yes %d\", \"rejected\": \"no, no %d\"}\n", i, i, i);
    fclose(f);
    for (int pass = 0; pass < 2; pass++) {  // built, then mapped from the cache
        CHECK_OK(lf_dataset_open(&ds, &d));
        CHECK(ds.cache == (pass ? LF_DATASET_CACHE_HIT : LF_DATASET_CACHE_WRITTEN));
        CHECK(ds.format == LF_DATA_DPO && ds.n == 80 && ds.stats.records == 40 && ds.n_train % 2 == 0 && ds.n_val % 2 == 0 && ds.n_val > 0);
        for (int64_t i = 0; i < ds.n; i += 2) CHECK(ds.record[i] == ds.record[i + 1]);
        for (int64_t i = 0; i < ds.n_train; i += 2) CHECK(ds.train[i + 1] == ds.train[i] + 1 && ds.train[i] % 2 == 0);
        lf_batch_desc bd = lf_batch_desc_default();
        bd.B = 6, bd.T = 16, bd.seed = 1;
        lf_batcher b;
        CHECK_OK(lf_batcher_init(&b, &ds, &bd));
        CHECK(b.n == ds.n_train / 2);
        int32_t tk[6 * 16], lb[6 * 16], ps[6 * 16];
        int64_t seen = 0;
        int rows;
        do {
            CHECK_OK(lf_batcher_next(&b, tk, lb, ps, &rows));
            for (int r = 0; r < 3; r++) {
                int64_t c = b.sample[r], j = b.sample[r + 3];
                CHECK((c < 0) == (r >= rows / 2) && (c < 0 || (j == c + 1 && c % 2 == 0)));
                if (c < 0) {
                    CHECK(lb[r * 16 + 1] == LF_IGNORE_INDEX && lb[(r + 3) * 16 + 1] == LF_IGNORE_INDEX);
                    continue;
                }
                const int32_t *st, *sl;
                int n;
                lf_dataset_sample(&ds, j, &st, &sl, &n);
                CHECK(memcmp(tk + (r + 3) * 16, st, (size_t)LF__MIN(n, 16) * 4) == 0);
                seen++;
            }
        } while (b.index != 0);
        CHECK(seen == b.n);
        bd.B = 5;
        lf_batcher odd;
        CHECK_ERR(lf_batcher_init(&odd, &ds, &bd), LF_ERR_CONFIG, "preference pairs need an even B");
        lf_batcher_deinit(&b);
        lf_dataset_close(&ds);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return 0;
}

static const lf_test tests_data[] = {
    {"data/encode_pair", test_data_encode_pair},
    {"data/pairs_dataset_batches", test_data_pairs},
    {"data/formats", test_data_formats},
    {"data/detection", test_data_detection},
    {"data/bad_inputs", test_data_bad_inputs},
    {"data/errors_continue", test_data_errors_continue},
    {"data/streaming", test_data_streaming},
    {"data/split", test_data_split},
    {"data/sft_reference_hf", test_sft_reference},
    {"data/sft_masks", test_sft_masks},
    {"data/dataset_cache", test_dataset_cache},
    {"data/batches", test_batches},
    {"data/allocation_failures", test_data_allocation_failures},
};

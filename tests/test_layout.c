// tests/test_layout.c — the header keeps its map (STYLE R2) and compiles in every configuration
// of the compile matrix (R19): C11 and C++17 with -Werror, LF_STATIC, LF_NO_STDIO,
// LF_NO_THREADS, and an implementation in one file linked with declarations in another.

static char *layout_read_header(size_t *len) {
    char *h = NULL;
    if (lf_file_read("largeforge.h", 0, &h, len) != LF_OK) return NULL;
    return h;
}

// The ToC entries ("//   N. name  scope") and the API and impl banners
// ("// == N. name (API) ===") match one-to-one, in order.
static int test_layout_banners(void) {
    size_t len;
    char *h = layout_read_header(&len);
    CHECK(h);
    char toc[32][80], api[32][80], impl[32][80];
    int nt = 0, na = 0, ni = 0, in_toc = 0;
    for (char *line = h; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next = 0;
        int num;
        char name[64];
        if (strncmp(line, "// CONTENTS", 11) == 0) in_toc = 1;
        else if (in_toc && strncmp(line, "//", 2) == 0 && sscanf(line, "// %d. %63s", &num, name) == 2 && nt < 32)
            snprintf(toc[nt++], 80, "%d. %s", num, name);
        else if (in_toc && strlen(line) <= 3) in_toc = 0;
        if (strncmp(line, "// == ", 6) == 0 && sscanf(line, "// == %d. %63[^(]", &num, name) == 2) {
            char *e = name + strlen(name);
            while (e > name && e[-1] == ' ') *--e = 0;
            if (strstr(line, "(API)") && na < 32) snprintf(api[na++], 80, "%d. %s", num, name);
            else if (strstr(line, "(impl)") && ni < 32) snprintf(impl[ni++], 80, "%d. %s", num, name);
            else {
                fprintf(stderr, "    banner neither API nor impl: %s\n", line);
                return 1;
            }
        }
        line = next ? next + 1 : NULL;
    }
    lf_free(h);
    CHECK(nt >= 7);
    if (nt != na || nt != ni) fprintf(stderr, "    %d ToC entries, %d API banners, %d impl banners\n", nt, na, ni);
    CHECK(nt == na && nt == ni);
    for (int i = 0; i < nt; i++) {
        if (strcmp(toc[i], api[i]) || strcmp(toc[i], impl[i]))
            fprintf(stderr, "    entry %d: ToC '%s', API '%s', impl '%s'\n", i, toc[i], api[i], impl[i]);
        CHECK(strcmp(toc[i], api[i]) == 0 && strcmp(toc[i], impl[i]) == 0);
        int a = 0, b = 0;
        if (i > 0 && sscanf(toc[i - 1], "%d", &a) == 1 && sscanf(toc[i], "%d", &b) == 1) CHECK(b > a);
    }
    return 0;
}

// Runs one compiler command; a missing compiler skips, a failing compile fails.
static int layout_compile(const char *cmd) {
    char full[2048];
    snprintf(full, sizeof full, "%s > build/compile.log 2>&1", cmd);
    if (system(full) != 0) {
        fprintf(stderr, "    failed: %s\n", cmd);
        system("head -30 build/compile.log >&2");
        return 1;
    }
    return 0;
}

#define LF_STRICT "-Wall -Wextra -Werror -Wsign-conversion -Wno-unused-function -fsyntax-only -I. "

static int test_layout_compile_matrix(void) {
    if (system("cc --version > /dev/null 2>&1") != 0) SKIP("no C compiler on PATH");
    FILE *f = fopen("build/impl_check.c", "w");
    CHECK(f);
    fputs("#define LARGEFORGE_IMPLEMENTATION\n#include \"largeforge.h\"\n#ifndef LF_IMPLEMENTATION_INCLUDED\n"
          "#error the implementation was not compiled\n#endif\nint lf_check(void);\n"
          "int lf_check(void) { return lf_version()[0]; }\n", f);
    fclose(f);
    f = fopen("build/decl_check.c", "w");
    CHECK(f);
    fputs("#include \"largeforge.h\"\n#ifdef LF_IMPLEMENTATION_INCLUDED\n#error declarations only\n#endif\n"
          "int lf_check(void);\nint main(void) { lf_arena a; lf_arena_init(&a, 64, \"x\"); lf_arena_deinit(&a);"
          " return lf_check() == '0' && lf_status_str(LF_OK)[0] == 'L' ? 0 : 1; }\n", f);
    fclose(f);
    if (layout_compile("cc -std=c11 -Wstrict-prototypes " LF_STRICT "build/impl_check.c")) return 1;
    if (layout_compile("c++ -std=c++17 " LF_STRICT "-x c++ build/impl_check.c")) return 1;
    if (layout_compile("cc -std=c11 " LF_STRICT "-DLF_STATIC build/impl_check.c")) return 1;
    if (layout_compile("cc -std=c11 " LF_STRICT "-DLF_NO_STDIO build/impl_check.c")) return 1;
    if (layout_compile("cc -std=c11 " LF_STRICT "-DLF_NO_THREADS build/impl_check.c")) return 1;
    if (layout_compile("cc -std=c11 -O0 -I. build/impl_check.c build/decl_check.c -o build/split_check -lcjson -lm "
                       "-lpthread && ./build/split_check"))
        return 1;
    return 0;
}


// The C examples of README.md compile, and the first one runs on tiny_chat (STYLE R16).
static int test_layout_readme_examples(void) {
    if (system("cc --version > /dev/null 2>&1") != 0) SKIP("no C compiler on PATH");
    size_t len;
    char *readme = NULL;
    CHECK_OK(lf_file_read("README.md", 0, &readme, &len));
    int n = 0;
    for (char *p = strstr(readme, "```c\n"); p; p = strstr(p, "```c\n")) {
        p += 5;
        char *end = strstr(p, "```");
        CHECK(end);
        char path[64], cmd[512];
        snprintf(path, sizeof path, "build/readme_example_%d.c", n);
        FILE *f = fopen(path, "w");
        CHECK(f);
        fwrite(p, 1, (size_t)(end - p), f);
        fclose(f);
        snprintf(cmd, sizeof cmd, "cc -std=c11 -O1 -Wall -Wextra -Werror -Wno-unused-function -I. %s -o build/readme_example_%d "
                 "-lcjson -lm -lpthread", path, n);
        if (layout_compile(cmd)) return 1;
        n++;
        p = end + 3;
    }
    lf_free(readme);
    CHECK(n >= 1);
    char out[4096];
    FILE *p = popen("build/readme_example_0 tests/fixtures/models/tiny_chat 2>&1", "r");
    CHECK(p);
    size_t got = fread(out, 1, sizeof out - 1, p);
    out[got] = 0;
    CHECK(pclose(p) == 0 && got > 0);
    return 0;
}

static const lf_test tests_layout[] = {
    {"layout/readme_examples", test_layout_readme_examples},
    {"layout/banners_match_toc", test_layout_banners},
    {"layout/compile_matrix", test_layout_compile_matrix},
};

// tests/test.h — the registry and checks shared by every tests/test_*.c.
// tests/run.c is the one translation unit: it defines LARGEFORGE_IMPLEMENTATION, includes the
// test files and runs what they register. A test returns 0 (pass), 1 (fail) or -1 (skipped,
// after printing why with SKIP).
#ifndef LF_TEST_H
#define LF_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lf_test {
    const char *name;
    int (*fn)(void);
} lf_test;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "    %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            return 1;                                                            \
        }                                                                        \
    } while (0)

// Checks that an lf_ call returns LF_OK, printing lf_last_error() when it does not.
#define CHECK_OK(expr)                                                           \
    do {                                                                         \
        lf_status st_ = (expr);                                                  \
        if (st_ != LF_OK) {                                                      \
            fprintf(stderr, "    %s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #expr, \
                    lf_status_str(st_), lf_last_error());                        \
            return 1;                                                            \
        }                                                                        \
    } while (0)

// Checks a failing call: its status and a stable substring of its message.
#define CHECK_ERR(expr, status, substr)                                          \
    do {                                                                         \
        lf_status st_ = (expr);                                                  \
        if (st_ != (status) || !strstr(lf_last_error(), (substr))) {             \
            fprintf(stderr, "    %s:%d: %s returned %s (\"%s\"), expected %s with \"%s\"\n", __FILE__, \
                    __LINE__, #expr, lf_status_str(st_), st_ ? lf_last_error() : "", \
                    lf_status_str(status), (substr));                            \
            return 1;                                                            \
        }                                                                        \
    } while (0)

#define SKIP(...)                                                                \
    do {                                                                         \
        fprintf(stderr, "    skipped: ");                                        \
        fprintf(stderr, __VA_ARGS__);                                            \
        fprintf(stderr, "\n");                                                   \
        return -1;                                                               \
    } while (0)

#endif

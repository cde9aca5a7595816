// largeforge — the umbrella command: `largeforge <task> [args]` runs lf-<task> [args] from the
// directory this binary lives in, so each lf-<task> stays a small program usable alone.
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../largeforge.h"

static const char *const tasks[][2] = {
    {"run", "generate text from a model, or chat with it"},
    {"tokenize", "encode or decode text with a HuggingFace tokenizer.json"},
    {"evaluate", "logits, perplexity, exact match and llama-bench-style benchmarks"},
    {"train", "pretrain, fine-tune (SFT), align (DPO, ORPO) or distill; full, LoRA or QLoRA"},
    {"merge", "fold a LoRA adapter into its base model"},
    {"quantize", "int8, NF4, Q8_0, Q4_0, 4-bit groups, GPTQ and AWQ, with a quality report"},
    {"generate", "synthetic instruction data, preference pairs and teacher logits from a model"},
    {"serve", "an OpenAI-compatible inference server (continuous batching, streaming, keys, metrics)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: largeforge <task> [options]   (largeforge <task> --help for each)\n\ntasks:\n");
    for (size_t i = 0; i < sizeof tasks / sizeof *tasks; i++) fprintf(f, "  %-10s %s\n", tasks[i][0], tasks[i][1]);
    fprintf(f, "\noptions:\n  --help      this text\n  --version   print the version\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 64;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("largeforge %s\n", LF_VERSION_STRING);
        return 0;
    }
    size_t t = 0;
    while (t < sizeof tasks / sizeof *tasks && strcmp(tasks[t][0], argv[1]) != 0) t++;
    if (t == sizeof tasks / sizeof *tasks) {
        fprintf(stderr, "largeforge: error: unknown task '%s' (see largeforge --help)\n", argv[1]);
        return 64;
    }
    char self[PATH_MAX], path[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        snprintf(self, sizeof self, "%s", argv[0]);
        n = (ssize_t)strlen(self);
    }
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash) slash[1] = 0;
    else self[0] = 0;
    snprintf(path, sizeof path, "%slf-%s", self, argv[1]);
    argv[1] = path;
    execv(path, argv + 1);
    fprintf(stderr, "largeforge: error: cannot run %s: %s\n", path, strerror(errno));
    return 4;
}

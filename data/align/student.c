// data/align/student.c — a student half the depth of its teacher, initialized from every other
// layer of it (DistilBERT's recipe): the embeddings, the final norm and the teacher's layers 0, 2,
// 4, ... become the student's layers 0, 1, 2, ...; config.json says num_hidden_layers L/2.
//
//   cc -O2 -I. data/align/student.c -o build/align/student -lcjson -lm -lpthread
//   build/align/student TEACHER_DIR OUT_DIR        (then copy the tokenizer files beside it)
#define LARGEFORGE_IMPLEMENTATION
#include "largeforge.h"

#include <stdio.h>

static int fail(lf_status s) {
    fprintf(stderr, "student: %s\n", lf_last_error());
    return (int)-s;
}

int main(int argc, char **argv) {
    if (argc != 3) return fprintf(stderr, "usage: student TEACHER_DIR OUT_DIR\n"), 64;
    char in[1024], out[1024];
    lf_st_file f;
    snprintf(in, sizeof in, "%s/model.safetensors", argv[1]);
    lf_status s = lf_st_open(&f, in);
    if (s != LF_OK) return fail(s);
    lf_st_entry *e = (lf_st_entry *)calloc((size_t)f.n, sizeof *e);
    char(*names)[256] = (char(*)[256])calloc((size_t)f.n, sizeof *names);
    int n = 0, layers = 0;
    for (int i = 0; e && names && i < f.n; i++) {
        const lf_st_tensor *t = &f.tensors[i];
        int l, at = 0;
        if (sscanf(t->name, "model.layers.%d.%n", &l, &at) == 1 && at > 0) {
            if (l % 2) continue;  // the odd layers go
            snprintf(names[n], sizeof names[n], "model.layers.%d.%s", l / 2, t->name + at);
            layers = l / 2 + 1 > layers ? l / 2 + 1 : layers;
        } else snprintf(names[n], sizeof names[n], "%s", t->name);
        e[n].name = names[n], e[n].dtype = t->dtype, e[n].ndim = t->ndim, e[n].data = t->data;
        memcpy(e[n].shape, t->shape, sizeof e[n].shape);
        n++;
    }
    if (!e || !names) return fail(lf__fail(LF_ERR_NOMEM, "out of memory"));
    if ((s = lf_dir_make(argv[2])) != LF_OK) return fail(s);
    snprintf(out, sizeof out, "%s/model.safetensors", argv[2]);
    if ((s = lf_st_write(out, e, n, NULL, 0)) != LF_OK) return fail(s);
    // config.json: the same text with the new depth
    char *text = NULL, *p;
    size_t len = 0;
    snprintf(in, sizeof in, "%s/config.json", argv[1]);
    if ((s = lf_file_read(in, 0, &text, &len)) != LF_OK) return fail(s);
    if (!(p = strstr(text, "\"num_hidden_layers\":"))) return fail(lf__fail(LF_ERR_FORMAT, "%s: no num_hidden_layers", in));
    char *num = p + strlen("\"num_hidden_layers\":"), *end = num + strspn(num, " ");
    end += strspn(end, "0123456789");
    FILE *o;
    snprintf(out, sizeof out, "%s/config.json", argv[2]);
    if (!(o = fopen(out, "w"))) return fail(lf__fail(LF_ERR_IO, "%s: cannot write", out));
    fprintf(o, "%.*s %d%s", (int)(num - text), text, layers, end);
    fclose(o);
    printf("student: %d of the teacher's layers, %s\n", layers, argv[2]);
    lf_free(text), free(e), free(names), lf_st_close(&f);
    return 0;
}

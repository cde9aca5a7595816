// lf-train — train a model into a run directory (DESIGN.md "Runs"): `pretrain` (causal LM on
// plain text, from scratch when the model directory has no weights), `sft` (instruction and
// chat data with the loss on the answers only), `dpo` and `orpo` (preference pairs); full
// fine-tuning, or LoRA when the config's lora section enables it. Checkpoints every save_steps;
// --resume continues the latest exactly; SIGINT/SIGTERM save a checkpoint and exit 0.
#define LARGEFORGE_IMPLEMENTATION
#include "../largeforge.h"
#include "common.h"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

static const char *help =
    "usage: lf-train pretrain|sft|dpo|orpo|distill --config FILE [--resume] [--SECTION.KEY VALUE...]\n"
    "\n"
    "  pretrain  causal LM on plain text (.txt, or JSONL with \"text\"): documents joined with EOS and\n"
    "            cut into blocks of data.max_length; a model directory holding only config.json and\n"
    "            a tokenizer starts from freshly initialized weights\n"
    "  sft       supervised fine-tuning on Alpaca, ShareGPT, OpenAI messages or prompt/completion\n"
    "            data: the loss is on the answers (assistant turns) only\n"
    "  dpo       Direct Preference Optimization on prompt/chosen/rejected pairs (the dpo section:\n"
    "            beta, loss_type sigmoid|hinge|ipo, label_smoothing, reference_free,\n"
    "            max_prompt_length, max_length, precompute_ref_log_probs). The reference is the\n"
    "            starting model: with LoRA the same weights with the adapters off (or, continuing\n"
    "            model.adapter, that adapter as it started); full fine-tuning computes it once\n"
    "  orpo      ORPO on the same pairs, no reference (the orpo section: beta, max_prompt_length,\n"
    "            max_length)\n"
    "  distill   knowledge distillation from a frozen teacher sharing the student's tokenizer (the\n"
    "            distill section: teacher, temperature, alpha, top_k, teacher_quantization, or\n"
    "            logits_file from `largeforge generate logits`): alpha CE + (1 - alpha) T^2 KL, plus\n"
    "            feature_layers' MSE on hidden states through a learned projection; a student\n"
    "            directory with only config.json and a tokenizer starts from fresh weights\n"
    "\n"
    "The config (configs/sft.yaml, configs/dpo.yaml, configs/pretrain.yaml) has the sections model\n"
    "(name, adapter), training, lora, quantization, data, and dpo, orpo or distill; every key can be\n"
    "overridden: --training.learning_rate 1e-4, or LARGEFORGE_TRAINING_LEARNING_RATE=1e-4 in the\n"
    "environment. Unknown keys are errors. With dpo and orpo, per_device_batch_size counts pairs\n"
    "and the lengths come from their section (data.max_length is not used).\n"
    "\n"
    "The run directory (training.output_dir) gets config.yaml (resolved), metrics.jsonl, run.log,\n"
    "checkpoints/step-N/, final/ (an HF model directory, or a PEFT adapter with LoRA) and loss.png.\n"
    "dpo and orpo log TRL's metrics (rewards/chosen, rewards/rejected, rewards/accuracies,\n"
    "rewards/margins, logps/chosen, logps/rejected; orpo: nll_loss, log_odds_ratio, log_odds_chosen);\n"
    "distill logs ce_loss and kl_loss.\n"
    "\n"
    "options:\n"
    "  --config FILE   the run's config (required)\n"
    "  --resume        continue from the latest checkpoint in output_dir\n"
    "  --help, --version, --quiet, --verbose\n"
    "exit codes: 0 done (also when interrupted by SIGINT/SIGTERM after saving a checkpoint);\n"
    "  see largeforge --help for the others\n";

// -- the run directory: run.log (JSON lines), metrics.jsonl, the progress line

static FILE *run_log_f;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static void iso_time(char *out, size_t cap) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

// One run.log line: timestamp, level, logger, message, context (a JSON object's text).
static void run_log(const char *level, const char *logger, const char *msg, const char *context) {
    if (!run_log_f) return;
    char ts[40];
    iso_time(ts, sizeof ts);
    lf__buf b = LF__ZERO;
    lf__buf_printf(&b, "{\"timestamp\": \"%s\", \"level\": \"%s\", \"logger\": \"%s\", \"message\": ", ts, level, logger);
    lf__buf_json_str(&b, msg, strlen(msg));
    lf__buf_printf(&b, ", \"context\": %s}\n", context ? context : "{}");
    if (!b.failed) fputs(b.data, run_log_f), fflush(run_log_f);
    LF_FREE(b.data);
}

static void library_log(void *user, lf_log_level lvl, const char *module, const char *msg) {
    static const char *names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
    char logger[64];
    snprintf(logger, sizeof logger, "largeforge.%s", module);
    run_log(names[lvl], logger, msg, NULL);
    if (user) lf_log_stderr(NULL, lvl, module, msg);
}

static bool tty;
static void progress(int64_t step, int64_t total, float loss, float lr, double eta_s) {
    if (lf_drv_quiet || !tty) return;
    int w = 30, done = total ? (int)(w * step / total) : w;
    fprintf(stderr, "\r[%.*s%.*s] %lld/%lld loss %.4f lr %.2e eta %dm%02ds ", done, "##############################",
            w - done, "..............................", (long long)step, (long long)total, (double)loss, (double)lr,
            (int)(eta_s / 60), (int)eta_s % 60);
    fflush(stderr);
}

// Keeps the metrics lines of steps <= step (a resumed run rewrites what came after).
static lf_status metrics_truncate(const char *path, int64_t step) {
    char *text = NULL;
    size_t len = 0;
    if (!lf_path_exists(path)) return LF_OK;
    lf_status s = lf_file_read(path, 0, &text, &len);
    if (s != LF_OK) return s;
    size_t keep = 0;
    for (size_t a = 0; a < len;) {
        char *nl = memchr(text + a, '\n', len - a), *p = strstr(text + a, "\"step\": ");
        size_t b = nl ? (size_t)(nl - text) + 1 : len;
        if (p && p < text + b && strtoll(p + 8, NULL, 10) <= step) memmove(text + keep, text + a, b - a), keep += b - a;
        a = b;
    }
    s = lf_file_write_atomic(path, text, keep);
    lf_free(text);
    return s;
}

// -- loss.png: train loss (blue) and eval loss (red) over steps, from metrics.jsonl

static void plot_line(unsigned char *img, int W, int H, int x0, int y0, int x1, int y1, const unsigned char *rgb) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) {
        for (int oy = 0; oy < 2; oy++)
            if (x0 >= 0 && x0 < W && y0 + oy >= 0 && y0 + oy < H)
                for (int ch = 0; ch < 3; ch++) img[3 * ((size_t)(y0 + oy) * (size_t)W + (size_t)x0) + (size_t)ch] = rgb[ch];
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

static void plot_text(unsigned char *img, int W, int H, int x, int y, const char *s) {
    static char quads[20000];
    int n = stb_easy_font_print(0, 0, (char *)s, NULL, quads, sizeof quads);
    for (int q = 0; q < n; q++) {  // each quad: 4 vertices of x, y, z, color (16 bytes)
        float *v = (float *)(quads + q * 64);
        for (int yy = (int)v[1]; yy < (int)v[9]; yy++)
            for (int xx = (int)v[0]; xx < (int)v[4]; xx++)
                if (x + xx >= 0 && x + xx < W && y + yy >= 0 && y + yy < H) memset(img + 3 * ((y + yy) * W + x + xx), 40, 3);
    }
}

static lf_status plot_losses(const char *metrics, const char *png) {
    char *text = NULL;
    size_t len = 0;
    lf_status s = lf_file_read(metrics, 0, &text, &len);
    if (s != LF_OK) return s;
    enum { W = 720, H = 420, L0 = 60, R0 = 20, T0 = 30, B0 = 40 };
    double xs[2][4096], ys[2][4096], xmax = 1, ymin = 1e30, ymax = -1e30;
    int n[2] = {0, 0};
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *st = strstr(line, "\"step\": "), *l = strstr(line, "\"loss\": "), *e = strstr(line, "\"eval_loss\": ");
        for (int k = 0; k < 2; k++) {
            char *v = k ? e : l;
            double y = v ? strtod(v + (k ? 13 : 8), NULL) : 0;
            if (!st || !v || n[k] == 4096 || !isfinite(y)) continue;  // a diverged step has no place on the chart
            xs[k][n[k]] = strtod(st + 8, NULL), ys[k][n[k]] = y;
            xmax = fmax(xmax, xs[k][n[k]]), ymin = fmin(ymin, ys[k][n[k]]), ymax = fmax(ymax, ys[k][n[k]]);
            n[k]++;
        }
        line = nl ? nl + 1 : NULL;
    }
    lf_free(text);
    if (n[0] + n[1] == 0) return LF_OK;
    if (ymax - ymin < 1e-6) ymax = ymin + 1;
    unsigned char *img = (unsigned char *)malloc(W * H * 3);
    if (!img) return lf__fail(LF_ERR_NOMEM, "loss.png: out of memory");
    memset(img, 255, W * H * 3);
    static const unsigned char axis[3] = {60, 60, 60}, grid[3] = {225, 225, 225}, col[2][3] = {{40, 90, 200}, {210, 50, 40}};
    char label[64];
    for (int t = 0; t <= 4; t++) {  // horizontal grid lines with loss labels
        int y = T0 + (H - T0 - B0) * t / 4;
        plot_line(img, W, H, L0, y, W - R0, y, grid);
        snprintf(label, sizeof label, "%.3g", ymax - (ymax - ymin) * t / 4);
        plot_text(img, W, H, 8, y - 4, label);
    }
    plot_line(img, W, H, L0, T0, L0, H - B0, axis);
    plot_line(img, W, H, L0, H - B0, W - R0, H - B0, axis);
    snprintf(label, sizeof label, "step %.0f", xmax);
    plot_text(img, W, H, W - R0 - 60, H - B0 + 10, label);
    plot_text(img, W, H, L0, H - B0 + 10, "0");
    plot_text(img, W, H, L0, 10, "loss (blue: train, red: eval)");
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < n[k]; i++) {
            int x = L0 + (int)((W - L0 - R0) * xs[k][i] / xmax), y = T0 + (int)((H - T0 - B0) * (ymax - ys[k][i]) / (ymax - ymin));
            if (i) {
                int px = L0 + (int)((W - L0 - R0) * xs[k][i - 1] / xmax);
                int py = T0 + (int)((H - T0 - B0) * (ymax - ys[k][i - 1]) / (ymax - ymin));
                plot_line(img, W, H, px, py, x, y, col[k]);
            }
            if (k) plot_line(img, W, H, x - 2, y, x + 2, y, col[k]);
        }
    int ok = stbi_write_png(png, W, H, 3, img, W * 3);
    free(img);
    return ok ? LF_OK : lf__fail(LF_ERR_IO, "%s: cannot write", png);
}

// -- training

enum mode { PRETRAIN, SFT, DPO, ORPO, DISTILL };
static bool is_pref(enum mode m) { return m == DPO || m == ORPO; }
// The preference metrics summed over a logging window (lf_train_state.log_metrics), in TRL's names.
enum { N_PREF_METRICS = 9 };
static const char *pref_names[N_PREF_METRICS] = {"rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                                                 "logps/chosen", "logps/rejected", "nll_loss", "log_odds_ratio", "log_odds_chosen"};

typedef struct run {
    enum mode mode;
    lf_train_config tc;
    lf_data_config dc;
    lf_dpo_config pc;  // dpo, orpo
    lf_kd_config kc;   // distill
    bool pretrain, resume;
    char out[1024], metrics_path[1100];
    lf_tokenizer tok;
    lf_model m;
    lf_optim o;
    lf_dataset ds, vds;  // vds: a separate validation_file
    lf_batcher tb, vb;
    bool has_val;
    int B, T;
    int32_t *tok_buf, *lab_buf, *pos_buf;  // [grad_accum, B, T] each
    int64_t *smp_buf;                      // [grad_accum, B] each row's dataset sample
    FILE *metrics;
    // DPO's reference: per-sample sums computed once (pre for ds, pre_v for vds), or live from
    // the model: with ref_w (model.adapter's starting weights) swapped in, else adapters off
    double *pre, *pre_v;
    float *ref_w;
    // distill: the frozen teacher (online) or its targets file (offline), and a micro-batch's
    // targets [B, T, K]
    lf_model teacher;
    lf_kv tkv;
    lf_kd_file kf;
    int K;
    int32_t *kd_ids;
    float *kd_lp;
    // feature distillation: per layer pair the projection (NULL where the widths agree) and the
    // teacher's hidden states [B, T, Ct]; the real tokens [B, T]; the pairs as lf_kd_grads takes
    // them; hid: [teacher L] where a row's teacher layer outputs go
    int Ct;
    float *proj[16], *thid[16], **hid;
    char proj_name[16][48];
    uint8_t *kd_mask;
    lf_kd_features feat;
    int feat_layer[16];
    const float *feat_hidden[16];
    const char *feat_name[16];
} run;

// The teacher's targets for a micro-batch's rows: its top-K at every position of each row's
// sample, from the teacher or the targets file (the same numbers: the same forward over the
// same tokens).
static lf_status kd_fill(run *r, const int32_t *tokens, const int64_t *samples) {
    lf_status s = LF_OK;
    if (r->kd_mask) memset(r->kd_mask, 0, (size_t)r->B * (size_t)r->T);
    for (int i = 0; s == LF_OK && i < r->B; i++) {
        if (samples[i] < 0) continue;
        const lf_dataset *ds = r->kf.ids || !r->dc.validation_file ? &r->ds : &r->vds;
        int64_t n = LF__MIN(ds->offsets[samples[i] + 1] - ds->offsets[samples[i]], (int64_t)r->T);
        size_t o = (size_t)i * (size_t)r->T * (size_t)r->K;
        if (r->kf.ids) {  // offline
            size_t f = (size_t)r->kf.offsets[samples[i]] * (size_t)r->K;
            memcpy(r->kd_ids + o, r->kf.ids + f, (size_t)n * (size_t)r->K * sizeof(int32_t));
            memcpy(r->kd_lp + o, r->kf.logp + f, (size_t)n * (size_t)r->K * sizeof(float));
        } else {
            for (int j = 0; j < r->kc.n_features; j++)  // the teacher layers the features take, into row i
                r->hid[r->kc.feature_layers[j][1]] = r->thid[j] + (size_t)i * (size_t)r->T * (size_t)r->Ct;
            if (r->kd_mask) memset(r->kd_mask + (size_t)i * (size_t)r->T, 1, (size_t)n);
            s = lf_kd_teacher_topk(&r->teacher, &r->tkv, tokens + (size_t)i * (size_t)r->T, (int)n, r->K, r->kd_ids + o, r->kd_lp + o, r->hid);
        }
    }
    return s;
}

// One micro-batch of distillation: the teacher's targets, then the student's loss (and, with
// grads, its gradients).
static lf_status kd_micro(run *r, const lf_train_batch *b, const int64_t *samples, bool grads, lf_kd_stats *ks) {
    lf_kd_targets kt = {r->K, r->kd_ids, r->kd_lp};
    const lf_kd_features *f = r->kc.n_features ? &r->feat : NULL;
    lf_status s = kd_fill(r, b->tokens, samples);
    if (s == LF_OK) s = grads ? lf_kd_grads(&r->m, &r->kc.kd, b, &kt, f, ks) : lf_kd_eval(&r->m, &r->kc.kd, b, &kt, f, ks);
    return s;
}

// sums += w * each metric of st.
static void pref_add(double *sums, const lf_pref_stats *st, double w) {
    const double v[N_PREF_METRICS] = {st->rewards_chosen, st->rewards_rejected, st->accuracies, st->margins, st->logps_chosen,
                                      st->logps_rejected, st->nll_loss, st->log_odds_ratio, st->log_odds_chosen};
    for (int i = 0; i < N_PREF_METRICS; i++) sums[i] += w * v[i];
}

// ", \"rewards/chosen\": ..." for a metrics line: the window's means (prefix "eval_" for evaluation).
static void pref_print(FILE *f, enum mode mode, const char *prefix, const double *sums, double n) {
    for (int i = 0; i < (mode == ORPO ? N_PREF_METRICS : 6); i++) fprintf(f, ", \"%s%s\": %.9g", prefix, pref_names[i], n > 0 ? sums[i] / n : 0.0);
}

// Exchanges the adapters' weights with ref_w (the reference's), element by element; with copy,
// ref_w only takes theirs.
static void swap_adapters(run *r, bool copy) {
    float *w = r->ref_w;
    for (int l = 0; l < r->m.cfg.L; l++)
        for (int p = 0; p < LF_PROJ_COUNT; p++) {
            lf_lowrank *a = r->m.layers[l].lora[p];
            if (!a) continue;
            int64_t n[2] = {(int64_t)a->r * r->m.layers[l].w[p].shape[1], r->m.layers[l].w[p].shape[0] * a->r};
            float *x[2] = {a->A, a->B};
            for (int k = 0; k < 2; k++)
                for (int64_t i = 0; i < n[k]; i++, w++) {
                    float t = x[k][i];
                    if (!copy) x[k][i] = *w;
                    *w = t;
                }
        }
}

// The reference's summed log-probs of a micro-batch's rows, from the model as it is now.
static lf_status ref_live(run *r, const lf_train_batch *b, double *out) {
    if (!r->ref_w) return lf_dpo_ref_logps(&r->m, b, out);  // adapters off, or the full model itself
    float *lp = (float *)malloc((size_t)r->B * (size_t)r->T * sizeof(float));
    if (!lp) return lf__fail(LF_ERR_NOMEM, "reference log-probs");
    swap_adapters(r, false);
    lf_status s = lf_model_train_logps(&r->m, b, lp);
    swap_adapters(r, false);
    for (int i = 0; i < r->B; i++) {
        out[i] = 0;
        for (int t = 0; t < r->T; t++) out[i] += lp[(size_t)i * (size_t)r->T + (size_t)t];
    }
    free(lp);
    return s;
}

// One micro-batch of a preference objective: its loss and metrics, gradients added times weight
// (0: evaluation). pre: the precomputed sums by sample (NULL: live or adapters off).
static lf_status pref_micro(run *r, const lf_train_batch *b, const int64_t *samples, const double *pre, float weight, lf_pref_stats *st) {
    if (r->mode == ORPO) return lf_orpo_grads(&r->m, r->pc.loss.beta, b, weight, st);
    double ref[1024];
    const double *rp = NULL;
    lf_status s = LF_OK;
    if (pre)
        for (int i = 0; i < r->B; i++) ref[i] = samples[i] >= 0 ? pre[samples[i]] : 0;
    else if (r->ref_w && !r->pc.loss.reference_free) s = ref_live(r, b, ref);
    if (pre || r->ref_w) rp = ref;
    return s == LF_OK ? lf_dpo_grads(&r->m, &r->pc.loss, b, rp, weight, st) : s;
}

// Targets the model scores in a [B, T] micro-batch (position t predicts label t + 1 of the same
// sample): the loss divisor of an accumulation group is their sum (HF's num_items_in_batch).
static int scored(const int32_t *lab, const int32_t *pos, int B, int T) {
    int n = 0;
    for (int64_t i = 0; i < (int64_t)B * T; i++)
        n += i % T != T - 1 && pos[i + 1] != 0 && lab[i + 1] != -100;
    return n;
}

// The validation loss over one pass of the validation split: token-weighted, or for preference
// pairs the mean over the pairs, with their metrics (pm, summed; *n_pairs).
static lf_status evaluate(run *r, double *out, double *pm, double *n_pairs) {
    lf_batcher *vb = &r->vb;
    int64_t batches, rows;
    lf_status s = lf_batcher_seek(vb, 0, 0);
    if (s == LF_OK) s = lf_batcher_count(vb, 0, &batches, &rows);
    double sum = 0, total = 0;
    memset(pm, 0, N_PREF_METRICS * sizeof *pm);
    for (int64_t i = 0; s == LF_OK && i < batches; i++) {
        int rws, n = 0;
        float l;
        if ((s = lf_batcher_next(vb, r->tok_buf, r->lab_buf, r->pos_buf, &rws)) != LF_OK) break;
        lf_train_batch b = {.tokens = r->tok_buf, .labels = r->lab_buf, .pos = r->pos_buf, .n_scored = 0};
        if (is_pref(r->mode)) {
            lf_pref_stats st;
            double w = rws / 2;  // pairs in this batch: the stats are their means
            if ((s = pref_micro(r, &b, vb->sample, r->dc.validation_file ? r->pre_v : r->pre, 0.0f, &st)) != LF_OK) break;
            pref_add(pm, &st, w);
            sum += st.loss * w, total += w;
        } else if (r->mode == DISTILL) {
            lf_kd_stats ks;
            if ((s = kd_micro(r, &b, vb->sample, false, &ks)) != LF_OK) break;
            sum += ks.loss * (double)ks.n, total += (double)ks.n, pm[0] += ks.ce * (double)ks.n, pm[1] += ks.kl * (double)ks.n;
        } else if ((s = lf_model_train_eval(&r->m, &b, &l, &n)) == LF_OK) sum += (double)l * n, total += n;
    }
    *out = total ? sum / total : 0, *n_pairs = total;
    return s;
}

// An eval line of metrics.jsonl.
static lf_status log_eval(run *r, int64_t step, double epoch, double *ev) {
    double pm[N_PREF_METRICS], np;
    lf_status s = evaluate(r, ev, pm, &np);
    if (s != LF_OK) return s;
    fprintf(r->metrics, "{\"step\": %lld, \"epoch\": %.4f, \"eval_loss\": %.6f", (long long)step, epoch, *ev);
    if (is_pref(r->mode)) pref_print(r->metrics, r->mode, "eval_", pm, np);
    if (r->mode == DISTILL) fprintf(r->metrics, ", \"eval_ce_loss\": %.6f, \"eval_kl_loss\": %.6f", np ? pm[0] / np : 0.0, np ? pm[1] / np : 0.0);
    fputs("}\n", r->metrics);
    fflush(r->metrics);
    return LF_OK;
}

static lf_status open_data(run *r) {
    const lf_data_config *d = &r->dc;
    char cache[1100];
    lf_status s = lf_drv_cache_dir(d, cache, sizeof cache);
    if (s != LF_OK) return s;
    lf_dataset_desc dd = {0};
    dd.path = d->train_file, dd.format = d->format, dd.tok = &r->tok, dd.chat = d->chat;
    dd.max_length = r->pretrain ? 0 : is_pref(r->mode) ? r->pc.max_length : d->max_length;
    dd.max_prompt_length = is_pref(r->mode) ? r->pc.max_prompt_length : 0;
    dd.validation_split = d->validation_split, dd.seed = r->tc.seed;
    dd.cache_dir = cache, dd.tokenizer_path = r->tc.model;
    s = lf_dataset_open(&r->ds, &dd);
    if (s != LF_OK) return s;
    if (r->pretrain && r->ds.format != LF_DATA_TEXT)
        return lf__fail(LF_ERR_CONFIG, "%s: pretrain reads plain text (.txt or JSONL with \"text\"), this is %s data", d->train_file,
                        lf_data_format_name(r->ds.format));
    if ((is_pref(r->mode)) != (r->ds.format == LF_DATA_DPO))
        return lf__fail(LF_ERR_CONFIG, "%s: %s data: %s", d->train_file, lf_data_format_name(r->ds.format),
                        is_pref(r->mode) ? "preference training reads prompt/chosen/rejected pairs" : "preference pairs train with dpo or orpo");
    run_log("INFO", "largeforge.data", "dataset ready", NULL);
    lf_batch_desc bd = lf_batch_desc_default();
    bd.B = r->B, bd.T = r->T, bd.seed = r->tc.seed;
    bd.pack = r->pretrain ? LF_PACK_CONCAT : d->packing ? LF_PACK_SAMPLES : LF_PACK_NONE;
    if ((s = lf_batcher_init(&r->tb, &r->ds, &bd)) != LF_OK) return s;
    const lf_dataset *vds = &r->ds;
    bd.split = LF_SPLIT_VALIDATION, bd.shuffle = false;
    if (d->validation_file) {
        dd.path = d->validation_file, dd.validation_split = 0;
        if ((s = lf_dataset_open(&r->vds, &dd)) != LF_OK) return s;
        vds = &r->vds, bd.split = LF_SPLIT_TRAIN;
    }
    r->has_val = d->validation_file || r->ds.n_val > 0;
    return r->has_val ? lf_batcher_init(&r->vb, vds, &bd) : LF_OK;
}

// -- distillation's teacher: frozen (no gradients, no optimizer state), loaded once, optionally
// quantized; or, offline, its targets file
static lf_status open_teacher(run *r) {
    const lf_kd_config *k = &r->kc;
    lf_status s = LF_OK;
    int V = r->m.cfg.V;
    if (k->logits_file) {
        if ((s = lf_kd_file_open(&r->kf, k->logits_file, &r->ds)) != LF_OK) return s;
        if (k->top_k && k->top_k != r->kf.k)
            return lf__fail(LF_ERR_CONFIG, "distill.top_k %d: %s holds the teacher's top %d", k->top_k, k->logits_file, r->kf.k);
        r->K = r->kf.k;
    } else {
        s = lf_drv_same_tokenizer(k->teacher, r->tc.model);
        lf_model_desc md = {0};
        md.path = k->teacher, md.n_threads = r->tc.threads, md.max_tokens = r->T, md.max_seq_len = r->T, md.pool = r->m.pool;
        if (s == LF_OK) s = lf_model_open(&r->teacher, &md);
        if (s == LF_OK && r->teacher.cfg.V != V)
            s = lf__fail(LF_ERR_CONFIG, "distill.teacher: a vocabulary of %d, the student's is %d", r->teacher.cfg.V, V);
        if (s == LF_OK && k->teacher_quant_bits)
            s = lf_model_quantize(&r->teacher, &(lf_qtensor_desc){.type = k->teacher_quant_bits == 4 ? LF_QTYPE_NF4 : LF_QTYPE_INT8, .double_quant = true});
        if (s == LF_OK) s = lf_kv_init(&r->tkv, &r->teacher, 1, r->T);
        r->K = k->top_k ? LF__MIN(k->top_k, V) : V;
    }
    size_t n = (size_t)r->B * (size_t)r->T * (size_t)r->K;
    if (s == LF_OK && (!(r->kd_ids = (int32_t *)malloc(n * 4)) || !(r->kd_lp = (float *)malloc(n * 4))))
        s = lf__fail(LF_ERR_NOMEM, "the teacher's targets for a micro-batch (%zu MB)", n * 8 >> 20);
    return s;
}

// Feature distillation's projections W [Ct, Cs], one per layer pair where the widths differ,
// drawn as torch's nn.Linear draws them (uniform within 1/sqrt(Cs)) and trained with the student;
// the teacher's width and depth from its config.json.
static lf_status kd_projections(run *r) {
    char *path = lf_path_join(r->kc.teacher, "config.json"), *text = NULL;
    size_t len = 0;
    lf_model_config tc;
    lf_status s = path ? lf_file_read(path, 0, &text, &len) : LF_ERR_NOMEM;
    if (s == LF_OK) s = lf_model_config_parse(&tc, text, len, path);
    lf_free(path), lf_free(text);
    int Cs = r->m.cfg.C;
    r->Ct = s == LF_OK ? tc.C : 0;
    lf_rng rng;
    lf_rng_seed(&rng, r->tc.seed ^ 0x70726f6aull);
    for (int j = 0; s == LF_OK && j < r->kc.n_features; j++) {
        int ls = r->kc.feature_layers[j][0], lt = r->kc.feature_layers[j][1];
        if (ls >= r->m.cfg.L || lt >= tc.L)
            return lf__fail(LF_ERR_CONFIG, "distill.feature_layers[%d]: [%d, %d], but the student has %d layers and the teacher %d", j, ls, lt,
                            r->m.cfg.L, tc.L);
        if (!(r->thid[j] = (float *)calloc((size_t)r->B * (size_t)r->T * (size_t)r->Ct, sizeof(float))))
            return lf__fail(LF_ERR_NOMEM, "the teacher's hidden states");
        if (r->Ct == Cs) continue;
        size_t n = (size_t)r->Ct * (size_t)Cs;
        if (!(r->proj[j] = (float *)malloc(n * sizeof(float)))) return lf__fail(LF_ERR_NOMEM, "a feature projection");
        for (size_t i = 0; i < n; i++) r->proj[j][i] = (float)((2 * lf_rng_float(&rng) - 1) / sqrt((double)Cs));
        snprintf(r->proj_name[j], sizeof r->proj_name[j], "distill.proj.%d.weight", j);
        s = lf_model_train_extra(&r->m, r->proj_name[j], r->proj[j], (int64_t)n);
    }
    if (s == LF_OK && (!(r->kd_mask = (uint8_t *)calloc((size_t)r->B * (size_t)r->T, 1)) || !(r->hid = (float **)calloc((size_t)tc.L, sizeof *r->hid))))
        s = lf__fail(LF_ERR_NOMEM, "feature distillation's buffers");
    for (int j = 0; j < r->kc.n_features; j++)
        r->feat_layer[j] = r->kc.feature_layers[j][0], r->feat_hidden[j] = r->thid[j], r->feat_name[j] = r->proj_name[j];
    lf_kd_features f = {r->kc.n_features, r->feat_layer, r->feat_hidden, r->proj, r->feat_name, r->kd_mask, r->Ct, r->kc.feature_weight};
    r->feat = f;
    return s;
}

// -- DPO's reference log-probs, computed once
//
// Full fine-tuning (whose weights are the reference only before the first step) and
// dpo.precompute_ref_log_probs compute the reference's sum for every sample of a dataset before
// training, then need no reference forward. The sums are cached next to the dataset's cache as
// <dataset key>.ref-<key>: "LFREF001", the count (8 bytes), the doubles, then the SHA-256 (hex)
// of those, all in host byte order; key: the SHA-256 of what they depend on (the row length, the
// model's config.json, the size and time of its weight files, the adapter's bytes, quantization).
static lf_status ref_key(run *r, char key[65]) {
    lf_sha256 c;
    char line[1400], hex[65];
    lf_sha256_init(&c);
    snprintf(line, sizeof line, "largeforge ref v1 T=%d q=%d/%d", r->T, r->tc.quant_bits, (int)r->tc.double_quant);
    lf_sha256_update(&c, line, strlen(line));
    char *cfg = lf_path_join(r->tc.model, "config.json"), *ad = r->tc.adapter ? lf_path_join(r->tc.adapter, "adapter_model.safetensors") : NULL;
    lf_status s = cfg ? lf__sha256_file(cfg, hex) : LF_ERR_NOMEM;
    if (s == LF_OK) lf_sha256_update(&c, hex, 64);
    if (s == LF_OK && r->tc.adapter) s = ad ? lf__sha256_file(ad, hex) : LF_ERR_NOMEM;
    if (s == LF_OK && r->tc.adapter) lf_sha256_update(&c, hex, 64);
    lf_free(cfg), lf_free(ad);
    DIR *d = s == LF_OK ? opendir(r->tc.model) : NULL;
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        struct stat st;
        snprintf(line, sizeof line, "%s/%s", r->tc.model, e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0 || stat(line, &st) != 0) continue;
        snprintf(line, sizeof line, "%s %lld %lld.%09ld", e->d_name, (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
        lf_sha256_update(&c, line, strlen(line));  // readdir's order: the same directory gives the same key
    }
    if (d) closedir(d);
    if (s == LF_OK) lf_sha256_final(&c, key);
    return s;
}

static lf_status ref_load(const char *path, int64_t n, double *out) {
    char *data = NULL, hex[65];
    size_t len = 0, want = 16 + 8 * (size_t)n + 64;
    lf_status s = lf_file_read(path, want, &data, &len);
    if (s != LF_OK) return s;
    int64_t count;
    memcpy(&count, data + 8, 8);
    lf_sha256 c;
    lf_sha256_init(&c);
    lf_sha256_update(&c, data + 16, len >= 80 ? len - 80 : 0);
    lf_sha256_final(&c, hex);
    if (len != want || memcmp(data, "LFREF001", 8) != 0 || count != n || memcmp(data + len - 64, hex, 64) != 0)
        s = lf__fail(LF_ERR_FORMAT, "%s: not %lld reference log-probs with their checksum (damaged)", path, (long long)n);
    else memcpy(out, data + 16, 8 * (size_t)n);
    lf_free(data);
    return s;
}

static lf_status ref_save(const char *path, int64_t n, const double *v) {
    size_t len = 16 + 8 * (size_t)n + 64;
    char *data = (char *)malloc(len), hex[65];
    if (!data) return lf__fail(LF_ERR_NOMEM, "reference log-probs");
    memcpy(data, "LFREF001", 8), memcpy(data + 8, &n, 8), memcpy(data + 16, v, 8 * (size_t)n);
    lf_sha256 c;
    lf_sha256_init(&c);
    lf_sha256_update(&c, data + 16, 8 * (size_t)n);
    lf_sha256_final(&c, hex);
    memcpy(data + len - 64, hex, 64);
    lf_status s = lf_file_write_atomic(path, data, len);
    free(data);
    return s;
}

// out[i]: the reference's sum for sample i of ds, from the cache or computed (both splits).
static lf_status ref_precompute(run *r, const lf_dataset *ds, double **out) {
    char key[65], path[1200];
    lf_status s = ref_key(r, key);
    if (s != LF_OK) return s;
    snprintf(path, sizeof path, "%.*s.ref-%.16s", (int)(strlen(ds->cache_path) - 5), ds->cache_path, key);  // less ".lfds"
    if (!(*out = (double *)calloc((size_t)ds->n + 1, sizeof(double)))) return lf__fail(LF_ERR_NOMEM, "reference log-probs");
    if (lf_path_exists(path) && (s = ref_load(path, ds->n, *out)) == LF_OK) {
        run_log("INFO", "largeforge.train", "reference log-probs from the cache", NULL);
        return LF_OK;
    }
    if (s != LF_OK) lf__log(LF_LOG_WARN, "train", "recomputing the reference log-probs: %s", lf_last_error());
    if (!lf_drv_quiet) fprintf(stderr, "%s: computing the reference log-probs of %lld pairs once\n", lf_drv_name, (long long)ds->n / 2);
    for (int split = 0; s == LF_OK && split < 2; split++) {
        if (!(split ? ds->n_val : ds->n_train)) continue;
        lf_batch_desc bd = lf_batch_desc_default();
        bd.B = r->B, bd.T = r->T, bd.shuffle = false, bd.split = (lf_data_split)split;
        lf_batcher b;
        if ((s = lf_batcher_init(&b, ds, &bd)) != LF_OK) break;
        do {
            int rows;
            double ref[1024];
            lf_train_batch tb = {.tokens = r->tok_buf, .labels = r->lab_buf, .pos = r->pos_buf};
            if ((s = lf_batcher_next(&b, r->tok_buf, r->lab_buf, r->pos_buf, &rows)) != LF_OK || (s = ref_live(r, &tb, ref)) != LF_OK) break;
            for (int i = 0; i < r->B; i++)
                if (b.sample[i] >= 0) (*out)[b.sample[i]] = ref[i];
        } while (b.index != 0);
        lf_batcher_deinit(&b);
    }
    if (s == LF_OK) s = ref_save(path, ds->n, *out);
    return s;
}

static lf_status open_model(run *r) {
    lf_train_config *c = &r->tc;
    char init_dir[1100];
    const char *path = c->model;
    char *single = lf_path_join(c->model, "model.safetensors"), *index = lf_path_join(c->model, "model.safetensors.index.json");
    bool weights = single && index && (lf_path_exists(single) || lf_path_exists(index));
    lf_free(single), lf_free(index);
    lf_status s = LF_OK;
    if (!weights && (r->pretrain || r->mode == DISTILL)) {  // from scratch: initial weights in the run directory
        snprintf(init_dir, sizeof init_dir, "%s/init", r->out);
        if (!r->resume || !lf_path_exists(init_dir)) {
            if ((s = lf_model_init(c->model, init_dir, c->seed)) != LF_OK) return s;
            run_log("INFO", "largeforge.train", "no weights in the model directory: initialized from scratch", NULL);
        }
        path = init_dir;
    }
    if ((s = lf_tok_open(&r->tok, c->model)) != LF_OK) return s;
    lf_model_desc md = {0};
    md.path = path, md.n_threads = c->threads, md.max_seq_len = r->T, md.max_tokens = 64;
    if ((s = lf_model_open(&r->m, &md)) != LF_OK) return s;
    if (c->quant_bits && !r->m.qw_ && (s = lf_model_quantize(&r->m, &(lf_qtensor_desc){.type = c->quant_bits == 4 ? LF_QTYPE_NF4 : LF_QTYPE_INT8, .double_quant = c->double_quant})) != LF_OK)
        return s;
    if (c->adapter) s = lf_lora_load(&r->m, c->adapter);
    else if (c->lora) s = lf_lora_attach(&r->m, &c->lora_desc);
    if (s != LF_OK) return s;
    if (r->mode == DPO && c->adapter && !r->pc.loss.reference_free) {  // the reference: the adapter as it starts
        size_t n = 0;
        for (int l = 0; l < r->m.cfg.L; l++)
            for (int p = 0; p < LF_PROJ_COUNT; p++)
                if (r->m.layers[l].lora[p])
                    n += (size_t)r->m.layers[l].lora[p]->r * (size_t)(r->m.layers[l].w[p].shape[0] + r->m.layers[l].w[p].shape[1]);
        if (!(r->ref_w = (float *)calloc(n ? n : 1, sizeof(float)))) return lf__fail(LF_ERR_NOMEM, "reference adapter");
        swap_adapters(r, true);
    }
    if (r->mode == DISTILL && r->kc.n_features && (s = kd_projections(r)) != LF_OK) return s;
    return lf_model_train_begin(&r->m, r->B, r->T, c->gradient_checkpointing ? LF_TRAIN_CHECKPOINTING : 0);
}

// final/: the model (config, weights, generation config, tokenizer), or the adapter with the
// tokenizer files beside it.
static lf_status save_final(run *r) {
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/final", r->out);
    if (!r->tc.lora) return lf_model_save(&r->m, dir, LF_DTYPE_INVALID);
    lf_status s = lf_lora_save(&r->m, dir);
    static const char *tok_files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
    for (size_t i = 0; s == LF_OK && i < sizeof tok_files / sizeof *tok_files; i++) s = lf__copy_file(r->tc.model, dir, tok_files[i]);
    return s;
}

static lf_status save_checkpoint(run *r, const lf_train_state *st) {
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/checkpoints/step-%lld", r->out, (long long)st->step);
    lf_status s = lf_ckpt_save(dir, &r->m, &r->o, st);
    if (s == LF_OK) s = lf_ckpt_prune(r->out, r->tc.save_total_limit);
    char ctx[1300];
    snprintf(ctx, sizeof ctx, "{\"step\": %lld, \"path\": \"%s\"}", (long long)st->step, dir);
    run_log(s == LF_OK ? "INFO" : "ERROR", "largeforge.train", s == LF_OK ? "checkpoint saved" : lf_last_error(), ctx);
    return s;
}

static lf_status train(run *r) {
    lf_train_config *c = &r->tc;
    int64_t batches, rows;
    lf_status s = lf_batcher_count(&r->tb, 0, &batches, &rows);
    if (s != LF_OK) return s;
    int64_t per_epoch = LF__MAX(1, (batches + c->grad_accum - 1) / c->grad_accum);
    int64_t total = c->max_steps > 0 ? c->max_steps : per_epoch * c->num_epochs;
    c->optim.total_steps = (int)total;
    if ((s = lf_optim_init(&r->o, &r->m, &c->optim)) != LF_OK) return s;
    lf_train_state st = {0};
    st.best_eval = HUGE_VAL, st.seed = c->seed;
    lf_model_train_rng(&r->m, st.seed, 0);
    if (r->resume) {
        char ck[1200];
        if ((s = lf_ckpt_latest(r->out, ck, sizeof ck)) != LF_OK || (s = lf_ckpt_load(ck, &r->m, &r->o, &st)) != LF_OK ||
            (s = lf_batcher_seek(&r->tb, st.epoch, st.index)) != LF_OK || (s = metrics_truncate(r->metrics_path, st.step)) != LF_OK)
            return s;
        char ctx[1300];
        snprintf(ctx, sizeof ctx, "{\"step\": %lld, \"path\": \"%s\"}", (long long)st.step, ck);
        run_log("INFO", "largeforge.train", "resumed", ctx);
    }
    // a resumed run appends (after the checkpoint's step); a fresh one starts the file anew
    if (!(r->metrics = fopen(r->metrics_path, r->resume ? "a" : "w"))) return lf__fail(LF_ERR_IO, "%s: %s", r->metrics_path, strerror(errno));
    char ctx[512];
    snprintf(ctx, sizeof ctx, "{\"total_steps\": %lld, \"micro_batches_per_epoch\": %lld, \"trainable\": %lld, \"batch\": [%d, %d], "
             "\"grad_accum\": %d}", (long long)total, (long long)batches, (long long)lf_model_n_trainable(&r->m), r->B, r->T, c->grad_accum);
    run_log("INFO", "largeforge.train", "training", ctx);
    if (!lf_drv_quiet)
        fprintf(stderr, "%s: %lld steps (%lld micro-batches of [%d, %d] per epoch, accumulation %d), %.2fM trainable parameters\n",
                lf_drv_name, (long long)total, (long long)batches, r->B, r->T, c->grad_accum, (double)lf_model_n_trainable(&r->m) / 1e6);
    size_t bt = (size_t)r->B * (size_t)r->T;
    double win_loss = st.log_loss;  // a resumed run continues the logging window it was in
    int64_t win_steps = st.log_steps, win_tokens = 0, last_eval = -1;
    uint64_t t_win = lf_time_ns(), t_start = t_win;
    int64_t start_step = st.step, last_epoch = st.epoch;
    float loss = 0, norm = 0, lr = 0;
    bool stop_early = false;
    int64_t last_saved = st.step;
    while (s == LF_OK && st.step < total && !stop_signal && !stop_early) {
        // an accumulation group ends early at the end of an epoch (as HF's Trainer does)
        int group = 0;
        size_t micro = 0;
        while (s == LF_OK && micro < (size_t)c->grad_accum) {
            int rws;
            size_t k = micro++;
            s = lf_batcher_next(&r->tb, r->tok_buf + k * bt, r->lab_buf + k * bt, r->pos_buf + k * bt, &rws);
            memcpy(r->smp_buf + k * (size_t)r->B, r->tb.sample, (size_t)r->B * sizeof(int64_t));
            group += scored(r->lab_buf + k * bt, r->pos_buf + k * bt, r->B, r->T);
            win_tokens += (int64_t)rws * r->T;
            if (r->tb.index == 0) break;  // that was the epoch's last batch
        }
        lf_model_train_zero_grads(&r->m);
        double step_sum = 0;
        for (size_t k = 0; s == LF_OK && k < micro; k++) {
            lf_train_batch b = {.tokens = r->tok_buf + k * bt, .labels = r->lab_buf + k * bt, .pos = r->pos_buf + k * bt, .n_scored = group};
            float l;
            lf_pref_stats ps;
            if (is_pref(r->mode)) {  // each micro-batch's mean over its pairs, weighted as HF's Trainer does
                if ((s = pref_micro(r, &b, r->smp_buf + k * (size_t)r->B, r->pre, 1.0f / (float)micro, &ps)) != LF_OK) break;
                step_sum += ps.loss, pref_add(st.log_metrics, &ps, 1), st.log_micro++;
            } else if (r->mode == DISTILL) {  // a mean over the step's scored positions, as the causal LM's
                lf_kd_stats ks;
                if ((s = kd_micro(r, &b, r->smp_buf + k * (size_t)r->B, true, &ks)) != LF_OK) break;
                step_sum += ks.loss * group;
                st.log_metrics[0] += ks.ce * (double)ks.n, st.log_metrics[1] += ks.kl * (double)ks.n, st.log_metrics[2] += (double)ks.n;
                st.log_metrics[3] += ks.feat;  // already the step's share
            } else if ((s = lf_model_train_grads(&r->m, &b, &l)) == LF_OK) step_sum += (double)l * scored(b.labels, b.pos, r->B, r->T);
        }
        lr = lf_optim_lr(&r->o, r->o.step);
        if (s == LF_OK) s = lf_optim_step(&r->o, &r->m, &norm);
        if (s != LF_OK) break;
        loss = is_pref(r->mode) ? (float)(step_sum / (double)micro) : group ? (float)(step_sum / group) : 0;
        st.step++, st.epoch = r->tb.epoch, st.index = r->tb.index, st.calls = lf_model_train_calls(&r->m);
        st.tokens += (int64_t)micro * (int64_t)bt;
        win_loss += loss, win_steps++;
        st.log_loss = win_loss, st.log_steps = (int)win_steps;
        double epoch = (double)r->tb.epoch + (double)r->tb.index / (double)LF__MAX(1, r->tb.n);
        if (st.step % c->logging_steps == 0 || st.step == total) {
            double dt = (double)(lf_time_ns() - t_win) / 1e9;
            fprintf(r->metrics, "{\"step\": %lld, \"epoch\": %.4f, \"loss\": %.17g, \"learning_rate\": %.6g, \"grad_norm\": %.6f, "
                    "\"tokens_per_s\": %.1f", (long long)st.step, epoch, win_loss / (double)win_steps, (double)lr, (double)norm,
                    dt > 0 ? (double)win_tokens / dt : 0.0);
            if (is_pref(r->mode)) pref_print(r->metrics, r->mode, "", st.log_metrics, st.log_micro);
            double kn = st.log_metrics[2];
            if (r->mode == DISTILL) fprintf(r->metrics, ", \"ce_loss\": %.9g, \"kl_loss\": %.9g", kn ? st.log_metrics[0] / kn : 0.0, kn ? st.log_metrics[1] / kn : 0.0);
            if (r->mode == DISTILL && r->kc.n_features) fprintf(r->metrics, ", \"feature_loss\": %.9g", st.log_metrics[3] / (double)win_steps);
            fputs("}\n", r->metrics);
            fflush(r->metrics);
            if (!tty && !lf_drv_quiet)
                fprintf(stderr, "step %lld/%lld  loss %.4f  lr %.3g  grad_norm %.3f  %.0f tokens/s\n", (long long)st.step, (long long)total,
                        win_loss / (double)win_steps, (double)lr, (double)norm, dt > 0 ? (double)win_tokens / dt : 0.0);
            win_loss = 0, win_steps = 0, win_tokens = 0, t_win = lf_time_ns();
            st.log_loss = 0, st.log_steps = 0, st.log_micro = 0;
            memset(st.log_metrics, 0, sizeof st.log_metrics);
        }
        bool epoch_done = st.epoch != last_epoch;
        last_epoch = st.epoch;
        if (r->has_val && ((c->eval_strategy == LF_EVAL_STEPS && st.step % c->eval_steps == 0) ||
                           (c->eval_strategy == LF_EVAL_EPOCH && epoch_done))) {
            double ev;
            if ((s = log_eval(r, st.step, epoch, &ev)) != LF_OK) break;
            last_eval = st.step;
            if (ev < st.best_eval - c->early_stopping_threshold) st.best_eval = ev, st.bad_evals = 0;
            else st.bad_evals++;
            stop_early = c->early_stopping_patience > 0 && st.bad_evals >= c->early_stopping_patience;
            if (stop_early) run_log("INFO", "largeforge.train", "early stopping: eval loss stopped improving", NULL);
        }
        if (st.step % c->save_steps == 0 || stop_signal) s = save_checkpoint(r, &st), last_saved = st.step;
        double elapsed = (double)(lf_time_ns() - t_start) / 1e9;
        progress(st.step, total, loss, lr, elapsed / (double)(st.step - start_step) * (double)(total - st.step));
    }
    if (tty && !lf_drv_quiet) fputc('\n', stderr);
    if (s == LF_OK && stop_signal) {  // a signal before the first step, or after the last one's save check
        if (last_saved != st.step && (s = save_checkpoint(r, &st)) != LF_OK) return s;
        run_log("INFO", "largeforge.train", "interrupted: checkpoint saved, resume with --resume", NULL);
        if (!lf_drv_quiet) fprintf(stderr, "%s: interrupted at step %lld; checkpoint saved; continue with --resume\n", lf_drv_name, (long long)st.step);
        return LF_OK;
    }
    if (s == LF_OK && r->has_val && last_eval != st.step) {
        double ev;
        s = log_eval(r, st.step, (double)r->tb.epoch + (double)r->tb.index / (double)LF__MAX(1, r->tb.n), &ev);
    }
    if (s == LF_OK && last_saved != st.step) s = save_checkpoint(r, &st);
    if (s == LF_OK) s = save_final(r);
    fclose(r->metrics), r->metrics = NULL;
    char png[1100];
    snprintf(png, sizeof png, "%s/loss.png", r->out);
    if (s == LF_OK) s = plot_losses(r->metrics_path, png);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);  // the peak resident memory, for comparing objectives and settings
    snprintf(ctx, sizeof ctx, "{\"steps\": %lld, \"loss\": %.6f, \"tokens\": %lld, \"max_rss_kb\": %ld}", (long long)st.step, (double)loss,
             (long long)st.tokens, ru.ru_maxrss);
    if (s == LF_OK) run_log("INFO", "largeforge.train", "done", ctx);
    if (s == LF_OK && !lf_drv_quiet) fprintf(stderr, "%s: done: %s/final, %s\n", lf_drv_name, r->out, png);
    return s;
}

int main(int argc, char **argv) {
    lf_drv_name = "lf-train";
    static const char *const sections[] = {"model", "training", "lora", "quantization", "data", "dpo", "orpo", "distill", NULL};
    const char *mode = NULL, *config = NULL, *v, *overrides[64];
    char ovbuf[64][512];
    int n_ov = 0;
    static run r;
    for (int i = 1, ovr; i < argc; i++) {
        if (lf_drv_common_flag(argv[i], help)) continue;
        if (lf_drv_opt(argc, argv, &i, "--config", &v)) config = v;
        else if (strcmp(argv[i], "--resume") == 0) r.resume = true;
        else if ((ovr = lf_drv_override(argc, argv, &i, sections, ovbuf, &n_ov, 64)) != 0) {
            if (ovr < 0) return LF_EXIT_USAGE;
            overrides[n_ov - 1] = ovbuf[n_ov - 1];
        } else if (lf_drv_bad) return lf_drv_usage_error("option %s needs a value", lf_drv_bad);
        else if (!mode && argv[i][0] != '-') mode = argv[i];
        else return lf_drv_usage_error("unknown argument '%s'", argv[i]);
    }
    static const char *modes[] = {"pretrain", "sft", "dpo", "orpo", "distill"};
    r.mode = (enum mode)-1;
    for (int i = 0; mode && i < 5; i++)
        if (strcmp(mode, modes[i]) == 0) r.mode = (enum mode)i;
    if ((int)r.mode < 0) return lf_drv_usage_error("expected pretrain, sft, dpo, orpo or distill%s", "");
    if (!config) return lf_drv_usage_error("--config is required%s", "");
    r.pretrain = r.mode == PRETRAIN;
    tty = isatty(2);
    lf_doc doc;
    lf_status s = lf_config_load(&doc, config, overrides, n_ov);
    const char *top[] = {"model", "training", "lora", "quantization", "data", r.mode == ORPO ? "orpo" : r.mode == DISTILL ? "distill" : "dpo"};
    if (s == LF_OK && r.mode == ORPO && lf_node_get(doc.root, "dpo")) s = lf__fail(LF_ERR_CONFIG, "%s: orpo reads the 'orpo' section, not 'dpo'", doc.name);
    if (s == LF_OK && r.mode != ORPO && lf_node_get(doc.root, "orpo")) s = lf__fail(LF_ERR_CONFIG, "%s: 'orpo' is for train orpo", doc.name);
    if (s == LF_OK) s = lf_cfg_keys(&doc, doc.root, NULL, top, r.mode >= DPO ? 6 : 5);
    if (s == LF_OK) s = lf_train_config_read(&r.tc, &doc);
    if (s == LF_OK) s = lf_data_config_read(&r.dc, &doc);
    if (s == LF_OK && r.mode == DPO) s = lf_dpo_config_read(&r.pc, &doc);
    if (s == LF_OK && r.mode == ORPO) s = lf_orpo_config_read(&r.pc, &doc);
    if (s == LF_OK && r.mode == DISTILL) s = lf_kd_config_read(&r.kc, &doc);
    if (s == LF_OK && r.mode == DISTILL && r.dc.packing)
        s = lf__fail(LF_ERR_CONFIG, "%s: data.packing: distillation runs the teacher on each sample alone: set it false", doc.name);
    if (s == LF_OK && r.mode == DISTILL && r.kc.logits_file && r.dc.validation_file)
        s = lf__fail(LF_ERR_CONFIG, "%s: data.validation_file: a logits_file covers train_file only: use validation_split", doc.name);
    if (s == LF_OK && r.tc.adapter && !is_pref(r.mode)) s = lf__fail(LF_ERR_CONFIG, "%s: model.adapter: continuing an adapter is for dpo and orpo", doc.name);
    if (s != LF_OK) return lf_drv_fail(s);
    r.B = is_pref(r.mode) ? 2 * r.tc.batch_size : r.tc.batch_size, r.T = is_pref(r.mode) ? r.pc.max_length : r.dc.max_length;
    if (r.B > 1024) return lf_drv_fail(lf__fail(LF_ERR_CONFIG, "%s: training.per_device_batch_size: at most 512 pairs", doc.name));
    snprintf(r.out, sizeof r.out, "%s", r.tc.output_dir);
    snprintf(r.metrics_path, sizeof r.metrics_path, "%s/metrics.jsonl", r.out);
    char path[1200], latest[1200];
    // a run directory with checkpoints is continued with --resume, never overwritten
    if (!r.resume && lf_ckpt_latest(r.out, latest, sizeof latest) == LF_OK)
        return lf_drv_fail(lf__fail(LF_ERR_ARG, "%s already has checkpoints (%s): pass --resume to continue, or choose another "
                                                "training.output_dir", r.out, latest));
    if (r.resume && (s = lf_ckpt_latest(r.out, latest, sizeof latest)) != LF_OK) return lf_drv_fail(s);
    if ((s = lf_dir_make(r.out)) != LF_OK) return lf_drv_fail(s);
    snprintf(path, sizeof path, "%s/run.log", r.out);
    if (!(run_log_f = fopen(path, "a"))) return lf_drv_fail(lf__fail(LF_ERR_IO, "%s: %s", path, strerror(errno)));
    lf_log_set(library_log, lf_drv_verbose ? &r : NULL, lf_drv_verbose ? LF_LOG_INFO : LF_LOG_WARN);
    char *yaml = lf_train_config_yaml(&r.tc);
    lf__buf b = LF__ZERO;
    lf__buf_puts(&b, yaml ? yaml : "");
    lf__buf_puts(&b, "data:\n  train_file: ");
    lf__buf_json_str(&b, r.dc.train_file, strlen(r.dc.train_file));
    lf__buf_printf(&b, "\n  format: %s\n  validation_split: %.9g\n  max_length: %d\n  packing: %s\n", lf_data_format_name(r.dc.format),
                   r.dc.validation_split, r.dc.max_length, r.dc.packing ? "true" : "false");
    if (r.dc.validation_file) lf__buf_puts(&b, "  validation_file: "), lf__buf_json_str(&b, r.dc.validation_file, strlen(r.dc.validation_file)), lf__buf_putc(&b, '\n');
    static const char *loss_types[] = {"sigmoid", "hinge", "ipo"};
    if (r.mode == DPO)
        lf__buf_printf(&b, "dpo:\n  beta: %.9g\n  loss_type: %s\n  label_smoothing: %.9g\n  reference_free: %s\n  max_prompt_length: %d\n"
                       "  max_length: %d\n  precompute_ref_log_probs: %s\n", (double)r.pc.loss.beta, loss_types[r.pc.loss.loss_type],
                       (double)r.pc.loss.label_smoothing, r.pc.loss.reference_free ? "true" : "false", r.pc.max_prompt_length,
                       r.pc.max_length, r.pc.precompute_ref_log_probs ? "true" : "false");
    if (r.mode == ORPO)
        lf__buf_printf(&b, "orpo:\n  beta: %.9g\n  max_prompt_length: %d\n  max_length: %d\n", (double)r.pc.loss.beta, r.pc.max_prompt_length,
                       r.pc.max_length);
    if (r.mode == DISTILL) {
        static const char *quants[] = {"none", "", "", "", "nf4", "", "", "", "int8"};
        lf__buf_printf(&b, "distill:\n  temperature: %.9g\n  alpha: %.9g\n  top_k: %d\n  teacher_quantization: %s\n", (double)r.kc.kd.temperature,
                       (double)r.kc.kd.alpha, r.kc.top_k, quants[r.kc.teacher_quant_bits]);
        const char *keys[2] = {"teacher", "logits_file"}, *vals[2] = {r.kc.teacher, r.kc.logits_file};
        for (int i = 0; i < 2; i++)
            if (vals[i]) lf__buf_printf(&b, "  %s: ", keys[i]), lf__buf_json_str(&b, vals[i], strlen(vals[i])), lf__buf_putc(&b, '\n');
    }
    lf_free(yaml);
    snprintf(path, sizeof path, "%s/config.yaml", r.out);
    s = b.failed ? LF_ERR_NOMEM : lf_file_write_atomic(path, b.data, b.len);
    lf_free(b.data);
    run_log("INFO", "largeforge.train", r.resume ? "resuming" : "starting", NULL);
    size_t bt = (size_t)r.B * (size_t)r.T * (size_t)r.tc.grad_accum;
    r.tok_buf = (int32_t *)malloc(bt * 4), r.lab_buf = (int32_t *)malloc(bt * 4), r.pos_buf = (int32_t *)malloc(bt * 4);
    r.smp_buf = (int64_t *)malloc((size_t)r.B * (size_t)r.tc.grad_accum * 8);
    if (s == LF_OK && (!r.tok_buf || !r.lab_buf || !r.pos_buf || !r.smp_buf)) s = lf__fail(LF_ERR_NOMEM, "batch buffers");
    if (s == LF_OK) s = open_model(&r);
    if (s == LF_OK) s = open_data(&r);
    if (s == LF_OK && r.mode == DISTILL) s = open_teacher(&r);
    if (s == LF_OK && r.mode == DPO && !r.pc.loss.reference_free && (r.pc.precompute_ref_log_probs || !r.tc.lora)) {
        s = ref_precompute(&r, &r.ds, &r.pre);  // before a resumed checkpoint moves the weights
        if (s == LF_OK && r.dc.validation_file) s = ref_precompute(&r, &r.vds, &r.pre_v);
        free(r.ref_w), r.ref_w = NULL;  // the starting adapter is needed no more
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL), sigaction(SIGTERM, &sa, NULL);
    if (s == LF_OK) s = train(&r);
    if (s != LF_OK) run_log("ERROR", "largeforge.train", lf_last_error(), NULL);
    lf_batcher_deinit(&r.tb), lf_batcher_deinit(&r.vb), lf_dataset_close(&r.ds), lf_dataset_close(&r.vds);
    lf_optim_deinit(&r.o), lf_model_close(&r.m), lf_tok_close(&r.tok), lf_doc_deinit(&doc);
    free(r.tok_buf), free(r.lab_buf), free(r.pos_buf), free(r.smp_buf), free(r.pre), free(r.pre_v), free(r.ref_w);
    lf_model_close(&r.teacher), lf_kv_deinit(&r.tkv), lf_kd_file_close(&r.kf), free(r.kd_ids), free(r.kd_lp), free(r.kd_mask);
    for (int j = 0; j < 16; j++) free(r.proj[j]), free(r.thid[j]);
    free(r.hid);
    if (run_log_f) fclose(run_log_f);
    return s == LF_OK ? 0 : lf_drv_fail(s);
}

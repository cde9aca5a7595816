#!/bin/sh
# `make align-demo`: the alignment pipeline end to end on the shipped tiny model
# (models/kjv-llama-4m) and a verifiable task, "Which book of the Bible is this verse from?"
# (data/sft: eight books; answers checked by exact match; 80 held-out verses in test.jsonl).
#
#   seed     LoRA SFT on 400 labeled examples: the teacher that writes the data
#   sft      `generate data`: the teacher answers 1,600 other prompts (greedy; quality filter,
#            near-duplicate removal), then LoRA SFT of the base model on its answers
#   dpo      `generate preferences`: the SFT model samples 8 answers per prompt (temperature 0.8
#            to 1.6); the verifier (exact match with the reference) picks chosen and rejected
#            where it has both; DPO continues the SFT adapter (the reference: that adapter as it
#            starts), one epoch at learning rate 1e-4
#   distill  a student of half the depth (every other layer of the DPO model, DistilBERT's
#            initialization) distilled from the DPO model on its own greedy answers
#
# Everything goes to build/align; the summary is build/align/results.md and results.svg.
set -eu
LF=${LF:-build/largeforge}
KJV=models/kjv-llama-4m
OUT=build/align
TEST=data/sft/test.jsonl
Q=--quiet
rm -rf "$OUT" && mkdir -p "$OUT"
start=$(date +%s)

# the task's files: 400 seed demonstrations and 1,600 prompts (their labels only as the verifier's
# references), from data/sft/train.jsonl (already in a fixed pseudo-random order)
head -n 400 data/sft/train.jsonl > "$OUT/seed.jsonl"
tail -n +401 data/sft/train.jsonl > "$OUT/prompts.jsonl"

em() {  # exact match of a model (and adapter) on the held-out prompts: "correct"
    "$LF" evaluate exact-match --model "$1" ${2:+--adapter "$2"} --data "$TEST" --template plain |
        sed -n 's/.*"correct":\([0-9]*\).*/\1/p'
}
sft() {  # sft DATA RUN [extra overrides]: LoRA SFT of the base model, configs/demo_sft.yaml
    data=$1 run=$2
    shift 2
    "$LF" train sft --config configs/demo_sft.yaml $Q --data.train_file "$data" --training.output_dir "$run" "$@"
}
gen() {  # gen MODEL PROMPTS OUT [overrides]: greedy answers, the plain template as a chat format
    model=$1 prompts=$2 out=$3
    shift 3
    "$LF" generate data --config configs/synth.yaml $Q --model "$model" --prompts "$prompts" --output "$out" \
        --model.base false --model.template plain --generation.temperature 0 --synth.quality.allow_unfinished false "$@"
}

echo "== base: $(em $KJV)/80"
base=$(em $KJV)

echo "== seed teacher: LoRA SFT on 400 labeled examples"
sft "$OUT/seed.jsonl" "$OUT/seed" --training.num_epochs 6
"$LF" merge lora $Q --base $KJV --adapter "$OUT/seed/final" --out "$OUT/teacher"
teacher=$(em "$OUT/teacher")
echo "   teacher: $teacher/80"

echo "== generate data: the teacher answers 1,600 prompts; SFT of the base model on them"
gen "$OUT/teacher" "$OUT/prompts.jsonl" "$OUT/sft_data.jsonl"
sft "$OUT/sft_data.jsonl" "$OUT/sft"
sftem=$(em $KJV "$OUT/sft/final")
echo "   sft: $sftem/80"

echo "== generate preferences: 8 answers per prompt, the exact-match verifier; DPO from the SFT adapter"
"$LF" merge lora $Q --base $KJV --adapter "$OUT/sft/final" --out "$OUT/sft_model"
"$LF" generate preferences --config configs/synth.yaml $Q --model "$OUT/sft_model" --prompts "$OUT/prompts.jsonl" \
    --output "$OUT/pairs.jsonl" --format dpo_messages --model.base false --model.template plain \
    --synth.preferences.verifier exact --synth.preferences.num_responses 8 --synth.preferences.temperature_range '[0.8, 1.6]' \
    --synth.quality.allow_unfinished false --synth.dedup.enabled false
pairs=$(wc -l < "$OUT/pairs.jsonl")
"$LF" train dpo --config configs/dpo.yaml $Q --model.adapter "$OUT/sft/final" --data.train_file "$OUT/pairs.jsonl" \
    --training.output_dir "$OUT/dpo" --data.validation_split 0.1 --training.num_epochs 1 --training.learning_rate 1.0e-4 \
    --training.eval_steps 1000 --dpo.max_length 128 --dpo.max_prompt_length 112
dpo=$(em $KJV "$OUT/dpo/final")
acc=$(grep '"eval_rewards/accuracies"' "$OUT/dpo/metrics.jsonl" | tail -n 1 | sed 's/.*"eval_rewards\/accuracies": \([0-9.]*\).*/\1/')
echo "   dpo: $dpo/80 (held-out pairs: rewards/accuracies $acc)"

echo "== distill: a student of half the depth, from the DPO model"
"$LF" merge lora $Q --base $KJV --adapter "$OUT/dpo/final" --out "$OUT/dpo_model"
${CC:-cc} -O2 -std=gnu11 -I. data/align/student.c -o "$OUT/student" -lcjson -lm -lpthread
"$OUT/student" "$OUT/dpo_model" "$OUT/student_init" > /dev/null
cp $KJV/tokenizer.json $KJV/tokenizer_config.json $KJV/generation_config.json "$OUT/student_init/"
init=$(em "$OUT/student_init")
gen "$OUT/dpo_model" "$OUT/prompts.jsonl" "$OUT/kd_data.jsonl"
"$LF" train distill --config configs/distill.yaml $Q --model.name "$OUT/student_init" --lora.enabled false \
    --distill.teacher "$OUT/dpo_model" --data.train_file "$OUT/kd_data.jsonl" --training.output_dir "$OUT/distill" \
    --training.num_epochs 3 --training.learning_rate 1.0e-3 --data.validation_split 0 --training.eval_strategy no
student=$(em "$OUT/distill/final")
echo "   student: $student/80 (at initialization: $init/80)"

# the summary
secs=$(( $(date +%s) - start ))
params() { "$LF" evaluate benchmark --model "$1" -p 1 -n 1 -r 1 -o json 2>/dev/null | sed -n 's/.*"model_n_params": *\([0-9]*\).*/\1/p' | head -n 1; }
pt=$(params $KJV) ps=$(params "$OUT/distill/final")
share=$(awk -v s="$student" -v t="$dpo" 'BEGIN { printf "%.0f", t ? 100 * s / t : 0 }')
{
    echo "| stage | model | exact match (80 held-out) |"
    echo "|---|---|---|"
    echo "| base | models/kjv-llama-4m | $base/80 |"
    echo "| seed teacher | LoRA SFT on 400 labeled examples | $teacher/80 |"
    echo "| SFT | LoRA SFT on the teacher's answers to 1,600 prompts (\`generate data\`) | $sftem/80 |"
    echo "| DPO | the SFT adapter + DPO on $pairs verified pairs (\`generate preferences\`); held-out pairs rewards/accuracies $acc | $dpo/80 |"
    echo "| student | half the depth ($ps of $pt parameters), distilled from the DPO model | $student/80 ($share% of the DPO model's) |"
    echo
    echo "Whole pipeline: ${secs} s on $(nproc) cores."
} > "$OUT/results.md"
awk -v a="$base" -v b="$teacher" -v c="$sftem" -v d="$dpo" -v e="$student" 'BEGIN {
    n = split("base|seed teacher|SFT|DPO|student", lab, "|"); v[1] = a; v[2] = b; v[3] = c; v[4] = d; v[5] = e
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"560\" height=\"300\" font-family=\"sans-serif\" font-size=\"13\">\n"
    printf "<text x=\"280\" y=\"20\" text-anchor=\"middle\">exact match on 80 held-out verses (make align-demo)</text>\n"
    printf "<line x1=\"50\" y1=\"250\" x2=\"540\" y2=\"250\" stroke=\"#444\"/>\n"
    for (t = 0; t <= 80; t += 20) printf "<text x=\"44\" y=\"%d\" text-anchor=\"end\">%d</text><line x1=\"50\" y1=\"%d\" x2=\"540\" y2=\"%d\" stroke=\"#ddd\"/>\n", 254 - t * 2.5, t, 250 - t * 2.5, 250 - t * 2.5
    for (i = 1; i <= n; i++) {
        x = 70 + (i - 1) * 95; h = v[i] * 2.5
        printf "<rect x=\"%d\" y=\"%.1f\" width=\"60\" height=\"%.1f\" fill=\"#3b6fc4\"/>\n", x, 250 - h, h
        printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", x + 30, 245 - h, v[i]
        printf "<text x=\"%d\" y=\"270\" text-anchor=\"middle\">%s</text>\n", x + 30, lab[i]
    }
    printf "</svg>\n" }' > "$OUT/results.svg"
cat "$OUT/results.md"

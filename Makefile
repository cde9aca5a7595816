# LargeForge — `make` builds the drivers into build/, `make test` runs the whole suite.
CC      ?= cc
CFLAGS  ?= -O3 -march=native -g
WARN    := -Wall -Wextra -Wsign-conversion -Wstrict-prototypes -Wno-unused-function
LDLIBS  := -lcjson -lm -lpthread
BUILD   := build
DRIVERS := largeforge lf-run lf-tokenize lf-evaluate lf-train lf-merge lf-generate lf-quantize lf-serve
FUZZ_SECONDS ?= 30
PYTHON  ?= python3

.PHONY: align-demo all test asan tsan bench deps deps-check parity fuzz clean demo tiny-model

all: $(DRIVERS:%=$(BUILD)/%)

$(BUILD):
	@mkdir -p $(BUILD)

# make test and make runs deps only when the libraries are missing
deps-check:
	@test -f /usr/include/cjson/cJSON.h || $(MAKE) deps

deps:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libcjson-dev libstb-dev clang libclang-rt-14-dev >/dev/null
	$(PYTHON) -m pip install -q -r tests/ref/requirements-light.txt -r tests/clients/requirements.txt

$(BUILD)/largeforge: drivers/largeforge.c largeforge.h | $(BUILD) deps-check
	$(CC) $(CFLAGS) $(WARN) $< -o $@

$(BUILD)/lf-%: drivers/lf-%.c drivers/common.h largeforge.h | $(BUILD) deps-check
	$(CC) $(CFLAGS) $(WARN) $< -o $@ $(LDLIBS)

TEST_SRC := tests/run.c tests/test.h $(wildcard tests/test_*.c) largeforge.h

$(BUILD)/tests: $(TEST_SRC) | $(BUILD) deps-check
	$(CC) $(CFLAGS) $(WARN) tests/run.c -o $@ $(LDLIBS)

test: $(BUILD)/tests all
	./$(BUILD)/tests

# ASan + UBSan, with the thread pool and without it
asan: all | $(BUILD) deps-check
	$(CC) -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -march=native \
	    $(WARN) tests/run.c -o $(BUILD)/tests-asan $(LDLIBS)
	$(CC) -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -march=native \
	    -DLF_NO_THREADS $(WARN) tests/run.c -o $(BUILD)/tests-asan-nothreads $(LDLIBS)
	ASAN_OPTIONS=detect_leaks=1 ./$(BUILD)/tests-asan
	ASAN_OPTIONS=detect_leaks=1 ./$(BUILD)/tests-asan-nothreads

# ThreadSanitizer over the whole suite (setarch -R: TSan needs the classic address layout)
tsan: all | $(BUILD) deps-check
	$(CC) -O1 -g -fsanitize=thread -march=native $(WARN) tests/run.c -o $(BUILD)/tests-tsan $(LDLIBS)
	setarch -R ./$(BUILD)/tests-tsan

# libFuzzer targets, each run for FUZZ_SECONDS
FUZZERS := fuzz_files fuzz_tokenizer fuzz_data fuzz_http fuzz_serve
fuzz: | $(BUILD) deps-check
	@for f in $(FUZZERS); do \
	  clang -O1 -g -fsanitize=fuzzer,address,undefined -march=native tests/fuzz/$$f.c -o $(BUILD)/$$f $(LDLIBS) || exit 1; \
	  mkdir -p $(BUILD)/corpus-$$f; \
	  ./$(BUILD)/$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 $(BUILD)/corpus-$$f tests/fuzz/seeds-$$f \
	    2>$(BUILD)/$$f.log || { tail -40 $(BUILD)/$$f.log; exit 1; }; \
	  tail -1 $(BUILD)/$$f.log; \
	done

bench: all
	bash bench/run.sh

# Regenerates the committed fixtures with the heavy reference packages (torch, transformers).
parity: all
	$(PYTHON) -m pip install -q -U pip
	$(PYTHON) -m pip install -q -r tests/ref/requirements.txt
	$(PYTHON) tests/ref/make_models.py --out tests/fixtures/models
	$(PYTHON) tests/ref/make_tiny_chat.py --out tests/fixtures/models/tiny_chat
	$(PYTHON) tests/ref/make_grads.py --models tests/fixtures/models
	$(PYTHON) tests/ref/make_lora.py --models tests/fixtures/models
	$(CC) $(CFLAGS) tests/ref/lf_make_adapter.c -o $(BUILD)/lf_make_adapter $(LDLIBS) && ./$(BUILD)/lf_make_adapter
	$(PYTHON) tests/ref/check_peft_loads.py --models tests/fixtures/models
	$(PYTHON) tests/ref/make_tok_fixtures.py --tokenizers ../shared/tokenizers --out tests/fixtures/tok
	$(PYTHON) tests/ref/make_chat_fixtures.py --tokenizers ../shared/tokenizers --out tests/fixtures/chat
	$(PYTHON) tests/ref/make_sft_fixtures.py --tokenizers ../shared/tokenizers --out tests/fixtures/data/sft_ref.jsonl
	$(PYTHON) tests/ref/make_nf4.py --out tests/fixtures/quant
	$(PYTHON) -m pip install -q --no-deps --target $(BUILD)/trl-0.26.2 trl==0.26.2
	$(PYTHON) tests/ref/make_pref_fixture.py --legacy-trl $(BUILD)/trl-0.26.2 --out tests/fixtures/pref/losses.json
	$(PYTHON) tests/ref/make_pref_model_fixture.py
	$(PYTHON) tests/ref/make_kd_fixture.py --out tests/fixtures/kd/kd.json
	$(PYTHON) tests/ref/make_logprob_ref.py   # prints the table of tests/test_synth_gen.c's score_logprob_transformers
	$(PYTHON) -m pip install -q -r tests/ref/requirements-gguf.txt
	$(PYTHON) tests/ref/make_ggml_quant.py --out tests/fixtures/quant
	$(PYTHON) tests/ref/make_gptq_fixture.py --out tests/fixtures/quant
	$(CC) $(CFLAGS) tests/ref/lf_quant_export.c -o $(BUILD)/lf_quant_export $(LDLIBS) && ./$(BUILD)/lf_quant_export
	$(PYTHON) tests/ref/make_quant_interop.py --out tests/fixtures/quant/interop.json
	CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 $(PYTHON) -m pip install -q \
	    llama-cpp-python==0.3.36 tokenizers==0.23.3   # compiles llama.cpp: about 20 minutes on 2 cores
	$(PYTHON) tests/ref/make_gguf_ref.py
	$(BUILD)/lf-tokenize train --quiet --input tests/fixtures/tok/bpe_train/kjv.txt --input tests/fixtures/tok/bpe_train/mixed.txt \
	    --vocab-size 1000 --out $(BUILD)/bpe-fixture
	$(PYTHON) tests/ref/make_bpe_fixture.py $(BUILD)/bpe-fixture/tokenizer.json tests/fixtures/tok/bpe_train/lines.txt \
	    --out tests/fixtures/tok/bpe_train --corpus tests/fixtures/tok/bpe_train/kjv.txt tests/fixtures/tok/bpe_train/mixed.txt --vocab-size 1000

# The shipped model (models/kjv-llama-4m): the tokenizer and the weights, both trained here from
# Debian's bible-kjv-text (about 25 minutes on 2 cores). See models/kjv-llama-4m/README.md.
KJV := models/kjv-llama-4m
tiny-model: all
	sh data/kjv/prepare.sh
	rm -rf build/kjv && mkdir -p build/kjv/base
	$(BUILD)/largeforge tokenize train --input data/kjv/train.txt --vocab-size 4096 --special '<|endoftext|>' --out build/kjv/base
	cp configs/kjv_model.json build/kjv/base/config.json
	$(BUILD)/largeforge train pretrain --config configs/pretrain_kjv.yaml
	mkdir -p $(KJV)
	cd build/kjv/run/final && cp model.safetensors config.json tokenizer.json tokenizer_config.json ../../../../$(KJV)/
	cp configs/kjv_generation.json $(KJV)/generation_config.json
	$(BUILD)/largeforge evaluate perplexity --model $(KJV) --input data/kjv/valid.txt --ctx 128

# LoRA SFT of the shipped model on data/sft (a few minutes on 2 cores), answers before and after
demo: all
	@test -f $(KJV)/model.safetensors || { echo "make demo: $(KJV) is missing (make tiny-model rebuilds it)"; exit 1; }
	@rm -rf build/demo
	@echo "== before: the shipped base model on the held-out prompts of data/sft/test.jsonl"
	@$(BUILD)/largeforge evaluate exact-match --model $(KJV) --data data/sft/test.jsonl --template plain --show 8
	@echo "== LoRA SFT on data/sft/train.jsonl (configs/demo_sft.yaml)"
	@$(BUILD)/largeforge train sft --config configs/demo_sft.yaml
	@echo "== after: the same prompts with the adapter (build/demo/run/final)"
	@$(BUILD)/largeforge evaluate exact-match --model $(KJV) --adapter build/demo/run/final --data data/sft/test.jsonl \
	    --template plain --show 8
	@echo "loss curve: build/demo/run/loss.png"

# Alignment end to end on the shipped model (docs/align-demo.md): seed teacher -> generate data ->
# SFT -> generate preferences (verifier) -> DPO -> distillation into a student of half the depth.
align-demo: all
	@test -f $(KJV)/model.safetensors || { echo "make align-demo: $(KJV) is missing (make tiny-model rebuilds it)"; exit 1; }
	@sh data/align/demo.sh

clean:
	rm -rf $(BUILD)

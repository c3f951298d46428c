# Gander: `make test` runs every test (CI calls it through .ci/run); `make bench` measures speed.
# Every target installs what it needs first and skips what is already there.

CARGO ?= cargo
BENCH_DIR := target/bench
BENCH_FILES := $(foreach q,f32 f16 int8 q4,$(BENCH_DIR)/rwkv7-0.1b-random-$(q).safetensors)
PYREF := target/pyref
WASI_RUNNER := CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $(CURDIR)/tests/wasi-runner.mjs"

.PHONY: demo eval-sql train-sql gguf-venv test soak deps web-deps pkg bench bench-all bench-load bench-grammar bench-chat bench-web bench-webgpu wasm-bench-build clean-bench fuzz fuzz-seeds

WASM_BINDGEN_VERSION := 0.2.130
WASM := target/wasm32-unknown-unknown/release/gander.wasm
NPM_BIN := $(CURDIR)/node_modules/.bin

# What the tests need: Rust (on the machines), the wasm32-wasip1 standard library (for the wasm
# kernel tests), Node (on the machines; Debian's nodejs otherwise) and lavapipe, Mesa's software
# Vulkan driver, for the GPU backend's tests (Debian's mesa-vulkan-drivers).
deps:
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found; install Rust from rustup.rs"; exit 1; }
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@command -v node >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs; }
	@ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq mesa-vulkan-drivers libvulkan1; }

# What the browser build and its tests need: the wasm32 target, wasm-bindgen-cli at the version
# the crate pins (about 5 minutes to build once), Chromium and chromedriver (Debian packages), and
# the npm tools of package.json (binaryen's wasm-opt: Debian's is too old for wasm-bindgen 0.2.130;
# playwright-core drives the system Chromium, no browser download).
web-deps: deps
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@wasm-bindgen --version 2>/dev/null | grep -q " $(WASM_BINDGEN_VERSION)$$" || $(CARGO) install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm; }
	@[ -x $(NPM_BIN)/wasm-opt ] && [ -x $(NPM_BIN)/vite ] && [ -d node_modules/playwright-core ] || npm install --no-audit --no-fund --loglevel=error

# The npm package gander-rwkv in pkg/: wasm-bindgen's output (--target web), optimised with
# wasm-opt, plus pkg-template/ (the JS API, worker, store, types, package.json, README).
pkg: web-deps
	$(CARGO) build --release --locked --lib --target wasm32-unknown-unknown
	rm -rf pkg && mkdir -p pkg
	wasm-bindgen --target web --out-dir pkg $(WASM)
	$(NPM_BIN)/wasm-opt -O3 --strip-debug --strip-producers --enable-simd --enable-bulk-memory --enable-reference-types --enable-nontrapping-float-to-int --enable-sign-ext --enable-multivalue --enable-mutable-globals pkg/gander_bg.wasm -o pkg/gander_bg.wasm
	cp pkg-template/* pkg/
	@echo "pkg/gander_bg.wasm: $$(stat -c %s pkg/gander_bg.wasm) bytes ($$(gzip -9c pkg/gander_bg.wasm | wc -c) gzipped)"

# The demo page: builds the package and serves www/ (with pkg/ at /pkg/) on 127.0.0.1:$(PORT).
PORT ?= 8080
demo: pkg
	@echo "Gander demo: open http://127.0.0.1:$(PORT)/ (Ctrl+C stops the server)"
	node tools/serve.mjs --port $(PORT) www /pkg=pkg

# The text-to-SQL demo model (issues 8 and 19, tools/sql/README.md). train-sql regenerates the
# data and trains on the CPU in two stages (about 45 + 65 minutes on 2 cores, torch in
# target/pyref, the WKV kernel compiled with g++; rerun the same command to resume an
# interrupted run from its checkpoint). eval-sql measures execution accuracy:
# the generator's held-out tables (f32, int8 and q4 conversions of the trained weights, rebuilt
# from tools/sql/sql-rwkv7-compact.safetensors and checked to give the shipped int8 file byte for
# byte, on the CPU; the shipped file on the GPU, one process per question on lavapipe), the
# hand-written paraphrase set with and without the grammar, and learning at test time on
# opaque-column tables (N = 0, 2, 5, 10 solved examples primed with `gander prime`).
SQL := target/sql
SQL_MODEL := www/models/sql-rwkv7-int8.safetensors
SQL_EVAL = python3 tools/sql/eval.py --data $(SQL)/eval.jsonl
SQL_OPAQUE = python3 tools/sql/eval.py --data $(SQL)/opaque.jsonl --model $(SQL_MODEL) --sql
SQL_PARA = python3 tools/sql/eval.py --data $(SQL)/paraphrase.jsonl --model $(SQL_MODEL)

$(SQL)/eval.jsonl:
	python3 tools/sql/sqlgen.py $(SQL) --train 60000

train-sql: $(PYREF)/bin/python
	[ -f $(SQL)/sql-rwkv7.pth.ckpt ] || python3 tools/sql/sqlgen.py $(SQL) --train 60000
	# stage 1: 650 steps from scratch; its last checkpoint (step 600) starts stage 2
	[ -f $(SQL)/sql-rwkv7-s2.pth.ckpt ] || $(PYREF)/bin/python tools/sql/train.py $(SQL) $(SQL)/sql-rwkv7.pth --steps 650 --batch-tokens 6000
	# stage 2: 2,300 steps, a new schedule and batch order
	$(PYREF)/bin/python tools/sql/train.py $(SQL) $(SQL)/sql-rwkv7-s2.pth --steps 2300 --batch-tokens 6000 --lr 3e-3 --seed 1 --init $(SQL)/sql-rwkv7.pth.ckpt
	$(PYREF)/bin/python tools/sql/expand.py --compact $(SQL)/sql-rwkv7-s2.pth tools/sql/sql-rwkv7-compact.safetensors
	python3 tools/sql/expand.py tools/sql/sql-rwkv7-compact.safetensors $(SQL)/sql-full.safetensors
	$(CARGO) run --release --locked -q -- convert $(SQL)/sql-full.safetensors $(SQL_MODEL) --quant int8

eval-sql: deps $(SQL)/eval.jsonl
	$(CARGO) build --release --locked -q
	python3 tools/sql/expand.py tools/sql/sql-rwkv7-compact.safetensors $(SQL)/sql-full.safetensors
	target/release/gander convert $(SQL)/sql-full.safetensors $(SQL)/sql-f32.safetensors --quant f32
	target/release/gander convert $(SQL)/sql-full.safetensors $(SQL)/sql-q4.safetensors --quant q4
	target/release/gander convert $(SQL)/sql-full.safetensors $(SQL)/sql-int8.safetensors --quant int8
	cmp $(SQL)/sql-int8.safetensors $(SQL_MODEL) && echo "the shipped int8 file is the trained model's conversion"
	python3 tools/sql/paraphrase_check.py --jsonl $(SQL)/paraphrase.jsonl
	$(SQL_PARA) --sql
	$(SQL_PARA) --sql --any-value
	$(SQL_PARA) --sql --no-grammar
	$(SQL_PARA)
	$(SQL_EVAL) --model $(SQL)/sql-f32.safetensors
	$(SQL_EVAL) --model $(SQL_MODEL)
	$(SQL_EVAL) --model $(SQL)/sql-q4.safetensors
	$(SQL_EVAL) --model $(SQL_MODEL) --sql
	$(SQL_EVAL) --model $(SQL_MODEL) --sql --no-grammar
	for n in 0 2 5 10; do $(SQL_OPAQUE) --shots $$n && $(SQL_OPAQUE) --shots $$n --no-grammar || exit 1; done
	XDG_RUNTIME_DIR=$${XDG_RUNTIME_DIR:-/tmp} $(SQL_EVAL) --model $(SQL_MODEL) --backend gpu

# GANDER_REQUIRE_GPU: the GPU tests fail, not skip, if no adapter is found.
# In order: formatting (rustfmt.toml) and the import graph (no cycles between top-level
# modules, tools/import_graph.py), the no-panic lint gate (native and wasm builds), the native tests (CPU, lavapipe
# GPU), the wasm kernels in Node (WASI), the wasm engine in Node and its WebGPU backend in headless
# Chromium (wasm-bindgen-test), then the built npm package in headless Chromium (Playwright).
WASM_TEST := CHROMEDRIVER=$$(command -v chromedriver) WASM_BINDGEN_TEST_TIMEOUT=300 $(CARGO) test --release --locked --target wasm32-unknown-unknown
test: web-deps pkg target/e2e/stream-int8.safetensors gguf-venv
	$(CARGO) fmt --check
	python3 tools/import_graph.py
	$(CARGO) clippy --release --locked --lib --quiet -- -D clippy::unwrap_used -D clippy::expect_used -D clippy::panic
	$(CARGO) clippy --release --locked --lib --quiet --target wasm32-unknown-unknown -- -D clippy::unwrap_used -D clippy::expect_used -D clippy::panic
	GANDER_REQUIRE_GPU=1 XDG_RUNTIME_DIR=$${XDG_RUNTIME_DIR:-/tmp} $(CARGO) test --release --locked
	$(WASI_RUNNER) $(CARGO) test --release --locked --target wasm32-wasip1 --test kernels --test tokenizer
	$(WASM_TEST) --test wasm_node
	$(WASM_TEST) --test wasm_webgpu
	$(CARGO) build --release --locked -q
	node --test --test-concurrency=1 tests/e2e/

# The soak of tests/e2e/soak.test.mjs at its full length on every path: 20,000 tokens with
# aborts, forks and state saves on the CPU path (page and worker; make test runs these too) and
# on WebGPU, where SwiftShader needs hours for 20,000 (make test runs 100 there).
soak: pkg
	GANDER_SOAK_TOKENS=$${GANDER_SOAK_TOKENS:-20000} node --test tests/e2e/soak.test.mjs

# A 113 MiB int8 model (byte vocabulary, C=1024, L=8) for the streaming-load test.
target/e2e/stream-int8.safetensors:
	@mkdir -p target/e2e
	$(CARGO) run --release --locked -q --example random_model -- $@ --embd 1024 --layers 8 --vocab 256 --quant int8

$(BENCH_DIR)/rwkv7-0.1b-random-%.safetensors:
	@mkdir -p $(BENCH_DIR)
	$(CARGO) run --release --locked -q --example random_model -- $@ --quant $*

wasm-bench-build: deps
	$(CARGO) build --release --locked -q --example wasm_bench --target wasm32-wasip1

# Native speed of every format on the 0.1B shape, with bandwidth bounds and peak fractions.
bench: deps $(BENCH_FILES)
	$(CARGO) build --release --locked -q
	python3 bench/report.py

$(PYREF)/bin/python:
	python3 -m venv $(PYREF)
	$(PYREF)/bin/pip install -q rwkv==0.8.32 torch numpy safetensors

# llama.cpp's Python package (gguf-py) and numpy for tools/layouts/make_gguf.py, which writes
# the GGUF test files of tests/gguf.rs (issue 16).
GGUF_PY := target/gguf-venv/bin/python
gguf-venv: $(GGUF_PY)
$(GGUF_PY):
	python3 -m venv target/gguf-venv
	target/gguf-venv/bin/pip install -q gguf==0.19.0 numpy

# Everything of `make bench`, plus wasm in Node and the official rwkv package (a ~3 GB torch
# install into target/pyref on first use), in one run.
bench-all: deps $(BENCH_FILES) wasm-bench-build $(PYREF)/bin/python
	$(CARGO) build --release --locked -q
	python3 bench/report.py --wasm --official $(PYREF)/bin/python

# Peak memory of Gander.load(url, { quant: 'int8' }) in headless Chromium for a 1.5B-shaped
# random .pth (3 GB, bf16, written with torch from target/pyref): an aborted download resumed,
# the conversion on the way, then a cached load on WebGPU (issue 16; bench/load_memory.mjs).
$(BENCH_DIR)/rwkv7-1.5b-random-bf16.pth: $(PYREF)/bin/python
	@mkdir -p $(BENCH_DIR)
	$(PYREF)/bin/python bench/random_pth.py $@ --embd 2048 --layers 24 --vocab 65536

bench-load: pkg $(BENCH_DIR)/rwkv7-1.5b-random-bf16.pth
	node bench/load_memory.mjs $(BENCH_DIR)/rwkv7-1.5b-random-bf16.pth --quant int8 --put

# Token-mask time per token for a JSON-schema grammar on the World vocabulary (issue 15),
# natively and in wasm (Node WASI, simd128, one thread); compare with `make bench`'s decode.
bench-grammar: deps
	$(CARGO) build --release --locked -q --example grammar_bench
	$(CARGO) build --release --locked -q --example grammar_bench --target wasm32-wasip1
	@echo "== native"; target/release/examples/grammar_bench 500
	@echo "== wasm (Node WASI)"; node --no-warnings tests/wasi-runner.mjs target/wasm32-wasip1/release/examples/grammar_bench.wasm 500

# Time to first token of a three-turn chat with and without the conversation cache (issue 14),
# 0.1B int8 random weights: natively (`gander chat --stats`) and in headless Chromium (wasm CPU).
bench-chat: pkg $(BENCH_DIR)/rwkv7-0.1b-random-int8.safetensors
	$(CARGO) build --release --locked -q
	@for mode in "" --no-cache; do echo "== native $$mode"; target/release/gander chat --model $(BENCH_DIR)/rwkv7-0.1b-random-int8.safetensors --system "You are a helpful travel assistant." --max-tokens 32 --seed 7 --stats $$mode < bench/chat-turns.txt 2>&1 >/dev/null; done
	@echo "== Chromium, wasm CPU path"; node bench/chat_ttft.mjs $(BENCH_DIR)/rwkv7-0.1b-random-int8.safetensors

# The wasm CPU path in headless Chromium (page thread and worker) next to native `gander bench`
# on the same 0.1B int8 file, in one run (issue 18; bench/web_cpu.mjs).
bench-web: pkg $(BENCH_DIR)/rwkv7-0.1b-random-int8.safetensors
	$(CARGO) build --release --locked -q
	node bench/web_cpu.mjs $(BENCH_DIR)/rwkv7-0.1b-random-int8.safetensors 512 128 3

# The npm package on WebGPU in headless Chromium (issue 20): prefill/decode tok/s and the device's
# work per decoded token, page and worker, next to the wasm CPU path on the same model.
# MODEL=... (default: the tiny fixture, because SwiftShader is slow), PROMPT=64, GEN=32.
bench-webgpu: pkg
	node bench/webgpu.mjs $(or $(MODEL),/shared/fixtures/tiny-rwkv7-834k/model.safetensors) $(or $(PROMPT),64) $(or $(GEN),32)

clean-bench:
	rm -rf $(BENCH_DIR)

# Fuzz every parser of outside bytes (fuzz/fuzz_targets) for FUZZ_SECONDS each, with libFuzzer on
# the stable toolchain (no sanitizer: panics, aborts, out-of-memory and hangs are what is caught).
# Corpora are seeded from the test fixtures and kept under fuzz/corpus (ignored by git).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := open_bytes state_blob state_tuning vocab cli_args grammar json_schema sql_table shard_index inspect gguf pull

fuzz-seeds:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	@mkdir -p $(foreach t,$(FUZZ_TARGETS),fuzz/corpus/$(t))
	@for q in f32 int8 q4; do f=fuzz/corpus/open_bytes/tiny-$$q.safetensors; [ -f $$f ] || $(CARGO) run --release --locked -q --example random_model -- $$f --embd 64 --layers 1 --vocab 16 --quant $$q; done
	@cp -n tests/golden/fp32-bytes/model.pth fuzz/corpus/open_bytes/bytes.pth
	@[ -f fuzz/corpus/open_bytes/fla.safetensors ] || { python3 tools/layouts/make_layouts.py tests/golden/fp32-bytes/model.safetensors target/layouts && cp target/layouts/fla-xx/model.safetensors fuzz/corpus/open_bytes/fla.safetensors && cp target/layouts/st/model.st fuzz/corpus/open_bytes/st.safetensors; }
	@[ -f fuzz/corpus/vocab/head.txt ] || head -c 2000 src/tokenizer/rwkv_vocab_v20230424.txt > fuzz/corpus/vocab/head.txt
	@[ -f fuzz/corpus/cli_args/logits ] || printf 'logits\0--model\0m.pth\0--tokens\01,2,3\0--all' > fuzz/corpus/cli_args/logits
	@[ -f fuzz/corpus/cli_args/generate ] || printf 'generate\0--model\0m\0--prompt\0hi\0--temperature\00.5\0--top-p\00.9\0--max-tokens\010\0--seed\07' > fuzz/corpus/cli_args/generate
	@cp -n tests/golden/fp32-bytes/time_state.pth fuzz/corpus/state_tuning/time_state.pth
	@[ -f fuzz/corpus/state_tuning/one-layer.safetensors ] || python3 -c "import json,struct,sys; h=json.dumps({'blocks.1.att.time_state':{'dtype':'F32','shape':[2,32,32],'data_offsets':[0,8192]}}).encode(); sys.stdout.buffer.write(struct.pack('<Q',len(h))+h+bytes(8192))" > fuzz/corpus/state_tuning/one-layer.safetensors
	@[ -f fuzz/corpus/grammar/list.gbnf ] || printf 'root ::= "[" (item ("," item)*)? "]"\nitem ::= [0-9]+ | "\\"" [^"\\\\]* "\\"" | [α-ω]{1,3}\n[1,"ab"]' > fuzz/corpus/grammar/list.gbnf
	@[ -f fuzz/corpus/json_schema/person.json ] || printf '{"type":"object","properties":{"name":{"type":"string","maxLength":8},"tags":{"type":"array","items":{"enum":["a",1,null]},"maxItems":3}},"required":["name"]}' > fuzz/corpus/json_schema/person.json
	@cp -n tests/golden/fp32-bytes/model.pth fuzz/corpus/inspect/bytes.pth
	@cp -n tests/golden/fp32-bytes/model.safetensors fuzz/corpus/inspect/bytes.safetensors
	@cp -n tests/golden/fp32-bytes/model.pth fuzz/corpus/pull/bytes.pth
	@cp -n fuzz/corpus/open_bytes/tiny-int8.safetensors fuzz/corpus/pull/tiny-int8.safetensors
	@[ -f fuzz/corpus/shard_index/index.json ] || printf '{"metadata":{"total_size":8},"weight_map":{"rwkv7.emb.weight":"model-00001-of-00002.safetensors","head.weight":"model-00002-of-00002.safetensors"}}' > fuzz/corpus/shard_index/index.json
	@[ -f fuzz/corpus/gguf/q4_0.gguf ] || { $(MAKE) -s gguf-venv && $(GGUF_PY) tools/layouts/make_gguf.py tests/golden/fp32-bytes/model.safetensors target/gguf-seeds && cp target/gguf-seeds/q4_0.gguf target/gguf-seeds/kquants.gguf target/gguf-seeds/bf16.gguf fuzz/corpus/gguf/ && cp target/gguf-seeds/q8_0.gguf fuzz/corpus/open_bytes/; }
	@[ -f fuzz/corpus/sql_table/cars.txt ] || printf 'Table: cars(brand TEXT, price REAL, year INTEGER, code VARCHAR(8))' > fuzz/corpus/sql_table/cars.txt
	@[ -f fuzz/corpus/state_blob/zero.bin ] || python3 -c "import struct,sys; sys.stdout.buffer.write(b'GNDRSTAT'+struct.pack('<I',1)+bytes(32)+struct.pack('<4I',2,64,1,64)+bytes(4*2*(2*64+64*64)))" > fuzz/corpus/state_blob/zero.bin

fuzz: fuzz-seeds
	@mkdir -p target/fuzz-logs
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  echo "== $$t"; \
	  cargo fuzz run -O -s none $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -timeout=10 > ../target/fuzz-logs/$$t.log 2>&1; rc=$$?; \
	  grep -E "DONE|Done [0-9]+ runs|SUMMARY|panicked|deadly|crash-|oom-|timeout-" ../target/fuzz-logs/$$t.log; \
	  [ $$rc -eq 0 ] || { echo "fuzz target $$t failed (exit $$rc): see target/fuzz-logs/$$t.log and fuzz/artifacts/$$t"; exit 1; }; \
	done

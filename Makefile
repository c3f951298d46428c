# Gander: `make test` runs every test (CI calls it through .ci/run); `make bench` measures speed.
# Every target installs what it needs first and skips what is already there.

CARGO ?= cargo
BENCH_DIR := target/bench

.PHONY: test deps bench clean-bench

# What the tests need: a Rust toolchain (present on the machines) and the crates (fetched by cargo).
deps:
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found; install Rust from rustup.rs"; exit 1; }

test: deps
	$(CARGO) test --release --locked

$(BENCH_DIR)/rwkv7-0.1b-random-%.safetensors:
	@mkdir -p $(BENCH_DIR)
	$(CARGO) run --release --locked -q --example random_model -- $@ --quant $*

# 0.1B shape (C=768, L=12, V=65536) with random weights, in each format built so far.
bench: deps $(foreach q,f32 f16 int8 q4,$(BENCH_DIR)/rwkv7-0.1b-random-$(q).safetensors)
	$(CARGO) build --release --locked -q
	@for q in f32 f16 int8 q4; do \
	  printf '%s ' $$q; ./target/release/gander bench --model $(BENCH_DIR)/rwkv7-0.1b-random-$$q.safetensors; \
	done

clean-bench:
	rm -rf $(BENCH_DIR)

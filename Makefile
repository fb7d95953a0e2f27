# capstream: `make demo` and `make test` each do all setup on a fresh Debian machine.
SHELL := /bin/bash
ROOT := $(CURDIR)
# tch builds against the libtorch inside pip's torch (LIBTORCH_USE_PYTORCH) of this venv.
export VIRTUAL_ENV := $(ROOT)/.venv
export PATH := $(ROOT)/.venv/bin:$(HOME)/.cargo/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
CAPSTREAM := target/release/capstream
DEMO_OUT := out/demo

.PHONY: setup build test lint demo doctor fixtures bench clean

setup:
	@bash .ci/setup

build: setup
	cargo build --release --locked

test: build
	cargo test --release --locked

lint: setup
	cargo fmt --check
	cargo clippy --release --locked --all-targets -- -D warnings

doctor: build
	$(CAPSTREAM) doctor

demo: build
	@rm -rf $(DEMO_OUT)
	$(CAPSTREAM) doctor
	$(CAPSTREAM) run --pipeline pipelines/default.toml --input tests/fixtures/images --output $(DEMO_OUT)/rows
	@echo
	@echo "demo results:"
	@echo "  rows (Parquet):         $(ROOT)/$(DEMO_OUT)/rows/part-*.parquet"
	@echo "  spoken captions (WAV):  $(ROOT)/$(DEMO_OUT)/rows/wav/"

# Regenerate the committed fixtures with transformers (needs only the venv).
fixtures: setup
	.venv/bin/python tests/fixtures/preprocess/make_fixtures.py
	.venv/bin/python tests/fixtures/images/make_images.py
	.venv/bin/python tests/fixtures/blip/make_fixtures.py

bench: build
	bash benches/preprocess.sh

clean:
	cargo clean
	rm -rf out

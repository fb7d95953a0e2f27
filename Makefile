# capstream: `make demo` and `make test` each do all setup on a fresh Debian machine.
SHELL := /bin/bash
ROOT := $(CURDIR)
# tch builds against the libtorch inside pip's torch (LIBTORCH_USE_PYTORCH) of this venv.
export VIRTUAL_ENV := $(ROOT)/.venv
export PATH := $(ROOT)/.venv/bin:$(HOME)/.cargo/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
CAPSTREAM := target/release/capstream
DEMO_OUT := out/demo

.PHONY: setup build test lint demo doctor default-model fixtures fixture-audio-model bench clean

setup:
	@bash .ci/setup

build: setup
	cargo build --release --locked --workspace

# Then the GPU check on the CPU (--dry-run), so that it cannot rot between GPU runs.
test: build
	cargo test --release --locked --workspace
	bash benches/gpu/run.sh --dry-run --out target/gpu-dry-run.json

lint: setup
	cargo fmt --all --check
	cargo clippy --release --locked --workspace --all-targets -- -D warnings

doctor: build
	$(CAPSTREAM) doctor

demo: build
	@rm -rf $(DEMO_OUT)
	$(CAPSTREAM) doctor
	$(CAPSTREAM) run --pipeline pipelines/default.toml --input models/default/samples/images --output $(DEMO_OUT)/rows --no-progress
	$(CAPSTREAM) eval --model models/default --audio-model models/default/audio --data models/default/samples/heldout.parquet --split test --constant-baseline 0 --out $(DEMO_OUT)/eval --no-progress
	@echo
	@echo "demo results (default model, on held-out synthetic images; models/default/README.md says what it is):"
	@echo "  images -> rows (Parquet):        $(ROOT)/$(DEMO_OUT)/rows/part-*.parquet"
	@echo "  spoken captions + neural audio:  $(ROOT)/$(DEMO_OUT)/rows/wav/"
	@echo "  100 held-out rows, scored:       $(ROOT)/$(DEMO_OUT)/eval/run/ (Parquet, wav/)"
	@echo "  corpus scores:                   $(ROOT)/$(DEMO_OUT)/eval/run/metrics.json"
	@echo "  mention accuracy + summary:      $(ROOT)/$(DEMO_OUT)/eval/run/eval.json"
	@echo "  report:                          $(ROOT)/$(DEMO_OUT)/eval/run/report.html"

# Retrain models/default from nothing (synth data, caption model, audio model, card);
# about 20 minutes on 2 quiet cores.
default-model: build
	bash models/make_default.sh

# Regenerate the committed fixtures with transformers (needs only the venv).
fixtures: setup
	.venv/bin/python tests/fixtures/preprocess/make_fixtures.py
	.venv/bin/python tests/fixtures/images/make_images.py
	.venv/bin/python tests/fixtures/blip/make_fixtures.py
	.venv/bin/python tests/fixtures/audio/make_fixtures.py
	.venv/bin/python tests/fixtures/audio_metrics/make_goldens.py
	.venv/bin/python tests/fixtures/triplets/make_fixture.py
	.venv/bin/python tests/fixtures/metrics/make_goldens.py
	.venv/bin/python tests/fixtures/metrics/make_meteor_goldens.py

# Retrain the small audio checkpoint the tests and default pipeline use (after `build`).
fixture-audio-model: build
	bash tests/fixtures/neural_audio/make_fixture.sh

bench: build
	bash benches/preprocess.sh
	bash benches/blip/bench.sh
	bash benches/audio/bench.sh
	bash benches/vocoder/bench.sh
	.venv/bin/python benches/caption_metrics/bench.py

clean:
	cargo clean
	rm -rf out

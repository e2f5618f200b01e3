# Thin wrapper around CMake. The two commands that matter: `make demo` and `make test`.
JOBS      ?= $(shell nproc)
BUILD     ?= build
ASAN      ?= build-asan
FUZZ      ?= build-fuzz
FUZZ_SECS ?= 60
CMAKE_FLAGS ?=
# cmake --build runs make below us: keep its "Entering directory" lines out of the output.
MAKEFLAGS += --no-print-directory

.PHONY: all deps build asan test test-plain test-asan demo bench fuzz stress clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

asan: deps
	@cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DJDB_SANITIZE=address $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(ASAN) -j $(JOBS)

test-plain: build
	@echo "== ctest: plain build ($(BUILD)) =="
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: asan
	@echo "== ctest: ASan+UBSan build ($(ASAN)) =="
	@cd $(ASAN) && ctest --output-on-failure -j $(JOBS)

# Both builds run every test; the asan run comes last so ctest's summary closes the output.
test: test-plain test-asan

# The main job on an embedded default data directory under the build folder: the `jdb` command
# loads a generated data set, reads it back, scans both ways (every value checked), then a few
# single commands, the stats and a full check. Each command is printed before it runs.
demo: build
	@rm -rf $(BUILD)/demo-data
	@set -e; \
	 jdb() { echo; echo "\$$ $(BUILD)/capi/jdb --dir $(BUILD)/demo-data $$*"; \
	         $(BUILD)/capi/jdb --dir $(BUILD)/demo-data "$$@"; }; \
	 jdb bench --n 1000000 --value-size 100 --tables 4; \
	 jdb --table users put user:1001 alice; \
	 jdb --table users put user:1002 bob; \
	 jdb --table users put user:1003 carol; \
	 jdb --table users --sync put user:1004 dave; \
	 jdb --table users get user:1002; \
	 jdb --table users del user:1003; \
	 jdb --table users scan; \
	 jdb --table users scan --reverse --limit 2; \
	 jdb --table bench-0 scan --from 8 --limit 3; \
	 jdb tables; \
	 jdb stats; \
	 jdb check

bench: deps build
	@scripts/deps.sh --bench
	@cmake -S . -B $(BUILD) >/dev/null && cmake --build $(BUILD) -j $(JOBS)
	@$(BUILD)/bench/jdb_bench all --dir $(BUILD)/bench-data

# The randomised model tests at stress size (millions of ops; minutes, not part of `make test`).
STRESS_SCALE ?= 10
stress: build
	@JDB_TEST_SCALE=$(STRESS_SCALE) $(BUILD)/tests/engine/test_tablet uring
	@JDB_TEST_SCALE=$(STRESS_SCALE) $(BUILD)/tests/engine/test_tablet psync
	@JDB_TEST_SCALE=$(STRESS_SCALE) $(BUILD)/tests/engine/test_memtable
	@JDB_TEST_SCALE=10 $(BUILD)/tests/index/test_btree psync

# libFuzzer targets (clang); not part of `make test`.
fuzz:
	@scripts/deps.sh --fuzz
	@CC=clang cmake -S . -B $(FUZZ) -DCMAKE_BUILD_TYPE=Debug -DJDB_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ) -j $(JOBS) --target fuzz_layout fuzz_btree
	@mkdir -p $(FUZZ)/corpus-layout $(FUZZ)/corpus-btree
	@$(FUZZ)/tests/fuzz/fuzz_layout -max_total_time=$(FUZZ_SECS) $(FUZZ)/corpus-layout
	@$(FUZZ)/tests/fuzz/fuzz_btree -max_total_time=$(FUZZ_SECS) $(FUZZ)/corpus-btree

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZ)

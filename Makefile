# Thin wrapper over CMake. `make run` and `make test` are the two documented entry points.
BUILD      ?= build
TEST_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
# tests at a time in `make test`: two per core, most of them wait far more than they compute
# (tests/CMakeLists.txt counts the ones that compute as two)
TEST_JOBS  ?= $(shell echo $$(( $(JOBS) * 2 )))
PREFIX     ?= /usr/local
# DESTDIR (staged installs, packages) and CMAKE_ARGS (extra -D... for the release build) pass
# through: make install PREFIX=/usr DESTDIR=/tmp/stage CMAKE_ARGS=-DBP_GIT_DESCRIBE=v1

.PHONY: all build install run test deps test-deps bench fuzz format docs clean

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBP_TESTS=OFF $(CMAKE_ARGS) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

# The binary, include/blockpipe, the man page, the systemd unit and the sample config under
# PREFIX (cmake/install.cmake lists them).
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

deps:
	bash scripts/install-deps.sh

test-deps:
	bash scripts/install-deps.sh --test

run: deps build
	bash scripts/run.sh

test: test-deps
	@# -Werror under clang too (the tests run on gcc's ASan build)
	CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Debug -DBP_TESTS=ON >/dev/null
	cmake --build build-clang -j $(JOBS)
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DBP_SANITIZE=ON -DBP_TESTS=ON >/dev/null
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j $(TEST_JOBS) --timeout 900

bench: deps build
	bash bench/run.sh

fuzz: test-deps
	CC=clang cmake -S . -B build-fuzz -DBP_FUZZ=ON -DBP_TESTS=OFF >/dev/null
	cmake --build build-fuzz -j $(JOBS)
	mkdir -p build-fuzz/corpus/rpc_block build-fuzz/corpus/json_tree build-fuzz/corpus/config \
	  build-fuzz/corpus/arch_decode build-fuzz/corpus/api build-fuzz/corpus/prices_file \
	  build-fuzz/corpus/prices_answer build-fuzz/corpus/tokens \
	  build-fuzz/corpus/clickhouse_answer build-fuzz/corpus/ws_heads build-fuzz/corpus/wsframe \
	  build-fuzz/corpus/rpc_error
	./build-fuzz/fuzz/fuzz_rpc_block -max_total_time=60 build-fuzz/corpus/rpc_block fuzz/corpus/rpc_block
	./build-fuzz/fuzz/fuzz_json_tree -max_total_time=60 build-fuzz/corpus/json_tree fuzz/corpus/json_tree
	./build-fuzz/fuzz/fuzz_config -max_total_time=60 build-fuzz/corpus/config fuzz/corpus/config
	./build-fuzz/fuzz/fuzz_arch_decode -max_total_time=60 build-fuzz/corpus/arch_decode \
	  fuzz/corpus/arch_decode
	./build-fuzz/fuzz/fuzz_api -max_total_time=60 build-fuzz/corpus/api fuzz/corpus/api
	./build-fuzz/fuzz/fuzz_prices_file -max_total_time=60 build-fuzz/corpus/prices_file \
	  fuzz/corpus/prices_file
	./build-fuzz/fuzz/fuzz_prices_answer -max_total_time=60 build-fuzz/corpus/prices_answer \
	  fuzz/corpus/prices_answer
	./build-fuzz/fuzz/fuzz_tokens -max_total_time=60 build-fuzz/corpus/tokens fuzz/corpus/tokens
	./build-fuzz/fuzz/fuzz_clickhouse_answer -max_total_time=60 \
	  build-fuzz/corpus/clickhouse_answer fuzz/corpus/clickhouse_answer
	./build-fuzz/fuzz/fuzz_ws_heads -max_total_time=60 build-fuzz/corpus/ws_heads \
	  fuzz/corpus/ws_heads
	./build-fuzz/fuzz/fuzz_wsframe -max_total_time=60 build-fuzz/corpus/wsframe fuzz/corpus/wsframe
	./build-fuzz/fuzz/fuzz_rpc_error -max_total_time=60 build-fuzz/corpus/rpc_error \
	  fuzz/corpus/rpc_error

docs: build
	python3 scripts/gen-cli-doc.py $(BUILD)/blockpipe

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(TEST_BUILD) build-fuzz

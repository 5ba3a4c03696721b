# sam3neck — the two commands of the README:
#   make demo [WEIGHTS=path]   build (release) and run the neck on the default synthetic checkpoint
#   make test                  build and run every test: Swift, C (and C++), Python
# Both install what they need first (libopenblas-dev via apt-get when missing, the Python package).

PYTHON ?= python3
SWIFT_RELEASE = swift build -c release -Xswiftc -static-stdlib
LIB = .build/release/libsam3neck.so
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Tests and the demo use this checkout's package and library, whatever else is installed.
export PYTHONPATH := $(CURDIR)/python$(if $(PYTHONPATH),:$(PYTHONPATH))
export SAM3NECK_LIBRARY := $(CURDIR)/$(LIB)

.PHONY: demo test deps system-deps python-deps lib test-swift test-c test-cpp test-python test-sanitizers test-fuzz-replay fuzz clean

demo: deps lib
	$(PYTHON) -m sam3neck demo $(if $(WEIGHTS),--weights "$(WEIGHTS)")

test: deps lib test-swift test-c test-cpp test-python test-fuzz-replay test-sanitizers
	@echo "make test: Swift, C/C++ and Python tests, and the sanitizer runs, all passed"

deps: system-deps python-deps

# OpenBLAS (headers, pkg-config file and library) from Debian when it is not there yet.
system-deps:
	@if ! command -v pkg-config >/dev/null || ! pkg-config --exists openblas; then \
	  echo "installing libopenblas-dev and pkg-config with apt-get"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq libopenblas-dev pkg-config; \
	fi

# The Python package, editable from this checkout (reinstalled when the importable one is another
# checkout's), so it finds the library in .build/release.
python-deps:
	@if ! env -u PYTHONPATH $(PYTHON) -c 'import os, sam3neck, pytest, numpy; \
	    assert os.path.realpath(sam3neck.__file__).startswith(os.path.realpath("python") + os.sep)' \
	    2>/dev/null; then \
	  $(PYTHON) -m pip install -q -e 'python[test]'; \
	fi

lib:
	$(SWIFT_RELEASE)
	bash Tests/c/soname_link.sh $(LIB)

test-swift:
	swift test

test-c: lib
	bash Tests/c/check_exports.sh $(LIB)
	bash Tests/c/run.sh .build/ctest
	bash Tests/c/examples.sh .build/examples

# The C++17 wrapper include/sam3_neck.hpp: g++ and clang++, then under ASan/UBSan/LSan.
test-cpp: lib
	bash Tests/cpp/run.sh .build/cpptest

# Swift tests under AddressSanitizer (with LeakSanitizer) and ThreadSanitizer (Swift Testing only:
# the empty XCTest runner leaks a few bytes of its own), then the C test under ASan/UBSan/LSan and TSan.
test-sanitizers: test-c
	swift test --sanitize=address --disable-xctest --scratch-path .build-asan
	swift test --sanitize=thread --disable-xctest --scratch-path .build-tsan
	bash Tests/c/sanitizers.sh .build/ctest/fixtures

test-python: lib
	$(PYTHON) -m pytest python/tests -q

# The fuzzer's seeds and every input it ever crashed on, replayed by the release build.
test-fuzz-replay: lib
	.build/release/sam3neck-fuzz Tests/fuzz/corpus/* $(wildcard Tests/fuzz/regressions/*)

# Coverage-guided fuzzing of the checkpoint parsers (libFuzzer + AddressSanitizer), bounded:
#   make fuzz FUZZ_SECONDS=600
# Crashes are written to Tests/fuzz/regressions/ (commit them: the normal tests replay them).
FUZZ_SECONDS ?= 60
fuzz: system-deps
	swift build -c debug --product sam3neck-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING \
	  --scratch-path .build-fuzz
	mkdir -p .build-fuzz/corpus Tests/fuzz/regressions
	.build-fuzz/debug/sam3neck-fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -rss_limit_mb=2048 -timeout=10 \
	  -print_final_stats=1 -artifact_prefix=Tests/fuzz/regressions/ .build-fuzz/corpus Tests/fuzz/corpus

clean:
	rm -rf .build

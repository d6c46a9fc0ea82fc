# libnimreward - build, test, install.
#   make            libraries (build/lib) and tools (build/bin)
#   make test       everything that needs no GPU (fixtures in ../shared), sanitizers and fuzz included
#   make check      a quick subset
#   make san        the test suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make fuzz       each libFuzzer harness for a short budget (FUZZ_SECONDS=N for longer)
#   make demo       build the demo model and score the example conversations
#   make bench      nimreward-bench --device cpu
#   make bench-cpu  the numbers of docs/performance.md, all of them (scripts/bench-cpu.sh, ~12 min)
#   make gemm-candidates   OpenBLAS, oneDNN, BLIS and our GEMM kernels side by side (scripts/gemm-candidates.sh)
#   make install / uninstall   honour PREFIX, DESTDIR, LIBDIR

# The version lives once, in the header.
VMAJOR := $(shell sed -n 's/^\#define RM_VERSION_MAJOR \([0-9]*\).*/\1/p' include/nimreward.h)
VMINOR := $(shell sed -n 's/^\#define RM_VERSION_MINOR \([0-9]*\).*/\1/p' include/nimreward.h)
VPATCH := $(shell sed -n 's/^\#define RM_VERSION_PATCH \([0-9]*\).*/\1/p' include/nimreward.h)
VERSION := $(VMAJOR).$(VMINOR).$(VPATCH)

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR ?= $(PREFIX)/bin
DESTDIR ?=
GPU ?= 0

CC ?= cc
BUILD ?= build
OPT ?= -O2
CFLAGS ?= $(OPT) -g
CFLAGS += -std=gnu11 -fPIC -fvisibility=hidden -fopenmp -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation \
          -Iinclude -Ilib $(SANFLAGS)
LDLIBS += -ljansson -lpcre2-8 -lutf8proc -lopenblas -lm -lpthread -fopenmp $(SANFLAGS)

# The library: lib/ and its concept folders (the tools, server and CUDA module live apart).
LIB_SRC := $(wildcard lib/*.c lib/jinja/*.c lib/cpu/*.c lib/parallel/*.c lib/pack/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_SRC := $(wildcard lib/cli/*.c)
CLI_BIN := $(patsubst lib/cli/%.c,$(BUILD)/bin/%,$(filter-out lib/cli/cli_%.c,$(CLI_SRC)))
CLI_COMMON_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter lib/cli/cli_%.c,$(CLI_SRC)))
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)

SONAME := libnimreward.so.$(VMAJOR)
SHARED := $(BUILD)/lib/libnimreward.so.$(VERSION)
STATIC := $(BUILD)/lib/libnimreward.a
PCFILE := $(BUILD)/lib/nimreward.pc

.PHONY: all lib tools tests examples test check san san-build fuzz demo bench bench-cpu gemm-candidates install \
        uninstall clean
all: lib tools examples
lib: $(SHARED) $(STATIC) $(PCFILE)
tools: $(CLI_BIN)
tests: $(TEST_BIN)
examples: $(EXAMPLE_BIN)

$(BUILD)/obj/%.o: %.c $(wildcard include/*.h lib/*.h lib/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(SHARED): $(LIB_OBJ) lib/nimreward.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/nimreward.map -o $@ $(LIB_OBJ) $(LDLIBS)
	ln -sf libnimreward.so.$(VERSION) $(BUILD)/lib/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/lib/libnimreward.so

$(PCFILE): pkgconfig/nimreward.pc.in include/nimreward.h
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' $< > $@

# Tools and tests link the static library (they may use internal headers).
$(BUILD)/bin/%: $(BUILD)/obj/lib/cli/%.o $(CLI_COMMON_OBJ) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/test.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(STATIC) $(LDLIBS)

# Examples use only the public API and link the shared library, as a user would.
$(BUILD)/examples/%: examples/%.c include/nimreward.h $(SHARED)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< -L$(BUILD)/lib -lnimreward -Wl,-rpath,'$$ORIGIN/../lib'

test: all tests
	BUILD=$(BUILD) tests/run.sh --all

check: all tests
	BUILD=$(BUILD) tests/run.sh --quick

SANFLAGS_ASAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
san-build:
	$(MAKE) BUILD=build-san OPT=-O1 SANFLAGS="$(SANFLAGS_ASAN)" all tests

san: san-build
	tests/run.sh --san

FUZZ_SECONDS ?= 8
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh

MODEL ?=
demo: all
	MODEL=$(MODEL) BUILD=$(BUILD) scripts/demo.sh

# The tokenizer's MB/s is measured on the Llama 3 tokenizer when the fixtures are there.
BENCH_TOKENIZER ?= $(wildcard ../shared/fixtures/tokenizer/llama3/tokenizer.json)
bench: all
	$(BUILD)/bin/nimreward-bench --device cpu $(if $(BENCH_TOKENIZER),--tokenizer $(BENCH_TOKENIZER))

bench-cpu: all
	BUILD=$(BUILD) scripts/bench-cpu.sh

gemm-candidates: lib
	BUILD=$(BUILD) CC=$(CC) scripts/gemm-candidates.sh

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 include/nimreward.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libnimreward.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libnimreward.so
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 644 $(PCFILE) $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 755 $(CLI_BIN) $(DESTDIR)$(BINDIR)/

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/nimreward.h $(DESTDIR)$(LIBDIR)/libnimreward.so* \
	      $(DESTDIR)$(LIBDIR)/libnimreward.a $(DESTDIR)$(LIBDIR)/pkgconfig/nimreward.pc
	rm -f $(patsubst $(BUILD)/bin/%,$(DESTDIR)$(BINDIR)/%,$(CLI_BIN))

clean:
	rm -rf build build-san build-fuzz

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
#   GPU=auto (default) builds the CUDA module too when nvcc is found, GPU=0 never, GPU=1 always;
#   CUDA_ARCH="sm_90a sm_80 compute_80" (default) names its targets.

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
# GPU=auto builds the GPU parts when nvcc is found; GPU=1 requires them, GPU=0 skips them.
GPU ?= auto

CC ?= cc
BUILD ?= build
OPT ?= -O2
CFLAGS ?= $(OPT) -g
CFLAGS += -std=gnu11 -fPIC -fvisibility=hidden -fopenmp -Wall -Wextra -Wno-unused-parameter -Wno-format-truncation \
          -Iinclude -Ilib $(SANFLAGS)
LDLIBS += -ljansson -lpcre2-8 -lutf8proc -lopenblas -lzstd -lxxhash -lmvec -lm -lpthread -ldl -fopenmp $(SANFLAGS)

# The library: lib/ and its concept folders (the tools, server and CUDA module live apart).
LIB_SRC := $(wildcard lib/*.c lib/jinja/*.c lib/cpu/*.c lib/parallel/*.c lib/pack/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_SRC := $(wildcard lib/cli/*.c)
CLI_BIN := $(patsubst lib/cli/%.c,$(BUILD)/bin/%,$(filter-out lib/cli/cli_%.c lib/cli/bench_%.c,$(CLI_SRC)))
CLI_COMMON_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter lib/cli/cli_%.c,$(CLI_SRC)))
# nimreward-server: a tool like those in lib/cli/, plus libmicrohttpd.
SERVER_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard lib/server/*.c))
SERVER_BIN := $(BUILD)/bin/nimreward-server
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)
# C++ examples build as NAME_cpp (score.cpp beside score.c), strictly: the header must stay valid C++17.
EXAMPLE_CXX_SRC := $(wildcard examples/*.cpp)
EXAMPLE_CXX_BIN := $(EXAMPLE_CXX_SRC:examples/%.cpp=$(BUILD)/examples/%_cpp)
EXAMPLE_CXXFLAGS := $(OPT) -g -std=c++17 -pedantic -Werror -Wall -Wextra -Iinclude $(SANFLAGS)


SONAME := libnimreward.so.$(VMAJOR)
SHARED := $(BUILD)/lib/libnimreward.so.$(VERSION)
STATIC := $(BUILD)/lib/libnimreward.a
PCFILE := $(BUILD)/lib/nimreward.pc

.PHONY: all lib tools tests examples cuda test check san san-build fuzz demo bench bench-cpu gemm-candidates \
        install uninstall clean
all: lib tools examples cuda
lib: $(SHARED) $(STATIC) $(PCFILE)
tools: $(CLI_BIN) $(SERVER_BIN)
examples: $(EXAMPLE_BIN) $(EXAMPLE_CXX_BIN)

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

# The pc file names where the library lives, so it is written for the PREFIX in
# force: the build's copy for `make`, and again by `make install` for the prefix
# installed to (a plain `make` followed by `make install PREFIX=...` must not
# install the first one).
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
             -e 's|@VERSION@|$(VERSION)|' pkgconfig/nimreward.pc.in
$(PCFILE): pkgconfig/nimreward.pc.in include/nimreward.h
	@mkdir -p $(dir $@)
	$(PC_SED) > $@

# A tool's object is an intermediate of its binary: keep it, so make neither
# rebuilds it each time nor prints `rm build/obj/...` after every build.
.SECONDARY: $(CLI_SRC:%.c=$(BUILD)/obj/%.o)

# ---------------------------------------------------------------- CUDA
# The kernels (kernels/*.cu, nvcc) go into an archive; the module
# $(BUILD)/lib/nimreward/libnimreward-cuda.so is the engine's host code
# (lib/cuda/*.c) plus that archive, cuBLASLt and the static CUDA runtime.
# libnimreward itself never links CUDA: it dlopens the module on demand
# (lib/cuda_module.c). The module also carries the library helpers it uses
# (errors and allocation, the RoPE frequencies, and what they pull in), so it
# needs no symbol of libnimreward.
CUDA_HOME ?= $(firstword $(wildcard /usr/local/cuda) $(patsubst %/bin/nvcc,%,$(shell command -v nvcc 2>/dev/null)))
NVCC ?= $(firstword $(wildcard $(CUDA_HOME)/bin/nvcc) $(shell command -v nvcc 2>/dev/null) nvcc)
CUDA_ARCH ?= sm_90a sm_80 compute_80
CUDA_INC ?= $(CUDA_HOME)/include
CUDA_LIBDIR ?= $(CUDA_HOME)/lib64
CUBLASLT_LIB ?= -lcublasLt
# sm_XY: machine code (sm_90a: Hopper's wgmma/setmaxnreg); compute_XY: PTX the driver compiles for newer GPUs.
comma := ,
NVCC_GENCODE := $(foreach a,$(CUDA_ARCH),-gencode=arch=$(patsubst sm_%,compute_%,$(a))$(comma)code=$(a))
NVCCFLAGS ?= -O3 -lineinfo
NVCCFLAGS += -std=c++17 -Xcompiler -fPIC,-fvisibility=hidden $(NVCC_GENCODE) -Iinclude -Ilib -Ikernels
ifeq ($(GPU),0)
GPU_BUILD := 0
else ifeq ($(GPU),1)
GPU_BUILD := 1
$(if $(wildcard $(NVCC)),,$(error GPU=1: nvcc not found (NVCC=$(NVCC)); install the CUDA toolkit or set CUDA_HOME))
else
GPU_BUILD := $(if $(wildcard $(NVCC)),1,0)
endif
KERNEL_SRC := $(wildcard kernels/*.cu)
KERNEL_OBJ := $(KERNEL_SRC:%.cu=$(BUILD)/obj/%.o)
KERNEL_LIB := $(BUILD)/lib/libnimreward-kernels.a
# The launchers kernels/kernels.h declares, one op family per file: the
# module links only when every one is there.
MODULE_KERNELS := $(addprefix kernels/,embedding.cu rmsnorm.cu qknorm.cu bias.cu rope.cu swiglu.cu fp8.cu gather.cu \
                    attention.cu random.cu convert.cu fp8_tensor.cu reduce.cu)
KERNELS_MISSING := $(filter-out $(KERNEL_SRC),$(MODULE_KERNELS))
CUDA_HOST_SRC := $(wildcard lib/cuda/*.c)
CUDA_HOST_OBJ := $(CUDA_HOST_SRC:%.c=$(BUILD)/obj/%.o)
MODULE := $(BUILD)/lib/nimreward/libnimreward-cuda.so
MODULE_HELPERS := $(addprefix $(BUILD)/obj/lib/,common.o cpu_ops.o weights.o safetensors.o) \
                  $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard lib/cpu/*.c))
ifeq ($(GPU),1)
$(if $(KERNELS_MISSING),$(error GPU=1: the module needs $(KERNELS_MISSING)))
endif

ifeq ($(GPU_BUILD),1)
cuda: $(if $(KERNELS_MISSING),cuda-incomplete,$(MODULE))
else
cuda:
endif
cuda-incomplete: $(KERNEL_LIB) $(CUDA_HOST_OBJ)
	@echo "note: the CUDA module is not linked: $(KERNELS_MISSING) not written yet (the host code and kernels compiled)"
.PHONY: cuda-incomplete

$(BUILD)/obj/kernels/%.o: kernels/%.cu $(wildcard kernels/*.h kernels/*.cuh) lib/random.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(KERNEL_LIB): $(KERNEL_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# tests/test_kernels: each kernel against its CPU twin on a GPU (it prints the
# skip line without one). C (gcc) against the launchers' C interface.
ifeq ($(GPU_BUILD),1)
$(BUILD)/tests/test_kernels: tests/test_kernels.c tests/test.h kernels/kernels.h $(KERNEL_LIB) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -Ikernels -I$(CUDA_INC) -o $@ $< $(KERNEL_LIB) $(STATIC) $(LDLIBS) \
	    -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcudart -lstdc++
else
TEST_BIN := $(filter-out $(BUILD)/tests/test_kernels,$(TEST_BIN))
endif
# After the filter: a rule's prerequisites are expanded where it stands.
tests: $(TEST_BIN)

$(CUDA_HOST_OBJ): CFLAGS += -I$(CUDA_INC) -Ikernels -Ilib/cuda -Wno-comment -DRM_CUDA_ARCH='"$(CUDA_ARCH)"'
$(CUDA_HOST_OBJ): $(wildcard lib/cuda/*.h kernels/*.h)

$(MODULE): $(CUDA_HOST_OBJ) $(MODULE_HELPERS) $(KERNEL_LIB) lib/cuda/module.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,--no-undefined -Wl,--version-script=lib/cuda/module.map -o $@ \
	    $(CUDA_HOST_OBJ) $(MODULE_HELPERS) $(KERNEL_LIB) \
	    $(LDFLAGS) -L$(CUDA_LIBDIR) $(CUBLASLT_LIB) -lcudart_static -ljansson -lopenblas -lstdc++ -ldl -lrt -lpthread -lmvec -lm \
	    -fopenmp -Wl,-rpath,$(CUDA_LIBDIR)

# The install LIBDIR is the module's last search place (lib/cuda_module.c).
$(BUILD)/obj/lib/cuda_module.o: CFLAGS += -DRM_MODULE_LIBDIR='"$(LIBDIR)"'

# Tools and tests link the static library (they may use internal headers).
$(BUILD)/bin/%: $(BUILD)/obj/lib/cli/%.o $(CLI_COMMON_OBJ) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDLIBS)

$(SERVER_BIN): $(SERVER_OBJ) $(CLI_COMMON_OBJ) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ -lmicrohttpd $(LDLIBS)

# nimreward-bench also carries --device cuda (bench_cuda.c, through the module).
$(BUILD)/bin/nimreward-bench: $(BUILD)/obj/lib/cli/nimreward-bench.o $(BUILD)/obj/lib/cli/bench_cuda.o $(CLI_COMMON_OBJ) \
                              $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/test.h tests/reference_rows.h $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(STATIC) $(LDLIBS)

# Examples use only the public API and link the shared library, as a user would.
$(BUILD)/examples/%: examples/%.c include/nimreward.h $(SHARED)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< -L$(BUILD)/lib -lnimreward -Wl,-rpath,'$$ORIGIN/../lib'

$(BUILD)/examples/%_cpp: examples/%.cpp include/nimreward.h $(SHARED)
	@mkdir -p $(dir $@)
	$(CXX) $(EXAMPLE_CXXFLAGS) -o $@ $< -L$(BUILD)/lib -lnimreward -Wl,-rpath,'$$ORIGIN/../lib'

# The suite runs make again (the sanitizer build, install tests): '+' and
# MAKE hand it this make's jobserver, so `make -j2 check` stays -j2 inside.
test: all tests
	+MAKE="$(MAKE)" BUILD=$(BUILD) tests/run.sh --all

check: all tests
	+MAKE="$(MAKE)" BUILD=$(BUILD) tests/run.sh --quick

SANFLAGS_ASAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
san-build:
	$(MAKE) BUILD=build-san OPT=-O1 SANFLAGS="$(SANFLAGS_ASAN)" GPU=0 all tests

san: san-build
	+MAKE="$(MAKE)" tests/run.sh --san

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
	$(PC_SED) > $(DESTDIR)$(LIBDIR)/pkgconfig/nimreward.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/nimreward.pc
	install -m 755 $(CLI_BIN) $(SERVER_BIN) $(DESTDIR)$(BINDIR)/
	if [ -f $(MODULE) ]; then install -d $(DESTDIR)$(LIBDIR)/nimreward && \
	    install -m 755 $(MODULE) $(DESTDIR)$(LIBDIR)/nimreward/; fi

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/nimreward.h $(DESTDIR)$(LIBDIR)/libnimreward.so* \
	      $(DESTDIR)$(LIBDIR)/libnimreward.a $(DESTDIR)$(LIBDIR)/pkgconfig/nimreward.pc
	rm -f $(patsubst $(BUILD)/bin/%,$(DESTDIR)$(BINDIR)/%,$(CLI_BIN) $(SERVER_BIN))
	rm -f $(DESTDIR)$(LIBDIR)/nimreward/libnimreward-cuda.so
	-rmdir $(DESTDIR)$(LIBDIR)/nimreward 2>/dev/null

clean:
	rm -rf build build-san build-fuzz

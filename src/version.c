/*
 * version: filled in by the Makefile, which rebuilds this file whenever the
 * description changes.
 */
#include "version.h"

#ifndef MFRES_VERSION
#define MFRES_VERSION "unknown"
#endif
#ifndef MFRES_COMPILER
#define MFRES_COMPILER "unknown"
#endif
#ifndef MFRES_CFLAGS
#define MFRES_CFLAGS "unknown"
#endif

const char mfres_version[] = MFRES_VERSION;
const char mfres_compiler[] = MFRES_COMPILER;
const char mfres_cflags[] = MFRES_CFLAGS;

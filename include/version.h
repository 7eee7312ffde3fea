/*
 * version: provenance baked in at build time (git describe, compiler, flags).
 */
#ifndef MFRES_VERSION_H
#define MFRES_VERSION_H

extern const char mfres_version[];  /* git describe of the source tree */
extern const char mfres_compiler[]; /* first line of `$(MPICC) --version` */
extern const char mfres_cflags[];   /* compile flags */

#endif

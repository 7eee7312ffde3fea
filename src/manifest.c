/*
 * manifest: where and how a run ran (see manifest.h).
 */
#include "manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blas.h"
#include "comm.h"
#include "kernels.h"
#include "log.h"
#include "version.h"

static char manifest[MANIFEST_MAX];

/* The CPU model of this machine (/proc/cpuinfo), else "unknown". */
static void cpu_model(char *out, size_t len)
{
    snprintf(out, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(out, len, "%s", strchr(line, ':') + 2);
            out[strcspn(out, "\n")] = 0;
            break;
        }
    if (f)
        fclose(f);
}

/* Append item to a list of items separated by sep (cut at len). */
static void append(char *list, size_t len, const char *item, const char *sep)
{
    const size_t used = strlen(list);
    snprintf(list + used, len - used, "%s%s", used ? sep : "", item);
}

/* The same, unless item is in the list already. */
static void add_unique(char *list, size_t len, const char *item, const char *sep)
{
    for (const char *at = strstr(list, item); at; at = strstr(at + 1, item)) {
        const size_t n = strlen(item);
        if ((at == list || !strncmp(at - strlen(sep), sep, strlen(sep))) &&
            (!at[n] || !strncmp(at + n, sep, strlen(sep))))
            return;
    }
    append(list, len, item, sep);
}

void manifest_build(int argc, char **argv, MPI_Comm comm)
{
    enum { FIELD = 128 };
    char mine[2 * FIELD] = "";
    gethostname(mine, FIELD - 1);
    cpu_model(mine + FIELD, FIELD);
    const int ranks = comm_size(comm), root = comm_rank(comm) == 0;
    /* One rank per node says its host and CPU: nodes of one job share both. */
    MPI_Comm leaders = comm_node_leaders(comm);
    int nodes = 0;
    char *all = NULL;
    if (leaders != MPI_COMM_NULL) {
        nodes = comm_size(leaders);
        all = root ? xmalloc((size_t)nodes * sizeof mine) : NULL;
        comm_gather_bytes(mine, (int)sizeof mine, all, 0, leaders);
        comm_free(&leaders);
    }
    if (root) {
        char hosts[4096] = "", cpus[1024] = "", command[2048] = "", mpi[256];
        for (int r = 0; r < nodes; r++) {
            append(hosts, sizeof hosts, all + (size_t)r * sizeof mine, " ");
            add_unique(cpus, sizeof cpus, all + (size_t)r * sizeof mine + FIELD, "; ");
        }
        free(all);
        for (int i = 0; i < argc; i++)
            append(command, sizeof command, argv[i], " ");
        comm_library(mpi, sizeof mpi);
        const char *job = getenv("SLURM_JOB_ID"), *array = getenv("SLURM_ARRAY_JOB_ID"),
                   *task = getenv("SLURM_ARRAY_TASK_ID");
        char slurm[64] = "none";
        if (array && task)
            snprintf(slurm, sizeof slurm, "%s_%s (job %s)", array, task, job ? job : "?");
        else if (job)
            snprintf(slurm, sizeof slurm, "%s", job);
        char started[32];
        const time_t now = time(NULL);
        strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
        snprintf(manifest, sizeof manifest,
                 "mfres: %s\nbuild: %s; %s\nkernels: %s\nblas: %s\nblas_threads: %d\n"
                 "cpu: %s\nmpi: %s\nranks: %d\nnodes: %d\nhosts: %s\nslurm_job: %s\n"
                 "command: %s\nstarted: %s\n",
                 mfres_version, mfres_compiler, mfres_cflags, kernels_path()->name, blas_name(),
                 blas_threads(), cpus, mpi, ranks, nodes, hosts, slurm, command, started);
    }
    comm_bcast(manifest, sizeof manifest, 0, comm);
}

const char *manifest_text(void) { return manifest; }

/* One "key: value" line of a manifest, as lengths into it. */
struct entry {
    const char *key, *value;
    int key_len, value_len;
};

/* The entry at *at, moving *at to the next line; 0 at the end. */
static int next_entry(const char **at, struct entry *e)
{
    const char *line = *at;
    if (!*line)
        return 0;
    const size_t end = strcspn(line, "\n"), colon = strcspn(line, ":");
    const size_t value = colon + 2 <= end ? colon + 2 : end;
    *e = (struct entry){line, line + value, (int)(colon < end ? colon : end), (int)(end - value)};
    *at = line + end + (line[end] == '\n');
    return 1;
}

/* The value of key in text into out ("" when absent). */
static void value_of(const char *text, const char *key, char *out, size_t len)
{
    struct entry e;
    out[0] = 0;
    while (next_entry(&text, &e))
        if (e.key_len == (int)strlen(key) && !strncmp(e.key, key, (size_t)e.key_len)) {
            snprintf(out, len, "%.*s", e.value_len, e.value);
            return;
        }
}

void manifest_print(const char *text, FILE *out)
{
    struct entry e;
    while (next_entry(&text, &e))
        fprintf(out, "  %-12.*s %.*s\n", e.key_len, e.key, e.value_len, e.value);
}

int manifest_differences(const char *stored, char *what, size_t len)
{
    const char *keys[] = {"kernels", "blas", "build"};
    int differ = 0;
    what[0] = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char then[1024], now[1024];
        value_of(stored, keys[i], then, sizeof then);
        value_of(manifest, keys[i], now, sizeof now);
        if (!then[0] || !now[0] || !strcmp(then, now))
            continue;
        const size_t used = strlen(what);
        snprintf(what + used, len - used, "%s%s %s -> %s", differ ? "; " : "", keys[i], then,
                 now);
        differ++;
    }
    return differ;
}

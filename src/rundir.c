/*
 * rundir: the run directory's layout and file-system steps (see rundir.h).
 */
#include "rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "version.h"

/* Every state file of a run directory that [output] dir accepts has a
 * name MPI-IO takes: DIR/checkpoints/ckpt-STEP.h5.tmp, STEP of up to 19
 * digits. */
_Static_assert(CONFIG_LINE_MAX - sizeof "dir = " + 1 + sizeof "/checkpoints/ckpt-.h5.tmp" - 1 +
                       19 <= MF_MPIIO_PATH_MAX,
               "a run directory's checkpoint names may be too long for MPI-IO");

void rundir_path(const char *run_dir, enum checkpoint_kind kind, int64_t step, char *path,
                 size_t len)
{
    if (kind == CHECKPOINT_FULL)
        snprintf(path, len, "%s/checkpoints/ckpt-%08lld.h5", run_dir, (long long)step);
    else
        snprintf(path, len, "%s/snapshots/snap-%08lld.h5", run_dir, (long long)step);
}

void rundir_append_manifest(const char *run_dir, const char *text)
{
    char path[MF_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/manifest.txt", run_dir);
    FILE *f = fopen(path, "a");
    if (!f || fprintf(f, "# start\n%s", text) < 0 || fclose(f) != 0)
        log_warn("cannot write %s: %s", path, strerror(errno));
}

int rundir_mkdir(const char *dir) { return mkdir(dir, 0777) != 0 && errno != EEXIST ? -1 : 0; }

/* mkdir -p. Returns 0 or -1 with errno set. */
static int make_dirs(const char *path)
{
    char buf[MF_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (rundir_mkdir(buf) != 0)
            return -1;
        *p = '/';
    }
    return rundir_mkdir(buf);
}

int rundir_create(const struct mf_config *cfg, char *err, size_t errlen)
{
    char path[MF_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.ini", cfg->output.dir);
    FILE *f = NULL;
    if (make_dirs(cfg->output.dir) != 0 || !(f = fopen(path, "w")))
        return snprintf(err, errlen, "cannot create run directory '%s': %s", cfg->output.dir,
                        strerror(errno)),
               -1;
    fprintf(f, "; resolved configuration written by mfres %s\n", mfres_version);
    config_write(cfg, f);
    if (fclose(f) != 0)
        return snprintf(err, errlen, "cannot write %s", path), -1;
    return 0;
}

/* fsync a file or directory by name; 0 or -1 with errno. */
static int sync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    int status = fsync(fd);
    close(fd);
    return status;
}

int rundir_publish(const char *tmp, const char *path)
{
    char dir[MF_PATH_MAX + 96] = ".";
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    return sync_path(tmp) == 0 && rename(tmp, path) == 0 && sync_path(dir) == 0 ? 0 : -1;
}

static int newest_first(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

int64_t rundir_checkpoints(const char *run_dir, int64_t **steps)
{
    char dir[MF_PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    int64_t n = 0, cap = 16;
    *steps = xmalloc((size_t)cap * sizeof **steps);
    DIR *d = opendir(dir);
    if (!d) {
        /* none where the folder is not there (ENOTDIR: a file on its path,
         * e.g. a run directory that cannot exist); an error where it is */
        const int error = errno;
        struct stat st;
        if (error == ENOENT || (error == ENOTDIR && stat(dir, &st) != 0))
            return 0;
        errno = error;
        return -1;
    }
    struct dirent *e;
    for (;;) {
        errno = 0;
        if (!(e = readdir(d)))
            break;
        long long step;
        int end = 0;
        if (sscanf(e->d_name, "ckpt-%lld%n", &step, &end) != 1 || strcmp(e->d_name + end, ".h5"))
            continue; /* also skips the .h5.tmp of an interrupted write */
        if (n == cap) {
            int64_t *more = realloc(*steps, (size_t)(cap *= 2) * sizeof *more);
            if (!more)
                log_fatal("out of memory listing %s", dir);
            *steps = more;
        }
        (*steps)[n++] = step;
    }
    const int error = errno;
    closedir(d);
    if (error) {
        errno = error;
        return -1;
    }
    qsort(*steps, (size_t)n, sizeof **steps, newest_first);
    return n;
}

int64_t rundir_supersede(const char *run_dir, int64_t step, char *err, size_t errlen)
{
    int64_t *steps, moved = 0;
    const int64_t n = rundir_checkpoints(run_dir, &steps);
    char dir[MF_PATH_MAX + 64], from[MF_PATH_MAX + 64], to[2 * MF_PATH_MAX];
    if (n < 0) {
        snprintf(err, errlen, "cannot list '%s/checkpoints': %s", run_dir, strerror(errno));
        moved = -1;
    }
    for (int64_t i = 0; i < n && steps[i] > step && moved >= 0; i++) {
        if (!moved) {
            char stamp[32];
            const time_t now = time(NULL);
            strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
            snprintf(dir, sizeof dir, "%s/checkpoints/superseded-%s", run_dir, stamp);
            if (rundir_mkdir(dir) != 0) {
                snprintf(err, errlen, "cannot create '%s': %s", dir, strerror(errno));
                moved = -1;
                break;
            }
        }
        rundir_path(run_dir, CHECKPOINT_FULL, steps[i], from, sizeof from);
        snprintf(to, sizeof to, "%s/%s", dir, strrchr(from, '/') + 1);
        if (rename(from, to) != 0) {
            snprintf(err, errlen, "cannot move '%s' to '%s': %s", from, to, strerror(errno));
            moved = -1;
        } else {
            moved++;
        }
    }
    free(steps);
    return moved;
}

void rundir_prune(const char *run_dir, int64_t keep, int64_t start)
{
    int64_t *steps;
    int64_t n = rundir_checkpoints(run_dir, &steps);
    if (n < 0)
        log_warn("cannot list '%s/checkpoints' to remove old checkpoints: %s", run_dir,
                 strerror(errno));
    for (int64_t i = keep; i < n; i++) {
        if (steps[i] == start)
            continue;
        char path[MF_PATH_MAX + 64];
        rundir_path(run_dir, CHECKPOINT_FULL, steps[i], path, sizeof path);
        if (unlink(path) != 0)
            log_warn("cannot remove old checkpoint %s: %s", path, strerror(errno));
    }
    free(steps);
}

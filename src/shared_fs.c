/*
 * shared_fs: files and directories that every node must see alike (see
 * shared_fs.h).
 */
#include "shared_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"
#include "config.h"
#include "log.h"

/* Append " (rank R on HOST)" to a problem found on this rank. */
static void where(char *err, size_t errlen, MPI_Comm comm)
{
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    const size_t n = strlen(err);
    snprintf(err + n, errlen - n, " (rank %d on %s)", comm_rank(comm), host);
}

/* The file's identity as far as nodes can compare it. */
struct file_id {
    int64_t size, mtime_s, mtime_ns;
};

/* Open path for reading and describe it; 0, or -1 with the problem in err. */
static int probe_file(const char *path, struct file_id *id, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return snprintf(err, errlen, "cannot open: %s", strerror(errno)), -1;
    if (!S_ISREG(st.st_mode))
        return snprintf(err, errlen, "not a regular file"), -1;
    const int fd = open(path, O_RDONLY);
    if (fd < 0)
        return snprintf(err, errlen, "cannot open: %s", strerror(errno)), -1;
    close(fd);
    *id = (struct file_id){st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
    return 0;
}

int shared_fs_check_file(const char *what, const char *path, char *err, size_t errlen,
                         MPI_Comm comm)
{
    const int leader = comm_node_leader(comm, NULL);
    struct file_id mine = {0}, first = {0};
    char problem[MF_ERR_MAX / 2] = "";
    int ok = !leader || probe_file(path, &mine, problem, sizeof problem) == 0;
    if (comm_rank(comm) == 0)
        first = mine;
    comm_bcast(&first, sizeof first, 0, comm);
    if (ok && leader && memcmp(&mine, &first, sizeof mine) != 0) {
        snprintf(problem, sizeof problem,
                 "another file than rank 0's (%lld bytes, modified at %lld.%09lld s; rank 0 "
                 "sees %lld bytes, %lld.%09lld s)",
                 (long long)mine.size, (long long)mine.mtime_s, (long long)mine.mtime_ns,
                 (long long)first.size, (long long)first.mtime_s, (long long)first.mtime_ns);
        ok = 0;
    }
    if (!ok) {
        snprintf(err, errlen, "%s '%s': %s", what, path, problem);
        where(err, errlen, comm);
    }
    return comm_agree(ok, err, errlen, comm);
}

/* What rank 0 tells the nodes: the probe file and the token it holds. */
struct probe {
    char path[MF_PATH_MAX + 64];
    char token[64];
};

int shared_fs_check_dir(const char *dir, char *err, size_t errlen, MPI_Comm comm)
{
    const int leader = comm_node_leader(comm, NULL), root = comm_rank(comm) == 0;
    struct probe p;
    memset(&p, 0, sizeof p);
    char problem[MF_ERR_MAX / 2] = "";
    int ok = 1, fd = -1, created = 0;
    if (root) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        char host[64] = "?";
        gethostname(host, sizeof host - 1);
        snprintf(p.token, sizeof p.token, "%.30s %ld %lld.%09ld", host, (long)getpid(),
                 (long long)now.tv_sec, now.tv_nsec);
        snprintf(p.path, sizeof p.path, "%s/.mfres-probe-XXXXXX", dir);
        const size_t n = strlen(p.token);
        created = (fd = mkstemp(p.path)) >= 0;
        ok = created && write(fd, p.token, n) == (ssize_t)n;
        if (!ok)
            snprintf(problem, sizeof problem, "cannot create a file in it: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    comm_bcast(&p, sizeof p, 0, comm);
    if (ok && leader && !root) {
        char seen[sizeof p.token] = "";
        struct stat st;
        if (stat(dir, &st) != 0) {
            snprintf(problem, sizeof problem, "cannot see it: %s", strerror(errno));
            ok = 0;
        } else if (!S_ISDIR(st.st_mode)) {
            snprintf(problem, sizeof problem, "not a directory");
            ok = 0;
        } else if ((fd = open(p.path, O_RDONLY)) < 0) {
            snprintf(problem, sizeof problem, "not the directory rank 0 sees (its probe file "
                     "cannot be opened here: %s)", strerror(errno));
            ok = 0;
        } else {
            const ssize_t got = read(fd, seen, sizeof seen - 1);
            close(fd);
            if (got < 0 || strcmp(seen, p.token) != 0) {
                snprintf(problem, sizeof problem, "not the directory rank 0 sees (its probe "
                         "file holds another token)");
                ok = 0;
            } else if (access(dir, W_OK | X_OK) != 0) {
                snprintf(problem, sizeof problem, "cannot create files in it: %s",
                         strerror(errno));
                ok = 0;
            }
        }
    }
    if (!ok) {
        snprintf(err, errlen, "directory '%s': %s", dir, problem);
        where(err, errlen, comm);
    }
    const int status = comm_agree(ok, err, errlen, comm);
    if (created)
        unlink(p.path);
    return status;
}

/* Maildir delivery (maildir.h). Synchronous file I/O: an example's choice —
 * a real mail drop would hand the message to a worker thread. */
#include "maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int make_dir(const char *path)
{
    return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -errno;
}

int maildir_open(const char *dir)
{
    char path[4096];
    int rc = make_dir(dir);
    const char *subdirs[] = { "tmp", "new", "cur" };
    for (size_t i = 0; rc == 0 && i < sizeof subdirs / sizeof subdirs[0]; i++) {
        if (snprintf(path, sizeof path, "%s/%s", dir, subdirs[i]) >= (int)sizeof path)
            return -ENAMETOOLONG;
        rc = make_dir(path);
    }
    return rc;
}

static int write_all(int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

int maildir_deliver(const char *dir, const uint8_t *data, size_t len, char *name, size_t name_size)
{
    static unsigned long counter; /* unique within the process: the loop runs on one thread */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char host[256] = "localhost";
    (void)gethostname(host, sizeof host - 1);
    if (snprintf(name, name_size, "%lld.M%ldP%ldQ%lu.%s", (long long)now.tv_sec, now.tv_nsec / 1000,
                 (long)getpid(), ++counter, host) >= (int)name_size)
        return -ENAMETOOLONG;
    char tmp[4096], final[4096];
    if (snprintf(tmp, sizeof tmp, "%s/tmp/%s", dir, name) >= (int)sizeof tmp
        || snprintf(final, sizeof final, "%s/new/%s", dir, name) >= (int)sizeof final)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = write_all(fd, data, len);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, final) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

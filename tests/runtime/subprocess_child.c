/* A child for the subprocess tests, to see from the inside what it was given.
 *
 *   subprocess_child fds          prints its open fds, e.g. "0 1 2"
 *   subprocess_child signals      prints the blocked signals ("blocked: none")
 *                                 and SIGPIPE's action ("SIGPIPE: default")
 *   subprocess_child pgrp         prints "leader" if it leads its process group
 *   subprocess_child ignore-term  ignores SIGTERM, prints "ready", then reads
 *                                 stdin until EOF and exits 0
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int list_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return 2;
    int own = dirfd(dir);
    const char *sep = "";
    /* Sorted: fds are few and small. */
    int fds[1024], n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL && n < 1024) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd != own)
            fds[n++] = fd;
    }
    closedir(dir);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (fds[j] < fds[i]) {
                int t = fds[i];
                fds[i] = fds[j];
                fds[j] = t;
            }
    for (int i = 0; i < n; i++) {
        printf("%s%d", sep, fds[i]);
        sep = " ";
    }
    printf("\n");
    return 0;
}

static int signal_state(void)
{
    sigset_t blocked;
    sigprocmask(SIG_BLOCK, NULL, &blocked);
    printf("blocked:");
    int any = 0;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(&blocked, sig) == 1) {
            printf(" %d", sig);
            any = 1;
        }
    }
    printf("%s\n", any ? "" : " none");
    struct sigaction sa;
    sigaction(SIGPIPE, NULL, &sa);
    printf("SIGPIPE: %s\n", sa.sa_handler == SIG_DFL ? "default" : "changed");
    return 0;
}

static int ignore_term(void)
{
    signal(SIGTERM, SIG_IGN);
    printf("ready\n");
    fflush(stdout);
    char buf[256];
    while (fread(buf, 1, sizeof buf, stdin) > 0)
        ;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (strcmp(argv[1], "fds") == 0)
        return list_fds();
    if (strcmp(argv[1], "signals") == 0)
        return signal_state();
    if (strcmp(argv[1], "pgrp") == 0) {
        printf("%s\n", getpgrp() == getpid() ? "leader" : "member");
        return 0;
    }
    if (strcmp(argv[1], "ignore-term") == 0)
        return ignore_term();
    return 2;
}

/* The routes (routes.h). File serving reads the whole file with blocking
 * calls: an example's choice; a real server would use sendfile or a worker. */
#include "routes.h"

#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAX_FILE = 64 << 20 };

static const char hello[] = "Hello from protogen\n";

static void set(struct http_response *out, int status, const char *reason, const char *body)
{
    *out = (struct http_response){ status, reason, "text/plain", (const uint8_t *)body, strlen(body), NULL };
}

static int hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The path after /files/, %-decoded, or false when it could leave the root:
 * a ".." segment, a NUL, a bad escape. */
static bool file_path(const char *p, size_t len, char *out, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)p[i];
        if (c == '%') {
            int hi = i + 1 < len ? hex(p[i + 1]) : -1, lo = i + 2 < len ? hex(p[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == '\0' || n + 1 >= size)
            return false;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    for (const char *seg = out; *seg;) {
        size_t seg_len = strcspn(seg, "/");
        if (seg_len == 2 && seg[0] == '.' && seg[1] == '.')
            return false;
        seg += seg_len + (seg[seg_len] == '/');
    }
    return n > 0 && out[0] != '/';
}

static void serve_file(const char *root, const char *rel, struct http_response *out)
{
    char real_root[PATH_MAX], path[PATH_MAX], real[PATH_MAX];
    if (realpath(root, real_root) == NULL || strlen(real_root) + strlen(rel) + 2 > sizeof path) {
        set(out, 404, "Not Found", "not found\n");
        return;
    }
    strcpy(path, real_root);
    strcat(path, "/");
    strcat(path, rel);
    size_t root_len = strlen(real_root);
    /* A symbolic link inside the root may point outside it: the resolved path must stay in. */
    if (realpath(path, real) == NULL || strncmp(real, real_root, root_len) != 0 || real[root_len] != '/') {
        set(out, 404, "Not Found", "not found\n");
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE) {
        if (fd >= 0)
            close(fd);
        set(out, 404, "Not Found", "not found\n");
        return;
    }
    uint8_t *data = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (data != NULL && got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (data == NULL || got != (size_t)st.st_size) {
        free(data);
        set(out, 500, "Internal Server Error", "cannot read the file\n");
        return;
    }
    *out = (struct http_response){ 200, "OK", "application/octet-stream", data, got, data };
}

void route(const char *root, const char *method, const char *target, size_t target_len, const uint8_t *body,
           size_t body_len, struct http_response *out)
{
    size_t path_len = strcspn(target, "?");
    if (path_len > target_len)
        path_len = target_len;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (path_len == 1 && target[0] == '/') {
        if (get)
            set(out, 200, "OK", hello);
        else
            set(out, 405, "Method Not Allowed", "method not allowed\n");
        return;
    }
    if (path_len == 5 && memcmp(target, "/echo", 5) == 0) {
        if (strcmp(method, "POST") == 0)
            *out = (struct http_response){ 200, "OK", "application/octet-stream", body, body_len, NULL };
        else
            set(out, 405, "Method Not Allowed", "method not allowed\n");
        return;
    }
    char rel[PATH_MAX];
    if (root != NULL && path_len > 7 && memcmp(target, "/files/", 7) == 0) {
        if (!get)
            set(out, 405, "Method Not Allowed", "method not allowed\n");
        else if (!file_path(target + 7, path_len - 7, rel, sizeof rel))
            set(out, 404, "Not Found", "not found\n");
        else
            serve_file(root, rel, out);
        return;
    }
    set(out, 404, "Not Found", "not found\n");
}

#!/usr/bin/env bash
# protogen::core needs nothing of the loop and no thread: of the symbols
# libprotogen_core.a leaves undefined, none is a loop, timer, epoll, socket
# or thread function. Two pthread_ names are allowed, both in glibc's libc
# itself (no -pthread, no libpthread): pthread_once (PROTOGEN_TRACE is opened
# once, whichever thread traces first) and pthread_sigmask (a pipe written
# without SIGPIPE blocks it in the calling thread only).
#   core_symbols.sh LIBPROTOGEN_CORE_A
set -euo pipefail
lib=$1
defined=$(nm --defined-only --format=just-symbols "$lib" 2>/dev/null | sort -u)
undefined=$(nm -u --format=just-symbols "$lib" | sort -u | comm -23 - <(echo "$defined"))
[ -n "$undefined" ] || { echo "core_symbols: no undefined symbol in $lib: is it the core?" >&2; exit 1; }
bad=$(echo "$undefined" | grep -E '^(pg_loop_|pg_timer_|pg_tcp_|pg_unix_|pg_udp_|pg_pipe_|pg_server_|pg_subprocess_|pg_signal|epoll_|io_uring|socket$|bind$|listen$|accept|connect$|getaddrinfo|fork$|exec|pthread_|thrd_|mtx_|cnd_)' \
      | grep -vxE 'pthread_once|pthread_sigmask' || true)
if [ -n "$bad" ]; then
    echo "core_symbols: $lib needs the loop or threads:" >&2
    echo "$bad" >&2
    exit 1
fi
echo "core_symbols: $(echo "$undefined" | wc -l) external symbols, none of the loop or of threads"

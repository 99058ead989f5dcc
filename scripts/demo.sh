#!/usr/bin/env bash
# make demo: generate the echo protocol, run the server, round-trip 1 MiB with the
# client (which stops reading for a moment), and show the server's trace.
set -euo pipefail
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

echo "== protogen examples/echo/echo.spec"
cp "$top/examples/echo/echo.spec" "$work/"
"$top/bin/protogen" "$work/echo.spec" -o "$work"
( cd "$work" && wc -l echo.h echo.c echo_bind.c echo_handlers.c )

echo
echo "== echo_server --port 0 (PROTOGEN_TRACE on, small kernel send buffer)"
PROTOGEN_TRACE="$work/trace" "$build/examples/echo/echo_server" --port 0 --sndbuf 16384 >"$work/server.out" &
server_pid=$!
for _ in $(seq 100); do
    grep -q '^listening on ' "$work/server.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { echo "echo_server failed to start" >&2; exit 1; }
    sleep 0.05
done
cat "$work/server.out"
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/server.out")

echo
echo "== echo_client --port $port --bytes 1048576 --hold-ms 200"
"$build/examples/echo/echo_client" --port "$port" --bytes 1048576 --hold-ms 200

kill -TERM "$server_pid"
wait "$server_pid"
server_pid=""

echo
echo "== the server's trace (runs of data_received folded)"
awk '
    function flush() { if (n) { printf "%s data_received %d  (%d call%s)\n", c, bytes, n, (n > 1 ? "s" : ""); n = 0; bytes = 0 } }
    $2 == "data_received" { c = $1; n++; bytes += $3; next }
    { flush(); print }
    END { flush() }
' "$work/trace"

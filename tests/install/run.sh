#!/usr/bin/env bash
# Installs protogen into a scratch prefix with the README's recipe (Release, no
# tests, no examples), then builds and runs outside programs against it:
#   - a CMake project that uses only find_package(protogen) and protogen_generate(),
#     with a program on the built-in loop and one on the manual host against
#     protogen::core alone (CORE_ONLY);
#   - the same program built with `pkg-config --cflags --libs protogen` alone,
#     against the shared library and against the static one.
#   run.sh SOURCE_DIR WORK_DIR C_COMPILER SANITIZE(ON|OFF)
set -euo pipefail
src=$1 work=$2 cc=$3 sanitize=${4:-OFF}
rm -rf "$work"
mkdir -p "$work"
fail() { echo "install test: $*" >&2; exit 1; }

cmake -S "$src" -B "$work/protogen-build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER="$cc" \
      -DCMAKE_INSTALL_PREFIX="$work/prefix" -DPROTOGEN_BUILD_TESTS=OFF -DPROTOGEN_BUILD_EXAMPLES=OFF \
      -DPROTOGEN_SANITIZE="$sanitize" >/dev/null
cmake --build "$work/protogen-build" -j2 >/dev/null
cmake --install "$work/protogen-build" >/dev/null

# The CMake project is copied: its handler skeleton gets written beside its spec.
cp -r "$src/tests/install/outside" "$work/outside"
flags=""
[ "$sanitize" = ON ] && flags="-fsanitize=address,undefined"
cmake -S "$work/outside" -B "$work/outside-build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags"
test -f "$work/outside/greeter_handlers.c"   # the skeleton, written once at configure time
cmake --build "$work/outside-build"
"$work/outside-build/greeter"
# protogen_generate(... CORE_ONLY): no shouter_bind.c, nothing of the loop in
# the program, and the protocol runs on the manual host.
[ ! -e "$work/outside-build/protogen/shouter_bind.c" ] || fail "CORE_ONLY generated shouter_bind.c"
loopish=$(nm "$work/outside-build/shouter" | grep -E ' (pg_loop_|epoll_|pthread_create)' || true)
[ -z "$loopish" ] || fail "shouter links the loop: $loopish"
"$work/outside-build/shouter"
core=$(find "$work/prefix" -name libprotogen_core.a)
[ -n "$core" ] || fail "no libprotogen_core.a installed"
"$src/tests/runtime/core_symbols.sh" "$core"

# ---- Outside CMake: pkg-config only ----
pc=$(find "$work/prefix" -name protogen.pc)
[ -n "$pc" ] || fail "no protogen.pc installed"
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
version=$(pkg-config --modversion protogen)
generator=$(pkg-config --variable=protogen protogen)
libdir=$(pkg-config --variable=libdir protogen)
[ "$("$generator" --version)" = "protogen $version" ] || fail "protogen --version is not the .pc's $version"

# libprotogen.so.0 -> the full version, exporting the API only.
[ -L "$libdir/libprotogen.so" ] && [ -L "$libdir/libprotogen.so.0" ] && [ -f "$libdir/libprotogen.so.$version" ] \
    || fail "expected libprotogen.so -> libprotogen.so.0 -> libprotogen.so.$version in $libdir"
# A match is grepped to the end (>/dev/null, not -q): grep -q stops at it, and
# under pipefail the writer's SIGPIPE would fail the check.
readelf -d "$libdir/libprotogen.so.$version" | grep 'SONAME.*\[libprotogen\.so\.0\]' >/dev/null || fail "soname"
! nm -D --defined-only "$libdir/libprotogen.so.$version" | grep -q ' pg__' || fail "libprotogen.so exports pg__ internals"
nm -D --defined-only "$libdir/libprotogen.so.$version" | grep ' pg_loop_new$' >/dev/null || fail "libprotogen.so lacks pg_loop_new"

mkdir "$work/pc"
cp "$src/tests/install/outside/greeter.spec" "$src/tests/install/outside/main.c" "$work/pc/"
"$generator" "$work/pc/greeter.spec" -o "$work/pc"
mapfile -t sources < <("$generator" --list-outputs "$work/pc/greeter.spec" -o "$work/pc" --emit source,bind,handlers)
warnings=(-std=c11 -Wall -Wextra -Wpedantic -Werror)
# shellcheck disable=SC2046,SC2086  # pkg-config's words are meant to split
"$cc" "${warnings[@]}" $flags -o "$work/pc/greeter-shared" "$work/pc/main.c" "${sources[@]}" \
      $(pkg-config --cflags --libs protogen)
readelf -d "$work/pc/greeter-shared" | grep 'NEEDED.*\[libprotogen\.so\.0\]' >/dev/null || fail "not linked to libprotogen.so.0"
out=$(LD_LIBRARY_PATH="$libdir" "$work/pc/greeter-shared")
[ "$out" = "greeter: built against protogen $version" ] || fail "shared: $out"

# shellcheck disable=SC2046,SC2086
"$cc" "${warnings[@]}" $flags -o "$work/pc/greeter-static" "$work/pc/main.c" "${sources[@]}" \
      $(pkg-config --cflags protogen) -Wl,-Bstatic $(pkg-config --static --libs protogen) -Wl,-Bdynamic
! readelf -d "$work/pc/greeter-static" | grep -q 'libprotogen' || fail "static build needs libprotogen.so"
out=$("$work/pc/greeter-static")
[ "$out" = "greeter: built against protogen $version" ] || fail "static: $out"
echo "install test: CMake package, pkg-config shared and static, all protogen $version"

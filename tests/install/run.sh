#!/usr/bin/env bash
# Installs protogen into a scratch prefix, then configures, builds and runs an
# outside project that uses only find_package(protogen) and protogen_generate().
#   run.sh SOURCE_DIR WORK_DIR C_COMPILER SANITIZE(ON|OFF)
set -euo pipefail
src=$1 work=$2 cc=$3 sanitize=${4:-OFF}
rm -rf "$work"
mkdir -p "$work"

cmake -S "$src" -B "$work/protogen-build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_INSTALL_PREFIX="$work/prefix" \
      -DPROTOGEN_BUILD_TESTS=OFF -DPROTOGEN_BUILD_EXAMPLES=OFF -DPROTOGEN_SANITIZE="$sanitize" >/dev/null
cmake --build "$work/protogen-build" -j2 >/dev/null
cmake --install "$work/protogen-build" >/dev/null

# The outside project is copied: its handler skeleton gets written beside its spec.
cp -r "$src/tests/install/outside" "$work/outside"
flags=""
[ "$sanitize" = ON ] && flags="-fsanitize=address,undefined"
cmake -S "$work/outside" -B "$work/outside-build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$work/prefix" \
      -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags"
test -f "$work/outside/greeter_handlers.c"   # the skeleton, written once at configure time
cmake --build "$work/outside-build"
"$work/outside-build/greeter"

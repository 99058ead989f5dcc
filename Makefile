# The README's two commands. Each installs the missing Debian packages first.
#   make demo   build, generate the echo example, run its server and client
#   make test   build and run the whole test suite
# Also: make build, make sanitize (the suite under ASan+UBSan), make tsan (the C tests and the
# end-to-end runs under ThreadSanitizer), make valgrind (the runtime tests and one end-to-end run
# under valgrind memcheck), make clean.
#   make bench        the benchmark of issue 7 (bench/README.md): ~10 minutes, prints the table
#   make bench-smoke  the same, one short run of each workload (CI: it builds and completes)

BUILD ?= build
CMAKE_FLAGS ?=

.PHONY: all setup build demo test sanitize tsan valgrind clean bench bench-build bench-smoke

all: build

setup:
	@scripts/setup.sh

build: setup
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j2

demo: build
	@scripts/demo.sh $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure -j2

sanitize: setup
	$(MAKE) test BUILD=build-sanitize CMAKE_FLAGS="-DPROTOGEN_SANITIZE=ON"

# ThreadSanitizer (a build of its own: it excludes ASan). Every test that runs C: the runtime's
# (test_threads: loops on several threads), generated, split, faults, conformance and end to
# end (echo_server --threads 2); not the generator's Python tests, nor the install test (it
# builds an outside project without TSan), nor the runs on the libuv and poll hosts, programs
# with one thread only, where TSan has nothing to find (they are the slowest under it). The
# first race report ends its process (exit 66).
TSAN_SKIP = ^(generator|version_agrees|install_outside_project)|_(libuv|poll)$$
tsan: setup
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DPROTOGEN_TSAN=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build-tsan -j2
	cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
		ctest --output-on-failure -j2 -E '$(TSAN_SKIP)'

# A build of its own (build-valgrind) with the tests labelled valgrind, and only those run.
valgrind: setup
	cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=Debug -DPROTOGEN_TEST_VALGRIND=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build-valgrind -j2
	cd build-valgrind && ctest -L valgrind --output-on-failure -j2

# Release build of its own (build-bench), never the Debug build the tests use.
bench-build:
	@scripts/setup.sh libuv1-dev valgrind strace redis-server redis-tools libhiredis-dev nginx-light wrk apache2-utils
	cmake -S bench -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-bench -j2 --target bench

bench: bench-build
	python3 bench/run.py --build build-bench

bench-smoke: bench-build
	python3 bench/run.py --build build-bench --smoke

clean:
	rm -rf build build-clang build-sanitize build-tsan build-valgrind build-bench

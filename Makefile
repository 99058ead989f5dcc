# The README's two commands. Each installs the missing Debian packages first.
#   make demo   build, generate the echo example, run its server and client
#   make test   build and run the whole test suite
# Also: make build, make sanitize (the suite under ASan+UBSan), make valgrind (the runtime
# tests and one end-to-end run under valgrind memcheck), make clean.
#   make bench        the benchmark of issue 7 (bench/README.md): ~10 minutes, prints the table
#   make bench-smoke  the same, one short run of each workload (CI: it builds and completes)

BUILD ?= build
CMAKE_FLAGS ?=

.PHONY: all setup build demo test sanitize valgrind clean bench bench-build bench-smoke

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

# A build of its own (build-valgrind) with the tests labelled valgrind, and only those run.
valgrind: setup
	cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=Debug -DPROTOGEN_TEST_VALGRIND=ON $(CMAKE_FLAGS) >/dev/null
	cmake --build build-valgrind -j2
	cd build-valgrind && ctest -L valgrind --output-on-failure -j2

# Release build of its own (build-bench), never the Debug build the tests use.
bench-build:
	@scripts/setup.sh libuv1-dev valgrind strace redis-server redis-tools libhiredis-dev
	cmake -S bench -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-bench -j2 --target bench

bench: bench-build
	python3 bench/run.py --build build-bench

bench-smoke: bench-build
	python3 bench/run.py --build build-bench --smoke

clean:
	rm -rf build build-clang build-sanitize build-valgrind build-bench

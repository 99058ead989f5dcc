# The README's two commands. Each installs the missing Debian packages first.
#   make demo   build, generate the echo example, run its server and client
#   make test   build and run the whole test suite
# Also: make build, make sanitize (the suite under ASan+UBSan), make clean.

BUILD ?= build
CMAKE_FLAGS ?=

.PHONY: all setup build demo test sanitize clean

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

clean:
	rm -rf build build-sanitize

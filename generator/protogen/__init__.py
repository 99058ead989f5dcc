"""protogen: generates non-blocking C protocol code from a declarative spec."""

VERSION = "0.1.0"

# The runtime ABI the generated code is written for (runtime/include/protogen/version.h).
RUNTIME_ABI = 1

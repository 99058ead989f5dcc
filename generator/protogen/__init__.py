"""protogen: generates non-blocking C protocol code from a declarative spec."""

# Both come from the runtime's version.h, the one place they are kept: VERSION is
# protogen's, RUNTIME_ABI the runtime ABI the generated code is written for.
from protogen.version import RUNTIME_ABI, VERSION  # noqa: F401

"""protogen's version and the runtime ABI it generates for, read from the runtime's version.h.

version.h is the one place they are kept (CMake reads it too). The generator
finds it in the source tree (runtime/include/protogen/version.h) or, installed,
beside its templates (share/protogen/version.h, a copy made by cmake --install).
"""

import os
import re

_BASE = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CANDIDATES = (os.path.join(_BASE, "runtime", "include", "protogen", "version.h"),   # source tree
              os.path.join(_BASE, "version.h"))                                       # share/protogen


def _read():
    """(version, abi, header path, problem): problem is None when the header was read."""
    for path in CANDIDATES:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        numbers = dict(re.findall(r"^#define PG_(VERSION_MAJOR|VERSION_MINOR|VERSION_PATCH|ABI_VERSION) +(\d+) *$",
                                  text, re.M))
        if len(numbers) != 4:
            return "unknown", 0, path, f"{path} does not define PG_VERSION_MAJOR/MINOR/PATCH and PG_ABI_VERSION"
        version = ".".join(str(int(numbers[k])) for k in ("VERSION_MAJOR", "VERSION_MINOR", "VERSION_PATCH"))
        return version, int(numbers["ABI_VERSION"]), path, None
    return "unknown", 0, None, f"cannot find the runtime's version.h (looked for {' and '.join(CANDIDATES)})"


VERSION, RUNTIME_ABI, HEADER, PROBLEM = _read()

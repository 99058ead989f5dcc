"""NAME.c of a framed protocol needs only the core: every runtime symbol its
object leaves undefined (nm -u) is defined in libprotogen_core.a.

    core_only.py PROTOGEN CC INCLUDE_DIR LIBPROTOGEN_CORE SPEC...
"""

import os
import subprocess
import sys
import tempfile


def symbols(args):
    out = subprocess.run(["nm", *args], check=True, capture_output=True, text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip() and not line.endswith(":")}


def main(protogen, cc, include, core, specs):
    defined = symbols(["--defined-only", "-g", core])
    with tempfile.TemporaryDirectory() as tmp:
        for spec in specs:
            name = os.path.splitext(os.path.basename(spec))[0]
            subprocess.run([protogen, spec, "-o", tmp, "--handlers-dir", tmp, "--emit", "header,source"], check=True)
            obj = os.path.join(tmp, name + ".o")
            subprocess.run([cc, "-std=c11", "-c", "-I", include, "-I", tmp, os.path.join(tmp, name + ".c"), "-o", obj],
                           check=True)
            missing = sorted(s for s in symbols(["-u", obj]) if s.startswith("pg_") and s not in defined)
            assert not missing, f"{name}.c needs runtime symbols outside the core: {missing}"
            print(f"{name}.c: every runtime symbol it uses is in the core")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])

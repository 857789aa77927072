"""Build the compiled parts of the bid path in place (scripts/setup.sh runs it; safe to run again).

    .venv/bin/python scripts/build_ext.py

Each extension is a Cython module next to the Python that uses it (``apps/inference/_colanet.pyx`` ->
``apps/inference/_colanet.cpython-311-x86_64-linux-gnu.so``): the scorer kernel and the token packer
(``apps/bidding/_tokens.pyx``, linked with OpenSSL's libcrypto). Needs Cython (requirements/base.txt), a C
compiler, the Python headers and OpenSSL's (scripts/setup.sh installs build-essential, python3-dev and
libssl-dev where missing). Each module has a Python path that gives the same results when it is missing. Floating point is compiled without contraction (-ffp-contract=off: no FMA fusing), so every
float32 product and sum is rounded on its own, in the C loops and their AVX2 versions alike
(apps/inference/_colanet_simd.h, same bits; tests/inference/test_colanet_kernel.py checks it).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTENSIONS = {  # name: (source, libraries to link)
    "apps.inference._colanet": ("apps/inference/_colanet.pyx", []),
    "apps.bidding._tokens": ("apps/bidding/_tokens.pyx", ["crypto"]),  # OpenSSL's SHA-256 (libssl-dev)
    # plain Python compiled as it is (the import system prefers the .so next to the .py)
    "apps.analytics._rows": ("apps/analytics/_rows.py", []),
}


def main() -> None:
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    import numpy
    from Cython.Build import cythonize
    from setuptools import Extension, setup

    # -O3 vectorises the kernels' loops; -ffp-contract=off keeps every float32 product and sum rounded
    # on its own, as numpy's ufuncs round them (no FMA fusing)
    flags = ["-O3", "-ffp-contract=off", "-fno-fast-math", "-Wno-unreachable-code"]
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    flags.append("-Wno-deprecated-declarations")  # SHA256_Init/Update/Final: deprecated in OpenSSL 3, kept
    extensions = [Extension(name, [path], include_dirs=[numpy.get_include()], define_macros=macros, libraries=libs,
                            extra_compile_args=flags, depends=[str(h) for h in Path(path).parent.glob("_*.h")])
                  for name, (path, libs) in EXTENSIONS.items()]
    setup(
        name="campaign-express-ext",
        ext_modules=cythonize(extensions, quiet=True, compiler_directives={"language_level": 3}),
        script_args=["build_ext", "--inplace", "--build-temp", str(ROOT / "var" / "build"), "--build-lib", str(ROOT / "var" / "build" / "lib")],
    )


if __name__ == "__main__":
    main()

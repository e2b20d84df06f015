"""Build the Lambda package: handler.py plus the vendored library, zipped.

    python3.13 build.py                  # vendor this checkout's src/agentcore_bridge
    python3.13 build.py --pip agentcore-bridge==0.1.0   # or a released version
    python build.py --python python3.13  # compile the bytecode with another Python

Writes ``build/package/`` (what SAM's ``CodeUri`` points at) and
``build/bridge.zip`` (what Terraform uploads). The standard library is all
the Lambda adapter needs at run time; botocore, used only by the fallback
credential provider, is part of Lambda's Python runtime already.

The package carries its modules' bytecode, compiled by the Python given
with ``--python`` (by default the one running this script). Lambda unpacks
the code into a read-only folder, so without it Python compiles every
module of the library again at every cold start, tens of milliseconds,
and cannot keep the result. The bytecode is hash-based and unchecked: it
does not depend on file times, which the zip fixes, and Python uses it
without reading the source's time or hash. It is used only by the Python
version that wrote it, so build with the function's runtime (3.13 in
main.tf and template.yaml); another version's bytecode is ignored and
the function compiles at start, as with none.

The zip is reproducible: the same sources give the same bytes (sorted
entries, fixed timestamps and permissions, bytecode that names the
modules by their path on Lambda, ``/var/task``). That matters with
SnapStart: Terraform publishes a new version, and so a new billed
snapshot, whenever the zip's hash changes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_SOURCE = HERE.parent.parent / "src" / "agentcore_bridge"

# Parts of the library that never run on Lambda: the aiohttp server and
# client, the local emulators and the browser client.
NOT_ON_LAMBDA = ("aio", "server", "local", "static")

# 1980-01-01, the earliest time a zip entry can carry.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

#: The Python of the function's runtime (python3.13 in main.tf and
#: template.yaml): the version whose bytecode the package should carry.
RUNTIME_VERSION = "3.13"

#: Where Lambda puts the function's code; module paths in the bytecode.
TASK_ROOT = "/var/task"


def vendor_from_checkout(source: Path, package: Path) -> None:
    """Copy the library from a source tree, leaving out what Lambda never runs."""
    if not (source / "awslambda").is_dir():
        raise SystemExit(f"{source} does not hold agentcore_bridge with awslambda/")
    shutil.copytree(
        source,
        package / "agentcore_bridge",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", *NOT_ON_LAMBDA),
    )


def vendor_from_pip(requirement: str, package: Path) -> None:
    """Install a released version into the package, without its dependencies."""
    # The requirement comes from the command line of whoever builds.
    subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-compile",
            "--target",
            str(package),
            requirement,
        ],
        check=True,
    )

    # The same package as from a checkout: a release holds every part,
    # and pip adds the command-line script, none of which Lambda runs.
    library = package / "agentcore_bridge"
    if not (library / "awslambda").is_dir():
        raise SystemExit(f"{requirement} did not install agentcore_bridge/awslambda")
    for name in NOT_ON_LAMBDA:
        shutil.rmtree(library / name, ignore_errors=True)
    shutil.rmtree(package / "bin", ignore_errors=True)


def python_version(python: str) -> str:
    """The ``X.Y`` version of the interpreter ``python``."""
    # The interpreter comes from the command line of whoever builds.
    done = subprocess.run(  # noqa: S603
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def compile_bytecode(package: Path, python: str) -> None:
    """Write unchecked hash-based bytecode for every module of ``package``."""
    # A set literal compiles to a frozenset constant, written in the order
    # of its members' string hashes: a fixed hash seed makes the bytecode,
    # and so the zip, the same at every build.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    # The interpreter comes from the command line of whoever builds.
    subprocess.run(  # noqa: S603
        [
            python,
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(package),
            "-p",
            TASK_ROOT,
            str(package),
        ],
        check=True,
        env=env,
    )


def write_zip(package: Path, archive: Path) -> None:
    """Zip ``package`` so that the same files always give the same bytes."""
    files = sorted(p for p in package.rglob("*") if p.is_file())
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(package).as_posix(), ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())


def build(
    out: Path,
    requirement: str | None = None,
    source: Path = REPO_SOURCE,
    python: str = sys.executable,
) -> Path:
    """Build ``out/package`` and ``out/bridge.zip``; return the zip's path.

    ``python`` compiles the bytecode (see the module's docstring).
    """
    package = out / "package"
    if package.exists():
        shutil.rmtree(package)
    package.mkdir(parents=True)

    if requirement:
        vendor_from_pip(requirement, package)
    else:
        vendor_from_checkout(source, package)
    shutil.copy2(HERE / "handler.py", package / "handler.py")
    compile_bytecode(package, python)

    archive = out / "bridge.zip"
    write_zip(package, archive)
    return archive


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pip",
        metavar="REQUIREMENT",
        help="vendor a released agentcore-bridge (for example "
        "agentcore-bridge==0.1.0) instead of this checkout",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help=f"the Python that compiles the bytecode: the function's runtime, "
        f"{RUNTIME_VERSION} (default: the Python running this script)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "build",
        help="output folder (default: build/ next to this script)",
    )
    args = parser.parse_args(argv)
    version = python_version(args.python)
    archive = build(args.out, args.pip, python=args.python)
    print(f"wrote {archive} ({archive.stat().st_size} bytes)")
    if version != RUNTIME_VERSION:
        print(
            f"note: the bytecode is Python {version}'s, and the function runs "
            f"Python {RUNTIME_VERSION}, which ignores it and compiles the library "
            f"at every cold start; build with --python python{RUNTIME_VERSION}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()

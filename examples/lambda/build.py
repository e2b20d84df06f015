"""Build the Lambda package: handler.py plus the vendored library, zipped.

    python build.py                      # vendor this checkout's src/agentcore_bridge
    python build.py --pip agentcore-bridge==0.1.0   # or a released version

Writes ``build/package/`` (what SAM's ``CodeUri`` points at) and
``build/bridge.zip`` (what Terraform uploads). The standard library is all
the Lambda adapter needs at run time; botocore, used only by the fallback
credential provider, is part of Lambda's Python runtime already.

The zip is reproducible: the same sources give the same bytes (sorted
entries, fixed timestamps and permissions). That matters with SnapStart:
Terraform publishes a new version, and so a new billed snapshot, whenever the
zip's hash changes.
"""

from __future__ import annotations

import argparse
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
    out: Path, requirement: str | None = None, source: Path = REPO_SOURCE
) -> Path:
    """Build ``out/package`` and ``out/bridge.zip``; return the zip's path."""
    package = out / "package"
    if package.exists():
        shutil.rmtree(package)
    package.mkdir(parents=True)

    if requirement:
        vendor_from_pip(requirement, package)
    else:
        vendor_from_checkout(source, package)
    shutil.copy2(HERE / "handler.py", package / "handler.py")

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
        "--out",
        type=Path,
        default=HERE / "build",
        help="output folder (default: build/ next to this script)",
    )
    args = parser.parse_args(argv)
    archive = build(args.out, args.pip)
    print(f"wrote {archive} ({archive.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

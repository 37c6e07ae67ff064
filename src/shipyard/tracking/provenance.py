"""Where a run's code and environment came from: the git commit, whether the tree was dirty and
a hash of the uncommitted diff; Python, the key packages and a hash of the lock file.

Captured once per run, best effort: a folder outside git, or a machine without git, gives
``{"git": None}`` rather than an error, since training must not fail for want of provenance.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

GIT_TIMEOUT_S = 10.0
# The packages whose versions decide what a model computes, recorded when installed.
KEY_PACKAGES = (
    "shipyard",
    "numpy",
    "onnx",
    "onnxruntime",
    "torch",
    "scikit-learn",
    "keras",
    "transformers",
    "pandas",
)
LOCK_FILES = (
    "uv.lock",
    "poetry.lock",
    "pylock.toml",
    "requirements.lock",
    "requirements.txt",
    "pyproject.toml",
)


def _git(folder: Path, *args: str) -> bytes | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def code_version(folder: Path) -> dict[str, Any]:
    """The commit checked out in ``folder``'s repository, its dirty flag and diff hash."""
    top = _git(folder, "rev-parse", "--show-toplevel")
    commit = _git(folder, "rev-parse", "HEAD")
    if top is None or commit is None:
        return {"git": None, "folder": str(folder.resolve())}
    status = _git(folder, "status", "--porcelain", "--untracked-files=no") or b""
    diff = _git(folder, "diff", "HEAD", "--binary") or b""
    dirty = bool(status.strip())
    return {
        "git": commit.decode().strip(),
        "repository": top.decode().strip(),
        "dirty": dirty,
        "diff_sha256": hashlib.sha256(diff).hexdigest() if dirty else None,
    }


def environment(folder: Path) -> dict[str, Any]:
    """Python, the platform, the key packages installed, and a hash of the lock file found
    in ``folder`` or above it (else of the installed distributions, one line each)."""
    packages: dict[str, str] = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    lock_name, lock_hash = _lock_hash(folder)
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "packages": packages,
        "lock": lock_name,
        "lock_sha256": lock_hash,
    }


def _lock_hash(folder: Path) -> tuple[str, str]:
    for candidate in [folder.resolve(), *folder.resolve().parents]:
        for name in LOCK_FILES:
            path = candidate / name
            if path.is_file():
                return str(path), hashlib.sha256(path.read_bytes()).hexdigest()
        if (candidate / ".git").exists():
            break  # the lock of a repository is at its top, not above it
    installed = sorted(
        f"{dist.metadata['Name']}=={dist.version}" for dist in metadata.distributions()
    )
    return "installed distributions", hashlib.sha256("\n".join(installed).encode()).hexdigest()

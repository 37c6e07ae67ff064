"""What the monitoring stack needs from Shipyard: a Prometheus rule file and a Grafana dashboard.

Both are plain text built from the metric names the server and the monitor export, so they
stay in step with them; nothing here touches the registry or a running server, and only the
standard library is imported (``shipyard deploy`` works on a machine that only writes configs).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from shipyard.deploy.grafana import dashboard, render_dashboard
from shipyard.deploy.prometheus import RuleOptions, render_rules, rule_file
from shipyard.errors import InvalidInputError


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically; a missing folder is the caller's mistake.

    Prometheus and Grafana reload these files while they run, so a half-written file must
    never be visible: the text goes to a temporary file beside ``path``, then replaces it.
    """
    folder = path.parent
    if not folder.is_dir():
        raise InvalidInputError(f"cannot write {path}: the folder {folder} does not exist")
    if path.is_dir():
        raise InvalidInputError(f"cannot write {path}: it is a folder")
    try:
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from a prometheus user
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise InvalidInputError(f"cannot write {path}: {exc.strerror or exc}") from None


__all__ = [
    "RuleOptions",
    "dashboard",
    "render_dashboard",
    "render_rules",
    "rule_file",
    "write_text",
]

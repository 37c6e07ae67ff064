"""Two real processes register the same name at the same moment."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import shipyard
from helpers import release_together
from shipyard import Registry, Settings

WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    import shipyard
    from shipyard import Registry, Settings

    home, model, go, ready = (Path(arg) for arg in sys.argv[1:5])
    with Registry(Settings(home=home)) as registry:
        ready.touch()
        while not go.exists():
            time.sleep(0.001)
        version = shipyard.register(model, "race", registry=registry)
    print(json.dumps({"version": version.version, "digest": version.artifact_digest}))
    """
)


def _run_together(tmp_path: Path, home: Path, model: Path, workers: int) -> list[Any]:
    return release_together(tmp_path, WORKER, [str(home), str(model)], workers)


def test_two_processes_register_the_same_name(tmp_path: Path, tiny_onnx_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    Registry(settings).close()  # migrated up front: the race is on the version number
    reports = _run_together(tmp_path, settings.home, tiny_onnx_path, workers=2)

    assert sorted(r["version"] for r in reports) == [1, 2]
    assert reports[0]["digest"] == reports[1]["digest"]
    with Registry(settings) as registry:
        versions = registry.list_versions("race")
        assert [v.version for v in versions] == [1, 2]
        for v in versions:
            registry.verify(v.ref)
            outputs = shipyard.load(v.ref, registry=registry).predict([[1.0, 2.0, 3.0]])
            assert outputs["y"].shape == (1, 2)
        registered = [e for e in registry.events("race") if e.kind == "version.registered"]
        assert sorted(e.to_version for e in registered) == [1, 2]
        assert len(registry.list_models()) == 1

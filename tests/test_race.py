"""Two real processes register the same name at the same moment."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import shipyard
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


def _run_together(tmp_path: Path, home: Path, model: Path, workers: int) -> list[dict[str, object]]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(workers)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(home), str(model), str(go), str(r)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]
    try:
        deadline = time.monotonic() + 120
        while not all(r.exists() for r in ready):
            assert time.monotonic() < deadline, "the workers did not start"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.01)
        go.touch()  # release both at once
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    return [json.loads(out) for out, _ in results]


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

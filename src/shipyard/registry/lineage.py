"""Where a version came from and what came of it: the run that made it, the version it was
optimized from and those optimized from it, and the rollouts it took part in.

Read from the registry's own records (a version's ``run_id`` and ``parent_version``, the
rollouts table), so it needs nothing beyond the registry and answers for any backend.
"""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.errors import NotFoundError
from shipyard.registry.domain import ModelVersion
from shipyard.registry.registry import Registry
from shipyard.registry.rollouts import Rollout
from shipyard.registry.runs import Run


@dataclass(frozen=True)
class Lineage:
    version: ModelVersion
    run: Run | None  # the run that registered it (its parent's, for an optimized version)
    parent: ModelVersion | None  # the version it was optimized from
    derived: list[ModelVersion]  # versions optimized from it
    rollouts: list[Rollout]  # rollouts with it as baseline or candidate, oldest first


def lineage_of(registry: Registry, version: ModelVersion) -> Lineage:
    versions = {v.version: v for v in registry.list_versions(version.name)}
    parent = versions.get(version.parent_version) if version.parent_version else None
    run_id = version.run_id or (parent.run_id if parent is not None else None)
    run = None
    if run_id is not None:
        try:
            run = registry.runs.get(run_id)
        except NotFoundError:  # the run was removed; the version keeps its id
            run = None
    derived = [v for v in versions.values() if v.parent_version == version.version]
    rollouts = [
        r
        for r in registry.rollouts.history(version.name)
        if version.version in (r.baseline, r.candidate)
    ]
    return Lineage(version, run, parent, derived, rollouts)

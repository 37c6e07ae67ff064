"""What a candidate must satisfy before it takes any traffic, and before a rollout starts.

- both versions exist, the candidate is not the baseline, and it is ready (not archived);
- its signature is compatible with the baseline's: the same kind, every input the baseline
  takes with the same type and a shape that accepts the same requests, and every output
  the baseline answers with the same type, so that no client notices which one answered.

``problems`` lists every incompatibility in words; ``require_compatible`` refuses with all
of them at once.
"""

from __future__ import annotations

from shipyard.errors import InvalidInputError
from shipyard.registry import ModelVersion, TensorSpec, VersionStatus


def problems(baseline: ModelVersion, candidate: ModelVersion) -> list[str]:
    """Why ``candidate`` cannot stand in for ``baseline`` (empty when it can)."""
    found: list[str] = []
    if candidate.status is not VersionStatus.READY:
        found.append(f"version {candidate.version} is {candidate.status.value}, not ready")
    if candidate.kind is not baseline.kind:
        found.append(f"it is a {candidate.kind.value} model, the baseline a {baseline.kind.value}")
        return found
    theirs = {spec.name: spec for spec in candidate.signature.inputs}
    for spec in baseline.signature.inputs:
        other = theirs.pop(spec.name, None)
        if other is None:
            found.append(f"it lacks the input {spec.name!r}")
        else:
            found.extend(_differences("input", spec, other))
    for name in sorted(theirs):
        found.append(f"it needs an input the baseline does not: {name!r}")
    answers = {spec.name: spec for spec in candidate.signature.outputs}
    for spec in baseline.signature.outputs:
        other = answers.get(spec.name)
        if other is None:
            found.append(f"it lacks the output {spec.name!r}")
        else:
            found.extend(_differences("output", spec, other))
    return found


def require_compatible(baseline: ModelVersion, candidate: ModelVersion) -> None:
    if candidate.version == baseline.version:
        raise InvalidInputError(
            f"the candidate is the baseline ({baseline.ref}): nothing to roll out"
        )
    found = problems(baseline, candidate)
    if found:
        raise InvalidInputError(
            f"{candidate.ref} cannot replace {baseline.ref}: {'; '.join(found)}"
        )


def _differences(role: str, ours: TensorSpec, theirs: TensorSpec) -> list[str]:
    found = []
    if ours.datatype != theirs.datatype:
        found.append(
            f"its {role} {ours.name!r} is {theirs.datatype}, the baseline's {ours.datatype}"
        )
    if not _shapes_agree(ours.shape, theirs.shape):
        found.append(
            f"its {role} {ours.name!r} has shape {list(theirs.shape)}, "
            f"the baseline's {list(ours.shape)}"
        )
    return found


def _shapes_agree(ours: tuple[int, ...], theirs: tuple[int, ...]) -> bool:
    """The same rank, and every dimension either dynamic (-1) on one side or equal."""
    if len(ours) != len(theirs):
        return False
    return all(a == b or a == -1 or b == -1 for a, b in zip(ours, theirs, strict=True))

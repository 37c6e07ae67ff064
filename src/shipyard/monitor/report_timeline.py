"""The report's history of a model: one timeline of its versions (registered when, derived
from which version), where each alias pointed over time and when each rollout ran; the
table of versions with their lineage; and the whole audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shipyard.monitor.report_html import (
    MARKER_COLOUR,
    STATE_COLOURS,
    Html,
    TimeScale,
    colour_of,
    escape,
    join,
    note,
    percent,
    table,
    when,
)
from shipyard.monitor.report_story import Story
from shipyard.registry import Event, ModelVersion

WIDTH = 960
TOP = 18  # room above the first lane for the lineage arcs
LANE = 34  # pixels per lane
LABELS = 110  # the lanes' names, on the left


@dataclass(frozen=True)
class AliasSpan:
    """An alias pointing at one version from ``start`` until ``end`` (None: still)."""

    alias: str
    version: int
    start: datetime
    end: datetime | None
    reason: str


def alias_spans(story: Story) -> list[AliasSpan]:
    """Where each alias pointed, from its moves in the audit log."""
    spans: list[AliasSpan] = []
    open_spans: dict[str, AliasSpan] = {}
    for event in story.events:
        if event.alias is None or event.kind not in ("alias.set", "alias.deleted"):
            continue
        current = open_spans.pop(event.alias, None)
        if current is not None:
            spans.append(
                AliasSpan(current.alias, current.version, current.start, event.at, current.reason)
            )
        if event.kind == "alias.set" and event.to_version is not None:
            open_spans[event.alias] = AliasSpan(
                event.alias, event.to_version, event.at, None, event.reason or ""
            )
    spans.extend(open_spans.values())
    return spans


def timeline(story: Story) -> Html:
    spans = alias_spans(story)
    aliases = sorted({s.alias for s in spans}, key=lambda a: (a != "production", a))
    lanes = ["versions", *(f"@{a}" for a in aliases), "rollouts"]
    moments = [v.created_at for v in story.versions] + [e.at for e in story.events]
    moments.append(story.read_at)
    scale = TimeScale.over(moments, LABELS, WIDTH - LABELS - 20)
    height = TOP + LANE * len(lanes) + 24
    shapes = [
        f"<text x='4' y='{TOP + i * LANE + 22}'>{escape(lane)}</text>"
        for i, lane in enumerate(lanes)
    ]
    shapes += [_version_marks(story.versions, scale)]
    for span in spans:
        until = when(span.end) if span.end else "now"
        why = f" ({span.reason})" if span.reason else ""
        title = f"@{span.alias} → {story.model}:{span.version}, {when(span.start)} to {until}{why}"
        end = span.end or story.read_at
        row = 1 + aliases.index(span.alias)
        shapes.append(
            _bar(scale, row, span.start, end, colour_of(span.version), f"v{span.version}", title)
        )
    for told in story.rollouts:
        r = told.rollout
        until = when(r.finished_at) if r.finished_at else "now"
        title = (
            f"rollout {r.id}: {r.strategy} {r.baseline} → {r.candidate}, {r.state}, "
            f"{when(r.created_at)} to {until}"
        )
        colour = STATE_COLOURS.get(r.state, "#e6ab02")
        end = r.finished_at or story.read_at
        shapes.append(_bar(scale, len(lanes) - 1, r.created_at, end, colour, f"#{r.id}", title))
    shapes.append(scale.axis(height - 4))
    return Html(
        f"<div class='wide'><svg width='{WIDTH}' height='{height}' viewBox='0 0 {WIDTH} "
        f"{height}' role='img'>{''.join(shapes)}</svg></div>"
        "<p class='note'>Hover a mark for its details. Times are UTC.</p>"
    )


def _version_marks(versions: list[ModelVersion], scale: TimeScale) -> Html:
    y = TOP + LANE / 2 + 4
    by_number = {v.version: v for v in versions}
    marks = []
    # versions registered close together overlap: one label after the last of them
    groups: list[list[tuple[float, int]]] = []
    for v in versions:
        x = scale.x(v.created_at)
        if groups and x - groups[-1][-1][0] < 14:
            groups[-1].append((x, v.version))
        else:
            groups.append([(x, v.version)])
        parent = by_number.get(v.parent_version) if v.parent_version else None
        if parent is not None:  # lineage: an arc from the version it was derived from
            px = scale.x(parent.created_at)
            marks.append(
                f"<path d='M{px:.1f},{y - 6} Q{(px + x) / 2:.1f},{y - 22} {x:.1f},{y - 6}' "
                f"fill='none' stroke='{MARKER_COLOUR}'/>"
            )
        marks.append(
            f"<circle cx='{x:.1f}' cy='{y}' r='6' fill='{colour_of(v.version)}'>"
            f"<title>{escape(v.ref)}: {escape(_lineage(v))}</title></circle>"
        )
    for group in groups:
        numbers = [number for _, number in group]
        label = f"v{numbers[0]}" if len(numbers) == 1 else f"v{numbers[0]}-v{numbers[-1]}"
        marks.append(f"<text x='{group[-1][0] + 8:.1f}' y='{y + 4}'>{label}</text>")
    return join(marks)


def _bar(
    scale: TimeScale, row: int, start: datetime, end: datetime, colour: str, label: str, title: str
) -> Html:
    x = scale.x(start)
    width = max(scale.x(end) - x, 3.0)  # a span of an instant still shows
    y = TOP + row * LANE + 6
    # the label inside a bar wide enough for it, else just after the bar
    inside = width >= 8 * len(label) + 6
    text_x, fill = (x + 3, "#fff") if inside else (x + width + 3, "#444")
    return Html(
        f"<g><rect x='{x:.1f}' y='{y}' width='{width:.1f}' height='{LANE - 12}' rx='3' "
        f"fill='{colour}' opacity='0.8'/><text x='{text_x:.1f}' y='{y + 15}' "
        f"style='fill:{fill}'>{escape(label)}</text><title>{escape(title)}</title></g>"
    )


def _lineage(v: ModelVersion) -> str:
    told = [f"registered {when(v.created_at)} UTC by {v.created_by or 'someone'}"]
    if v.run_id:
        told.append(f"from run {v.run_id}")
    optimization = v.conversion.get("optimization")
    if isinstance(optimization, dict):
        recipe = (optimization.get("recipe") or {}).get("name", "a recipe")
        told.append(f"optimized from {optimization.get('parent', v.parent_version)} ({recipe})")
    elif v.parent_version:
        told.append(f"derived from version {v.parent_version}")
    return ", ".join(told)


def versions_table(story: Story) -> Html:
    if not story.versions:
        return note("no versions")
    rows = []
    for v in story.versions:
        optimization = v.conversion.get("optimization")
        parent = (
            f"{v.parent_version} ({(optimization.get('recipe') or {}).get('name', '')})"
            if isinstance(optimization, dict) and v.parent_version
            else v.parent_version
        )
        rows.append([
            Html(f"<b style='color:{colour_of(v.version)}'>{v.version}</b>"),
            when(v.created_at), v.created_by, v.run_id, parent, v.flavor,
            ", ".join(f"@{a}" for a in v.aliases) or None, v.status.value,
            ", ".join(f"{k} {val:.4g}" for k, val in v.metrics.items()) or None,
            ", ".join(f"{k}={val}" for k, val in v.tags.items()) or None,
        ])  # fmt: skip
    return table(
        ["version", "registered (UTC)", "by", "run", "derived from", "flavor", "aliases now",
         "status", "metrics", "tags"],
        rows,
    )  # fmt: skip


def audit_log(story: Story) -> Html:
    cut = (
        f" (the oldest are left out: the report reads the last {len(story.events)})"
        if story.events_cut
        else ""
    )
    rows = [
        [when(e.at), e.kind, _versions_of(e), f"@{e.alias}" if e.alias else None,
         e.reason, _details_of(e), e.actor]
        for e in story.events
    ]  # fmt: skip
    return Html(
        f"<details><summary>{len(story.events)} events{escape(cut)}</summary>"
        + table(["at (UTC)", "event", "versions", "alias", "reason", "details", "by"], rows)
        + "</details>"
    )


def _versions_of(event: Event) -> str | None:
    if event.from_version is not None and event.to_version is not None:
        return f"{event.from_version} → {event.to_version}"
    if event.to_version is not None:
        return str(event.to_version)
    return str(event.from_version) if event.from_version is not None else None


def _details_of(event: Event) -> str | None:
    details = event.details
    if event.kind.startswith("rollout.") and "weight" in details:
        return f"rollout {details.get('rollout')}, step {details.get('step')}, weight " + (
            percent(details["weight"]) if isinstance(details["weight"], int | float) else "-"
        )
    if "rollout" in details:
        return f"rollout {details['rollout']}"
    if "flavor" in details:
        return str(details["flavor"])
    return None

"""The report's account of each rollout: what it was asked to do, the candidate's weight
over time, each step with the requests both versions served in it, every move with its
reason and actor, and every decision with the figures that made it (each check's
estimate, interval, p-value and sample sizes)."""

from __future__ import annotations

from typing import Any

from shipyard.monitor.report_html import (
    MARKER_COLOUR,
    NEXT_COLOURS,
    STATE_COLOURS,
    Chart,
    Html,
    Marker,
    Series,
    colour_of,
    escape,
    figure,
    join,
    lasted,
    note,
    percent,
    table,
    time_chart,
    when,
)
from shipyard.monitor.report_story import Decision, RolloutStory, Story

DECISION_HEADINGS = [
    "at (UTC)", "step", "weight", "then", "why", "check", "outcome", "estimate", "interval",
    "p-value", "n candidate", "n baseline", "check's reason",
]  # fmt: skip


def rollouts(story: Story) -> Html:
    if not story.rollouts:
        return note(
            f"{story.model} has had no rollout (shipyard rollout start {story.model} --candidate N)"
        )
    return join(_rollout(told, story) for told in story.rollouts)


def _rollout(told: RolloutStory, story: Story) -> Html:
    r = told.rollout
    colour = STATE_COLOURS.get(r.state, "#a6761d")
    ended = f"finished {when(r.finished_at)}" if r.finished_at else "still running (as last read)"
    pending = f"; {r.command} requested, not yet carried out" if r.command else ""
    parts = [
        f"<h3 id='rollout-{r.id}'>Rollout {r.id}: {escape(r.strategy)} of {escape(r.model)} "
        f"from version {r.baseline} to {r.candidate} — <span style='color:{colour}'>"
        f"{escape(r.state)}</span></h3>",
        f"<p>Started {escape(when(r.created_at))} UTC, {escape(ended)}; the candidate has "
        f"{escape(percent(r.weight))} of the traffic, step {r.step}, {r.failures} failed "
        f"analyses{escape(pending)}.</p>",
        f"<p class='note'>Asked for: {escape(_spec(r.spec))}</p>",
        "<div class='card'><b>candidate's weight (%)</b>",
        _weight_chart(told, story),
        "</div>",
        "<p><b>Steps</b></p>",
        _steps(told),
        "<p><b>Moves</b></p>",
        _moves(told),
        "<p><b>Decisions and their figures</b></p>",
        _decisions(told.decisions),
    ]
    return join(Html(p) for p in parts)


def _spec(spec: dict[str, Any]) -> str:
    told = []
    steps = spec.get("steps")
    if spec.get("strategy") == "canary" and isinstance(steps, list):
        told.append("steps " + ", ".join(percent(float(w)) for w in steps))
    if spec.get("strategy") == "ab":
        told.append(f"split {percent(spec.get('split'))}, goal {spec.get('goal')}")
    if spec.get("strategy") in ("shadow", "blue-green"):
        told.append(f"{percent(spec.get('mirror'))} mirrored")
    for key, label in (
        ("interval_s", "an analysis every {} s"), ("deadline_s", "deadline {} s"),
        ("min_samples", "at least {} requests a version"),
        ("failure_threshold", "rolled back after {} failed analyses"),
        ("alias", "promotion moves @{}"),
    ):  # fmt: skip
        if spec.get(key) is not None:
            told.append(
                label.format(f"{spec[key]:g}" if isinstance(spec[key], float) else spec[key])
            )
    return "; ".join(told) or "defaults"


def _weight_chart(told: RolloutStory, story: Story) -> Html:
    r = told.rollout
    points = [(r.created_at, 0.0)]
    for event in told.moves:
        weight = event.details.get("weight")
        if isinstance(weight, int | float) and not isinstance(weight, bool):
            points.append((event.at, 100.0 * weight))
    markers = [
        Marker(
            d.at, f"{d.next or d.move}: {d.reason}", NEXT_COLOURS.get(d.next or "", MARKER_COLOUR)
        )
        for d in told.decisions
    ]
    end = r.finished_at or story.read_at
    chart = Chart(
        [Series(f"{r.model}:{r.candidate} (%)", colour_of(r.candidate), points, steps=True)],
        markers, low=0.0, high=100.0,
    )  # fmt: skip
    return time_chart(chart, r.created_at, end)


def _steps(told: RolloutStory) -> Html:
    if not told.steps:
        return note("the rollout never reached a step")
    rows = [
        [s.number, percent(s.weight), when(s.started_at), when(s.ended_at),
         lasted(s.started_at, s.ended_at), s.requests["baseline"], s.requests["candidate"],
         s.errors["baseline"], s.errors["candidate"], s.mirrored or None]
        for s in told.steps
    ]  # fmt: skip
    return table(
        ["step", "weight", "started (UTC)", "ended (UTC)", "lasted", "baseline requests",
         "candidate requests", "baseline errors", "candidate errors", "mirrored"],
        rows,
    )  # fmt: skip


def _moves(told: RolloutStory) -> Html:
    rows = []
    for event in told.moves:
        before = event.details.get("from") or {}
        weight = event.details.get("weight")
        rows.append([
            when(event.at),
            f"{before['state']} → {event.kind.removeprefix('rollout.')}"
            if isinstance(before, dict) and before.get("state")
            else event.kind.removeprefix("rollout."),
            percent(weight) if isinstance(weight, int | float) else None,
            event.details.get("step"), event.reason, event.actor,
        ])  # fmt: skip
    return table(["at (UTC)", "move", "weight after", "step", "reason", "by"], rows)


def _decisions(decisions: list[Decision]) -> Html:
    if not decisions:
        return note("no analysis recorded yet")
    rows: list[list[object]] = []
    for d in decisions:
        decided: list[object] = [when(d.at), d.step, percent(d.weight), d.next or d.move, d.reason]
        if not d.checks:
            rows.append([*decided, *[None] * 8])
        for check in d.checks:
            interval = (
                f"[{figure(check.low)}, {figure(check.high)}]"
                if check.low is not None or check.high is not None
                else None
            )
            rows.append([
                *decided, check.name, _outcome(check.outcome), figure(check.estimate), interval,
                figure(check.p_value, 3), check.n_candidate, check.n_baseline, check.reason,
            ])  # fmt: skip
            decided = ["", "", "", "", ""]  # the decision's own cells once, on its first check
    return table(DECISION_HEADINGS, rows)


def _outcome(outcome: str) -> Html:
    css = {"pass": "ok", "fail": "drift"}.get(outcome)
    return Html(f"<span class='{css}'>{escape(outcome)}</span>") if css else escape(outcome)

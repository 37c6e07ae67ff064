"""The Prometheus rule file: recording rules for the serving SLOs and eight alerts.

The alerts watch what Shipyard exports: 5xx ratio and p99 latency from the server, drift,
performance and freshness from the monitor, rollbacks and paused rollouts from the rollout
controller. Each carries a ``severity`` label and a summary and description naming the model
(and the version, for all but the rollout alerts, which are about a model's rollout), so a
page says which deployment to look at.

The file is YAML written by hand (a small block-style emitter below) rather than by PyYAML,
which Shipyard does not otherwise need. ``promtool check rules`` accepts it; the tests run
``promtool test rules`` against every alert.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from shipyard.errors import InvalidInputError

ERROR_RATIO = 0.05  # 5xx share of requests that pages
P99_SECONDS = 0.5  # p99 request latency that warns
ERROR_RATIO_RECORD = "model_version:shipyard_requests_5xx:ratio_rate5m"
P99_RECORD = "model_version:shipyard_request_duration_seconds:p99_rate5m"
# A rollback alert fires while the window holds the counter's step, then resolves by itself.
ROLLBACK_WINDOW = "15m"
PAUSED_FOR = "15m"  # a paused rollout waits for a person: resume it or roll it back

# Go templates, expanded by Prometheus when an alert fires.
MODEL_VERSION = "{{ $labels.model }} version {{ $labels.version }}"


@dataclass(frozen=True)
class RuleOptions:
    """The knobs of the rule file, checked on construction so a bad one never gets written.

    ``model`` (already a valid model name) narrows every expression to that model, for a
    Prometheus that scrapes several teams' servers.
    """

    model: str | None = None
    drift_share: float = 0.5
    stale_seconds: float = 300.0
    performance_drop: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.drift_share <= 1:
            raise InvalidInputError(
                f"--drift-share must be in (0, 1], the share of drifted features that alerts; "
                f"got {self.drift_share:g}"
            )
        if not (math.isfinite(self.stale_seconds) and self.stale_seconds > 0):
            raise InvalidInputError(
                f"--stale-seconds must be a positive number of seconds; got {self.stale_seconds:g}"
            )
        if not 0 < self.performance_drop < 1:
            raise InvalidInputError(
                f"--performance-drop must be in (0, 1), a relative drop such as 0.05 for 5%; "
                f"got {self.performance_drop:g}"
            )


def rule_file(options: RuleOptions | None = None) -> dict[str, Any]:
    """The rule file as data: ``{"groups": [...]}``, ready for :func:`render_yaml`."""
    o = options or RuleOptions()
    requests = _select("shipyard_requests_total", o)
    errors = _select("shipyard_requests_total", o, 'status=~"5.."')
    buckets = _select("shipyard_request_duration_seconds_bucket", o)
    accuracy = _select("shipyard_model_performance", o, 'metric="accuracy"')
    rolled_back = _select("shipyard_rollouts_rolled_back_total", o)
    paused = _select("shipyard_rollout_phase", o, 'phase="paused"')
    serving = [
        {
            "record": ERROR_RATIO_RECORD,
            "expr": f"sum by (model, version) (rate({errors}[5m])) "
            f"/ sum by (model, version) (rate({requests}[5m]))",
        },
        {
            "record": P99_RECORD,
            "expr": f"histogram_quantile(0.99, sum by (le, model, version) (rate({buckets}[5m])))",
        },
        _alert(
            "ShipyardHighErrorRatio",
            f"{_select(ERROR_RATIO_RECORD, o)} > {ERROR_RATIO:g}",
            "5m",
            "critical",
            "Model " + MODEL_VERSION + ": {{ $value | humanizePercentage }} of requests fail",
            "More than "
            + f"{ERROR_RATIO:.0%}"
            + " of the inference requests to model "
            + MODEL_VERSION
            + " answered 5xx over the last 5 minutes, for 5 minutes. "
            "Check the server's log and the model's load state.",
        ),
        _alert(
            "ShipyardHighP99Latency",
            f"{_select(P99_RECORD, o)} > {P99_SECONDS:g}",
            "10m",
            "warning",
            "Model " + MODEL_VERSION + ": p99 latency {{ $value | humanizeDuration }}",
            "The 99th percentile of request latency of model "
            + MODEL_VERSION
            + f" has been above {P99_SECONDS:g} s for 10 minutes. "
            "Look at queue depth and batch size: the server may be overloaded.",
        ),
    ]
    monitoring = [
        _alert(
            "ShipyardFeatureDrift",
            f"{_select('shipyard_feature_drifted', o)} == 1",
            "15m",
            "warning",
            "Model " + MODEL_VERSION + ": feature {{ $labels.feature }} has drifted",
            "The live distribution of feature {{ $labels.feature }} of model "
            + MODEL_VERSION
            + " has differed from its reference data for 15 minutes.",
        ),
        _alert(
            "ShipyardDatasetDrift",
            f"{_select('shipyard_dataset_drift_share', o)} >= {o.drift_share:g}",
            "15m",
            "critical",
            "Model " + MODEL_VERSION + ": {{ $value | humanizePercentage }} of features drifted",
            "At least "
            + f"{o.drift_share:.0%}"
            + " of the features of model "
            + MODEL_VERSION
            + " have drifted from the reference data for 15 minutes: "
            "the model may need retraining on recent data.",
        ),
        _alert(
            "ShipyardMonitorStale",
            f"time() - {_select('shipyard_monitor_last_evaluation_timestamp_seconds', o)}"
            f" > {o.stale_seconds:g}",
            "5m",
            "warning",
            "Model " + MODEL_VERSION + ": monitor last ran {{ $value | humanizeDuration }} ago",
            "The drift and performance monitor of model " + MODEL_VERSION + " has not "
            f"evaluated for more than {o.stale_seconds:g} s, so its drift alerts are blind.",
        ),
        _alert(
            "ShipyardPerformanceDrop",
            f"(1 - {accuracy} / {accuracy} offset 1d) > {o.performance_drop:g}",
            "30m",
            "critical",
            "Model " + MODEL_VERSION + ": accuracy {{ $value | humanizePercentage }} below a "
            "day ago",
            "The accuracy of model " + MODEL_VERSION + " measured on feedback labels is more "
            f"than {o.performance_drop:.0%} below its value one day earlier, for 30 minutes.",
        ),
    ]
    rollouts = [
        _alert(
            "ShipyardRolloutRolledBack",
            f"increase({rolled_back}[{ROLLBACK_WINDOW}]) > 0",
            None,
            "warning",
            "Model {{ $labels.model }}: a rollout was rolled back",
            "A rollout of model {{ $labels.model }} rolled back in the last "
            + ROLLBACK_WINDOW
            + " (its analysis failed, it reached the progress deadline, or someone rolled it "
            "back): the stable version takes all the traffic again. The rollout's events give "
            "the reason and the checks' evidence.",
        ),
        _alert(
            "ShipyardRolloutPaused",
            f"{paused} == 1",
            PAUSED_FOR,
            "warning",
            "Model {{ $labels.model }}: rollout paused for " + PAUSED_FOR,
            "The rollout of model {{ $labels.model }} has been paused for "
            + PAUSED_FOR
            + ", its traffic split held where it was: a halting check (such as the "
            "sample-ratio mismatch) failed, so no verdict on the split can be trusted. "
            "Find the cause, then resume the rollout or roll it back.",
        ),
    ]
    return {
        "groups": [
            {"name": "shipyard-serving", "rules": serving},
            {"name": "shipyard-monitoring", "rules": monitoring},
            {"name": "shipyard-rollouts", "rules": rollouts},
        ]
    }


def render_rules(options: RuleOptions | None = None) -> str:
    """The rule file as YAML text, with a header saying where it came from."""
    o = options or RuleOptions()
    scope = f"model {o.model}" if o.model else "every model"
    header = (
        "# Prometheus rules for Shipyard, written by `shipyard deploy prometheus-rules`"
        f" ({scope}).\n# Check: promtool check rules <this file>\n"
    )
    return header + render_yaml(rule_file(o))


def _alert(
    name: str, expr: str, for_: str | None, severity: str, summary: str, description: str
) -> dict[str, Any]:
    """An alerting rule; ``for_`` None fires on the first evaluation that matches."""
    return {
        "alert": name,
        "expr": expr,
        **({"for": for_} if for_ is not None else {}),
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": description},
    }


def _select(metric: str, options: RuleOptions, *matchers: str) -> str:
    """``metric{...}`` with the model matcher first (when the file is for one model)."""
    every = ([f"model={json.dumps(options.model)}"] if options.model else []) + list(matchers)
    return f"{metric}{{{','.join(every)}}}" if every else metric


# YAML ------------------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/-]*")
_RESERVED = {"y", "n", "yes", "no", "true", "false", "on", "off", "null"}


def render_yaml(value: object) -> str:
    """Block-style YAML of dicts, lists and scalars; strings that could be misread are quoted."""
    return "\n".join(_lines(value, 0)) + "\n"


def _lines(value: object, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict) and value:
        out = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                out.append(f"{pad}{_scalar(key)}:")
                out.extend(_lines(item, indent + 2))
            else:
                out.append(f"{pad}{_scalar(key)}: {_scalar(item)}")
        return out
    if isinstance(value, list) and value:
        out = []
        for item in value:
            nested = _lines(item, indent + 2)
            out.append(f"{pad}- {nested[0].lstrip()}")
            out.extend(nested[1:])
        return out
    return [pad + _scalar(value)]


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"no YAML for {value!r}")
        return repr(value)
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
            return value
        if value.isprintable():  # single quotes: no escapes but '' for ', so PromQL reads well
            return "'" + value.replace("'", "''") + "'"
        return json.dumps(value)  # a JSON string is a YAML double-quoted scalar
    raise TypeError(f"no YAML for {type(value).__name__}")

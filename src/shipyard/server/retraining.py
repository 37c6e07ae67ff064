"""Retrains a server starts: by itself when the monitor's evaluation of a served model's
champion raises an alert (``SHIPYARD_RETRAIN__TRIGGER``), or when asked through the API.

Each retrain runs in its own thread (the training command is a child process, its output
goes to the server's log) and starts a rollout of a candidate that passes its gate, which
the server then drives like any other. The trigger never fires for a model in a rollout,
and the policy (cool-down, daily budget, one at a time) is ``shipyard.retrain.trigger``'s.
A shutdown stops a training command still running, so no process outlives the server.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from datetime import UTC, datetime
from typing import Any

from shipyard.errors import ConflictError, ShipyardError
from shipyard.monitor.evaluation import Evaluation
from shipyard.registry import ModelRef, Registry
from shipyard.retrain import RetrainOptions, retrain
from shipyard.retrain.service import lease_name
from shipyard.retrain.trigger import alert_of, refusal
from shipyard.settings import Settings

log = logging.getLogger("shipyard.server")
STOP_TIMEOUT_S = 10.0


class _LogLines:
    """A text stream whose lines go to the server's log, marked with the model."""

    def __init__(self, model: str) -> None:
        self.model = model

    def write(self, text: str) -> int:
        for line in text.rstrip("\n").splitlines():
            log.info("retrain %s | %s", self.model, line)
        return len(text)

    def flush(self) -> None:
        pass


class Retraining:
    def __init__(self, registry: Registry, settings: Settings) -> None:
        self.registry = registry
        self.options = settings.retrain
        self._threads: dict[str, threading.Thread] = {}
        self._children: dict[str, subprocess.Popen[str]] = {}
        self._noted: dict[str, str] = {}  # the last refusal recorded per model
        self._lock = threading.Lock()
        self._closed = False

    # What starts a retrain ------------------------------------------------------------

    def consider(self, evaluations: list[Evaluation]) -> None:
        """Called after each evaluation of the served versions: start the retrains their
        alerts ask for, where the policy lets them."""
        if not self.options.trigger or self._closed:
            return
        for evaluation in evaluations:
            try:
                self._consider(evaluation)
            except Exception:  # the trigger must never stop the monitor
                log.exception("the retrain trigger failed on %s", evaluation.version.ref)

    def _consider(self, evaluation: Evaluation) -> None:
        alert = alert_of(evaluation, self.options)
        if alert is None:
            return
        name = alert.model
        champion = self.registry.get_version(ModelRef(name, alias=self._alias()))
        if champion.version != alert.version:
            return  # a candidate's or an old version's evaluation: not the champion's alert
        if any(r.finished_at is None for r in self.registry.rollouts.history(name)):
            return  # a rollout is deciding already
        if self._running(name):
            return  # the running retrain answers this alert already
        why_not = refusal(self.registry, name, self.options, datetime.now(UTC))
        if why_not is not None:
            if self._noted.get(name) != why_not.split(":")[0]:
                self._noted[name] = why_not.split(":")[0]
                self.registry.record_event(
                    name, "retrain.skipped", from_version=alert.version,
                    reason=f"{alert.reason}; not retrained: {why_not}",
                )  # fmt: skip
            return
        self._noted.pop(name, None)
        self.start(name, f"{alert.kind} alert: {alert.reason}")

    def start(self, name: str, trigger: str = "manual") -> None:
        """Retrain ``name`` in the background; 409 while a retrain of it runs anywhere."""
        self.registry.get_version(ModelRef(name, alias=self._alias()))  # 404s up front
        with self._lock:
            if self._closed:
                raise ConflictError("the server is shutting down")
            if self._running(name) or self.registry.leases.current(lease_name(name)):
                raise ConflictError(
                    f"a retrain of {name} is already running: one at a time per model"
                )
            thread = threading.Thread(
                target=self._retrain, args=(name, trigger), name=f"shipyard-retrain-{name}",
                daemon=True,
            )  # fmt: skip
            self._threads[name] = thread
            thread.start()

    def status(self, name: str) -> dict[str, Any]:
        events = [e for e in self.registry.events(name, limit=200) if e.kind.startswith("retrain.")]
        return {
            "model": name,
            "running": self._running(name) or bool(self.registry.leases.current(lease_name(name))),
            "events": [
                {"at": e.at.isoformat(), "kind": e.kind, "reason": e.reason} for e in events[:20]
            ],
        }

    # Running one ----------------------------------------------------------------------

    def _retrain(self, name: str, trigger: str) -> None:
        options = RetrainOptions(
            alias=self._alias(),
            holdout=self.options.holdout,
            tolerance=self.options.tolerance,
            slice_feature=self.options.slice_feature,
            strategy=self.options.strategy,
            rollout=dict(self.options.rollout),
            trigger=trigger,
        )
        log.info("retraining %s (%s)", name, trigger)
        try:
            result = retrain(
                self.registry,
                name,
                options,
                echo=_LogLines(name),
                on_spawn=lambda child: self._children.__setitem__(name, child),
            )
        except ShipyardError as exc:
            log.warning("the retrain of %s failed: %s", name, exc.message)
            self._record_failure(name, exc.message)
        except Exception as exc:
            log.exception("the retrain of %s failed", name)
            self._record_failure(name, f"{type(exc).__name__}: {exc}")
        else:
            verdict = "passed" if result.passed else "was refused by"
            log.info(
                "retrained %s: %s %s its gate (%s)",
                name,
                result.candidate.ref if result.candidate else "-",
                verdict,
                result.gate.reason if result.gate else "-",
            )
        finally:
            self._children.pop(name, None)

    def _record_failure(self, name: str, reason: str) -> None:
        latest = next(
            (e for e in self.registry.events(name, limit=20) if e.kind.startswith("retrain.")), None
        )
        if latest is None or latest.kind != "retrain.failed":  # the service may have written it
            self.registry.record_event(name, "retrain.failed", reason=reason)

    def _running(self, name: str) -> bool:
        thread = self._threads.get(name)
        return thread is not None and thread.is_alive()

    def _alias(self) -> str:
        return str(self.options.rollout.get("alias", "production"))

    def close(self) -> None:
        """Stop training commands still running and wait for their threads."""
        with self._lock:
            self._closed = True
        for child in list(self._children.values()):
            child.terminate()
        for thread in list(self._threads.values()):
            thread.join(timeout=STOP_TIMEOUT_S)
        for child in list(self._children.values()):
            if child.poll() is None:
                child.kill()

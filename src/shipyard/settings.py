"""Settings: read once from the environment (prefix ``SHIPYARD_``), validated, then frozen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BatchingSettings(BaseModel):
    """How one model's requests are batched and queued."""

    model_config = {"frozen": True, "extra": "forbid"}

    max_batch_size: int = Field(default=64, ge=1, description="Rows per batch, at most.")
    max_batch_delay_ms: float = Field(
        default=10.0, ge=0, description="How long the oldest queued request may wait for company."
    )
    max_queue_rows: int = Field(
        default=1024, ge=1, description="Rows waiting per version; beyond this, 503 at once."
    )
    intra_op_threads: int | None = Field(
        default=None, ge=0, description="ONNX Runtime threads for this model (default: by size)."
    )
    inline_below_ms: float = Field(
        default=0.2,
        ge=0,
        description="Run batches on the event loop when warm-up shows they take less than this "
        "(a thread hop would cost more than the model); 0 always uses the worker thread.",
    )


class ModelMonitorSettings(BaseModel):
    """How one model is watched: what is kept of its traffic, and when it counts as drifted."""

    model_config = {"frozen": True, "extra": "forbid"}

    log_inputs: bool = Field(
        default=False, description="Keep raw inputs in the prediction log (payload logging)."
    )
    log_outputs: bool = Field(
        default=True, description="Keep outputs in the prediction log, for the feedback join."
    )
    redact: tuple[str, ...] = Field(
        default=(),
        description="Input tensors, feature columns or output names never written as they are.",
    )
    redaction: str = Field(
        default="drop",
        pattern="^(drop|hash)$",
        description="drop: leave redacted fields out; hash: a salted SHA-256 in their place.",
    )
    salt: str = Field(default="", description="Salt of the redaction hash.")
    sample_rate: float | None = Field(
        default=None, ge=0, le=1, description="Share of requests sketched (default: global)."
    )
    thresholds: dict[str, float | int | str] = Field(
        default_factory=dict, description="Drift thresholds, e.g. {'wasserstein': 0.2}."
    )


class MonitorSettings(BaseModel):
    """The live monitor of a server: windows, flushes, the prediction log's retention."""

    model_config = {"frozen": True, "extra": "forbid"}

    enabled: bool = Field(default=True, description="Watch served traffic at all.")
    flush_seconds: float = Field(
        default=10.0, gt=0, description="How often windows are written and drift re-evaluated."
    )
    window_seconds: float = Field(
        default=3600.0, gt=0, description="The recent traffic each evaluation compares."
    )
    sample_rate: float = Field(default=1.0, ge=0, le=1, description="Share of requests sketched.")
    queue_requests: int = Field(
        default=20_000,
        ge=1,
        description="Batches waiting to be sketched, and requests waiting to be logged, until "
        "the next flush; beyond, dropped (counted).",
    )
    # The monitor's cost is in proportion to these two rates, not to the traffic: a row
    # sketched costs a few microseconds and a request logged some tens, paid by the serving
    # process. At these defaults a saturated server of a cheap model keeps all but a few
    # percent of its throughput. 250 rows a second is 900,000 an hour, far more than the
    # drift distances need for their thresholds; 50 logged requests a second is 4.3M a day
    # that feedback can join, about 5.5 hours of full-rate log under the default
    # retention_rows.
    sketch_rate: float = Field(
        default=250.0,
        ge=0,
        description="Rows sketched per second per version at most; beyond it batches are "
        "skipped (counted), so the monitor's cost stays bounded at any traffic.",
    )
    log_rate: float = Field(
        default=50.0,
        ge=0,
        description="Requests logged per second per version at most (the feedback join); beyond "
        "it requests are still sketched, but feedback for them is reported unknown.",
    )
    retention_days: float = Field(
        default=30.0, gt=0, description="Logged predictions older than this are deleted."
    )
    retention_rows: int = Field(
        default=1_000_000, ge=1, description="At most this many logged predictions are kept."
    )
    replica: str | None = Field(
        default=None, description="This server's name in the windows (default: host and PID)."
    )


class RetrainSettings(BaseModel):
    """When a server retrains a model by itself: on which alerts, how often at most, and how
    the retrained version is judged and rolled out."""

    model_config = {"frozen": True, "extra": "forbid"}

    trigger: bool = Field(
        default=False, description="Retrain a served model when an alert below fires for it."
    )
    models: tuple[str, ...] = Field(
        default=(), description="The models the trigger watches (empty: every served model)."
    )
    on: tuple[str, ...] = Field(
        default=("drift", "performance"),
        description="drift: the dataset drifted; performance: live accuracy (or error) is "
        "worse than the version's registered metric by more than the drop.",
    )
    performance_drop: float = Field(
        default=0.05,
        gt=0,
        description="Accuracy this far under the registered one (an error this share over).",
    )
    min_labelled_rows: int = Field(
        default=50, ge=1, description="Labelled rows before live performance can alert."
    )
    cooldown_s: float = Field(
        default=3600.0, ge=0, description="No new retrain of a model this soon after the last."
    )
    max_per_day: int = Field(default=3, ge=0, description="Retrains of a model in any 24 hours.")
    holdout: float = Field(
        default=0.3, gt=0, lt=1, description="Share of the labelled traffic held out to gate on."
    )
    tolerance: float = Field(
        default=0.0, ge=0, description="How much worse than the champion the gate lets pass."
    )
    slice_feature: str | None = Field(default=None, description="Gate per slice of this input too.")
    strategy: str | None = Field(
        default="canary", description="How a candidate that passes is rolled out (None: not)."
    )
    rollout: dict[str, Any] = Field(
        default_factory=dict, description="The rollout's settings, e.g. {'interval': '30s'}."
    )


class Settings(BaseSettings):
    """Everything configurable, in one object that is passed down, never re-read."""

    model_config = SettingsConfigDict(env_prefix="SHIPYARD_", frozen=True, extra="ignore")

    home: Path = Field(
        default=Path(".shipyard"), description="Folder for the database and artifacts."
    )
    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; defaults to SQLite at $SHIPYARD_HOME/shipyard.db. "
        "PostgreSQL: postgresql+psycopg://user@host:port/db (the postgres extra).",
    )
    artifact_url: str | None = Field(
        default=None,
        description="Where artifacts are kept: a folder (a path or file:///path; default "
        "$SHIPYARD_HOME/artifacts) or s3://bucket/prefix (the s3 extra; the endpoint from "
        "AWS_ENDPOINT_URL, credentials from the standard AWS chain).",
    )
    db_pool_size: int = Field(
        default=5, ge=1, description="Connections kept open to a server database (PostgreSQL)."
    )
    db_max_overflow: int = Field(
        default=10, ge=0, description="Connections opened beyond the pool under a burst."
    )
    intra_op_threads: int = Field(
        default=0,
        ge=0,
        description="ONNX Runtime intra-op threads per session (0: runtime default).",
    )
    inter_op_threads: int = Field(default=1, ge=0)
    ort_spinning: bool | None = Field(
        default=None,
        description="Let ONNX Runtime's intra-op threads busy-wait between ops (None: "
        "its default). A server sharing few cores with its clients may answer faster without.",
    )
    actor: str | None = Field(
        default=None, description="Who is recorded as making changes (defaults to the OS user)."
    )
    run_id: str | None = Field(
        default=None,
        description="The tracking run a training script joins (set by `shipyard run` for the "
        "command it starts).",
    )
    cpu_features: str | None = Field(
        default=None,
        description="The CPU the optimizer chooses recipes for, instead of the detected one: a "
        "profile (avx2, avx512-vnni, amx, arm-dotprod), comma-separated flags, or none.",
    )

    # Serving -----------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the server binds.")
    port: int = Field(default=8000, ge=0, le=65535)
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    model_batching: dict[str, BatchingSettings] = Field(
        default_factory=dict, description='Per-model overrides, e.g. {"minilm": {...}} (JSON).'
    )
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    request_timeout_s: float | None = Field(
        default=None, gt=0, description="Deadline of a request that names none."
    )
    api_token: str | None = Field(default=None, description="Bearer token for /api/.")
    inference_token: str | None = Field(default=None, description="Bearer token for inference.")
    reload_interval_s: float = Field(
        default=1.0, gt=0, description="How often the server checks the registry for alias moves."
    )
    shutdown_timeout_s: float = Field(default=30.0, gt=0)
    rollouts: bool = Field(
        default=True, description="Drive the rollouts of the served models (one replica does)."
    )
    rollout_bake_s: float = Field(
        default=300.0,
        ge=0,
        description="After a promotion the old version stays loaded this long, for an instant "
        "undo.",
    )
    rollout_lease_s: float = Field(
        default=15.0, gt=0, description="A rollout controller's lease; renewed every tick."
    )
    access_log: bool = Field(default=True, description="One JSON line per request on stderr.")

    retrain: RetrainSettings = Field(default_factory=RetrainSettings)

    # Monitoring --------------------------------------------------------------------------
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    monitor_flush_seconds: float | None = Field(
        default=None, gt=0, description="Shorthand for monitor.flush_seconds."
    )
    model_monitoring: dict[str, ModelMonitorSettings] = Field(
        default_factory=dict, description='Per-model monitoring, e.g. {"fraud": {...}} (JSON).'
    )

    def monitoring_for(self, model: str) -> ModelMonitorSettings:
        return self.model_monitoring.get(model) or ModelMonitorSettings()

    @property
    def flush_seconds(self) -> float:
        return self.monitor_flush_seconds or self.monitor.flush_seconds

    def batching_for(self, model: str) -> BatchingSettings:
        """The global batching settings with this model's overrides on top."""
        override = self.model_batching.get(model)
        if override is None:
            return self.batching
        return self.batching.model_copy(
            update={k: getattr(override, k) for k in override.model_fields_set}
        )

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.home / 'shipyard.db').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def artifact_cache_dir(self) -> Path:
        """Where blobs from a remote store are kept once downloaded."""
        return self.home / "cache" / "artifacts"

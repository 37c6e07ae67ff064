"""Run tracking: what each training run was given (params, data by fingerprint, code and
environment), what it measured, what it kept, and the versions it registered.

    with shipyard.start_run("digits", params={"lr": 1e-3}) as run:
        run.log_metric("loss", 0.3, step=1)
        run.register_model(model, name="digits")
"""

from shipyard.tracking.run import ActiveRun, active_run, start_run

__all__ = ["ActiveRun", "active_run", "start_run"]

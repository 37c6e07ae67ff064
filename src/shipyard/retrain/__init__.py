"""Retraining: the loop's last step. A model's champion is trained again by its own recorded
command on the traffic it served and the labels that came back, gated offline against the
champion, and rolled out; a server can start this by itself on an alert (``trigger``).

Above tracking, monitor and rollout, which it composes; below the CLI and the server.
"""

from shipyard.retrain.service import RetrainOptions, RetrainResult, retrain, training_run

__all__ = ["RetrainOptions", "RetrainResult", "retrain", "training_run"]

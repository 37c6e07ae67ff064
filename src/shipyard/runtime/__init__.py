"""Running models: ONNX Runtime sessions, text pre/post-processing, the Predictor."""

from shipyard.runtime.loading import load
from shipyard.runtime.predictor import Predictor
from shipyard.runtime.session import Threading

__all__ = ["Predictor", "Threading", "load"]

"""Optimization: candidate graphs (fusion, int8 quantization), gated on accuracy and speed."""

from shipyard.optimize.optimizer import optimize
from shipyard.optimize.report import CandidateResult, OptimizeReport

__all__ = ["CandidateResult", "OptimizeReport", "optimize"]

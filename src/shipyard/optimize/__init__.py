"""Optimization: candidate graphs (fusion, int8 quantization), gated on accuracy and speed."""

from shipyard.optimize.optimizer import CandidateResult, OptimizeReport, optimize

__all__ = ["CandidateResult", "OptimizeReport", "optimize"]

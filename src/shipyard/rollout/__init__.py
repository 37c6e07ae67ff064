"""Rollouts: moving traffic from a baseline version to a candidate, judged on evidence."""

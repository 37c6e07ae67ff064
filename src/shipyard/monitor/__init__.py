"""Monitoring: reference profiles, live windows, drift tests, data quality, feedback."""

"""The monitor's Prometheus metrics, read from each version's last evaluation at scrape."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shipyard.monitor.drift import distance_of, p_value_test, reported_distance
from shipyard.monitor.live import LiveMonitor

MV = ["model", "version"]


class MonitorCollector(Collector):
    def __init__(self, monitor: LiveMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        score = GaugeMetricFamily(
            "shipyard_feature_drift_score",
            "Drift distance of an input feature, live window against the reference.",
            labels=[*MV, "feature", "method"],
        )
        p_value = GaugeMetricFamily(
            "shipyard_feature_drift_p_value",
            "p-value of the feature's two-sample test (ks or chi_square).",
            labels=[*MV, "feature", "method"],
        )
        drifted = GaugeMetricFamily(
            "shipyard_feature_drifted", "1 if the feature drifted.", labels=[*MV, "feature"]
        )
        share = GaugeMetricFamily(
            "shipyard_dataset_drift_share", "Share of input features that drifted.", labels=MV
        )
        dataset = GaugeMetricFamily(
            "shipyard_dataset_drift", "1 if the dataset drifted (share >= threshold).", labels=MV
        )
        prediction = GaugeMetricFamily(
            "shipyard_prediction_drift_score",
            "Drift distance of an output column.",
            labels=[*MV, "output", "method"],
        )
        quality = CounterMetricFamily(
            "shipyard_data_quality_violations",
            "Values missing, out of the reference range, unseen categories, NaN/inf outputs.",
            labels=[*MV, "feature", "kind"],
        )
        performance = GaugeMetricFamily(
            "shipyard_model_performance",
            "Metric over labelled feedback in the evaluation window.",
            labels=[*MV, "metric"],
        )
        evaluated = GaugeMetricFamily(
            "shipyard_monitor_last_evaluation_timestamp_seconds",
            "When the version was last evaluated (Unix time).",
            labels=MV,
        )
        rows = GaugeMetricFamily(
            "shipyard_monitor_window_rows", "Rows in the evaluated window.", labels=MV
        )
        for (name, number), watched in list(self.monitor.watched.items()):
            labels = [name, str(number)]
            for (feature, kind), count in watched.window.quality_totals.items():
                quality.add_metric([*labels, feature, kind], count)
            last = watched.evaluation.last
            if last is None:
                continue
            evaluated.add_metric(labels, last.evaluated_at.timestamp())
            rows.add_metric(labels, last.rows)
            for metric, value in last.performance.items():
                if metric != "rows":
                    performance.add_metric([*labels, metric], value)
            if last.drift is None:
                continue
            share.add_metric(labels, last.drift.drifted_share)
            dataset.add_metric(labels, float(last.drift.dataset_drift))
            for column in last.drift.columns:
                if column.method == "none":
                    continue
                distance = reported_distance(column)
                score.add_metric(
                    [*labels, column.column, distance.name],
                    column.statistics.get(distance.key, 0.0),
                )
                test = p_value_test(column.kind)
                p_value.add_metric([*labels, column.column, test.name], column.statistics[test.key])
                drifted.add_metric([*labels, column.column], float(column.drifted))
            for column in last.drift.predictions:
                if column.method == "none":
                    continue
                distance = distance_of(column.kind)
                prediction.add_metric(
                    [*labels, column.column, distance.name],
                    column.statistics.get(distance.key, 0.0),
                )
        dropped = CounterMetricFamily(
            "shipyard_monitor_dropped_observations",
            "Batches not sketched because the monitor's queue was full.",
        )
        dropped.add_metric([], self.monitor.backlog.dropped)
        unlogged = CounterMetricFamily(
            "shipyard_monitor_unlogged_predictions",
            "Requests answered beyond the prediction log's rate, or beyond what it keeps while "
            "the database is unreachable (feedback cannot join them).",
            labels=MV,
        )
        unsketched = CounterMetricFamily(
            "shipyard_monitor_unsketched_rows",
            "Rows served beyond the sketch rate, left out of the drift windows.",
            labels=MV,
        )
        for (name, number), watched in list(self.monitor.watched.items()):
            unlogged.add_metric([name, str(number)], watched.unlogged)
            unsketched.add_metric([name, str(number)], watched.unsketched)
        failures = CounterMetricFamily(
            "shipyard_monitor_failures", "Monitor errors (logged; requests unaffected)."
        )
        failures.add_metric([], self.monitor.failures)
        yield from (
            score,
            p_value,
            drifted,
            share,
            dataset,
            prediction,
            quality,
            performance,
            evaluated,
            rows,
            dropped,
            unlogged,
            unsketched,
            failures,
        )

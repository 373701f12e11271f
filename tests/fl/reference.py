"""Regenerates the reference figures the federated-learning tests compare against.

- flower_reference.json: client models and what Flower's own aggregation functions
  (flwr.server.strategy.aggregate, flwr 1.42.0) make of them, for every strategy.
- dp_accounting_reference.json: epsilon and the best order from Google's
  dp-accounting (0.6.0) RDP accountant for the Poisson-subsampled Gaussian mechanism.
- centralized_reference.json: logistic regression trained centrally with numpy on
  the reference split (the protocol of `emr fl simulate`).

Run through regenerate.sh, which installs the pinned packages into a virtualenv.
"""

import json
import pathlib

import numpy as np
import dp_accounting
from flwr.server.strategy import aggregate as flower

HERE = pathlib.Path(__file__).parent


def flower_cases():
    rng = np.random.default_rng(20261202)
    shapes = [(4, 3), (3,), (3, 1), (1,)]
    cases = []
    for clients, outlier in [(3, False), (5, False), (5, True), (7, True), (10, False)]:
        models = []
        for c in range(clients):
            layers = [rng.normal(size=s) for s in shapes]
            if outlier and c == clients - 1:
                layers = [l * -40.0 + 25.0 for l in layers]
            models.append((layers, int(rng.integers(10, 500))))
        flat = [np.concatenate([l.ravel() for l in layers]).tolist() for layers, _ in models]
        samples = [n for _, n in models]
        results = {}
        results["fedavg"] = flower.aggregate(models)
        results["median"] = flower.aggregate_median(models)
        for beta in (0.0, 0.1, 0.2, 0.3):
            results[f"trimmed-mean:{beta}"] = flower.aggregate_trimmed_avg(models, beta)
        for f in range(0, max(1, (clients - 3) // 2) + 1):
            results[f"krum:{f}"] = flower.aggregate_krum(models, f, 0)
            for m in range(1, clients + 1):
                results[f"multi-krum:{f}:{m}"] = flower.aggregate_krum(models, f, m)
        cases.append({
            "models": flat,
            "samples": samples,
            "expected": {k: np.concatenate([np.asarray(l).ravel() for l in v]).tolist() for k, v in results.items()},
        })
    return cases


DP_CONFIGURATIONS = [
    # (q, sigma, steps, delta)
    (0.001, 0.5, 1, 1e-7),
    (0.001, 1.0, 100000, 1e-5),
    (0.004, 1.1, 10000, 1e-5),
    (0.01, 0.8, 1000, 1e-6),
    (0.01, 1.1, 100, 1e-5),
    (0.02, 2.0, 50000, 1e-7),
    (0.05, 1.1, 250, 1e-5),
    (0.1, 0.5, 10, 1e-3),
    (0.1, 5.0, 100000, 1e-5),
    (0.25, 1.5, 1000, 1e-4),
    (0.5, 3.0, 20, 1e-6),
    (1.0, 0.5, 1, 1e-5),
    (1.0, 1.0, 50, 1e-3),
    (1.0, 5.0, 100000, 1e-7),
]


def dp_table():
    rows = []
    for q, sigma, steps, delta in DP_CONFIGURATIONS:
        accountant = dp_accounting.rdp.RdpAccountant()
        event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
        accountant.compose(event, steps)
        epsilon, order = accountant.get_epsilon_and_optimal_order(delta)
        rows.append({"q": q, "sigma": sigma, "steps": steps, "delta": delta, "epsilon": float(epsilon), "order": float(order)})
    return rows


def centralized():
    lines = (HERE.parent.parent / "domain/learning/data/breast_cancer.csv").read_text().splitlines()[1:]
    data = np.array([[float(v) for v in line.split(",")] for line in lines])
    x, y = data[:, :-1], data[:, -1]
    test = np.arange(len(y)) % 5 == 0
    xtr, ytr = x[~test], y[~test]
    mean, std = xtr.mean(axis=0), xtr.std(axis=0)
    xtr = (xtr - mean) / std
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(250):
        p = 1.0 / (1.0 + np.exp(-(xtr @ w + b)))
        w -= 0.5 * xtr.T @ (p - ytr) / len(ytr)
        b -= 0.5 * np.mean(p - ytr)
    return {"steps": 250, "learning_rate": 0.5, "weights": w.tolist(), "bias": float(b)}


if __name__ == "__main__":
    (HERE / "flower_reference.json").write_text(json.dumps({"flwr": "1.42.0", "cases": flower_cases()}, indent=1) + "\n")
    (HERE / "dp_accounting_reference.json").write_text(json.dumps({"dp_accounting": "0.6.0", "rows": dp_table()}, indent=1) + "\n")
    (HERE / "centralized_reference.json").write_text(json.dumps(centralized(), indent=1) + "\n")

"""An MLflow model for the ``mlflow`` wire format: predicts ``number_of_rooms`` from prices.

MLflow models are trained outside the gateway and only served: this script trains a
scikit-learn pipeline on the synthetic home_rentals table and saves it as an MLflow model
directory (no tracking server needed). The saved signature names the input columns
``initial_price`` and ``rental_price``, so the scoring server rejects other column sets.

    python examples/mlflow_model.py --out /tmp/byom-models      # prints the model path
    MLFLOW_DISABLE_TELEMETRY=true mlflow models serve -m <path> -h 127.0.0.1 -p 5000 \\
        --env-manager local
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

import home_rentals  # sibling module: run as a script, or loaded by gateway.processes
import mlflow.sklearn
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = ["initial_price", "rental_price"]
TARGET = "number_of_rooms"
MODEL_NAME = "home_rentals_rooms"


def train_and_log(out_dir: Path, *, name: str = MODEL_NAME, overwrite: bool = False) -> str:
    """Train the model and save it under ``out_dir/name``; return that path (a model URI).

    Raises FileExistsError if the directory exists and ``overwrite`` is False.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    path = Path(out_dir).resolve() / name
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--force) to replace it")
        shutil.rmtree(path)
    table = home_rentals.generate()
    # Float inputs in the signature: MLflow then accepts both integers and decimals from SQL,
    # while a "long" signature would reject 3000.0 (and warns about missing values).
    features, labels = table[FEATURES].astype("float64"), table[TARGET]
    # Scaling first: unscaled prices in the thousands keep lbfgs from converging.
    model = Pipeline([("scale", StandardScaler()), ("classify", LogisticRegression(max_iter=1000))])
    model.fit(features, labels)
    signature = infer_signature(features, model.predict(features))
    # Explicit requirements: mlflow's inference is slow here and lists the whole venv.
    requirements = [f"scikit-learn=={version('scikit-learn')}", f"pandas=={version('pandas')}"]
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=signature,
        input_example=features.head(2),
        pip_requirements=requirements,
    )
    return str(path)


def main(argv: list[str] | None = None) -> int:
    """Train, save, and print the saved model's path."""
    parser = argparse.ArgumentParser(description="Train and save the example MLflow model.")
    parser.add_argument("--out", type=Path, required=True, help="directory to save into")
    parser.add_argument("--name", default=MODEL_NAME, help="model directory name")
    parser.add_argument("--force", action="store_true", help="replace an existing model")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        print(train_and_log(args.out, name=args.name, overwrite=args.force), flush=True)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

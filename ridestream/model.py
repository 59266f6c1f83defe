"""The model: a scikit-learn pipeline on the shared features, and how to fit and score it.

Pure: rides frames in (`ridestream.features.RIDE_COLUMNS` + `TARGET`), fitted pipelines and
numbers out; no MLflow, no Kafka, no environment. The pipeline takes the frame that
`build_features` returns, and its encoders are part of it, so a registered model needs
nothing else to predict. Training and scoring keep only the rides the course's label rule
accepts (1 to 60 minutes, `is_labelled`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, TargetEncoder

from ridestream.features import (
    CATEGORICAL_FEATURES,
    NUMERICAL_FEATURES,
    TARGET,
    build_features,
    is_labelled,
)

GBM = "gbm"
LINEAR = "linear"
MODEL_KINDS = (GBM, LINEAR)
DEFAULT_KIND = GBM

# The course baseline: one-hot zone pair plus distance (DictVectorizer + LinearRegression).
LINEAR_COLUMNS = ("PU_DO", "trip_distance")

# Tuned on green 2021-01 -> 2021-02 (bench/training_models.py). Prediction walks every tree,
# so its cost is rounds x depth: the former 300 rounds of 63 leaves (RMSE 5.460) predicted
# ~120k rows/s on one thread, short of the 200k target. 100 rounds at learning rate 0.2, a
# little L2 and leaves of at least 10 rides reach RMSE 5.486 at ~2.5x the speed (fit < 1 s);
# 130 rounds of 95 leaves at 0.15 give 5.472 at ~2x, 150 of 95 at 0.15 give 5.463 at ~1.8x:
# too little margin on a loaded machine.
GBM_PARAMS: dict[str, Any] = {
    "max_iter": 100,
    "learning_rate": 0.2,
    "max_leaf_nodes": 127,
    "min_samples_leaf": 10,
    "l2_regularization": 1.0,
    "early_stopping": False,
    "random_state": 0,
}


# OpenMP threads for fitting and predicting. One: on the 2-core machine with a broker and other
# services beside us, 2 spinning OpenMP threads made a 2 s fit take 110 s (bench/training_*.py).
OPENMP_THREADS = 1
_controller: Any = None


def _thread_limit() -> Any:
    """A context that caps OpenMP threads (the controller is built once: it scans libraries)."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=OPENMP_THREADS, user_api="openmp")


class ZoneTargetEncoder(TargetEncoder):
    """scikit-learn's TargetEncoder with a faster `transform` for a continuous target.

    sklearn rebuilds a dict of every category (~15,000 zone pairs) on each transform call,
    which dominates small batches; this one builds a hash index of the categories once and
    looks a whole column up in one vectorised call (`pandas.Index.get_indexer`: ~0.1 us a
    value instead of ~0.6 for a dict lookup per value). Same numbers: a known category gets
    its encoding, an unknown one the target mean. Fitting is sklearn's (cross-fitted).
    """

    def transform(self, X: Any) -> np.ndarray:
        """Encode each column by lookup (unknown categories: the training target mean)."""
        if self.target_type_ != "continuous":
            return np.asarray(super().transform(X))
        values = X.to_numpy() if isinstance(X, pd.DataFrame) else np.asarray(X)
        out = np.empty(values.shape, dtype="float64")
        for column in range(values.shape[1]):
            out[:, column] = self.encode_column(column, values[:, column])
        return out

    def encode_column(self, column: int, values: np.ndarray) -> np.ndarray:
        """The encodings of one column's values (a continuous target only)."""
        lookups = self.__dict__.get("_lookups")
        if lookups is None:
            mean = float(self.target_mean_)
            # Position -1 (unknown) takes the last entry: the mean.
            lookups = [
                (pd.Index(categories), np.append(np.asarray(encoding, dtype="float64"), mean))
                for categories, encoding in zip(self.categories_, self.encodings_, strict=True)
            ]
            self._lookups = lookups
        categories, encoding = lookups[column]
        return np.asarray(encoding[categories.get_indexer(values)])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_lookups", None)  # a cache: rebuilt after loading
        return state


def _linear_records(features: pd.DataFrame) -> list[dict[Hashable, Any]]:
    """The course's dict rows: the zone pair as a category, the distance as a number."""
    return features[list(LINEAR_COLUMNS)].to_dict(orient="records")


def build_pipeline(kind: str = DEFAULT_KIND) -> Pipeline:
    """An unfitted pipeline of `kind` ("gbm" or "linear") that takes a features frame."""
    if kind == LINEAR:
        return Pipeline(
            [
                ("records", FunctionTransformer(_linear_records)),
                ("vectorizer", DictVectorizer()),
                ("regressor", LinearRegression()),
            ]
        )
    if kind == GBM:
        encoder = ColumnTransformer(
            [
                # Zone ids are categories: each becomes its (cross-fitted) mean duration.
                (
                    "zones",
                    ZoneTargetEncoder(
                        target_type="continuous", cv=KFold(5, shuffle=True, random_state=0)
                    ),
                    list(CATEGORICAL_FEATURES),
                ),
                ("numbers", "passthrough", list(NUMERICAL_FEATURES)),
            ],
            verbose_feature_names_out=False,
        )
        return Pipeline(
            [("encoder", encoder), ("regressor", HistGradientBoostingRegressor(**GBM_PARAMS))]
        )
    raise ValueError(f"unknown model kind {kind!r} (choose from {', '.join(MODEL_KINDS)})")


def labelled(rides: pd.DataFrame) -> pd.DataFrame:
    """The rides the course's label rule keeps (1 to 60 minutes)."""
    return rides[is_labelled(rides[TARGET])]


def fit(kind: str, train_rides: pd.DataFrame) -> Pipeline:
    """Fit a pipeline of `kind` on the labelled rides of `train_rides`."""
    train = labelled(train_rides)
    if train.empty:
        raise ValueError("no labelled rides (1-60 min) to train on")
    pipeline = build_pipeline(kind)
    with _thread_limit():
        pipeline.fit(build_features(train), train[TARGET].to_numpy(dtype="float64"))
    return pipeline


def predict_features(model: Any, features: pd.DataFrame) -> np.ndarray:
    """Predicted minutes for a features frame (the output of `build_features`)."""
    if features.empty:
        return np.empty(0, dtype="float64")
    with _thread_limit():
        encoded = _gbm_matrix(model, features)
        if encoded is not None:
            return np.asarray(model[-1].predict(encoded), dtype="float64")
        return np.asarray(model.predict(features), dtype="float64")


def _gbm_matrix(model: Any, features: pd.DataFrame) -> np.ndarray | None:
    """The regressor's input of a `build_pipeline("gbm")` model, built without the
    ColumnTransformer (~1 ms of validation and bookkeeping per call: most of the cost of a
    predictor batch of a few rides); None for any other model. The same matrix, column for
    column: the zone encodings, then the numbers as float64 (tests/unit/model)."""
    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        return None
    encoder = model.steps[0][1]
    if not isinstance(encoder, ColumnTransformer) or not hasattr(encoder, "transformers_"):
        return None
    spec = encoder.transformers
    if (
        len(spec) != 2
        or encoder.remainder != "drop"
        or not isinstance(spec[1][1], str)
        or spec[1][1] != "passthrough"
        or not isinstance(encoder.transformers_[0][1], ZoneTargetEncoder)
    ):
        return None
    zones = encoder.transformers_[0][1]
    zone_columns, number_columns = list(spec[0][2]), list(spec[1][2])
    if zones.target_type_ != "continuous":
        return None
    # Column by column: selecting a list of columns copies the frame (pandas' take).
    matrix = np.empty((len(features), len(zone_columns) + len(number_columns)), dtype="float64")
    for index, column in enumerate(zone_columns):
        matrix[:, index] = zones.encode_column(index, features[column].to_numpy())
    for index, column in enumerate(number_columns, start=len(zone_columns)):
        matrix[:, index] = features[column].to_numpy(dtype="float64")
    return matrix


def predict(model: Any, rides: pd.DataFrame) -> np.ndarray:
    """Predicted minutes for every ride of a rides frame."""
    return predict_features(model, build_features(rides))


def score(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and count of predictions against labels."""
    errors = np.asarray(y_pred, dtype="float64") - np.asarray(y_true, dtype="float64")
    if errors.size == 0:
        return {"rmse": float("nan"), "mae": float("nan"), "count": 0.0}
    return {
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "mae": float(np.mean(np.abs(errors))),
        "count": float(errors.size),
    }


def evaluate(model: Any, rides: pd.DataFrame) -> dict[str, float]:
    """RMSE, MAE and count of `model` on the labelled rides of `rides`."""
    scored = labelled(rides)
    return score(scored[TARGET].to_numpy(), predict(model, scored))

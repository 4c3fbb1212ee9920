"""A policy file: a linear policy over the standardized observation, in a numpy ``.npz``.

What enters: an ``.npz`` with ``weights`` (15,), ``bias`` (), ``mean`` (15,), ``scale`` (15,)
and ``feature_names`` (the contract's order, checked). What leaves: the position
``tanh(((x - mean) / scale) . weights + bias)``, always in [-1, 1].

Why ``.npz`` and not ONNX: numpy is already the client's one numeric dependency, a linear or
small policy needs nothing more, and the file stays readable; a trainer exporting ONNX can be
wired in :func:`load_policy` beside it without changing the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from canonical.contract import FEATURE_NAMES, N_FEATURES


class PolicyError(ValueError):
    """The policy file is missing, malformed or made for another contract."""


@dataclass(frozen=True)
class LinearPolicy:
    """``position = tanh(((x - mean) / scale) . weights + bias)``."""

    weights: npt.NDArray[np.float64]
    bias: float
    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]

    def act(self, values: npt.NDArray[np.float32]) -> float:
        """The position for one observation (float32[15], contract order)."""
        x = (np.asarray(values, dtype=np.float64) - self.mean) / self.scale
        return float(np.clip(np.tanh(x @ self.weights + self.bias), -1.0, 1.0))

    def save(self, path: Path) -> None:
        with Path(path).open("wb") as out:
            np.savez(
                out,
                weights=self.weights,
                bias=np.float64(self.bias),
                mean=self.mean,
                scale=self.scale,
                feature_names=np.asarray(FEATURE_NAMES),
            )


def load_policy(path: Path) -> LinearPolicy:
    """Read a policy file; :class:`PolicyError` names what is wrong with it."""
    try:
        with np.load(Path(path)) as data:
            names = tuple(str(n) for n in data["feature_names"])
            policy = LinearPolicy(
                weights=np.asarray(data["weights"], dtype=np.float64),
                bias=float(data["bias"]),
                mean=np.asarray(data["mean"], dtype=np.float64),
                scale=np.asarray(data["scale"], dtype=np.float64),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise PolicyError(f"{path}: not a policy file ({exc})") from None
    if names != FEATURE_NAMES:
        raise PolicyError(f"{path}: made for features {names}, the contract has {FEATURE_NAMES}")
    for name in ("weights", "mean", "scale"):
        if getattr(policy, name).shape != (N_FEATURES,):
            raise PolicyError(f"{path}: {name} must have shape ({N_FEATURES},)")
    if not (np.isfinite(policy.weights).all() and (policy.scale > 0).all()):
        raise PolicyError(f"{path}: weights must be finite and scales positive")
    return policy

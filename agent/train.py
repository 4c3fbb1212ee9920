"""Train the example policy: a ``gymnasium.Env`` over a training set and a small trainer.

What enters: a training set ``.npz`` written by ``python -m pipeline training-set`` (float32
(N, 15) in contract order, with timestamps and symbols). What leaves: a policy file
(:mod:`agent.policy`).

:class:`TrainingSetEnv` replays one symbol's rows in time order: the observation is the row
(``Box(15,)`` float32, contract order, with the ``position`` feature replaced by the agent's own
last action, as the server serves it once the agent pushes), the action a position in [-1, 1],
the reward ``position * next log_ret_5m`` (the next bar's return) minus a cost per unit of
position change. Any trainer that speaks gymnasium can replace :func:`train` (e.g. a PPO from
an RL library, exported to a policy file); this one is the cross-entropy method over the linear
policy's weights: short, dependency-free and deterministic under its seed.

    python -m agent.train --training-set train.npz --out agent/policies/example.npz
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from agent.policy import LinearPolicy
from canonical.contract import FEATURE_INDEX, N_FEATURES

RET = FEATURE_INDEX["log_ret_5m"]
POSITION = FEATURE_INDEX["position"]


class TrainingSetEnv(gym.Env[npt.NDArray[np.float32], npt.NDArray[np.float32]]):
    """One episode = one pass over the rows (one symbol, time order)."""

    def __init__(self, values: npt.NDArray[np.float32], cost: float = 1e-5) -> None:
        if values.ndim != 2 or values.shape[1] != N_FEATURES or len(values) < 2:
            raise ValueError(f"need (N >= 2, {N_FEATURES}) float32 rows, got {values.shape}")
        self._values = np.asarray(values, dtype=np.float32)
        self._cost = cost
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (N_FEATURES,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._i = 0
        self._position = 0.0

    def _observation(self) -> npt.NDArray[np.float32]:
        row: npt.NDArray[np.float32] = self._values[self._i].copy()
        row[POSITION] = np.float32(self._position)
        return row

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        self._i, self._position = 0, 0.0
        return self._observation(), {}

    def step(
        self, action: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.float32], float, bool, bool, dict[str, Any]]:
        position = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1, 1))
        next_return = float(self._values[self._i + 1, RET])
        reward = position * next_return - self._cost * abs(position - self._position)
        self._position = position
        self._i += 1
        done = self._i >= len(self._values) - 1
        return self._observation(), reward, done, False, {}


def episode_return(env: TrainingSetEnv, policy: LinearPolicy) -> float:
    observation, _ = env.reset(seed=0)
    total, done = 0.0, False
    while not done:
        action = np.array([policy.act(observation)], dtype=np.float32)
        observation, reward, done, _, _ = env.step(action)
        total += reward
    return total


def train(
    values: npt.NDArray[np.float32], *, iterations: int = 15, population: int = 24, seed: int = 7
) -> LinearPolicy:
    """Cross-entropy method over the weights of a linear policy, standardized on ``values``."""
    rng = np.random.default_rng(seed)
    mean = values.astype(np.float64).mean(axis=0)
    scale = values.astype(np.float64).std(axis=0)
    scale[scale == 0] = 1.0
    env = TrainingSetEnv(values)
    mu, sigma = np.zeros(N_FEATURES + 1), np.full(N_FEATURES + 1, 0.5)
    for _ in range(iterations):
        candidates = mu + sigma * rng.standard_normal((population, N_FEATURES + 1))
        scores = [
            episode_return(env, LinearPolicy(c[:-1], float(c[-1]), mean, scale)) for c in candidates
        ]
        elite = candidates[np.argsort(scores)[-max(2, population // 5) :]]
        mu, sigma = elite.mean(axis=0), elite.std(axis=0) + 1e-3
    return LinearPolicy(mu[:-1], float(mu[-1]), mean, scale)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.train", description=__doc__)
    parser.add_argument("--training-set", type=Path, required=True, help="an .npz training set")
    parser.add_argument("--symbol", default="USDCOP")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--iterations", type=int, default=15)
    args = parser.parse_args(argv)
    with np.load(args.training_set) as data:
        values = data["values"][data["symbols"] == args.symbol]
    if len(values) < 2:
        print(f"error: {args.training_set} has fewer than 2 rows of {args.symbol}", file=sys.stderr)
        return 1
    policy = train(values, iterations=args.iterations)
    env = TrainingSetEnv(values)
    flat = LinearPolicy(np.zeros(N_FEATURES), 0.0, policy.mean, policy.scale)
    policy.save(args.out)
    print(
        f"trained on {len(values)} rows: episode return {episode_return(env, policy):.5f} "
        f"(flat {episode_return(env, flat):.5f}) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

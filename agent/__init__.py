"""The inference agent (the guide's L5): observe -> act -> push, against the observation server.

What enters: the server's observations (15 float32 in contract order, with provenance) and a
policy file. What leaves: the agent's position in [-1, 1], pushed with ``PushState`` (the state
view's truth), and one decision-log line per decision (time, values, sources, action, why,
latencies).

- :mod:`agent.policy`: the policy file (a linear policy in a numpy ``.npz``) and its action.
- :mod:`agent.loop`: one decision (hold when the observation cannot be trusted) and the loop at
  each completed 5-minute bar.
- :mod:`agent.train`: a ``gymnasium.Env`` over a training set and the trainer of the example
  policy (``agent/policies/example.npz``).
"""

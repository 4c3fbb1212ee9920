"""The guide's ``src/core`` namespace: ``core.contracts.feature_contract``, which re-exports
:mod:`canonical.contract` (the one definition of CTR-FEATURE-001), and ``core.settings``, the
parts every settings model is built from."""

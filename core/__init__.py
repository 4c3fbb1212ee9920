"""The guide's ``src/core`` namespace: here only ``core.contracts.feature_contract``, which
re-exports :mod:`canonical.contract` (the one definition of CTR-FEATURE-001)."""

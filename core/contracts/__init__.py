"""The guide's contracts package; the feature contract itself lives in :mod:`canonical.contract`."""

"""Hypothesis profiles, registered in one place for the tests, the CLI and ``verify``.

- ``dev``: quick local feedback (50 examples per property).
- ``ci``: derandomized (the same examples every run), no example database, no
  deadline (shared CI machines are noisy; speed is measured by ``make bench``),
  100 examples per property (Hypothesis's default count, kept so a verdict on one
  target stays well under 30 s).
- ``thorough``: 2000 examples per property, for ``make soak`` and pre-release runs.

The default is ``HYPOTHESIS_PROFILE`` if set, else ``ci`` when ``CI`` is true, else ``dev``.
"""

from __future__ import annotations

import os

from hypothesis import settings

__all__ = ["PROFILES", "default_profile", "register_profiles"]

PROFILES: tuple[str, ...] = ("dev", "ci", "thorough")


def register_profiles() -> None:
    """Register the three profiles with Hypothesis (idempotent)."""
    # derandomize is set explicitly: under CI=true Hypothesis's own defaults derandomize,
    # and dev and thorough runs must draw fresh examples (with a reported seed) even there.
    settings.register_profile("dev", max_examples=50, deadline=None, derandomize=False)
    settings.register_profile(
        "ci", max_examples=100, derandomize=True, database=None, deadline=None, print_blob=True
    )
    settings.register_profile(
        "thorough", max_examples=2000, deadline=None, derandomize=False, print_blob=True
    )


def default_profile() -> str:
    """``HYPOTHESIS_PROFILE``, else ``ci`` under CI, else ``dev``."""
    chosen = os.environ.get("HYPOTHESIS_PROFILE")
    if chosen:
        return chosen
    return "ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev"


register_profiles()

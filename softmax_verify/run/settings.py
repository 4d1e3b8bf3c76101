"""What every verdict shares: the Hypothesis settings it runs under.

The command line, ``verify`` and the pytest contract shrink a failure the same way, so
that one bug gets one minimal counterexample wherever it is found (their default
dtypes are ``core.options.DEFAULT_DTYPES``).
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import InvalidArgument

from softmax_verify.run.profiles import PROFILES

__all__ = ["registered_profile", "verdict_settings"]


def registered_profile(profile: str) -> settings:
    """The Hypothesis profile named ``profile``: ours (dev, ci, thorough) or any the user has."""
    if not isinstance(profile, str):
        raise TypeError(f"profile must be the name of a Hypothesis profile, got {profile!r}")
    try:
        return settings.get_profile(profile)
    except InvalidArgument:
        raise ValueError(
            f"profile must be a registered Hypothesis profile ({', '.join(PROFILES)} or one "
            f"registered with hypothesis.settings.register_profile); got {profile!r}"
        ) from None


def verdict_settings(base: settings) -> settings:
    """``base`` with what a verdict needs on top of any profile.

    - no deadline: each call is bounded by the implementation's own time limit instead,
      and a slow call is not a wrong softmax;
    - one bug at a time (``report_multiple_bugs=False``): Hypothesis then shrinks
      towards the smallest failing case of any kind, not one per exception site;
    - no explain phase: it only annotates Hypothesis's own report (with lines of this
      package, not the user's) and calls the code under test about 100 more times;
    - the code under test may be slow or its arrays large: neither is a property failure.
    """
    return settings(
        base,
        deadline=None,
        report_multiple_bugs=False,
        phases=tuple(p for p in base.phases if p is not Phase.explain),
        suppress_health_check=[
            *base.suppress_health_check,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )

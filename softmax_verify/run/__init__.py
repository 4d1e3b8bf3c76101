"""The engine: a run's plan, the Hypothesis properties, the report.

``runner`` (``verify``, ``run_invariant``, ``run_pairs``), ``plan`` (one run's setup,
validated once), ``sharing`` (invariants that draw the same cases, on one stream of
examples), ``settings`` and ``profiles`` (Hypothesis), ``storage`` (Hypothesis's files
kept out of the user's folder), ``report`` and ``formats`` (text, JSON, HTML, JUnit,
GitHub annotations).
"""

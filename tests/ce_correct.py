"""Correct softmax cross-entropy in every convention the reader takes, as (target, backward,
options): no invariant fails on any of them (tests/invariants/test_cross_entropy.py) and no
diagnosis names any (tests/diagnosis/test_cross_entropy_diagnosis.py)."""

from __future__ import annotations

from typing import Any

import ce_styles as s

from softmax_verify import Options
from softmax_verify.target.load import reference_loss

__all__ = ["CORRECT"]

# (target, backward, options): correct code in every convention
CORRECT: list[tuple[Any, Any, dict[str, Any]]] = [
    (s.softmax_loss, None, {}),
    (s.softmax_loss, None, {"labels": "onehot"}),
    (s.softmax_loss, None, {"labels": "probs"}),
    (s.lse_loss, s.lse_grad, {}),
    (s.SoftmaxCrossEntropy, None, {"labels": "probs"}),
    (s.CrossEntropyWithProbs, None, {}),
    (s.StoredCrossEntropy, None, {"labels": "onehot"}),
    (s.Activation_Softmax_Loss_CategoricalCrossentropy, None, {}),
    (s.SoftmaxClassifier().loss, None, {}),
    (s.RowLosses, None, {"reduction": "none"}),
    (s.sum_loss, None, {"reduction": "sum"}),
    (s.sequence_loss, None, {"rank": 3}),
    (s.sequential_lse_loss, s.sequential_grad, {}),
    (*reference_loss(Options(kind="cross_entropy", reduction="none").loss), {"reduction": "none"}),
]

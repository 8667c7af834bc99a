"""Metrics, pure numpy/scipy: verification, LFW protocol, identification,
liveness (ISO/IEC 30107-3), detection (WIDER FACE, FDDB) and image quality.

Conventions used throughout: scores are similarities (higher = more likely
genuine / bona fide), a pair is accepted when ``score >= threshold``, and
labels are 1 for genuine and 0 for impostor.

Submodules are imported on use: ``harness.metrics.verification``,
``.lfw``, ``.identification``, ``.liveness``, ``.detection``, ``.image``
(scikit-image, lazily), ``.uncertainty`` (bootstrap and binomial confidence
intervals) and ``.report`` (JSON summaries for results.json).
"""

from harness.metrics._checks import MetricInputError
from harness.metrics._record import Metric

__all__ = ["Metric", "MetricInputError"]

"""Metrics, pure numpy/scipy: verification, LFW protocol, identification,
liveness (ISO/IEC 30107-3), detection (WIDER FACE, FDDB) and image quality.

Conventions used throughout: scores are similarities (higher = more likely
genuine / bona fide), a pair is accepted when ``score >= threshold``, and
labels are 1 for genuine and 0 for impostor.

Submodules are imported on use: ``harness.metrics.verification``,
``.lfw``, ``.identification``, ``.liveness``, ``.detection``, ``.image``
(scikit-image, lazily), ``.uncertainty`` (bootstrap and binomial confidence
intervals), ``.report`` (JSON summaries for results.json) and ``.search`` (exact
top-k search for 1:N; its optional torch and faiss backends are imported only
when chosen).
"""

from harness.metrics._checks import MetricInputError
from harness.metrics._record import Metric

__all__ = ["Metric", "MetricInputError"]

"""Synthesized presentation attacks (print and replay imitations) for when no
spoof database is at hand.

Synthesized attacks are not a substitute for a real presentation-attack
(PAD) database: every report on such data says so
(``protocol["synthetic_attacks"] = True`` and :data:`SYNTHETIC_NOTE`).

numpy only at import; OpenCV is imported inside the functions that need it.
"""

from __future__ import annotations

from harness.synth.attacks import (
    ATTACK_SPECIES,
    SYNTHETIC_NOTE,
    SYNTHESIS_FILE,
    print_attack,
    replay_attack,
    synthesize_attack,
    synthesize_spoof_set,
)

__all__ = [
    "ATTACK_SPECIES",
    "SYNTHETIC_NOTE",
    "SYNTHESIS_FILE",
    "print_attack",
    "replay_attack",
    "synthesize_attack",
    "synthesize_spoof_set",
]

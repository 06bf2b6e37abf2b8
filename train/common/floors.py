"""A floor: a learner's number beside the trivial baseline it must beat, and whether it did. One record for every
learner (train-predictor against copying the last frame, train-sfonet's flow against zero or mean flow and its
masks against all-empty or all-ones, evaluate-predictor's frame AUC against copy-last), read back the same way by
the SOFF gate, the runner and the results page. Torch-free.

Rules:

- ``margin``: higher is better; cleared when ``value - baseline_value >= needed`` (``strict``: ``>``);
- ``ratio``: lower is better; cleared when ``value / baseline_value <= needed``;
- ``all``: a floor made of ``parts`` (name -> floor), cleared when every part is.

A floor that could not be measured (no held-out clip, one class only) has ``value`` or ``baseline_value`` None and
is not cleared.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

RULES = ("margin", "ratio", "all")
COPY_LAST_MARGIN_DB = 0.5   # a predictor clears its floor when its held-out PSNR beats copying the last frame by this


@dataclass(frozen=True)
class Floor:
    """``quantity`` and ``baseline`` in words (with units), the two numbers, the margin ``needed`` under ``rule``,
    ``cleared``, and the one-line ``verdict`` the commands print. ``extra`` keeps numbers a reader may want beside
    them (e.g. the copy-last per-video AUC)."""

    quantity: str
    baseline: str
    value: float | None
    baseline_value: float | None
    needed: float | None
    rule: str
    cleared: bool
    verdict: str
    parts: Mapping[str, Floor] = field(default_factory=dict)
    extra: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"floor rule {self.rule!r}: choose from {', '.join(RULES)}")
        object.__setattr__(self, "parts", MappingProxyType(dict(self.parts)))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    @property
    def margin(self) -> float | None:
        """``value - baseline_value`` (margin rule) or ``value / baseline_value`` (ratio rule); None if unmeasured."""
        if self.value is None or self.baseline_value is None or self.rule == "all":
            return None
        if self.rule == "ratio":
            return self.value / self.baseline_value if self.baseline_value > 0 else math.inf
        return self.value - self.baseline_value

    def part(self, name: str) -> Floor | None:
        return self.parts.get(name)

    def to_json(self) -> dict:
        return {"quantity": self.quantity, "baseline": self.baseline, "value": self.value,
                "baseline_value": self.baseline_value, "needed": self.needed, "rule": self.rule,
                "margin": self.margin, "cleared": self.cleared, "verdict": self.verdict,
                "parts": {k: p.to_json() for k, p in self.parts.items()}, "extra": dict(self.extra)}

    @classmethod
    def from_json(cls, data: Mapping | None) -> Floor | None:
        """The floor a metrics.json or a model file holds (None for none). ValueError for a dict of another shape
        (a file written before floors were records): the reader names the file."""
        if not data:
            return None
        missing = [k for k in ("quantity", "baseline", "rule", "cleared", "verdict") if k not in data]
        if missing:
            raise ValueError(f"a floor without {', '.join(missing)} (written by an older version)")
        return cls(data["quantity"], data["baseline"], data.get("value"), data.get("baseline_value"),
                   data.get("needed"), data["rule"], bool(data["cleared"]), data["verdict"],
                   {k: cls.from_json(p) for k, p in (data.get("parts") or {}).items()}, data.get("extra") or {})


def margin_floor(quantity: str, baseline: str, value: float | None, baseline_value: float | None, *,
                 needed: float, verdict, strict: bool = False, extra: Mapping | None = None) -> Floor:
    """A higher-is-better floor; ``verdict(floor)`` writes its line once ``cleared`` is known (it is called
    with the floor, measured or not)."""
    measured = value is not None and baseline_value is not None
    gap = value - baseline_value if measured else None
    cleared = measured and (gap > needed if strict else gap >= needed)
    floor = Floor(quantity, baseline, value, baseline_value, needed, "margin", bool(cleared), "", {}, extra or {})
    return _with_verdict(floor, verdict)


def ratio_floor(quantity: str, baseline: str, value: float | None, baseline_value: float | None, *,
                needed: float, verdict, extra: Mapping | None = None) -> Floor:
    """A lower-is-better floor: cleared when ``value / baseline_value <= needed``."""
    measured = value is not None and baseline_value is not None
    ratio = (value / baseline_value if baseline_value > 0 else math.inf) if measured else None
    floor = Floor(quantity, baseline, value, baseline_value, needed, "ratio", ratio is not None and ratio <= needed,
                  "", {}, extra or {})
    return _with_verdict(floor, verdict)


def all_floor(quantity: str, parts: Mapping[str, Floor], *, verdict: str | None = None) -> Floor:
    """A floor made of ``parts``: cleared when there are parts and every one is cleared."""
    cleared = bool(parts) and all(p.cleared for p in parts.values())
    line = verdict if verdict is not None else "; ".join(p.verdict for p in parts.values())
    return Floor(quantity, "each part's own", None, None, None, "all", cleared, line, parts)


def _with_verdict(floor: Floor, verdict) -> Floor:
    return replace(floor, verdict=verdict(floor) if callable(verdict) else verdict)

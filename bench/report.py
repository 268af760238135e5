"""The figures, one dataclass for both sides, and their Markdown table and JSON."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

SIDES = ("coursehub", "baseline")


@dataclass
class Figure:
    """One figure measured for both sides: every sample kept, summarised by median/min/max."""

    key: str
    title: str
    unit: str
    better: str = "lower"  # "lower" or "higher"
    samples: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in SIDES})
    note: str = ""

    def add(self, side: str, value: float) -> None:
        self.samples.setdefault(side, []).append(float(value))

    def stats(self, side: str) -> dict[str, float] | None:
        v = self.samples.get(side) or []
        if not v:
            return None
        return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}

    def ratio(self) -> float | None:
        """coursehub / baseline, of the medians."""
        a, b = self.stats("coursehub"), self.stats("baseline")
        if not a or not b:
            return None
        if b["median"] == 0:
            return None if a["median"] == 0 else float("inf")
        return a["median"] / b["median"]

    def badness(self) -> float | None:
        """How much worse coursehub is than the baseline (>1 worse, <1 better)."""
        r = self.ratio()
        if r is None:
            return None
        if self.better == "higher":
            return float("inf") if r == 0 else 1 / r
        return r

    def overlap(self) -> bool:
        """Do the two sides' ranges (min-max over the repeats) overlap? Then a difference of
        the medians is within this run's run-to-run noise."""
        a, b = self.stats("coursehub"), self.stats("baseline")
        if not a or not b:
            return False
        return a["min"] <= b["max"] and b["min"] <= a["max"]

    def to_json(self) -> dict:
        return {
            **asdict(self),
            "stats": {s: self.stats(s) for s in SIDES},
            "ratio": self.ratio(),
            "badness": self.badness(),
        }


class Figures:
    def __init__(self) -> None:
        self.items: dict[str, Figure] = {}

    def get(self, key: str, title: str, unit: str, better: str = "lower", note: str = "") -> Figure:
        if key not in self.items:
            self.items[key] = Figure(key, title, unit, better, note=note)
        return self.items[key]

    def add(self, side: str, key: str, title: str, unit: str, value: float, **kw) -> None:
        self.get(key, title, unit, **kw).add(side, value)

    def __iter__(self):
        return iter(self.items.values())

    def worst(self, count: int = 2) -> list[Figure]:
        """The figures where coursehub is furthest behind the baseline."""
        real = [f for f in self if not f.key.endswith("_diag")]
        ranked = [f for f in real if f.badness() is not None and f.badness() != float("inf")]
        ranked += [f for f in real if f.badness() == float("inf")]
        ranked.sort(key=lambda f: f.badness(), reverse=True)
        return ranked[:count]


def _num(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _cell(st: dict[str, float] | None) -> str:
    if not st:
        return "—"
    if st["n"] == 1 or st["min"] == st["max"]:
        return _num(st["median"])
    return f"{_num(st['median'])} ({_num(st['min'])}–{_num(st['max'])})"


def markdown(figures: Figures, meta: dict) -> str:
    lines = [
        f"coursehub benchmark, {meta['date']} on {meta['machine']}",
        "",
        f"Settings: {meta['settings']}. Load average before: {meta['loadavg_before']}, "
        f"after: {meta.get('loadavg_after', '?')}. Took {meta.get('took_s', 0):.0f} s.",
        "",
        "| # | figure | unit | coursehub median (min–max) | baseline median (min–max) | coursehub / baseline | |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(figures, 1):
        r = f.ratio()
        ratio = "—" if r is None else ("∞" if r == float("inf") else f"{r:.2f}")
        bad = f.badness()
        mark = ""
        if bad is not None and bad > 1.1:
            mark = "worse"
        elif bad is not None and bad < 0.9:
            mark = "better"
        if mark and f.overlap():
            mark += " (ranges overlap)"
        arrow = "↓" if f.better == "lower" else "↑"
        lines.append(
            f"| {i} | {f.title} | {f.unit} {arrow} | {_cell(f.stats('coursehub'))} | "
            f"{_cell(f.stats('baseline'))} | {ratio} | {mark} |"
        )
    lines.append("")
    lines.append(
        "↓ lower is better, ↑ higher is better; 'worse'/'better': coursehub more than 10 % "
        "behind/ahead of the baseline; '(ranges overlap)': the min–max ranges of the two sides "
        "overlap, so the difference is within this run's run-to-run noise."
    )
    worst = [f for f in figures.worst(2) if f.badness() > 1]
    if worst:
        lines.append(
            "Furthest behind the baseline: "
            + "; ".join(
                f"{f.title} ({f.badness():.2f}× worse{', ranges overlap' if f.overlap() else ''})"
                for f in worst
            )
            + "."
        )
    notes = [f"- {f.title}: {f.note}" for f in figures if f.note]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


def write_json(path: str, figures: Figures, meta: dict, details: dict) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"meta": meta, "figures": [f.to_json() for f in figures], "details": details},
            indent=1,
        )
        + "\n"
    )


def load(path: str) -> tuple[Figures, dict, dict]:
    data = json.loads(Path(path).read_text())
    figures = Figures()
    for f in data["figures"]:
        fig = figures.get(f["key"], f["title"], f["unit"], f["better"], f.get("note", ""))
        fig.samples = {s: list(v) for s, v in f["samples"].items()}
    return figures, data["meta"], data["details"]


def main(argv: list[str] | None = None) -> int:
    """Print the Markdown table of a JSON result again: python -m bench.report FILE.json"""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.report RESULT.json", file=sys.stderr)
        return 2
    figures, meta, _ = load(args[0])
    print(markdown(figures, meta), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

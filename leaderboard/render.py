"""Leaderboard tables: ranking of validated entries, Markdown, and a static HTML page.

The page is one self-contained file (inline CSS, one inline script for sorting, inline SVG
for CI bars and learning curves) that works from ``file://`` with no network. Every string
that came from a results file is escaped (:func:`html.escape` for HTML, plus Markdown
escaping for the README), and a Content-Security-Policy allows only the page's own script
(by hash), so even a missed escape could not run injected code.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from typing import Any

import numpy as np

from vsml_bench.leaderboard import metrics, schema
from vsml_bench.leaderboard.suites import SUITES

PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#000000",
)


@dataclass(frozen=True)
class Split:
    """An entry's IQM on a set of tasks ("inside") and on the rest ("outside"), and the gap.

    For an entry meta-trained on some of the suite's datasets, ``tasks`` are its
    in-distribution tasks, ``outside`` is its headline and ``gap`` its OOD gap (from the
    results file's summary). For a zero-shot entry (``reference`` True), ``tasks`` are the
    in-distribution tasks of the suite's meta-trained entries: the same split of *its* scores
    shows how much harder the other tasks are for a learner that saw none of them, which is
    what a meta-trained entry's gap has to be read against.
    """

    tasks: tuple[str, ...]
    inside: metrics.Estimate
    outside: metrics.Estimate
    gap: metrics.Estimate
    reference: bool = False


@dataclass
class Row:
    """One entry of one suite's table."""

    rank: int | None
    name: str
    spec: str
    headline: metrics.Estimate | None
    all_tasks: metrics.Estimate | None
    tasks: dict[str, dict[str, Any]]
    meta_trained_on: tuple[str, ...]
    n_run: int
    n_missing: int
    p_better_than_next: float | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    #: Meta-trained on none of the suite's datasets (MTEB's "zero-shot").
    zero_shot: bool = True
    #: Ran every task of the suite.
    complete: bool = True
    #: Heading of the group of entries this row is ranked within.
    group: str = ""
    #: In-distribution vs OOD (or, for zero-shot entries, the reference split); None if none.
    split: Split | None = None
    #: Names of the meta-trained entries of the same learner that take this entry's place.
    superseded_by: tuple[str, ...] = ()


def _estimate(obj: Mapping[str, float] | None) -> metrics.Estimate | None:
    return None if obj is None else metrics.Estimate(obj["value"], obj["low"], obj["high"])


def _suite_task_ids(suite_id: str, group: Sequence[Mapping[str, Any]]) -> list[str]:
    if suite_id in SUITES:
        return [t.task_id for t in SUITES[suite_id].tasks]
    return sorted({t["task_id"] for entry in group for t in entry["tasks"]})


#: Heading of the unranked group of entries superseded by meta-trained ones.
SUPERSEDED = (
    "reference, not ranked: default meta-parameters (not meta-trained), superseded by a "
    "meta-trained entry of the same learner"
)


def learner_of(entry: Mapping[str, Any]) -> str:
    """The registered learner an entry's spec names (``meta_rnn`` of ``meta_rnn:mnist``)."""
    return str(entry["learner"]["spec"]).partition(":")[0]


def superseding(group: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    """Per entry, the names of the entries that supersede it (empty: it is ranked).

    An entry without meta-parameters of its own (``meta_params_sha256`` null: the learner's
    untrained ``meta_init`` or hand-set defaults) is superseded on a suite once an entry of
    the same learner *with* meta-parameters (shipped or a parameter file) is on that suite:
    the board then ranks the trained learner and keeps the default one as a reference.
    Learners without meta-parameters (SGD, kNN...) never have such an entry.
    """
    trained: dict[str, list[str]] = {}
    for entry in group:
        if entry["learner"]["meta_params_sha256"] is not None:
            trained.setdefault(learner_of(entry), []).append(entry["learner"]["name"])
    return [
        tuple(sorted(trained.get(learner_of(entry), ())))
        if entry["learner"]["meta_params_sha256"] is None
        else ()
        for entry in group
    ]


def _group_of(
    suite_id: str, entry: Mapping[str, Any], suite_tasks: Sequence[str], superseded: bool = False
) -> tuple[tuple[Any, ...], str, bool, bool]:
    """``(sort key, heading, zero_shot, complete)`` of the group an entry is ranked in.

    Like is compared with like: entries are ranked only against entries that ran the same
    tasks and are equally zero-shot. A suite fixes its task set; an entry that meta-trained on
    any of its datasets is not zero-shot and is ranked in a separate group (after every
    zero-shot group), and an entry that did not run every task is ranked with entries that ran
    exactly the same tasks, after every complete entry (missing tasks never lift a rank).
    ``superseded`` entries (:func:`superseding`) form one unranked group after all others.
    """
    suite = SUITES.get(suite_id)
    datasets = (
        {t.dataset for t in suite.tasks}
        if suite is not None
        else {t["dataset"] for t in entry["tasks"]}
    )
    seen = sorted(set(entry["learner"]["meta_trained_on"]) & datasets)
    ran = tuple(t["task_id"] for t in entry["tasks"] if t["status"] == "ok")
    missing = [t for t in suite_tasks if t not in ran]
    complete = not missing
    if superseded:
        return (2, (), False, 0, ()), SUPERSEDED, not seen, complete
    heading = "zero-shot" if not seen else f"not zero-shot (meta-trained on {', '.join(seen)})"
    if complete:
        heading += f", all {len(suite_tasks)} tasks"
    else:
        heading += (
            f", incomplete: {len(ran)} of {len(suite_tasks)} tasks (not run: {', '.join(missing)})"
        )
    key = (int(bool(seen)), tuple(seen), not complete, -len(ran), ran)
    return key, heading, not seen, complete


def _own_split(entry: Mapping[str, Any]) -> Split | None:
    """In-distribution vs OOD of an entry's own summary (v2; see :func:`schema.upgrade`)."""
    summary = entry["summary"]
    if summary.get("ood_gap") is None:
        return None
    tasks = tuple(
        t["task_id"] for t in entry["tasks"] if t["status"] == "ok" and t["distribution"] != "ood"
    )
    return Split(
        tasks,
        _estimate(summary["in_distribution"]),
        _estimate(summary["headline"]),
        _estimate(summary["ood_gap"]),
    )


def _reference_split(
    name: str, tasks: tuple[str, ...], scores: Mapping[str, np.ndarray]
) -> Split | None:
    """The split of a zero-shot entry's ``scores`` at ``tasks`` (None unless both sides ran)."""
    inside = [scores[t] for t in tasks if t in scores]
    outside = [v for t, v in scores.items() if t not in tasks]
    if not inside or not outside:
        return None
    est_in, est_out, gap = metrics.stratified_bootstrap_gap(
        inside, outside, label=f"reference:{name}:{','.join(tasks)}"
    )
    return Split(tasks, est_in, est_out, gap, reference=True)


def rank_entries(entries: Sequence[Mapping[str, Any]]) -> dict[str, list[Row]]:
    """Suite ID -> rows, grouped (see :func:`_group_of`), each group sorted best first.

    Ranks (tied, :func:`metrics.tied_ranks`) and P(better than the next row) are computed
    within a group only. Entries without any OOD task run have no headline, no rank, and come
    last in their group; superseded entries (:func:`superseding`) are not ranked at all.
    Each row carries its :class:`Split`: its own in-distribution vs OOD, or, for a zero-shot
    entry when the suite's meta-trained entries share one set of in-distribution tasks, the
    reference split at those tasks.
    """
    by_suite: dict[str, list[Mapping[str, Any]]] = {}
    for entry in entries:
        by_suite.setdefault(entry["suite"]["id"], []).append(entry)
    tables = {}
    for suite_id, group in sorted(by_suite.items()):
        suite_tasks = _suite_task_ids(suite_id, group)
        rows, scores, keys = [], [], []
        superseded_by = superseding(group)
        for entry, beaten_by in zip(group, superseded_by, strict=True):
            key, heading, zero_shot, complete = _group_of(
                suite_id, entry, suite_tasks, superseded=bool(beaten_by)
            )
            rows.append(
                Row(
                    rank=None,
                    name=entry["learner"]["name"],
                    spec=entry["learner"]["spec"],
                    headline=_estimate(entry["summary"]["headline"]),
                    all_tasks=_estimate(entry["summary"]["all_tasks"]),
                    tasks={t["task_id"]: t for t in entry["tasks"]},
                    meta_trained_on=tuple(entry["learner"]["meta_trained_on"]),
                    n_run=entry["summary"]["n_tasks_run"],
                    n_missing=entry["summary"]["n_tasks_missing"],
                    provenance=dict(entry["provenance"]),
                    zero_shot=zero_shot,
                    complete=complete,
                    group=heading,
                    split=_own_split(entry),
                    superseded_by=beaten_by,
                )
            )
            scores.append(schema.stream_accuracies(entry))
            keys.append(key)
        # The in-distribution task sets of the meta-trained entries; with exactly one, every
        # zero-shot entry gets the same split of its own scores as a reference.
        in_sets = {row.split.tasks for row in rows if row.split is not None}
        if len(in_sets) == 1:
            (reference,) = in_sets
            for row, row_scores in zip(rows, scores, strict=True):
                if row.zero_shot:
                    row.split = _reference_split(row.name, reference, row_scores)
        ordered: list[int] = []
        for key in sorted(set(keys)):
            members = [i for i in range(len(rows)) if keys[i] == key]
            ranked = [
                i for i in members if rows[i].headline is not None and not rows[i].superseded_by
            ]
            ranks = metrics.tied_ranks([rows[i].headline for i in ranked])
            for i, rank in zip(ranked, ranks, strict=True):
                rows[i].rank = rank
            order = sorted(
                members,
                key=lambda i: (
                    rows[i].headline is None,
                    -(rows[i].headline.value if rows[i].headline else 0.0),
                    rows[i].name,
                ),
            )
            for a, b in itertools.pairwise(order):
                if rows[a].rank is None or rows[b].rank is None:
                    continue
                rows[a].p_better_than_next = metrics.probability_of_improvement(
                    _ood_scores(rows[a], scores[a]), _ood_scores(rows[b], scores[b])
                )
            ordered += order
        tables[suite_id] = [rows[i] for i in ordered]
    return tables


def _ood_scores(row: Row, scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in scores.items() if row.tasks[k]["distribution"] == "ood"}


def groups(rows: Sequence[Row]) -> list[tuple[str, list[Row]]]:
    """Consecutive rows of one group, with its heading, in table order."""
    return [
        (heading, list(members)) for heading, members in itertools.groupby(rows, lambda r: r.group)
    ]


def _task_ids(suite_id: str, rows: Sequence[Row]) -> list[str]:
    if suite_id in SUITES:
        return [t.task_id for t in SUITES[suite_id].tasks]
    seen: list[str] = []
    for row in rows:
        seen.extend(t for t in row.tasks if t not in seen)
    return seen


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _not_run(task: Mapping[str, Any] | None) -> tuple[str, str]:
    """``(cell text, full status)`` of a task that did not run (or is absent from the entry)."""
    if task is None:
        return "n/a", "not run"
    limit = schema.max_classes_of(task["status"])
    if limit is not None:
        return f"≤{limit} classes", task["status"]
    return "n/a", task["status"]


def _in_dist_text(split: Split | None) -> str:
    """The in-distribution IQM of an entry's own split ("–" for none or a reference split)."""
    return "–" if split is None or split.reference else _fmt(split.inside.value)


def _gap_text(split: Split | None) -> str:
    """``+0.131 [+0.120, +0.142]``; a reference split: ``ref. +0.041 (mnist vs rest)``."""
    if split is None:
        return "–"
    gap = split.gap
    if split.reference:
        return f"ref. {gap.value:+.3f} ({', '.join(split.tasks)} vs rest)"
    return f"{gap.value:+.3f} [{gap.low:+.3f}, {gap.high:+.3f}]"


#: The legend of the in-distribution and OOD gap columns (Markdown and HTML).
GAP_LEGEND = (
    "**In-dist IQM** = IQM over the tasks whose dataset the learner was meta-trained on (its "
    "`meta_trained_on`, e.g. mnist in ood-v0 for a learner meta-trained on MNIST train: the "
    "test split, never seen, of the meta-training dataset). **OOD gap** = in-dist IQM minus "
    "the headline, with a 95% stratified-bootstrap CI; positive = worse outside the "
    "meta-training distribution. An entry with no in-distribution task in the suite has no "
    "gap (–). The gap also measures how much harder the OOD tasks are, so read it against "
    "`ref.`: for a zero-shot entry, when the suite's meta-trained entries share one set of "
    "in-distribution tasks, the same split of its own scores (those tasks vs the rest). "
    "`≤C classes` = not run: the learner's meta-parameters output at most C classes (the "
    "entry counts as incomplete). Entries without meta-parameters of their own (untrained or "
    "hand-set defaults) of a learner that has a meta-trained entry on the suite are listed "
    "as a reference, unranked."
)


# --- Markdown -----------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def _safe_text(text: Any) -> str:
    """``text`` as valid Unicode: validation refuses lone surrogates, but a page must never
    fail to encode because one slipped through (they become U+FFFD)."""
    return _SURROGATE.sub("\ufffd", str(text))


def md_escape(text: str) -> str:
    """Escape a user string for a Markdown table cell: HTML entities, Markdown specials, newlines."""
    text = " ".join(_safe_text(text).split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=True))


def render_markdown(entries: Sequence[Mapping[str, Any]], problems: Sequence[str] = ()) -> str:
    """The leaderboard as Markdown (one ranked table per suite)."""
    lines = [
        "# vsml-bench leaderboard",
        "",
        "Generated by `vsml-bench leaderboard` from the validated entries in `leaderboard/results/`;",
        "do not edit by hand. **Headline** = interquartile mean (IQM) of per-stream mean online",
        "accuracy over the tasks *outside* the learner's meta-training data (OOD), with a 95%",
        "stratified-bootstrap CI. **Rank** = 1 + the number of entries whose whole CI lies above this",
        "entry's CI (statistically tied entries share a rank). **P(>next)** = probability of",
        "improvement over the next row on their shared OOD tasks (Agarwal et al. 2021). Per-task",
        "cells: mean online accuracy; *italic* = in-distribution (not in the headline); `n/a` =",
        "not run: data missing. Entries are ranked only against entries that ran the same tasks",
        "and are equally zero-shot: an entry meta-trained on any dataset of the suite is ranked in",
        "a separate group, and an incomplete entry after every complete one.",
        "",
        textwrap.fill(GAP_LEGEND, 95, break_long_words=False, break_on_hyphens=False),
        "",
    ]
    tables = rank_entries(entries)
    if not tables:
        lines += ["No entries yet: `vsml-bench evaluate ...` then `vsml-bench submit FILE`.", ""]
    for suite_id, rows in tables.items():
        task_ids = _task_ids(suite_id, rows)
        lines += [f"## {md_escape(suite_id)}", ""]
        for heading, members in groups(rows):
            lines += [f"### {md_escape(heading)}", ""]
            lines += _markdown_table(task_ids, members)
            lines.append("")
    if problems:
        lines += ["## Rejected files", ""]
        lines += [f"- {md_escape(p)}" for p in problems]
        lines.append("")
    return "\n".join(lines)


def _markdown_table(task_ids: Sequence[str], rows: Sequence[Row]) -> list[str]:
    header = ["Rank", "Learner", "Headline IQM (OOD)", "95% CI", "In-dist IQM", "OOD gap [95% CI]"]
    header += ["P(>next)", "All-task IQM"]
    header += [md_escape(t) for t in task_ids] + ["Meta-trained on"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for row in rows:
        cells = [
            str(row.rank) if row.rank is not None else "–",
            md_escape(row.name),
            _fmt(row.headline.value if row.headline else None),
            f"[{_fmt(row.headline.low)}, {_fmt(row.headline.high)}]" if row.headline else "–",
            _in_dist_text(row.split),
            md_escape(_gap_text(row.split)),
            _fmt(row.p_better_than_next, 2),
            _fmt(row.all_tasks.value if row.all_tasks else None),
        ]
        for task_id in task_ids:
            task = row.tasks.get(task_id)
            if task is None or task["status"] != "ok":
                cells.append(md_escape(_not_run(task)[0]))
                continue
            value = _fmt(task["metrics"]["accuracy"]["value"])
            cells.append(f"*{value}*" if task["distribution"] != "ood" else value)
        cells.append(md_escape(", ".join(row.meta_trained_on)) or "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# --- HTML ---------------------------------------------------------------------------------


def _e(text: Any) -> str:
    return html.escape(_safe_text(text), quote=True)


def _ci_bar(est: metrics.Estimate | None, lo: float = 0.0, hi: float = 1.0) -> str:
    """A 120x14 inline SVG: the CI as a line, the estimate as a dot, on the axis [lo, hi]."""
    if est is None:
        return ""
    w = 120.0

    def x(v: float) -> float:
        return 4 + (w - 8) * min(max((v - lo) / (hi - lo), 0.0), 1.0)

    return (
        f'<svg width="{w:.0f}" height="14" role="img" aria-label="95% CI">'
        f'<line x1="4" y1="7" x2="{w - 4:.0f}" y2="7" stroke="#eee" stroke-width="6"/>'
        f'<line x1="{x(est.low):.1f}" y1="7" x2="{x(est.high):.1f}" y2="7" stroke="#1f77b4" '
        f'stroke-width="6"/><circle cx="{x(est.value):.1f}" cy="7" r="3.5" fill="#08306b"/></svg>'
    )


def _curve_plot(task_id: str, rows: Sequence[Row]) -> str:
    """Inline SVG of accuracy against position, one line per learner that ran the task."""
    width, height, left, bottom, top, right = 340, 220, 40, 30, 10, 10
    series = []
    for i, row in enumerate(rows):
        task = row.tasks.get(task_id)
        if task is not None and task["status"] == "ok":
            series.append((PALETTE[i % len(PALETTE)], row.name, task["curve"]))
    if not series:
        return ""
    t_max = max(point[0] for _, _, curve in series for point in curve)

    def px(pos: float) -> float:
        return left + (width - left - right) * pos / t_max

    def py(acc: float) -> float:
        return top + (height - top - bottom) * (1.0 - acc)

    parts = [
        f'<svg width="{width}" height="{height}" role="img" aria-label="learning curves">',
        f'<rect x="{left}" y="{top}" width="{width - left - right}" '
        f'height="{height - top - bottom}" fill="none" stroke="#ccc"/>',
    ]
    for acc in (0.0, 0.5, 1.0):
        parts.append(
            f'<text x="{left - 4}" y="{py(acc) + 4:.1f}" font-size="10" text-anchor="end">'
            f"{acc:.1f}</text>"
        )
    parts.append(
        f'<text x="{width - right}" y="{height - 8}" font-size="10" text-anchor="end">'
        f"example {t_max}</text>"
    )
    for color, name, curve in series:
        points = " ".join(f"{px(p):.1f},{py(a):.1f}" for p, a in curve)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.5">'
            f"<title>{_e(name)}</title></polyline>"
        )
    parts.append("</svg>")
    return f"<figure>{''.join(parts)}<figcaption>{_e(task_id)}</figcaption></figure>"


def _legend(rows: Sequence[Row]) -> str:
    items = []
    for i, row in enumerate(rows):
        color = PALETTE[i % len(PALETTE)]
        items.append(
            f'<span style="color:{color}">&#9632;</span> <span class="legend">{_e(row.name)}</span>'
        )
    return "<p>" + " &nbsp; ".join(items) + "</p>"


def _suite_section(suite_id: str, rows: Sequence[Row]) -> str:
    task_ids = _task_ids(suite_id, rows)
    tables = "".join(
        f"<h3>{_e(heading)}</h3>{_html_table(suite_id, task_ids, members)}"
        for heading, members in groups(rows)
    )
    plots = "".join(_curve_plot(t, rows) for t in task_ids)
    return (
        f"<h2>{_e(suite_id)}</h2>{tables}{_split_bars(suite_id, rows)}"
        f"<h3>Learning curves: accuracy against position in the stream ({_e(suite_id)})</h3>"
        f'{_legend(rows)}<div class="curves">{plots}</div>'
        f"{_details(task_ids, rows)}{_improvement_matrix(rows)}"
    )


def _split_value(split: Split | None, part: str) -> str:
    """Sort key of a split column: own splits by value, reference and missing ones last."""
    if split is None or split.reference:
        return "-9"
    return f"{getattr(split, part).value:.6f}"


def _split_bars(suite_id: str, rows: Sequence[Row]) -> str:
    """Inline SVG: per entry, its in-distribution (or reference) and OOD IQM with 95% CIs."""
    shown = [row for row in rows if row.split is not None]
    if not shown:
        return ""
    label_w, plot_w, right, row_h, top = 230, 360, 150, 30, 22
    height = top + row_h * len(shown) + 24

    def px(v: float) -> float:
        return label_w + plot_w * min(max(v, 0.0), 1.0)

    parts = [
        f'<svg width="{label_w + plot_w + right}" height="{height}" role="img" '
        f'aria-label="in-distribution vs OOD accuracy, {_e(suite_id)}">'
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{px(tick):.1f}" y1="{top - 4}" x2="{px(tick):.1f}" '
            f'y2="{height - 20}" stroke="#eee"/>'
            f'<text x="{px(tick):.1f}" y="{height - 6}" font-size="10" '
            f'text-anchor="middle">{tick:.2f}</text>'
        )
    parts.append(
        f'<text x="{label_w}" y="12" font-size="11">orange: in-distribution tasks '
        "(pale: the same tasks, reference for a zero-shot entry); blue: OOD tasks</text>"
    )
    for i, row in enumerate(shown):
        split = row.split
        y = top + i * row_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" font-size="11" '
            f'text-anchor="end">{_e(row.name[:36])}</text>'
        )
        inside_opacity = "0.45" if split.reference else "1"
        for est, color, dy, opacity, what in (
            (split.inside, "#ff7f0e", 2, inside_opacity, ", ".join(split.tasks)),
            (split.outside, "#1f77b4", 14, "1", "the other tasks" if split.reference else "OOD"),
        ):
            tip = f"{row.name}: {what} {est.value:.3f} [{est.low:.3f}, {est.high:.3f}]"
            parts.append(
                f'<rect x="{label_w}" y="{y + dy}" width="{px(est.value) - label_w:.1f}" '
                f'height="10" fill="{color}" fill-opacity="{opacity}"><title>{_e(tip)}</title>'
                f'</rect><line x1="{px(est.low):.1f}" y1="{y + dy + 5}" x2="{px(est.high):.1f}" '
                f'y2="{y + dy + 5}" stroke="#000" stroke-width="1.2"/>'
            )
        parts.append(
            f'<text x="{label_w + plot_w + 8}" y="{y + 14}" font-size="11">'
            f"{_e(_gap_text(split))}</text>"
        )
    parts.append("</svg>")
    return (
        f"<h3>In-distribution vs OOD ({_e(suite_id)}): IQM of per-stream mean online accuracy, "
        f"95% CIs; right: the OOD gap</h3><figure>{''.join(parts)}</figure>"
    )


def _html_table(suite_id: str, task_ids: Sequence[str], rows: Sequence[Row]) -> str:
    head = [
        '<th data-sort="num">Rank</th>',
        '<th class="name" data-sort="text">Learner</th>',
        '<th data-sort="num">Headline IQM (OOD)</th>',
        "<th>95% CI</th>",
        '<th data-sort="num">In-dist IQM</th>',
        '<th data-sort="num">OOD gap [95% CI]</th>',
        '<th data-sort="num">P(&gt;next)</th>',
        '<th data-sort="num">All-task IQM</th>',
    ]
    head += [f'<th data-sort="num">{_e(t)}</th>' for t in task_ids]
    head += ['<th class="name">Meta-trained on</th>', '<th class="name">Spec</th>']
    body = []
    for row in rows:
        hv = row.headline.value if row.headline else -1.0
        cells = [
            f'<td data-value="{row.rank if row.rank is not None else 999}">'
            f"{row.rank if row.rank is not None else '–'}</td>",
            f'<td class="name learner" data-value="{_e(row.name)}">{_e(row.name)}</td>',
            f'<td data-value="{hv:.6f}">{_fmt(row.headline.value if row.headline else None)}</td>',
            "<td>"
            + (
                f'{_ci_bar(row.headline)} <span class="ci">[{_fmt(row.headline.low)}, '
                f"{_fmt(row.headline.high)}]</span>"
                if row.headline
                else "–"
            )
            + "</td>",
            f'<td data-value="{_split_value(row.split, "inside")}">{_in_dist_text(row.split)}</td>',
            f'<td data-value="{_split_value(row.split, "gap")}">{_e(_gap_text(row.split))}</td>',
            f'<td data-value="{row.p_better_than_next if row.p_better_than_next is not None else -1}">'
            f"{_fmt(row.p_better_than_next, 2)}</td>",
            f'<td data-value="{row.all_tasks.value if row.all_tasks else -1:.6f}">'
            f"{_fmt(row.all_tasks.value if row.all_tasks else None)}</td>",
        ]
        for task_id in task_ids:
            task = row.tasks.get(task_id)
            if task is None or task["status"] != "ok":
                text, label = _not_run(task)
                cells.append(
                    f'<td class="missing" data-value="-1" title="{_e(label)}">{_e(text)}</td>'
                )
                continue
            acc = task["metrics"]["accuracy"]
            cls = ' class="indist"' if task["distribution"] != "ood" else ""
            tip = f"{task['distribution']}; 95% CI [{acc['low']:.3f}, {acc['high']:.3f}]"
            cells.append(
                f'<td{cls} data-value="{acc["value"]:.6f}" title="{_e(tip)}">{acc["value"]:.3f}</td>'
            )
        cells.append(f'<td class="name">{_e(", ".join(row.meta_trained_on)) or "–"}</td>')
        cells.append(f'<td class="name">{_e(row.spec)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table class="board" data-suite="{_e(suite_id)}"><thead><tr>{"".join(head)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


_DETAIL_METRICS = (
    ("accuracy", "mean acc."),
    ("acc_at_1", "acc@1"),
    ("acc_at_10", "acc@10"),
    ("acc_at_100", "acc@100"),
    ("acc_at_last", "acc@last"),
    ("online_ce", "online CE"),
)


def _details(task_ids: Sequence[str], rows: Sequence[Row]) -> str:
    """Per task: every metric of every learner with its 95% CI (collapsed by default)."""
    parts = ["<details><summary>Per-task metrics with 95% bootstrap CIs</summary>"]
    for task_id in task_ids:
        head = "".join(f'<th data-sort="num">{label}</th>' for _, label in _DETAIL_METRICS)
        body = []
        for row in rows:
            task = row.tasks.get(task_id)
            if task is None or task["status"] != "ok":
                continue
            cells = [f'<td class="name" data-value="{_e(row.name)}">{_e(row.name)}</td>']
            for key, _ in _DETAIL_METRICS:
                m = task["metrics"].get(key)
                if m is None:
                    cells.append('<td data-value="-1">–</td>')
                    continue
                bar = (
                    _ci_bar(metrics.Estimate(m["value"], m["low"], m["high"]))
                    if key != "online_ce"
                    else ""
                )
                cells.append(
                    f'<td data-value="{m["value"]:.6f}">{m["value"]:.3f} '
                    f'<span class="ci">[{m["low"]:.3f}, {m["high"]:.3f}]</span> {bar}</td>'
                )
            body.append("<tr>" + "".join(cells) + "</tr>")
        if body:
            parts.append(
                f'<h4>{_e(task_id)}</h4><table class="board"><thead><tr>'
                f'<th class="name" data-sort="text">Learner</th>{head}</tr></thead>'
                f"<tbody>{''.join(body)}</tbody></table>"
            )
    return "".join(parts) + "</details>"


def _improvement_matrix(rows: Sequence[Row]) -> str:
    """P(row learner > column learner) on their shared OOD tasks (Agarwal et al. 2021)."""
    ranked = [r for r in rows if r.rank is not None]
    if len(ranked) < 2:
        return ""
    scores = [
        {
            k: np.asarray(metrics.decode_task_raw(t["raw"])[0].mean(axis=1))
            for k, t in r.tasks.items()
            if t["status"] == "ok" and t["distribution"] == "ood"
        }
        for r in ranked
    ]
    head = "".join(f"<th>{_e(r.name)}</th>" for r in ranked)
    body = []
    for i, row in enumerate(ranked):
        cells = []
        for j in range(len(ranked)):
            p = None if i == j else metrics.probability_of_improvement(scores[i], scores[j])
            cells.append(f"<td>{_fmt(p, 2)}</td>")
        body.append(f'<tr><td class="name">{_e(row.name)}</td>{"".join(cells)}</tr>')
    return (
        "<details><summary>Probability of improvement P(row &gt; column) on shared OOD tasks"
        f'</summary><table><thead><tr><th class="name">P(row &gt; column)</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></details>"
    )


def _markdown_inline(text: str) -> str:
    """A legend written in Markdown (``**bold**``, ``code``) as escaped HTML."""
    out = _e(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _template(name: str) -> str:
    return resources.files("vsml_bench.leaderboard").joinpath(f"templates/{name}").read_text()


def render_html(entries: Sequence[Mapping[str, Any]], problems: Sequence[str] = ()) -> str:
    """The self-contained leaderboard page."""
    tables = rank_entries(entries)
    sections = [_suite_section(s, rows) for s, rows in tables.items()]
    if not sections:
        sections = ["<p>No entries yet.</p>"]
    sections.insert(0, f'<p class="note">{_markdown_inline(GAP_LEGEND)}</p>')
    if problems:
        sections.append(
            "<h2>Rejected files</h2><ul>" + "".join(f"<li>{_e(p)}</li>" for p in problems) + "</ul>"
        )
    script = _template("sort.js")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return Template(_template("page.html")).substitute(
        body="\n".join(sections), script=script, script_hash=f"sha256-{digest}"
    )

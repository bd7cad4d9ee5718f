"""The backtest's table (rich) and its plot (matplotlib): one column or one bar colour per version."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from backtest.score import TIERS, Scores
from streams.contracts.actions import Channel


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _num(x: float) -> str:
    return f"{x:,.1f}"


def _minutes(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f} min"


def table(scores: list[Scores], title: str) -> Table:
    out = Table(title=title)
    out.add_column("")
    for s in scores:
        out.add_column(f"{s.name}\n{s.rules_version}", justify="right")
    if len(scores) == 2:
        out.add_column("change", justify="right")

    def row(label: str, values: list[float], fmt, diff=None) -> None:
        cells = [fmt(v) for v in values]
        if len(values) == 2:
            delta = values[1] - values[0]
            cells.append((diff or fmt)(delta) if delta else "=")
        out.add_row(label, *cells)

    out.add_row("cases (positives)", *[f"{s.cases:,}" for s in scores], *([""] if len(scores) == 2 else []))
    for t in TIERS:
        row(f"recall {t.value}+", [s.recall[t] for s in scores], _pct,
            lambda d: f"{d:+.1%}")
    row("warned before the fraud", [s.in_time for s in scores], _pct, lambda d: f"{d:+.1%}")
    row("median lead (alert to fraud)", [s.median_lead_minutes or 0.0 for s in scores], _minutes,
        lambda d: f"{d:+,.0f} min")
    row("median alert to case filed", [s.median_to_filing_minutes or 0.0 for s in scores], _minutes,
        lambda d: f"{d:+,.0f} min")
    row("victims alerted (truth)", [s.victims_recall for s in scores], _pct, lambda d: f"{d:+.1%}")
    out.add_section()
    row("persons alerted /10k/wk", [s.alerted_per_10k for s in scores], _num, lambda d: f"{d:+,.1f}")
    row("  of them no victim", [s.alerted_not_victims_per_10k for s in scores], _num, lambda d: f"{d:+,.1f}")
    for t in TIERS:
        row(f"alerts {t.value} /10k/wk", [s.alerts_per_10k[t] for s in scores], _num, lambda d: f"{d:+,.1f}")
    out.add_section()
    row("contacts /10k/wk", [s.contacts_per_10k for s in scores], _num, lambda d: f"{d:+,.1f}")
    for ch in Channel:
        if any(s.actions_per_10k[ch] for s in scores):
            row(f"  {ch.value}", [s.actions_per_10k[ch] for s in scores], _num, lambda d: f"{d:+,.1f}")
    return out


def print_table(scores: list[Scores], title: str, console: Console | None = None) -> None:
    (console or Console()).print(table(scores, title))


def plot(scores: list[Scores], path: Path, title: str) -> Path:
    """Recall per tier, contacts per channel, and the lead time of each recalled case, version beside version."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt

    fig, (ax_recall, ax_load, ax_lead) = plt.subplots(1, 3, figsize=(15, 4.6))
    width = 0.8 / len(scores)
    channels = [ch for ch in Channel if any(s.actions_per_10k[ch] for s in scores)]
    for n, s in enumerate(scores):
        label = f"{s.name} ({s.rules_version})"
        xs = [i + n * width for i in range(len(TIERS))]
        bars = ax_recall.bar(xs, [100 * s.recall[t] for t in TIERS], width, label=label)
        ax_recall.bar_label(bars, fmt="%.0f", fontsize=8)
        xs = [i + n * width for i in range(len(channels))]
        bars = ax_load.bar(xs, [s.actions_per_10k[ch] for ch in channels], width, label=label)
        ax_load.bar_label(bars, fmt="%.0f", fontsize=8)
        leads = sorted(s.lead_minutes)
        if leads:
            ax_lead.step(leads, [100 * (i + 1) / s.cases for i in range(len(leads))], where="post", label=label,
                         linestyle=("-", "--", ":")[n % 3])  # dashed over solid: equal curves stay visible
    ax_recall.set_xticks([i + 0.4 - width / 2 for i in range(len(TIERS))], [f"{t.value}+" for t in TIERS])
    ax_recall.set(title="Recall: cases warned at this tier or higher", ylabel="% of cases", ylim=(0, 125),
                  yticks=range(0, 101, 20))
    ax_load.set_xticks([i + 0.4 - width / 2 for i in range(len(channels))], [ch.value for ch in channels],
                       rotation=20)
    ax_load.set(title="Actions per 10,000 residents and week", ylabel="actions",
                ylim=(0, 1.3 * max((s.actions_per_10k[ch] for s in scores for ch in channels), default=1.0)))
    ax_lead.axvline(0, color="grey", linewidth=0.8)
    ax_lead.set(title="First alert before the fraud (cumulative)", xlabel="minutes before the fraud (<0: after it)",
                ylabel="% of cases warned", ylim=(0, 125), yticks=range(0, 101, 20))
    ax_lead.set_xscale("symlog", linthresh=10)  # minutes to days: most warnings come within the hour
    earliest = min((m for s in scores for m in s.lead_minutes), default=0.0)
    ax_lead.set_xlim(min(0.0, earliest * 1.5), max(100.0, ax_lead.get_xlim()[1]))
    for ax in (ax_recall, ax_load, ax_lead):
        ax.legend(fontsize=8, loc="upper left" if ax is ax_lead else "upper right")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

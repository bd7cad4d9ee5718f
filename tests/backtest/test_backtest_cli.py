"""`antifraud record-week` then `antifraud rules backtest --compare`: a small recorded history, the table and the plot."""

from __future__ import annotations

from typer.testing import CliRunner

from backtest.history import read_header, read_records
from streams.cli import cli
from streams.rules import RULES_FILE


def test_record_a_small_week_and_backtest_two_versions_on_it(tmp_path):
    history, plot = tmp_path / "week.jsonl.gz", tmp_path / "img" / "backtest.png"
    recorded = CliRunner().invoke(cli, ["record-week", "--out", str(history), "--residents", "400", "--days", "1",
                                        "--frauds-per-10k-week", "3000"])
    assert recorded.exit_code == 0, recorded.output
    header = read_header(history)
    assert header.residents == 400 and header.frauds == round(400 / 10_000 * 3000 / 7)
    assert {"in_registry", "in_intel", "in_telecom", "in_bank", "in_app_report"} <= header.by_topic.keys()
    times = [line for topic, line in read_records(history) if topic in ("in_telecom", "in_bank")]
    assert len(times) > 400  # ordinary life and the frauds' own records

    strict = tmp_path / "strict.yaml"
    text = RULES_FILE.read_text(encoding="utf-8")
    strict.write_text(text.replace("  low: 30\n", "  low: 120\n").replace("  medium: 60\n", "  medium: 150\n")
                      .replace("  high: 90\n", "  high: 180\n").replace('version: "', 'version: "strict-'),
                      encoding="utf-8")
    result = CliRunner().invoke(cli, ["rules", "backtest", "--history", str(history), "--compare", str(strict),
                                      "--plot", str(plot)], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for words in ("recall", "contacts /10k/wk", "police_visit", "strict-", "0 refused by ingest"):
        assert words in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

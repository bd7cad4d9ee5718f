"""The reach-back bench's pure parts: the list it publishes, the live-latency join, the summary's verdicts
and the index projection. No servers, nothing timed (the run itself: `antifraud bench --reach-back`)."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec

from bench import __main__ as bench_main
from bench.bulk_list import (
    ASSUMED_EVENTS_PER_DAY,
    LatencyJoin,
    ReachBackConfig,
    choose_touched,
    fit_line,
    index_values,
    markdown,
    parse,
    projection,
    summarize,
    summary_lines,
    unknown_entries,
    window_stats,
)

ENCODE = msgspec.json.Encoder().encode


def test_index_keys_give_kind_and_value_and_a_url_keeps_its_colons():
    keys = [b"ref:contact:fraud_number:+8613800000001", "ref:contact:phishing_url:https://a.test:8443/x",
            b"ref:intel:fraud_number:+8613800000002", b"ref:contact:broken"]
    assert index_values(keys) == {"fraud_number": ["+8613800000001"], "phishing_url": ["https://a.test:8443/x"]}


def test_the_touched_entries_are_in_the_index_never_listed_held_back_ones_first_then_by_list_shares():
    index = {"fraud_number": [f"+86138{n:08d}" for n in range(1_000)], "mule_account": [f"acct_{n}" for n in range(1_000)],
             "phishing_url": [f"https://kd.example/t/{n}" for n in range(1_000)], "fraud_apk": ["f" * 64],
             "number_range": ["+86170"]}  # not an indexed list: never chosen
    listed = {"+8613800000000", "acct_0"}
    held_back = {"acct_5", "acct_6", "+8613800000000"}  # a listed value is never news, held back or not
    chosen = choose_touched(index, listed, held_back, 400, random.Random(1))
    assert len(chosen) == len(set(chosen)) == 400
    assert {("mule_account", "acct_5"), ("mule_account", "acct_6")} <= set(chosen)
    assert not {v for _, v in chosen} & listed
    kinds = {k: sum(1 for kind, _ in chosen if kind == k) for k in ("fraud_number", "mule_account", "phishing_url", "fraud_apk")}
    assert kinds["fraud_apk"] == 1  # short of values: its share goes to the others
    assert kinds["fraud_number"] > kinds["mule_account"] > kinds["phishing_url"]  # 50 : 25 : 9
    # Fewer values than asked: all of them, and no more.
    assert len(choose_touched({"fraud_number": ["+8613800000009"]}, set(), set(), 10, random.Random(1))) == 1


def test_the_unknown_entries_avoid_every_given_value_and_span_every_list():
    first = unknown_entries(2_000, set(), 5)
    again = unknown_entries(2_000, {first[0][1]}, 5)
    assert len(first) == len(again) == 2_000 and first[0] not in again
    assert {k for k, _ in first} == {"fraud_number", "number_range", "mule_account", "phishing_url", "phishing_domain", "fraud_apk"}
    assert unknown_entries(0, set(), 5) == []


def alert(alert_id, version, tier, event_ids, reach_back=None):
    value = {"alert_id": alert_id, "version": version, "tier": tier, "signals": [{"event_ids": event_ids}]}
    if reach_back:
        value["reach_back"] = {"kind": reach_back, "source": "mps_list"}
    return ENCODE(value)


def action(alert_id, version, tier, reason="initial"):
    return ENCODE({"alert_id": alert_id, "alert_version": version, "tier": tier, "reason": reason})


def test_the_join_times_the_first_action_of_each_live_version_and_only_counts_retro_alerts():
    join = LatencyJoin()
    join.produced_at = {"e1": 1_000, "e2": 1_500, "e3": 2_000}
    alerts = [(1_700, alert("a1", 1, "funds_warning", ["e1", "e2"])),  # triggered by e2, the latest evidence
              (2_500, alert("a2", 1, "high", ["e3"])),
              (2_600, alert("a3", 1, "high", ["old-event"], reach_back="fraud_number")),  # retro: counted only
              (2_700, alert("a4", 1, "high", ["unknown-event"]))]  # not an input we read: not joined
    actions = [(1_900, action("a1", 1, "funds_warning")), (1_800, action("a1", 1, "funds_warning")),  # first is 1,800
               (3_000, action("a2", 1, "high", reason="sla_breach")),  # not a first response
               (3_100, action("a3", 1, "high")), (3_200, b"not an action")]
    points, retro = join.join(alerts, actions)
    assert points == [[1_500, 300, "funds_warning"]]
    assert retro == 1 and join.retro == {"fraud_number/high": 1}
    assert join.funds_alert_points == [[1_500, 200]]
    # A later read of the same version's other actions adds nothing; a second version is a new sample.
    points, _ = join.join([(4_000, alert("a2", 2, "critical", ["e3"]))],
                          [(4_100, action("a1", 1, "funds_warning")), (4_200, action("a2", 2, "critical", "upgrade"))])
    assert points == [[2_000, 2_200, "critical"]]
    join.forget(1_800)
    assert set(join.produced_at) == {"e3"} and ("a1", 1) not in join.answered


def sample(t_ms, metrics, lag=None, retro=0):
    return {"t_ms": t_ms, "metrics": metrics, "lag": lag or {}, "latency": {"retro_alerts": retro}}


def run_summary(reach_back_ms: float, drained: bool = True):
    # Baseline 0..120 s, published at 120 s, drained at 180 s: the window is at least the baseline's length (240 s).
    marks = {"traffic_start": -60_000, "baseline_start": 0, "publish_start": 120_000, "publish_end": 122_000,
             "loader_done": 150_000, **({"drained": 180_000} if drained else {}), "reach_back_end": 300_000}
    points = [[t, 400.0, "funds_warning"] for t in range(0, 120_000, 1_000)]
    points += [[t, reach_back_ms, "funds_warning"] for t in range(120_000, 240_000, 1_000)]
    points += [[t, 100.0, "high"] for t in range(0, 240_000, 500)]
    points += [[250_000, 99_999.0, "funds_warning"]]  # after the window: not counted
    base = {"queued": 10, "forwarded": 10, "retro_alerts": 3, "batch_s:enrich": 10.0, "batch_s:reference_loader": 0.0}
    end = {"queued": 5_010, "forwarded": 5_010, "retro_alerts": 1_203, "rechecks:direct": 7, "barrier_timeouts": 4,
           "batch_s:enrich": 130.0, "batch_s:reference_loader": 30.0}
    samples = [sample(0, {"batch_s:enrich": 0.0, "batch_s:reference_loader": 0.0}), sample(120_000, base),
               sample(180_000, end, retro=1_150), sample(300_000, end)]
    index = {"keys": 1_000, "contacts": 4_000, "residents": 2_000, "bytes": 800_000, "estimated_bytes": 820_000,
             "fit_bytes_per_key": 100.0, "fit_bytes_per_contact": 150.0}
    config = ReachBackConfig(persons=100_000, rate=500)
    bulk = {"entries": 100_000, "touched": 5_000}
    return summarize(marks, points, [[p[0], 300.0] for p in points if p[2] == "funds_warning"], samples, bulk, index,
                     40_000, config, None)


def test_the_summary_compares_the_reach_back_window_with_the_baseline_and_judges_the_done_when():
    s = run_summary(700.0)
    assert s["windows_ms"]["reach_back"] == [120_000, 240_000]
    assert s["baseline"]["funds_warning"]["count"] == 120 and s["reach_back"]["funds_warning"]["count"] == 120
    assert s["ratios"]["funds_warning_p99"] == 1.75 and s["ratios"]["all_p50"] == 1.0  # the other alerts did not move
    run = s["reach_back_run"]
    assert (run["drain_s"], run["loader_done_s"], run["queued"], run["forwarded"]) == (60.0, 30.0, 5_000, 5_000)
    assert (run["retro_alerts_metric"], run["retro_alerts_read"], run["barrier_timeouts"]) == (1_200, 1_150, 4)
    assert run["loader_entries_per_s"] == 3333.3
    assert s["checks"]["funds_warning_p99_within_2x"]["ok"] and s["checks"]["reach_back_within_minutes"]["ok"]
    assert s["ok"]
    # Where the event loop went: enrich 10 s in the baseline's 120 s, 120 s in the reach-back's 60 s.
    assert s["stage_seconds"]["baseline"]["enrich"] == 0.083
    assert s["stage_seconds"]["reach_back"]["enrich"] == 2.0 and s["stage_seconds"]["reach_back"]["reference_loader"] == 0.5
    slow = run_summary(900.0, drained=False)
    assert slow["ratios"]["funds_warning_p99"] == 2.25
    assert not slow["checks"]["funds_warning_p99_within_2x"]["ok"]
    assert not slow["checks"]["reach_back_within_minutes"]["ok"] and not slow["ok"]
    header = {"started_at": "t0", "config": {"entries": 100_000, "persons": 100_000, "intel": 10_000, "held_back_share": 0.2,
                                             "rate": 500, "build_min": 4, "baseline_min": 2},
              "machine": {"cores": 2, "cpu_model": "x", "memory_gb": 8}, "versions": {"kafka": "4.1.1"}, "workers": 1}
    text = markdown(slow, header, Path("/tmp/rb.json"), Path("/tmp/rb.png"), Path("/tmp/rb.md"))
    assert "**not met**: 2.25x" in text and "rb.png" in text and "| enrich |" in text
    assert any(line.startswith("funds-warning p99") and "NO" in line for line in summary_lines(slow))


def test_window_stats_count_an_event_in_the_window_its_input_was_produced_in():
    points = [[999, 5.0, "high"], [1_000, 10.0, "funds_warning"], [1_999, 20.0, "high"], [2_000, 30.0, "high"]]
    w = window_stats(points, 1_000, 2_000)
    assert w["all"]["count"] == 2 and w["funds_warning"]["count"] == 1 and w["all"]["max_ms"] == 20.0


def test_the_projection_scales_the_measured_contacts_per_event_and_bytes_per_contact():
    index = {"contacts": 4_000, "residents": 2_000, "bytes": 800_000, "fit_bytes_per_contact": 150.0}
    p = projection(index, events_offered=40_000, persons=100_000, rate=500)
    assert (p["bytes_per_contact"], p["marginal_bytes_per_contact"], p["contacts_per_event"]) == (200.0, 150.0, 0.1)
    assert p["run_events_per_resident_day"] == 432.0 and p["bytes_per_resident_in_run"] == 400.0
    assert [row["events_per_resident_day"] for row in p["per_million"]] == list(ASSUMED_EVENTS_PER_DAY)
    twenty = next(row for row in p["per_million"] if row["events_per_resident_day"] == 20)
    # 1 M residents x 20 events a day x 3 days x 0.1 contacts per event = 6 M contacts, at 200 B and at 150 B.
    assert (twenty["contacts"], twenty["gb"], twenty["gb_marginal"], twenty["bytes_per_resident"]) == (6_000_000, 1.2, 0.9, 1_200.0)
    assert projection({"contacts": 0}, 10, 10, 1.0) == {}


def test_fit_line():
    assert fit_line([(1, 250), (2, 400), (3, 550)]) == (100.0, 150.0)
    assert fit_line([(2, 7), (2, 9)]) == (8.0, 0.0) and fit_line([]) == (0.0, 0.0)


def test_the_options_default_to_the_issue_and_the_bench_cli_routes_reach_back(monkeypatch):
    c = parse([])
    assert (c.entries, c.touched_share, c.rate) == (100_000, 0.05, 200.0)
    assert parse(["--entries", "10000", "--build-min", "1"]).entries == 10_000
    seen = []
    monkeypatch.setattr("bench.bulk_list.cli", lambda argv: seen.append(argv) or 0)
    assert bench_main.cli(["--reach-back", "--entries", "10"]) == 0 and seen == [["--entries", "10"]]

"""The evidence a failed recovery prints: only what was written since the mark, folded and counted."""

from faults.log_digest import digest, log_marks


def test_the_digest_counts_warnings_written_since_the_mark_and_names_each_process(tmp_path):
    worker = tmp_path / "worker-1.log"
    worker.write_text("[2026-12-07 10:00:00,001] [7] [ERROR] before the fault\n")
    (tmp_path / "kafka.log").write_text("")
    marks = log_marks(tmp_path)
    with worker.open("a") as f:
        f.write("[2026-12-07 10:00:01,001] [7] [WARNING] partition 3 waits 12 s\n"
                "[2026-12-07 10:00:02,001] [7] [WARNING] partition 5 waits 40 s\n"
                "[2026-12-07 10:00:03,001] [7] [INFO] still here\n")
    (tmp_path / "kafka.log").write_text("[ERROR] the broker's own noise\n")

    lines = digest(tmp_path, marks)

    assert lines == ["worker-1: 3 lines, last: [INFO] still here",
                     "      2 x [WARNING] partition 3 waits 12 s"]

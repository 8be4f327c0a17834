"""The journal hands each event to its listeners as written, and a broken listener never stops a run."""

from harness.engine.journal import Journal, read_journal


def test_listeners_get_each_event_redacted_and_a_raising_one_is_dropped(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl", secrets=["hunter2"])
    seen: list[dict] = []
    calls = {"broken": 0}

    def broken(record: dict) -> None:
        calls["broken"] += 1
        raise RuntimeError("exporter bug")

    journal.subscribe(seen.append)
    journal.subscribe(broken)
    journal.write("phase", phase="load", token="hunter2")
    journal.write("window", index=1)
    journal.close()

    assert [r["event"] for r in seen] == ["phase", "window"]
    assert seen[0]["token"] == "***"
    assert calls["broken"] == 1  # dropped after its first failure
    assert [r["event"] for r in read_journal(tmp_path / "journal.jsonl")] == ["phase", "window"]

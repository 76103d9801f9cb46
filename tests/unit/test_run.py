"""``dac run``: the rules over an audit log, alerts as NDJSON, malformed lines located and skipped."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest

from dac.cli import main
from dac.events.k8s_audit import to_document
from dac.events.specs import BASE_TIME, expand_events
from tests.fixtures.project import MASTERS, NON_SYSTEM
from tests.repository import REPO, shipped_rule

MASTERS_RULE = shipped_rule(MASTERS)["name"]
NON_SYSTEM_RULE = shipped_rule(NON_SYSTEM)["name"]


def _events() -> list[dict]:
    return expand_events(
        [
            {"csr_create": {"user": "mallory", "subject": {"CN": "m", "O": ["system:masters"]}}},
            {"csr_create": {"user": "alice", "subject": {"CN": "alice"}}},
        ],
        seed=3,
    )


def _run(capsys, monkeypatch, *argv: str) -> tuple[int, list[dict], list[str]]:
    monkeypatch.chdir(REPO)
    code = main(["run", *argv])
    captured = capsys.readouterr()
    alerts = [json.loads(line) for line in captured.out.splitlines()]
    return code, alerts, captured.err.splitlines()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    masters, alice = (json.dumps(e) for e in _events())
    path = tmp_path / "audit.log"
    path.write_bytes(
        b"\n".join(
            [
                masters.encode(),
                b'{"kind": "Event", "apiVersion": "audit.k8s.io/v1"',  # cut short
                b'{"kind": "Pod"}',
                b"\xff\xfe",
                alice.encode(),
            ]
        )
        + b"\n"
    )
    return path


def test_malformed_lines_are_located_and_the_rest_still_alerts(log, capsys, monkeypatch) -> None:
    code, alerts, err = _run(capsys, monkeypatch, "--events", str(log))
    assert code == 1
    assert err[0].startswith(f"{log}:2: invalid JSON: ")
    assert err[1] == f"{log}:3: not a Kubernetes audit Event: kind is 'Pod', expected 'Event'"
    assert err[2] == f"{log}:4: invalid UTF-8 at byte 0 of the line (column 1)"
    assert err[-1].startswith("2 events read, 3 malformed lines, 2 alerts; 3 rules executed, 0 skipped")
    by_rule = sorted(
        (a["kibana.alert.rule.name"], a["kubernetes"]["audit"]["user"]["username"]) for a in alerts
    )
    # mallory's system:masters CSR is refused by admission (403): only the subject rule sees it
    assert by_rule == [(MASTERS_RULE, "mallory"), (NON_SYSTEM_RULE, "alice")]


def test_alerts_have_kibanas_shape_and_stable_ids(log, capsys, monkeypatch) -> None:
    _, first, _ = _run(capsys, monkeypatch, "--events", str(log))
    _, second, _ = _run(capsys, monkeypatch, "--events", str(log))
    assert [a["kibana.alert.uuid"] for a in first] == [a["kibana.alert.uuid"] for a in second]
    alert = next(a for a in first if a["kibana.alert.rule.name"] == MASTERS_RULE)
    assert alert["kibana.alert.workflow_status"] == "open"
    rule = shipped_rule(MASTERS)
    assert alert["kibana.alert.rule.rule_id"] == rule["rule_id"]
    assert alert["kibana.alert.rule.type"] == "esql"
    assert (alert["kibana.alert.severity"], alert["kibana.alert.risk_score"]) == (
        rule["severity"],
        rule["risk_score"],
    )
    assert alert["kibana.alert.ancestors"][0]["type"] == "event"
    assert alert["kibana.alert.original_time"] == alert["kubernetes"]["audit"]["stageTimestamp"][:23] + "Z"
    assert alert["event.kind"] == "signal" and "event" not in alert
    assert alert["kibana.alert.original_event.action"] == "create"
    assert alert["kibana.alert.reason"].endswith(f"created {rule['severity']} alert {MASTERS_RULE}.")


def test_now_limits_each_rule_to_its_window(log, capsys, monkeypatch) -> None:
    later = (BASE_TIME + timedelta(hours=1)).isoformat()
    code, alerts, _ = _run(capsys, monkeypatch, "--events", str(log), "--now", later)
    assert (code, alerts) == (1, [])
    just_after = (BASE_TIME + timedelta(minutes=1)).isoformat()
    _, alerts, _ = _run(capsys, monkeypatch, "--events", str(log), "--now", just_after)
    assert len(alerts) == 2


def test_indexed_documents_and_a_chosen_rule_and_an_output_file(tmp_path, capsys, monkeypatch) -> None:
    documents = tmp_path / "ecs.ndjson"
    documents.write_text("".join(json.dumps(to_document(e)) + "\n" for e in _events()), "utf-8")
    out = tmp_path / "alerts.ndjson"
    rule = REPO / "detections" / "kubernetes" / "csr_request_for_system_masters_group.yml"
    code, printed, err = _run(
        capsys,
        monkeypatch,
        "--events",
        str(documents),
        "--input",
        "ecs",
        "--rules",
        str(rule),
        "--out",
        str(out),
    )
    assert (code, printed) == (0, [])
    alerts = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [a["kibana.alert.rule.name"] for a in alerts] == [MASTERS_RULE]
    assert err[-1].startswith("2 events read, 0 malformed lines, 1 alerts; 1 rules executed, 0 skipped")


def test_a_missing_event_file_is_one_line(capsys, monkeypatch) -> None:
    code, alerts, err = _run(capsys, monkeypatch, "--events", "no/such/file.ndjson")
    assert (code, alerts) == (1, [])
    assert err == ["dac: no such file or folder: no/such/file.ndjson"]


# --- issue 10: per-line robustness, nothing silent ------------------------------------------------


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_an_event_nested_1000_levels_deep_is_one_located_line(tmp_path, capsys, monkeypatch) -> None:
    masters, alice = (json.dumps(e) for e in _events())
    deep = masters[:-1].encode() + b', "requestObject2": ' + _deep(1000) + b"}"
    path = tmp_path / "audit.log"
    path.write_bytes(b"\n".join([deep, alice.encode()]) + b"\n")
    code, alerts, err = _run(capsys, monkeypatch, "--events", str(path))
    assert code == 1
    assert err[0] == f"{path}:1: event nested deeper than 200 levels: not read"
    assert [a["kibana.alert.rule.name"] for a in alerts] == [NON_SYSTEM_RULE]  # line 2 still ran


def test_ecs_documents_without_a_valid_timestamp_are_located(tmp_path, capsys, monkeypatch) -> None:
    good, other = (to_document(e) for e in _events())
    bad = {**other, "@timestamp": "yesterday"}
    missing = {k: v for k, v in other.items() if k != "@timestamp"}
    path = tmp_path / "ecs.ndjson"
    path.write_text("".join(json.dumps(d) + "\n" for d in (good, bad, missing)), "utf-8")
    code, alerts, err = _run(capsys, monkeypatch, "--events", str(path), "--input", "ecs")
    assert code == 1
    assert err[0] == f"{path}:2: document has no valid @timestamp ('yesterday')"
    assert err[1] == f"{path}:3: document has no valid @timestamp (None)"
    assert [a["kibana.alert.rule.name"] for a in alerts] == [MASTERS_RULE]


def test_gzipped_logs_are_read_like_plain_ones(log, tmp_path, capsys, monkeypatch) -> None:
    import gzip

    packed = tmp_path / "audit.log.gz"
    packed.write_bytes(gzip.compress(log.read_bytes()))
    _, plain, _ = _run(capsys, monkeypatch, "--events", str(log))
    code, alerts, err = _run(capsys, monkeypatch, "--events", str(packed))
    assert code == 1 and alerts == plain
    assert err[1] == f"{packed}:3: not a Kubernetes audit Event: kind is 'Pod', expected 'Event'"


def test_a_binary_or_truncated_file_is_one_error_not_one_per_line(tmp_path, capsys, monkeypatch) -> None:
    import gzip

    masters = json.dumps(_events()[0]).encode() + b"\n"
    truncated = tmp_path / "audit-2026-11-20T10-00-00.000.log.gz"
    truncated.write_bytes(gzip.compress(masters * 50)[:-12])
    binary = tmp_path / "audit.log"
    binary.write_bytes(b"\x00\x01\x02binary\n" * 500)
    code, alerts, err = _run(capsys, monkeypatch, "--events", str(tmp_path))
    assert code == 1
    assert f"{truncated}: gzip stream is truncated: the rest of the file is missing" in err
    assert f"{binary}: binary file, not NDJSON text: not read" in err
    # at most the cut-off last line besides: never one error per binary line
    assert len([line for line in err if line.startswith(str(tmp_path))]) <= 3
    assert [a["kibana.alert.rule.name"] for a in alerts] == [MASTERS_RULE]  # one request, deduplicated


def test_a_folder_whose_files_are_all_skipped_says_so_and_fails(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "notes.txt").write_text("hello", "utf-8")
    (tmp_path / "audit.log").write_bytes(b"")
    code, alerts, err = _run(capsys, monkeypatch, "--events", str(tmp_path))
    assert (code, alerts) == (1, [])
    assert f"{tmp_path / 'audit.log'}: skipped: empty" in err
    assert any(line.startswith(f"{tmp_path / 'notes.txt'}: skipped: not an event file name") for line in err)
    assert err[-1] == "dac run: no event file was read: nothing was evaluated"


@pytest.mark.parametrize("target", ["missing-folder/alerts.ndjson", "."])
def test_an_unwritable_out_is_a_usage_error(log, tmp_path, capsys, monkeypatch, target) -> None:
    code, _, err = _run(capsys, monkeypatch, "--events", str(log), "--out", str(tmp_path / target))
    assert code == 2
    assert err[0].startswith(f"dac run: error: --out {tmp_path / target}: ")


def test_the_max_signals_cap_is_said(tmp_path, capsys, monkeypatch) -> None:
    events = expand_events(
        [{"csr_create": {"user": f"user{n}", "subject": {"CN": f"u{n}"}}} for n in range(105)], seed=5
    )
    path = tmp_path / "audit.log"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), "utf-8")
    rule = REPO / "detections" / "kubernetes" / "csr_created_or_approved_by_non_system_identity.yml"
    later = (BASE_TIME + timedelta(minutes=2)).isoformat()
    code, alerts, err = _run(capsys, monkeypatch, "--events", str(path), "--rules", str(rule), "--now", later)
    assert (code, len(alerts)) == (0, 100)
    matched = int(err[0].split("capped by max_signals; ")[1].split(" ")[0])
    assert err[0].startswith(f"{NON_SYSTEM_RULE}: 100 alerts (capped by max_signals; {matched} matched) in ")
    assert matched > 100


# --- for people: a progress line only on a terminal ------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_with_rate_alerts_and_eta() -> None:
    from dac.engine.replay import Replay
    from dac.events.reader import ReadStats
    from dac.run import Progress

    stats = ReadStats(events=5000, total_bytes=1000, bytes_done=250)
    terminal = _Terminal()
    progress = Progress(terminal, stats, Replay([]), enabled=True)
    progress.shown -= 1  # as if the last redraw were a second ago
    progress.started -= 2
    progress.update()
    line = terminal.getvalue()
    assert line.startswith("\r\x1b[K5,000 events read, ") and " events/s, 0 hits, ETA " in line
    progress.clear()
    assert terminal.getvalue().endswith("\r\x1b[K")


def test_progress_only_on_a_terminal_and_never_with_quiet(log, monkeypatch) -> None:
    from dac.run import Progress, RunOptions, run_rules
    from tests.unit.test_lazy import _rules

    drawn: list[bool] = []
    original = Progress.__init__

    def spy(self, stream, stats, replay, enabled):  # type: ignore[no-untyped-def]
        drawn.append(enabled)
        original(self, stream, stats, replay, enabled)

    monkeypatch.setattr(Progress, "__init__", spy)
    rules = _rules()
    for stderr, quiet in ((io.StringIO(), False), (_Terminal(), True), (_Terminal(), False)):
        run_rules(rules, RunOptions([log], quiet=quiet), stdout=io.StringIO(), stderr=stderr)
    assert drawn == [False, False, True]
    quiet = io.StringIO()
    run_rules(rules, RunOptions([log], quiet=True), stdout=io.StringIO(), stderr=quiet)
    summary = [line for line in quiet.getvalue().splitlines() if not line.startswith(str(log))]
    assert len(summary) == 1 and summary[0].startswith("2 events read")  # no per-rule lines


def test_a_pretty_printed_json_file_is_one_error(log, tmp_path, capsys, monkeypatch) -> None:
    pretty = tmp_path / "export.json"
    pretty.write_text(json.dumps({"expected": [_events()[0]]}, indent=4), "utf-8")
    code, alerts, err = _run(capsys, monkeypatch, "--events", str(pretty), "--events", str(log))
    assert code == 1 and alerts
    reason = "a JSON document over several lines, not NDJSON (one record per line): not read"
    assert err[0] == f"{pretty}: {reason}"
    assert not any(line.startswith(f"{pretty}:") for line in err[1:])


def test_the_rules_exception_items_apply_and_the_summary_says_so(tmp_path, capsys, monkeypatch) -> None:
    """Rule 1's own item (cert-manager's controller) suppresses its CSR write, as in Kibana."""
    controller = "system:serviceaccount:cert-manager:cert-manager"
    events = expand_events(
        [
            {"csr_create": {"user": controller, "subject": {"CN": "app.example.internal"}}},
            {"csr_create": {"user": "system:serviceaccount:cert-manager:cert-manager-cainjector",
                            "subject": {"CN": "x"}}},
            {"csr_create": {"user": "alice", "subject": {"CN": "alice"}}},
        ],
        seed=3,
    )
    path = tmp_path / "audit.log"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), "utf-8")
    rule = REPO / "detections" / "kubernetes" / "csr_created_or_approved_by_non_system_identity.yml"
    code, alerts, err = _run(capsys, monkeypatch, "--events", str(path), "--rules", str(rule))
    assert code == 0
    assert sorted(a["kubernetes"]["audit"]["user"]["username"] for a in alerts) == [
        "alice", "system:serviceaccount:cert-manager:cert-manager-cainjector"
    ]
    assert err[0].startswith(f"{NON_SYSTEM_RULE}: 2 alerts, 1 suppressed by exceptions in ")
    assert err[1].startswith("3 events read, 0 malformed lines, 2 alerts; 1 rules executed, 0 skipped")


def _gzip_with_a_long_line(path: Path, before: bytes, length: int, after: bytes) -> Path:
    """``before``, one line of ``length`` bytes, ``after``, gzipped without holding the long line."""
    import zlib

    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    with path.open("wb") as out:
        out.write(packer.compress(before))
        chunk = b"a" * (1 << 20)
        for _ in range(length // len(chunk)):
            out.write(packer.compress(chunk))
        out.write(packer.compress(b"\n" + after))
        out.write(packer.flush())
    return path


def test_one_endless_line_is_skipped_in_bounded_memory_and_the_rest_is_read(tmp_path, capsys,
                                                                             monkeypatch) -> None:
    """Review 4.1: a 64 MiB line (a ~64 KiB gzip) against a 1 MiB limit costs a few MiB, not the line."""
    import tracemalloc

    from dac import limits
    from dac.events.reader import gunzip_to_files, range_lines

    monkeypatch.setattr(limits, "MAX_LINE_BYTES", 1 << 20)
    masters, alice = (json.dumps(e).encode() + b"\n" for e in _events())
    bomb = _gzip_with_a_long_line(tmp_path / "audit.log.gz", masters, 64 << 20, alice)
    assert bomb.stat().st_size < 1 << 20
    errors: list = []
    tracemalloc.start()
    try:
        numbers = [number for number, _ in range_lines(bomb, errors.append)]
        _, peak_lines = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        (scratch := tmp_path / "pieces").mkdir()
        pieces = list(gunzip_to_files(bomb, errors.append, 256 << 10, scratch))
        _, peak_pieces = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert numbers == [1, 3]
    assert peak_lines < 8 << 20 and peak_pieces < 8 << 20, (peak_lines, peak_pieces)
    message = "line longer than 1,048,576 bytes (dac.limits.MAX_LINE_BYTES): skipped"
    assert [str(e) for e in errors] == [f"{bomb}:2: {message}"] * 2
    # the pieces keep the skipped line's newline, so later lines keep their numbers; none holds it
    joined = tmp_path / "joined.log"
    joined.write_bytes(b"".join(piece.read_bytes() for piece in pieces))
    assert max(piece.stat().st_size for piece in pieces) < 2 << 20
    assert [n for n, _ in range_lines(joined, errors.append)] == [1, 3]

    code, alerts, err = _run(capsys, monkeypatch, "--events", str(bomb))
    assert f"{bomb}:2: {message}" in err
    assert sorted(a["kubernetes"]["audit"]["user"]["username"] for a in alerts) == ["alice", "mallory"]
    assert code == 1


def test_a_long_plain_line_is_skipped_and_parallel_pieces_do_not_read_it_whole(tmp_path, monkeypatch) -> None:
    """Review 4.1 for plain files: the line reader and the cut into worker pieces stay bounded."""
    import tracemalloc

    from dac import limits
    from dac.engine import parallel
    from dac.events.reader import range_lines

    monkeypatch.setattr(limits, "MAX_LINE_BYTES", 1 << 20)
    monkeypatch.setattr(parallel, "RANGE_BYTES", 1 << 20)
    log = tmp_path / "audit.log"
    with log.open("wb") as out:
        out.write(b'{"first": 1}\n')
        for _ in range(16):
            out.write(b"b" * (1 << 20))
        out.write(b'\n{"last": 2}\n')
    errors: list = []
    tracemalloc.start()
    try:
        lines = list(range_lines(log, errors.append))
        cuts = [(p.start, p.end) for p in parallel.pieces([log])]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == [(1, b'{"first": 1}'), (3, b'{"last": 2}')]
    assert [e.location.line for e in errors] == [2]
    assert cuts == [(0, 13 + (16 << 20) + 1), (13 + (16 << 20) + 1, None)]
    assert peak < 6 << 20, peak


def test_links_fifos_and_linked_folders_in_an_events_folder_are_named_not_dropped(tmp_path, capsys,
                                                                                 monkeypatch) -> None:
    """Review 3.4: every entry of the folder that is not read is named with its reason; a FIFO is
    never opened (the run would block on it)."""
    import os

    logs, events = tmp_path / "logs", tmp_path / "events"
    logs.mkdir()
    events.mkdir()
    (logs / "audit.log").write_text(json.dumps(_events()[1]) + "\n", "utf-8")
    (events / "audit.log").write_text(json.dumps(_events()[0]) + "\n", "utf-8")
    (events / "linked").symlink_to(logs, target_is_directory=True)
    (events / "dangling.log").symlink_to(tmp_path / "missing.log")
    os.mkfifo(events / "p.log")
    (events / "audit.gz").write_bytes(b"x")
    code, alerts, err = _run(capsys, monkeypatch, "--events", str(events))
    assert f"{events / 'linked'}: skipped: symbolic link to a folder: not followed" in err
    assert f"{events / 'dangling.log'}: skipped: dangling link" in err
    assert f"{events / 'p.log'}: skipped: not a regular file" in err
    assert (f"{events / 'audit.gz'}: skipped: not an event file name (.json, .ndjson, .jsonl or .log, "
            "optionally rotated, then optionally .gz: audit.log, audit.log.1, audit.log.gz)") in err
    assert [a["kubernetes"]["audit"]["user"]["username"] for a in alerts] == ["mallory"]
    assert code == 0


def test_an_inverted_range_is_refused_and_events_outside_every_window_are_said(log, capsys,
                                                                               monkeypatch) -> None:
    """Review 3.7: --from later than --to, or a range far from the events, was `0 alerts`, exit 0."""
    code, alerts, err = _run(capsys, monkeypatch, "--events", str(log), "--from", "2030-01-01",
                             "--to", "2020-01-01")
    assert (code, alerts) == (2, [])
    assert err == ["dac run: error: --from 2030-01-01T00:00:00+00:00 is later than "
                   "--to 2020-01-01T00:00:00+00:00"]
    for argv in (["--from", "2030-01-01", "--to", "2030-01-02"], ["--now", "2000-01-01T00:00:00Z"]):
        code, alerts, err = _run(capsys, monkeypatch, "--events", str(log), *argv)
        assert (code, alerts) == (1, [])
        assert err[-1] == ("dac run: no event falls inside any execution window (see --from, --to, --now): "
                           "nothing was evaluated")
    code, alerts, err = _run(capsys, monkeypatch, "--events", str(log))  # the default range is the events'
    assert alerts and not any("execution window" in line for line in err)

"""The replay split over worker processes gives the single process's output, errors included."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from dac.engine import parallel
from dac.events.generate import generate
from dac.run import RunOptions, run_rules
from tests.unit.test_lazy import _rules


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzipped"])
def test_workers_give_the_same_alerts_errors_and_line_numbers(tmp_path, monkeypatch, packed) -> None:
    monkeypatch.setattr(parallel, "RANGE_BYTES", 64 << 10)  # many pieces from a small file
    monkeypatch.setattr("dac.run.PARALLEL_BYTES", 0)
    path = tmp_path / "audit.log"
    lines = [json.dumps(e) for e in generate("csr-attacks", 600, seed=2)]
    lines[123] = "{broken"
    lines[457] = '{"kind": "Pod"}'
    path.write_text("\n".join(lines) + "\n", "utf-8")
    if packed:
        path = path.with_name("audit.log.gz")
        path.write_bytes(gzip.compress((tmp_path / "audit.log").read_bytes()))
        (tmp_path / "audit.log").unlink()
    (scratch := tmp_path / "scratch").mkdir()
    assert len(list(parallel.pieces([path], scratch=scratch))) > 4
    rules = _rules()
    results = []
    for processes in (1, 2):
        out, err = io.StringIO(), io.StringIO()
        options = RunOptions([Path(path)], processes=processes, quiet=True)
        code = run_rules(rules, options, stdout=out, stderr=err)
        results.append((code, out.getvalue(), err.getvalue().splitlines()[:-1]))
    assert results[0] == results[1]
    code, alerts, errors = results[0]
    assert code == 1 and alerts
    assert errors[0].startswith(f"{path}:124: invalid JSON")
    assert errors[1] == f"{path}:458: not a Kubernetes audit Event: kind is 'Pod', expected 'Event'"


def test_a_gzipped_log_is_split_by_its_text_not_its_compressed_size(tmp_path, monkeypatch) -> None:
    """A 7 MB .gz of 97 MB of audit lines was read by one process (the threshold compared the
    compressed size); the gzip trailer's ISIZE gives the text's size (RFC 1952)."""
    from dac.events.reader import text_bytes

    text = "".join(json.dumps(e) + "\n" for e in generate("mixed", 400, seed=3)).encode()
    packed = tmp_path / "audit.log.gz"
    packed.write_bytes(gzip.compress(text))
    plain = tmp_path / "audit.log"
    plain.write_bytes(text)
    assert text_bytes(packed) == len(text) > packed.stat().st_size
    assert text_bytes(plain) == len(text)
    monkeypatch.setattr("dac.run.PARALLEL_BYTES", len(text))  # above the compressed size
    used = []
    real = parallel.feed_in_parallel
    monkeypatch.setattr(parallel, "feed_in_parallel", lambda *a, **k: used.append(True) or real(*a, **k))
    code = run_rules(_rules(), RunOptions([packed], processes=2, quiet=True), stdout=io.StringIO(),
                     stderr=io.StringIO())
    assert code == 0 and used == [True]


def test_a_gzipped_file_is_inflated_into_whole_line_pieces_of_about_the_size(tmp_path) -> None:
    from dac.events.reader import gunzip_to_files

    text = "".join(json.dumps(e) + "\n" for e in generate("mixed", 400, seed=5)).encode()
    packed = tmp_path / "audit.log.gz"
    packed.write_bytes(gzip.compress(text[: len(text) // 2]) + gzip.compress(text[len(text) // 2:]))
    (scratch := tmp_path / "scratch").mkdir()
    errors: list = []
    files = list(gunzip_to_files(packed, errors.append, 20_000, scratch))
    contents = [f.read_bytes() for f in files]
    assert b"".join(contents) == text and not errors
    assert all(c.endswith(b"\n") for c in contents) and len(files) > 10
    assert all(20_000 <= len(c) < 20_000 + 2_000 for c in contents[:-1])  # cut at the next line end

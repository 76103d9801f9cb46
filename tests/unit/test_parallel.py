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
    assert len(list(parallel.pieces([path]))) > 4
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

"""The reader's blocks of whole lines against the plain split of the file.

``range_blocks`` hands out a file as blocks of whole lines (and batches of numbered lines around a
line that is too long); the bulk check then finds each line's number inside its block. Whatever
the block size, the blank lines, the carriage returns and the lines that are too long, every
non-blank line must come out once, stripped, with its number in the file, and each line that is
too long must be reported with its number instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dac import limits
from dac.events import reader
from dac.events.bulk_check import check_block
from dac.events.reader import Block, range_blocks
from tests.fuzz.support import fuzz

LIMIT = 40  # MAX_LINE_BYTES while these run

line_texts = st.one_of(
    st.sampled_from(["", " ", "\r", "\t \r", '{"a":1}', ' {"b":[2]} ', '{"c":"x"}\r']),
    st.text(st.sampled_from("ab {}\r\t"), max_size=LIMIT),
    st.integers(LIMIT + 1, LIMIT * 4).map(lambda size: "x" * size),  # too long
)


@pytest.fixture(autouse=True)
def _small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_LINE_BYTES", LIMIT)


def _expected(data: bytes) -> tuple[list[tuple[int, bytes]], list[int]]:
    lines, too_long = [], []
    for number, raw in enumerate(data.split(b"\n"), 1):
        if len(raw) > LIMIT:
            too_long.append(number)
        elif raw.strip():
            lines.append((number, raw.strip()))
    return lines, too_long


@fuzz(max_examples=300)
@given(texts=st.lists(line_texts, max_size=30), newline_at_end=st.booleans(),
       block_size=st.sampled_from([1, 3, 8, 50, 1 << 20]))
def test_blocks_hold_every_line_once_with_its_number(texts: list[str], newline_at_end: bool, block_size: int,
                                                     tmp_path_factory: pytest.TempPathFactory) -> None:
    # the first line starts as NDJSON does (a file starting "{" then a newline is refused whole)
    data = "\n".join(['{"first":0}', *texts]).encode() + (b"\n" if newline_at_end else b"")
    path: Path = tmp_path_factory.mktemp("blocks") / "audit.log"
    path.write_bytes(data)
    errors: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader, "_BLOCK", block_size)
        chunks = list(range_blocks(path, lambda error: errors.append(str(error))))
    found = [item for chunk in chunks for item in (chunk.batch() if isinstance(chunk, Block) else chunk)]
    lines, too_long = _expected(data)
    assert found == lines
    assert [int(error.split(":")[1]) for error in errors] == too_long
    # the numbers the bulk check gives are the same: each line it leaves to the full path
    # (here every one: none is an audit event) is found at its place in its block
    for chunk in chunks:
        if isinstance(chunk, Block):
            parts = check_block(chunk.data, (b"needle",))
            numbered = [(chunk.number + index, chunk.data[start:end]) for index, start, end in parts]
            assert numbered == chunk.batch()

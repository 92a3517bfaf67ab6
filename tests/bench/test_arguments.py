"""The bench's shared argument types."""

from __future__ import annotations

import argparse

import pytest

from bench.arguments import comma_ints, comma_names


def test_comma_lists_drop_blanks_and_spaces() -> None:
    assert comma_names(" bicodec, snac,,") == ("bicodec", "snac")
    assert comma_ints("1, 2,4,") == (1, 2, 4)
    assert comma_names("") == () and comma_ints(" ") == ()


def test_a_level_that_is_not_a_number_is_argparses_invalid_value(capsys: pytest.CaptureFixture[str]) -> None:
    p = argparse.ArgumentParser(prog="bench")
    p.add_argument("--concurrency", type=comma_ints)
    with pytest.raises(SystemExit):
        p.parse_args(["--concurrency", "1,two"])
    assert "invalid comma_ints value: '1,two'" in capsys.readouterr().err

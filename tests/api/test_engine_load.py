"""The engine load a replica reports in its answers' header: read back as written, and a value
that is not one refused with what is wrong."""

from __future__ import annotations

import pytest

from modelplane.api.engine_load import EngineLoad, decode


def test_a_load_reads_back_as_written() -> None:
    load = EngineLoad(
        running=3, waiting=2, slots=4, kv_usage=0.4125, capacity=6144, chars_per_token=3.91
    )
    value = load.encode()
    assert value == "running=3, waiting=2, slots=4, kv=0.412, capacity=6144, cpt=3.91"
    assert decode(value) == EngineLoad(3, 2, 4, 0.412, 6144, 3.91)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("running=1, waiting=0", "lacks slots, kv, capacity, cpt"),
        ("running=1; waiting=0", "lacks"),
        ("running=one, waiting=0, slots=4, kv=0, capacity=1, cpt=4", "invalid literal"),
        ("running", "is not key=value"),
        ("running=1, waiting=0, slots=0, kv=0, capacity=1, cpt=4", "no slot"),
        ("running=1, waiting=0, slots=2, kv=1.5, capacity=1, cpt=4", "kv must be 0 to 1"),
    ],
)
def test_a_value_that_is_no_load_is_refused(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        decode(value)

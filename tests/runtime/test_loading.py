"""How a spec's resources become a format's compute threads."""

import pytest

from modelplane.runtime.loading import cpu_threads


@pytest.mark.parametrize(
    ("quantity", "threads"), [("1", 1), ("500m", 1), ("2", 2), ("2.5", 3), ("4000m", 4)]
)
def test_cpu_quantity_to_threads(quantity: str, threads: int) -> None:
    assert cpu_threads(quantity) == threads

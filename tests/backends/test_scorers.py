"""Scorers for the evaluation gate: found among what is installed here (a module on the path, an
entry point of an installed distribution), called under their contract, and every way one can
fail named with the scorer and the example. Also the scorers modelplane ships."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from modelplane.backends.scorers import load_scorer
from modelplane.errors import ScorerError
from modelplane.scoring import contains, token_f1

WHERE = "file:///eval.jsonl line 2"


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on the import path, as site-packages is: modules and distributions put
    there are installed."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_a_function_is_called_with_the_inputs_when_it_takes_them(installed: Path) -> None:
    (installed / "team_scoring.py").write_text(
        "def starts(answer, expected):\n"
        "    return float(answer.startswith(expected))\n"
        "def echoes(answer, expected, inputs):\n"
        "    return float(inputs['prompt'] in answer)\n"
        "class Rubric:\n"
        "    @staticmethod\n"
        "    def strict(answer, expected, *, case=True):\n"
        "        return True if answer == expected else 0\n"
    )
    starts = load_scorer("team_scoring:starts")
    assert not starts.takes_inputs
    assert starts("Paris, France", "Paris", {"prompt": "x"}, WHERE) == 1.0
    echoes = load_scorer("team_scoring:echoes")
    assert echoes("you said hello", "", {"prompt": "hello"}, WHERE) == 1.0
    strict = load_scorer("team_scoring:Rubric.strict")
    assert (strict("a", "a", None, WHERE), strict("a", "b", None, WHERE)) == (1.0, 0.0)


def test_an_installed_packages_entry_point_names_a_scorer(installed: Path) -> None:
    (installed / "acme_rubric.py").write_text(
        "def score(answer, expected):\n    return 0.25 if expected in answer else 0.0\n"
    )
    dist = installed / "acme_rubric-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-rubric\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[modelplane.scorers]\nacme = acme_rubric:score\n")
    acme = load_scorer("acme")
    assert acme("it is blue", "blue", None, WHERE) == 0.25
    with pytest.raises(ScorerError) as missing:
        load_scorer("acme-strict")
    assert str(missing.value).startswith(
        "scorer acme-strict: no entry point of that name in group modelplane.scorers is "
        "installed here; install the package that holds it where the gate runs"
    )


def test_what_cannot_be_imported_or_called_is_named(installed: Path) -> None:
    (installed / "broken_scoring.py").write_text("import nowhere_to_be_found\n")
    (installed / "odd_scoring.py").write_text("threshold = 0.5\n")
    cases = {
        "absent_scoring:judge": "scorer absent_scoring:judge cannot be imported here "
        "(ModuleNotFoundError: No module named 'absent_scoring'); install the package",
        "broken_scoring:judge": "scorer broken_scoring:judge cannot be imported here "
        "(ModuleNotFoundError: No module named 'nowhere_to_be_found')",
        "odd_scoring:judge": "scorer odd_scoring:judge: odd_scoring has no judge",
        "odd_scoring:threshold": "scorer odd_scoring:threshold is a float, not a function",
    }
    for name, message in cases.items():
        with pytest.raises(ScorerError) as caught:
            load_scorer(name)
        assert str(caught.value).startswith(message), caught.value


def test_a_scorer_that_raises_or_answers_no_fraction_fails_on_that_example(
    installed: Path,
) -> None:
    (installed / "wild_scoring.py").write_text(
        "def judge(answer, expected):\n"
        "    if answer == 'boom':\n"
        "        raise KeyError(expected)\n"
        "    return answer\n"
    )
    judge = load_scorer("wild_scoring:judge")
    with pytest.raises(ScorerError) as raised:
        judge("boom", "rubric-7", None, WHERE)
    assert str(raised.value) == (
        "scorer wild_scoring:judge raised on file:///eval.jsonl line 2: KeyError: 'rubric-7'"
    )
    for value in (1.5, -0.1, "0.9", None, math.nan):
        with pytest.raises(ScorerError) as wrong:
            judge(value, "", None, WHERE)
        assert str(wrong.value) == (
            f"scorer wild_scoring:judge returned {value!r} on file:///eval.jsonl line 2; "
            "a scorer returns a number from 0 to 1"
        )
    assert judge(1, "", None, WHERE) == 1.0


def test_the_shipped_scorers_through_their_names() -> None:
    assert load_scorer("modelplane.scoring:contains").function is contains
    assert load_scorer("modelplane.scoring:token_f1").function is token_f1


def test_contains_finds_the_expected_text_however_it_is_cased_and_spaced() -> None:
    assert contains("The capital of France is  PARIS.", "paris") == 1.0
    assert contains("It is Lyon.", "Paris") == 0.0
    assert contains("New\nYork City", "new york") == 1.0
    assert contains("Roughly 42 km", ["forty-two", "42"]) == 1.0  # any reference counts


def test_token_f1_gives_partial_credit_for_shared_words() -> None:
    assert token_f1("The Eiffel Tower!", "eiffel tower") == 1.0  # articles, case, punctuation
    # Shared: "eiffel tower" of "tall eiffel tower in paris"; precision 2/5, recall 2/2.
    assert token_f1("the tall Eiffel tower in Paris", "Eiffel Tower") == pytest.approx(4 / 7)
    assert token_f1("Berlin", "Paris") == 0.0
    assert token_f1("Paris", ["Lyon", "Paris, France"]) == pytest.approx(2 / 3)  # the best one
    assert token_f1("", "") == 1.0
    assert token_f1("the", "Paris") == 0.0  # nothing said but an article

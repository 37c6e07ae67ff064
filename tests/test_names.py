"""Model names, alias names and references."""

from __future__ import annotations

import pytest

from shipyard import ModelRef
from shipyard.errors import InvalidInputError, InvalidNameError, InvalidReferenceError
from shipyard.registry import validate_name


@pytest.mark.parametrize(
    "name",
    ["fraud", "a", "0", "fraud-detector", "fraud_v2", "model.v1", "a" * 64, "9lives", "x-y.z_1"],
)
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "team/fraud",
        "a..b",
        "..",
        "my model",
        " fraud",
        "Fraud",
        "FRAUD",
        "",
        "a" * 65,
        "-fraud",
        ".fraud",
        "_fraud",
        "fraud\n",
        "fräud",
        "fraud:3",
        "fraud@prod",
    ],
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidNameError, match="invalid model name"):
        validate_name(name)


def test_invalid_name_is_an_input_error() -> None:
    with pytest.raises(InvalidInputError, match=r"no '/', '\.\.', spaces or upper case"):
        validate_name("a/b")


def test_non_string_name() -> None:
    with pytest.raises(InvalidNameError, match="invalid model name"):
        validate_name(3)  # type: ignore[arg-type]


def test_alias_names_say_alias() -> None:
    with pytest.raises(InvalidNameError, match="invalid alias name 'Prod'"):
        validate_name("Prod", "alias name")


def test_parse_latest() -> None:
    ref = ModelRef.parse("fraud")
    assert ref == ModelRef("fraud")
    assert (ref.version, ref.alias) == (None, None)
    assert str(ref) == "fraud"


def test_parse_version() -> None:
    ref = ModelRef.parse("fraud:3")
    assert ref == ModelRef("fraud", version=3)
    assert str(ref) == "fraud:3"


def test_parse_alias() -> None:
    ref = ModelRef.parse("fraud@prod")
    assert ref == ModelRef("fraud", alias="prod")
    assert str(ref) == "fraud@prod"


@pytest.mark.parametrize(
    "text", ["fraud:0", "fraud:x", "fraud:", "fraud:-1", "fraud:1.5", "fraud:²", "fraud:\uff13"]
)
def test_bad_version_references(text: str) -> None:
    with pytest.raises(InvalidReferenceError, match="must be a whole number >= 1"):
        ModelRef.parse(text)


def test_empty_reference() -> None:
    with pytest.raises(InvalidReferenceError, match="empty model reference"):
        ModelRef.parse("")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("Fraud:3", "invalid model name 'Fraud'"),
        (":3", "invalid model name ''"),
        ("fraud@", "invalid alias name ''"),
        ("fraud@Prod", "invalid alias name 'Prod'"),
        ("a/b@prod", "invalid model name 'a/b'"),
    ],
)
def test_bad_names_inside_references(text: str, match: str) -> None:
    with pytest.raises(InvalidNameError, match=match):
        ModelRef.parse(text)

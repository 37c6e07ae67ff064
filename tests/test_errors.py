"""The exception tree: one base, an HTTP status and an exit code on every class."""

from __future__ import annotations

import inspect

import pytest

from shipyard import errors
from shipyard.errors import ShipyardError

ALL = [
    obj
    for _, obj in inspect.getmembers(errors, inspect.isclass)
    if issubclass(obj, Exception) and obj.__module__ == errors.__name__
]
MAIN = [
    errors.InvalidInputError,
    errors.UnsafeInputError,
    errors.NotFoundError,
    errors.ConflictError,
    errors.FormatError,
    errors.IntegrityError,
    errors.StorageError,
    errors.MissingDependencyError,
    errors.RetrainError,
]


def test_the_tree_is_what_we_expect() -> None:
    assert len(ALL) >= 20
    assert set(MAIN) <= set(ALL)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_class_has_a_status_and_exit_code(cls: type[ShipyardError]) -> None:
    assert issubclass(cls, ShipyardError)
    assert isinstance(cls.http_status, int)
    assert 400 <= cls.http_status <= 599
    assert isinstance(cls.exit_code, int)
    assert cls.exit_code >= 1
    error = cls("something went wrong")
    assert error.message == "something went wrong"
    assert str(error) == "something went wrong"


def test_main_classes_have_distinct_exit_codes() -> None:
    codes = [cls.exit_code for cls in MAIN]
    assert len(set(codes)) == len(codes)
    assert ShipyardError.exit_code not in codes
    assert 2 not in codes  # the exit code of usage errors in the CLI


@pytest.mark.parametrize(
    ("cls", "parent"),
    [
        (errors.InvalidNameError, errors.InvalidInputError),
        (errors.InvalidReferenceError, errors.InvalidInputError),
        (errors.SignatureMismatchError, errors.InvalidInputError),
        (errors.NoTrainingDataError, errors.InvalidInputError),
        (errors.ModelNotFoundError, errors.NotFoundError),
        (errors.VersionNotFoundError, errors.NotFoundError),
        (errors.AliasNotFoundError, errors.NotFoundError),
        (errors.ArtifactNotFoundError, errors.NotFoundError),
        (errors.UnknownFlavorError, errors.FormatError),
        (errors.CorruptModelError, errors.FormatError),
        (errors.ConversionError, errors.FormatError),
        (errors.ParityError, errors.FormatError),
        (errors.RegistryUnavailableError, errors.NotReadyError),
    ],
)
def test_subclasses_inherit_status_and_exit_code(
    cls: type[ShipyardError], parent: type[ShipyardError]
) -> None:
    assert issubclass(cls, parent)
    assert cls.exit_code == parent.exit_code
    assert cls.http_status == parent.http_status


def test_statuses_of_the_main_classes() -> None:
    assert errors.InvalidInputError.http_status == 400
    assert errors.NotFoundError.http_status == 404
    assert errors.ConflictError.http_status == 409
    assert errors.FormatError.http_status == 422
    assert errors.StorageError.http_status == 507


def test_missing_dependency_names_the_extra() -> None:
    error = errors.MissingDependencyError.for_extra("torch", "torch")
    with pytest.raises(errors.MissingDependencyError, match=r"pip install 'shipyard\[torch\]'"):
        raise error

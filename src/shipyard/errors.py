"""The one exception tree of Shipyard.

Every error carries the HTTP status the server answers with and the exit code the CLI
exits with; each edge translates them once.

    ShipyardError                      500  exit 1
    ├── InvalidInputError              400  exit 3   bad names, references, data, options
    │   ├── InvalidNameError
    │   ├── InvalidReferenceError
    │   ├── SignatureMismatchError         data that does not fit a model's signature
    │   ├── PayloadTooLargeError       413          a request body over the limit
    │   └── NoTrainingDataError            no labelled traffic for a retrain to learn from
    ├── UnsafeInputError               400  exit 4   input refused because loading it runs code
    ├── UnauthorizedError              401  exit 11  no credentials where a token is required
    ├── ForbiddenError                 403  exit 11  credentials that are not the token
    ├── NotFoundError                  404  exit 5
    │   ├── ModelNotFoundError
    │   ├── VersionNotFoundError
    │   ├── AliasNotFoundError
    │   └── ArtifactNotFoundError
    ├── ConflictError                  409  exit 6   the state forbids the change
    ├── FormatError                    422  exit 7   a model we cannot read or convert
    │   ├── UnknownFlavorError
    │   ├── CorruptModelError
    │   ├── ConversionError
    │   └── ParityError                    the converted model disagrees with its source
    ├── IntegrityError                 500  exit 8   an artifact does not match its digest
    ├── StorageError                   507  exit 9   the disk or database failed us
    ├── OverloadedError                503  exit 12  the queue is full: retry later
    ├── NotReadyError                  503  exit 12  the model is loading or unloading
    │   └── RegistryUnavailableError       a load needs the registry, and it cannot be reached
    ├── DeadlineExceededError          504  exit 13  the request's deadline passed before it ran
    ├── RetrainError                   422  exit 14  a retrain's training command failed
    └── MissingDependencyError         500  exit 10  an optional extra is not installed
"""

from __future__ import annotations


class ShipyardError(Exception):
    """Base of every error Shipyard raises on purpose."""

    http_status: int = 500
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(ShipyardError):
    http_status = 400
    exit_code = 3


class InvalidNameError(InvalidInputError):
    pass


class InvalidReferenceError(InvalidInputError):
    pass


class SignatureMismatchError(InvalidInputError):
    pass


class PayloadTooLargeError(InvalidInputError):
    http_status = 413


class UnsafeInputError(ShipyardError):
    http_status = 400
    exit_code = 4


class UnauthorizedError(ShipyardError):
    http_status = 401
    exit_code = 11


class ForbiddenError(ShipyardError):
    http_status = 403
    exit_code = 11


class NotFoundError(ShipyardError):
    http_status = 404
    exit_code = 5


class ModelNotFoundError(NotFoundError):
    pass


class VersionNotFoundError(NotFoundError):
    pass


class AliasNotFoundError(NotFoundError):
    pass


class ArtifactNotFoundError(NotFoundError):
    pass


class ConflictError(ShipyardError):
    http_status = 409
    exit_code = 6


class LeaseLostError(ConflictError):
    """A lease's holder was overtaken (or let it lapse): its fenced writes are refused."""


class NoTrainingDataError(InvalidInputError):
    """Nothing was served and labelled that a retrain could learn from."""


class FormatError(ShipyardError):
    http_status = 422
    exit_code = 7


class UnknownFlavorError(FormatError):
    pass


class CorruptModelError(FormatError):
    pass


class ConversionError(FormatError):
    pass


class ParityError(FormatError):
    pass


class IntegrityError(ShipyardError):
    http_status = 500
    exit_code = 8


class StorageError(ShipyardError):
    http_status = 507
    exit_code = 9


class OverloadedError(ShipyardError):
    http_status = 503
    exit_code = 12

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotReadyError(ShipyardError):
    http_status = 503
    exit_code = 12


class RegistryUnavailableError(NotReadyError):
    """A load needs the registry (its database or artifact store) and cannot reach it; what
    is loaded keeps serving."""


class DeadlineExceededError(ShipyardError):
    http_status = 504
    exit_code = 13


class RetrainError(ShipyardError):
    """A retrain produced no candidate: its training command failed or registered nothing."""

    http_status = 422
    exit_code = 14


class MissingDependencyError(ShipyardError):
    http_status = 500
    exit_code = 10

    @classmethod
    def for_extra(cls, module: str, extra: str) -> MissingDependencyError:
        return cls(
            f"{module} is not installed; install Shipyard with the '{extra}' extra: "
            f"pip install 'shipyard[{extra}]'"
        )

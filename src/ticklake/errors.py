"""ticklake's exceptions: one root, one subclass per kind of failure.

Every exception carries the fields a caller needs (path, dataset, column, row) and a
message that says what was wrong, where, and how to fix it. Each subclass also
inherits the built-in exception that fits, so ``except KeyError`` still works.
Exceptions pickle across processes with their fields intact (see ``__reduce__``).

::

    TicklakeError
    ├── ConfigError (ValueError)                 bad ticklake.toml / env / flag
    ├── LakeError
    │   ├── LakeNotFoundError (FileNotFoundError) no ticklake.toml at the path
    │   ├── LakeExistsError (FileExistsError)     init on an existing lake
    │   ├── DatasetNotFoundError (KeyError)       unknown dataset name
    │   ├── AmbiguousDatasetError (KeyError)      name exists in several layers
    │   ├── InvalidNameError (ValueError)         bad dataset / layer / date name
    │   ├── SchemaMismatchError (TypeError)       frame does not fit the dataset
    │   ├── DuplicateKeyError (ValueError)        conflicting rows for one key
    │   ├── CommitError (OSError)                 I/O failure while committing
    │   ├── LockTimeoutError (TimeoutError)       partition lock not acquired
    │   └── CorruptPartitionError (ValueError)    hash / manifest mismatch
    ├── QueryError
    │   ├── QueryRejectedError (PermissionError)  untrusted SQL refused by the gate
    │   └── QueryTimeoutError (TimeoutError)      statement exceeded its time limit
    ├── IngestError (ValueError)                  a source file could not be read
    │   ├── MappingError (KeyError)               mapping file missing / bad key
    │   └── NothingCommittedError                 an ingest read files but committed 0 rows
    └── ExecutionError (RuntimeError)             a task failed in a worker
        └── InterruptedRunError (KeyboardInterrupt-safe; RuntimeError)

Examples:
    >>> err = DatasetNotFoundError("trades", known=["quotes"])
    >>> isinstance(err, KeyError) and isinstance(err, TicklakeError)
    True
    >>> import pickle
    >>> pickle.loads(pickle.dumps(err)).dataset
    'trades'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class TicklakeError(Exception):
    """Root of every error ticklake raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild through the root constructor so subclasses with custom __init__
        # signatures still unpickle with their message and fields.
        return (_rebuild, (type(self), self.message, self.fields))


def _rebuild(cls: type[TicklakeError], message: str, fields: dict[str, Any]) -> TicklakeError:
    err = cls.__new__(cls)
    TicklakeError.__init__(err, message, **fields)
    return err


def _known(names: Iterable[str]) -> str:
    names = sorted(names)
    return ", ".join(names) if names else "(none)"


class ConfigError(TicklakeError, ValueError):
    """A setting in ticklake.toml, the environment or a flag is wrong."""

    exit_code = 2


class LakeError(TicklakeError):
    """Something is wrong with the lake's storage."""


class LakeNotFoundError(LakeError, FileNotFoundError):
    exit_code = 3

    def __init__(self, path: str) -> None:
        super().__init__(
            f"no lake at {path}: ticklake.toml not found. Create one with "
            f"`ticklake init {path}` or point --lake / $TICKLAKE_LAKE at an existing lake.",
            path=path,
        )


class LakeExistsError(LakeError, FileExistsError):
    exit_code = 3


class DatasetNotFoundError(LakeError, KeyError):
    exit_code = 4

    def __init__(self, dataset: str, known: Iterable[str] = ()) -> None:
        known = list(known)
        super().__init__(
            f"dataset {dataset!r} is not in the lake. Known datasets: {_known(known)}. "
            "Run `ticklake status` to list them.",
            dataset=dataset,
            known=known,
        )


class AmbiguousDatasetError(LakeError, KeyError):
    exit_code = 4

    def __init__(self, dataset: str, layers: Iterable[str]) -> None:
        layers = list(layers)
        super().__init__(
            f"dataset {dataset!r} exists in several layers ({', '.join(layers)}); "
            f"name one, e.g. {layers[0]}.{dataset} or layer={layers[0]!r}.",
            dataset=dataset,
            layers=layers,
        )


class InvalidNameError(LakeError, ValueError):
    exit_code = 2


class SchemaMismatchError(LakeError, TypeError):
    exit_code = 5


class DuplicateKeyError(LakeError, ValueError):
    exit_code = 5


class CommitError(LakeError, OSError):
    exit_code = 6


class LockTimeoutError(LakeError, TimeoutError):
    exit_code = 6


class CorruptPartitionError(LakeError, ValueError):
    exit_code = 7


class QueryError(TicklakeError):
    exit_code = 8


class QueryRejectedError(QueryError, PermissionError):
    exit_code = 8


class ResultTooLargeError(QueryError, ValueError):
    """A result would be larger than its cap (the untrusted path's bytes, the SQL box's
    JSON); the query read nothing more once the cap was passed."""

    exit_code = 8


class QueryTimeoutError(QueryError, TimeoutError):
    exit_code = 8


class IngestError(TicklakeError, ValueError):
    exit_code = 9


class MappingError(IngestError, KeyError):
    exit_code = 9


#: Exit codes that are not tied to one exception class; the only place they are defined.
#: An ingest that read its files but committed no row (``NothingCommittedError``).
EXIT_NOTHING_COMMITTED = 11
#: ``ticklake validate --strict`` whose verdict is FAIL (distinct from 11, so a CI script
#: can tell "the data failed its checks" from "the ingest committed nothing").
EXIT_VALIDATION_FAILED = 12


class NothingCommittedError(IngestError):
    """Files were read, but not one row reached the lake (every row quarantined, empty or
    header-only files, a 0-row Parquet, an empty zip member). Exit code 11, so a script
    can tell it from success (0) and from a file that failed (9). The CLI prints it as
    a one-line warning; ``exc.summary`` is the ingest summary."""

    exit_code = EXIT_NOTHING_COMMITTED


class ExecutionError(TicklakeError, RuntimeError):
    exit_code = 10


class InterruptedRunError(ExecutionError):
    exit_code = 130

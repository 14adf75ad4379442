"""Lake storage: layout, atomic commits, manifests, catalog, SQL and maintenance."""

from ticklake.lake.lake import Lake, PartitionInfo, WriteResult, init_lake, open_lake
from ticklake.lake.manifest import DatasetInfo, Manifest, SourceRef

__all__ = [
    "DatasetInfo",
    "Lake",
    "Manifest",
    "PartitionInfo",
    "SourceRef",
    "WriteResult",
    "init_lake",
    "open_lake",
]

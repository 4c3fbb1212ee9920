"""Feast's registry schema, vendored as a descriptor set, and the ``Registry`` class over it.

What enters: at ``make generate``, the descriptors of ``feast/core/Registry.proto`` and of every
file it imports, as the installed Feast ships them (its own protoc output); at run time the
committed ``pipeline/feast_registry.binpb`` (a ``FileDescriptorSet``). What leaves:
:func:`registry_message`, the ``feast.core.Registry`` message class built in a private
descriptor pool: a registry parses without importing Feast (about 4 s), and the class never
meets Feast's own in the default pool when both are loaded in one process.

    python -m pipeline.registry_schema            # make generate: rewrites the .binpb
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SCHEMA = Path(__file__).resolve().parent / "feast_registry.binpb"
"""Feast's ``Registry.proto`` and its imports, compiled (``FileDescriptorSet``, imports first)."""


@functools.cache
def registry_message() -> Any:
    """The ``feast.core.Registry`` message class (``Registry.FromString(raw)``)."""
    files = descriptor_pb2.FileDescriptorSet.FromString(SCHEMA.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("feast.core.Registry"))


def export_schema() -> bytes:
    """The descriptor set of the installed Feast's ``Registry.proto``, imports first."""
    from feast.protos.feast.core import Registry_pb2

    ordered: dict[str, bytes] = {}

    def visit(file: Any) -> None:
        for dependency in file.dependencies:
            visit(dependency)
        ordered.setdefault(file.name, file.serialized_pb)

    visit(Registry_pb2.DESCRIPTOR)
    files = descriptor_pb2.FileDescriptorSet()
    for serialized in ordered.values():
        files.file.add().ParseFromString(serialized)
    return files.SerializeToString(deterministic=True)


if __name__ == "__main__":
    SCHEMA.write_bytes(export_schema())
    sys.exit(0)

"""The words of ``pipeline`` options that more than one room reads, declared once (import-free, so ``--help``
reads them without h5py). The choices of ``train``'s options are in :mod:`train.common.choices`."""
from __future__ import annotations

STORE_COMPRESSIONS = ("gzip", "lzf")       # HDF5 filters of a label store's shards (pipeline.store.shard)

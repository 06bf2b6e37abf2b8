"""The HDF5 label store, schema 1: shards (shard), the store manifest (manifest), the reader the trainers use
(reader), label sizes (resize), and inspect-labels (inspection, render, cli)."""

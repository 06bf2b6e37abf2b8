"""The label side of the project: the shared command kit (:mod:`pipeline.core`), dataset access
(:mod:`pipeline.data`, verify-data), the HDF5 label store (:mod:`pipeline.store`, inspect-labels) and the batch
job that fills it (:mod:`pipeline.make_labels`).

Library code logs through :mod:`logging`; only the ``cli`` modules print.
"""

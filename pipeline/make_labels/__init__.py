"""make-labels, the batch job: its configuration (config), one dask task per shard (task), the driver that plans,
resumes and records (driver), the cluster (cluster) and the command (cli)."""

"""features: the sci-tech finance data hub (validated source tables, point-in-time signals, catalog,
labelled data products, de-identification)."""

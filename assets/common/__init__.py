"""Below every stage: the partitions definition, groups and pools, metadata helpers, data-quality checks and the warehouse copy helpers."""

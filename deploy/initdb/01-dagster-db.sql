-- The Dagster instance keeps its run/event storage in its own database next to the warehouse.
CREATE DATABASE dagster;

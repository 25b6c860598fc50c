"""Replay: versioned projections, rebuilt from offset 0 of the raw log beside the live ones.

Version 1 of a live projection is the live worker's own tables. Version N of projection P is
computed by a replay worker: the runtime's loop as `streams-P-vN`, with its own consumer group,
tables, changelog topic and data directory, folding every record of the raw log from offset 0 and then
following live traffic. It never writes derived events. Which versions exist and which one serves
queries is one record per projection on the compacted topic `streams.projections.v1`; every live
worker reads it, runs a replay worker for each version (`supervisor`), and answers each query from
the serving version (`streams replay promote`).
"""

"""The batch-native runtime that runs the agents: a small engine on aiokafka and RocksDB.

Its parts, named as Kafka Streams and Quix Streams name theirs (docs/runtime.md walks through
them):
- `loop`: the poll, fold, commit loop of one group member, and its rebalances;
- `task`: one owned input partition: its store and its tables;
- `state`: a partition's tables as the folds see them, the batch's changes in memory;
- `store`: a partition's state in RocksDB, with the checkpoint it reflects;
- `changelog`: the compacted topic a store is restored from;
- `transaction`: exactly once per round, one transactional producer per worker;
- `fencing`: that producer's offset commits fenced by the consumer group (KIP-447);
- `ownership`: the partition assignor, and where every partition lives;
- `standby`: copies of other workers' partitions, for failover and queries.
"""

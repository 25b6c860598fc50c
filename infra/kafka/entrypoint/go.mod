module streams/infra/kafka/entrypoint

go 1.21

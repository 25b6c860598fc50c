module streams/infra/ably-standin

go 1.22

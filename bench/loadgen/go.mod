module streams/bench/loadgen

go 1.22

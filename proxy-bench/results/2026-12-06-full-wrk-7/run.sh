#!/bin/bash
# The seventh full run: every peer and every scenario in one invocation, after the allocation cuts (a891b72) and the
# image's native-heap trim (3c1b90a), the CPU to itself
cd /work/main
flock -x -o /tmp/cpu.lock java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --out /tmp/p19/full7 > /tmp/p19/full7.log 2>&1

#!/bin/bash
# The thirteenth full run: every peer and every scenario in one invocation, proxy code of 13566f6
# (unchanged on the request path this round); the harness now prints each trial's own TTFB p99.
cd /work/main
flock -x -o /tmp/cpu.lock java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --out /tmp/s13/full13/out > /tmp/s13/full13/full13.log 2>&1

#!/bin/bash
# The full run's open loop had the proxy at +8.14 ms (one 10-s trial; direct's own p99.9 was 9.3 ms
# in it). Rechecked minutes later: the own client's closed loop (one trial, to set the rate) and the
# open loop, direct, Nginx and the proxy.
cd /work/main
flock -x -o /tmp/cpu.lock java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --scenarios closed,open \
  --peers direct,nginx,proxy --trials 1 --no-profile --out /tmp/s9/open-check > /tmp/s9/open-check.log 2>&1

#!/bin/bash
# The twelfth full run: every peer and every scenario in one invocation, proxy code of 1971135 (the
# console's copy of the access log capped at ACCESS_LOG_CONSOLE_RATE, 100 lines a second); the CPU to itself
cd /work/main
flock -x -o /tmp/cpu.lock java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --out /tmp/s12/full12/out > /tmp/s12/full12/full12.log 2>&1

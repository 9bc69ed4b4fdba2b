#!/bin/bash
# The sixth full run: every peer and every scenario in one invocation, at commit 7784ec5 (the report gives the new-file price), the CPU to itself
cd /work/main
flock -x -o /tmp/cpu.lock java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --out /tmp/p18/full6 > /tmp/p18/full6.log 2>&1

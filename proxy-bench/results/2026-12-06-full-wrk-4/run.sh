#!/bin/bash
# The fourth full run: every peer and every scenario in one invocation, at commit 729589f, the CPU to itself
cd /work/main
flock -x -o /tmp/cpu.lock java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --out /tmp/p17/full4 > /tmp/p17/full4.log 2>&1

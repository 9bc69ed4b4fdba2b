#!/bin/bash
# The fifth full run: every peer and every scenario in one invocation, at commit d0aedb4 (warm-up streams of 60 events since 296b1f1), the CPU to itself
cd /work/main
flock -x -o /tmp/cpu.lock java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --out /tmp/p18/full5 > /tmp/p18/full5.log 2>&1

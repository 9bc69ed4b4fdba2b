#!/bin/bash
# The eighth full run: every peer and every scenario in one invocation, with the streams warm-up's rehearsals
# (f86ecb0); proxy code of 3f99249; the CPU to itself
cd /work/main
flock -x -o /tmp/cpu.lock java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --out /tmp/s8/full8/out > /tmp/s8/full8/full8.log 2>&1

#!/bin/bash
# The ninth full run: every peer and every scenario in one invocation (now with `large`), proxy code
# of 6f961f7 (the usage scanner's structure-only jump); the CPU to itself
cd /work/main
flock -x -o /tmp/cpu.lock java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --out /tmp/s9/full9/out > /tmp/s9/full9/full9.log 2>&1

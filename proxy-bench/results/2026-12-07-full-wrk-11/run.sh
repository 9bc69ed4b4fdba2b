#!/bin/bash
# The eleventh full run: every peer and every scenario in one invocation, proxy code of 355a338 (the
# upstream head as received bytes, the watches' clock reads through EventClock); the CPU to itself
cd /work/main
flock -x -o /tmp/cpu.lock java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --out /tmp/s11/full11/out > /tmp/s11/full11/full11.log 2>&1

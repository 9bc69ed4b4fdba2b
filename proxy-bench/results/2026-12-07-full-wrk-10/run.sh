#!/bin/bash
# The tenth full run: every peer and every scenario in one invocation, proxy code of 0cbe08e (the
# usage scanner on byte arrays, one clock read per event); the CPU to itself
cd /work/main
flock -x -o /tmp/cpu.lock java -jar proxy-bench/target/megallm-proxy-bench.jar bench --full --out /tmp/s10/full10/out > /tmp/s10/full10/full10.log 2>&1

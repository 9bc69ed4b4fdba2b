#!/bin/bash
# A/B of running peers under wrk, interleaved: ROUNDS rounds (default 3), in each every peer (in an
# order that rotates from round to round) gets an unmeasured 3 s run and a measured one of <secs>. wrk is pinned to CPU 0 (with the mock), the peers
# are expected on CPU 1. Prints one line per measured run: req/s, p50, p99 and the peer's CPU per
# request from /proc (utime+stime around the run). medians.py turns the lines into medians.
# usage: wrk-ab.sh <conns> <secs> <name>=<port> ...   (peers already running)
conns=$1; secs=$2; shift 2
lua=$(dirname "$0")/post.lua
peers=("$@")
for rep in $(seq 1 "${ROUNDS:-3}"); do
# The order rotates each round: in this rig the peer that runs first in a round tends to come
# out ahead (2026-12-06-memory/README.md), so a fixed order biases every comparison.
for i in "${!peers[@]}"; do
  peer=${peers[$(( (i + rep - 1) % ${#peers[@]} ))]}
  name=${peer%%=*}; port=${peer#*=}
  taskset -c 0 wrk -t1 -c$conns -d3s -s "$lua" http://127.0.0.1:$port/v1/chat/completions >/dev/null 2>&1
  pid=$(ss -ltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  c0=$(awk '{print $14+$15}' /proc/$pid/stat)
  out=$(taskset -c 0 wrk -t1 -c$conns -d${secs}s --latency -s "$lua" http://127.0.0.1:$port/v1/chat/completions 2>&1)
  c1=$(awk '{print $14+$15}' /proc/$pid/stat)
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  p50=$(echo "$out" | awk '$1=="50%"{print $2}')
  reqs=$(echo "$out" | awk '/requests in/{print $1}')
  err=$(echo "$out" | grep -E "Non-2xx|errors" | tr '\n' ' ')
  echo "$rep c=$conns $name rps=$rps p50=$p50 p99=$p99 cpu_us/req=$(echo "scale=2; ($c1-$c0)*10000/$reqs" | bc) $err"
done; done

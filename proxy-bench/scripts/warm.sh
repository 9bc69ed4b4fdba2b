#!/bin/bash
# Warms JVM peers before an A/B: 10 s each at 64, 16, 256 and 64 connections.
# usage: warm.sh <port> ...
lua=$(dirname "$0")/post.lua
for p in "$@"; do for c in 64 16 256 64; do
  taskset -c 0 wrk -t1 -c$c -d10s -s "$lua" http://127.0.0.1:$p/v1/chat/completions >/dev/null
done; done

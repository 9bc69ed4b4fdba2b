#!/bin/bash
for p in "$@"; do for c in 64 16 256 64; do taskset -c 0 wrk -t1 -c$c -d10s -s /tmp/p16/post.lua http://127.0.0.1:$p/v1/chat/completions >/dev/null; done; done

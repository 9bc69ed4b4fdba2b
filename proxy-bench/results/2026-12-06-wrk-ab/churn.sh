#!/bin/bash
# usage: churn.sh conns secs port -> req count and TCP active opens during the run
nstat -n >/dev/null
out=$(taskset -c 0 wrk -t1 -c$1 -d$2s -s /tmp/perf/post.lua http://127.0.0.1:$3/v1/chat/completions)
echo "$out" | grep -E "requests in|Requests/sec"
nstat | grep -E "TcpActiveOpens|TcpPassiveOpens"

#!/bin/bash
# perf sched on the proxy's core during wrk -c16: who takes the core from the event loop, and for how long
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/p17; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf e1; $S/start-proxy.sh /tmp/p17/e1 18991 ${JAR:-/tmp/p16/base.jar} "" java
sleep 8; $S/warm.sh 18991 > /dev/null 2>&1
(taskset -c 0 wrk -t1 -c16 -d10s --latency -s post.lua http://127.0.0.1:18991/v1/chat/completions > wrk-sched.out 2>&1 &)
sleep 3; perf sched record -C 1 -o /tmp/p17/sched16.data -- sleep 4 2>&1 | tail -1
sleep 4; pkill -f 'p16/base.jar|p17/.*jar'; sleep 2; pkill -f 'bench.jar mock'

#!/bin/bash
# perf profile of the proxy (HEAD) at 64 connections: which threads and which side (kernel/JVM/Java) take the CPU
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/p17; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf e1; $S/start-proxy.sh /tmp/p17/e1 18991 /tmp/p16/base.jar "" java -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit -XX:+PreserveFramePointer
sleep 8; $S/warm.sh 18991 > /dev/null 2>&1
pid=$(pgrep -f base.jar)
(taskset -c 0 wrk -t1 -c64 -d12s -s post.lua http://127.0.0.1:18991/v1/chat/completions > wrk-prof.out 2>&1 &)
sleep 3; perf record -F 1999 -g -C 1 -o /tmp/p17/perf64.data -- sleep 6 2>&1 | tail -1
sleep 4; kill $pid; sleep 2; pkill -f 'bench.jar mock'

#!/bin/bash
# perf on core 1 at 64 connections for one proxy jar (JDK 17 defaults, perf map): where the event loop's user time goes
J=/tmp/s11/bench-rh.jar
P=${JAR:-/tmp/s11/proxy-rh.jar}
S=/work/main/proxy-bench/scripts
W=/tmp/s11/prof; mkdir -p $W; cd $W; cp /tmp/s9/rig/keys.txt keys.txt; export KEYS_FILE=$W/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf e1; $S/start-proxy.sh $W/e1 18991 $P "" java -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit -XX:+PreserveFramePointer
sleep 8; $S/warm.sh 18991 > /dev/null 2>&1
(taskset -c 0 wrk -t1 -c64 -d12s -s $S/post.lua http://127.0.0.1:18991/v1/chat/completions > wrk-18991.out 2>&1 &)
sleep 3; perf record -F 2999 -g -C 1 -o $W/perf.data -- sleep 6 2>&1 | tail -1
sleep 4
pid=$(ss -ltnp "sport = :18991" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); kill $pid; sleep 2
pkill -f 'bench.jar mock'; rm -rf $W/e1
grep Requests/sec wrk-18991.out
perf report -i perf.data --no-children -g none --sort comm,dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
perf report -i perf.data --no-children -g none --comm megallm-io-2-1 --sort sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60

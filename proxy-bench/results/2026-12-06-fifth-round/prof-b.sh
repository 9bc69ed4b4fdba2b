#!/bin/bash
# perf at 64 connections again, with the new-file price measured just before (is the writer's copy dear when the probe is cheap?)
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/p18; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf e2; $S/start-proxy.sh /tmp/p18/e2 18991 /tmp/p18/after.jar "" java -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit -XX:+PreserveFramePointer
sleep 8; $S/warm.sh 18991 > /dev/null 2>&1
pid=$(ss -ltnp "sport = :18991" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
taskset -c 0 java -cp $J /tmp/p18/Probe32.java > probe-b.out 2>&1
(taskset -c 0 wrk -t1 -c64 -d12s -s /tmp/p16/postp.lua http://127.0.0.1:18991/v1/chat/completions > wrk-prof-b.out 2>&1 &)
sleep 3; perf record -F 2999 -g -C 1 -o /tmp/p18/perf64b.data -- sleep 6 2>&1 | tail -1
sleep 4; kill $pid; sleep 3; pkill -f 'bench.jar mock'

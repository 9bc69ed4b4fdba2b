#!/bin/bash
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/p18; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf e1; $S/start-proxy.sh /tmp/p18/e1 18991 /tmp/p18/ab.jar "" java -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit -XX:+PreserveFramePointer
sleep 8; $S/warm.sh 18991 > /dev/null 2>&1
pid=$(pgrep -f p18/ab.jar)
echo pid=$pid
(taskset -c 0 wrk -t1 -c64 -d12s -s /tmp/p16/postp.lua http://127.0.0.1:18991/v1/chat/completions > wrk-prof.out 2>&1 &)
sleep 3; perf record -F 2999 -g -C 1 -o /tmp/p18/perf64.data -- sleep 6 2>&1 | tail -1
sleep 4; kill $pid; sleep 3; pkill -f 'bench.jar mock'

#!/bin/bash
# The client timeouts' and the silence watch's clock reads through EventClock: the jar of 82554ee
# against this one, JDK 17 defaults, Nginx beside; wrk-ab.sh rotating, 5 rounds of 5 s at 16 and 64
# connections; then perf on core 1 at 64 connections per jar: the share of clock_gettime.
J=/tmp/s11/bench-82554ee.jar
S=/work/main/proxy-bench/scripts
W=/tmp/s11/wc; mkdir -p $W; cd $W; cp /tmp/s9/rig/keys.txt keys.txt; export KEYS_FILE=$W/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/s9/rig/nginx/nginx.conf
rm -rf b a
PM="-XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit -XX:+PreserveFramePointer"
$S/start-proxy.sh $W/b 18991 /tmp/s11/proxy-82554ee.jar "" java $PM
$S/start-proxy.sh $W/a 18992 /tmp/s11/proxy-clock.jar "" java $PM
sleep 8; $S/warm.sh 18991 18992 > /dev/null 2>&1
for c in 16 64; do ROUNDS=5 $S/wrk-ab.sh $c 5 before=18991 after=18992 nginx=18902; done
for port in 18991 18992; do
  (taskset -c 0 wrk -t1 -c64 -d12s -s $S/post.lua http://127.0.0.1:$port/v1/chat/completions > wrk-perf-$port.out 2>&1 &)
  sleep 3; perf record -F 2999 -g -C 1 -o $W/perf-$port.data -- sleep 6 2>&1 | tail -1
  sleep 4
done
for port in 18991 18992; do pid=$(ss -ltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); kill $pid; done; sleep 3
nginx -s stop -c /tmp/s9/rig/nginx/nginx.conf; pkill -f 'bench.jar mock'
rm -rf $W/a $W/b /tmp/s9/rig/nginx/access.log
for port in 18991 18992; do echo "== $port $(grep Requests/sec wrk-perf-$port.out)"
  perf report -i perf-$port.data --no-children -g none --comm megallm-io-2-1 --sort sym --stdio 2>/dev/null | grep -E 'clock_gettime|read_tsc|javaTimeNanos|EventClock' | head -6
  perf report -i perf-$port.data --no-children -g caller,0.02,callee,function,percent --max-stack 4 --comm megallm-io-2-1 --symbol-filter=__vdso_clock_gettime --stdio 2>/dev/null | grep -E -- '--[0-9.]+%--' | head -12; done

#!/bin/bash
# Same-run before/after of the fourteenth round's request-path changes: the proxy of c04bfb5
# (request path as 13566f6) against edf9c62, JDK 17 defaults, both on core 1, mock and wrk on core 0.
ulimit -n 20000; W=/tmp/s14/ab; rm -rf $W; mkdir -p $W; cd $W; cp /tmp/s9/rig/keys.txt keys.txt
S=/work/main/proxy-bench/scripts
(taskset -c 0 java -Xms256m -jar /tmp/s14/bench.jar mock 18900 > mock.log 2>&1 &)
$S/start-proxy.sh $W/before 18991 /tmp/s14/proxy-before.jar "" java
$S/start-proxy.sh $W/after 18992 /tmp/s14/proxy-after.jar "" java
sleep 6; $S/warm.sh 18991 18992 >/dev/null 2>&1
for c in 16 64; do ROUNDS=${ROUNDS:-5} $S/wrk-ab.sh $c 5 before=18991 after=18992; done
pkill -f proxy-before.jar; pkill -f proxy-after.jar; pkill -f 'bench.jar mock 18900'; sleep 1; rm -rf $W/before/logs $W/after/logs

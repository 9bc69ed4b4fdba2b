#!/bin/bash
# JFR allocation profile of the proxy under wrk -c64 (JDK 17 defaults), 20 s recorded after warm-up.
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
P=/work/main/proxy-server/target/megallm-proxy.jar
S=/work/main/proxy-bench/scripts
cd /tmp/s10; export KEYS_FILE=/tmp/s10/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf pa; $S/start-proxy.sh /tmp/s10/pa 18991 $P "" java
sleep 6; $S/warm.sh 18991 >/dev/null 2>&1
pid=$(ss -ltnp "sport = :18991" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
jcmd $pid JFR.start name=a settings=profile filename=/tmp/s10/alloc.jfr >/dev/null
taskset -c 0 wrk -t1 -c64 -d20s -s $S/post.lua http://127.0.0.1:18991/v1/chat/completions
jcmd $pid JFR.stop name=a >/dev/null
jcmd $pid GC.heap_info
pkill -f 'megallm-proxy.jar'; pkill -f 'bench.jar mock'

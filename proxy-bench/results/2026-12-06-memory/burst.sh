#!/bin/bash
# JFR of the proxy (JDK17 defaults) over 1,000-stream bursts after a warm-up; also nginx bursts for CPU comparison
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
JAR=${JAR:-/work/main/proxy-server/target/megallm-proxy.jar}
S=/work/main/proxy-bench/scripts
cd /tmp/mem; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf b1; $S/start-proxy.sh /tmp/mem/b1 18971 $JAR "" java
sleep 8; $S/warm.sh 18971 > /dev/null 2>&1
for i in 1 2 3 4 5 6; do /tmp/p16/ttfb.sh 18971 1000; done
pid=$(ss -ltnp "sport = :18971" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
jcmd $pid JFR.start name=b settings=/tmp/mem/fast.jfc > /dev/null
for i in 1 2 3 4 5 6 7 8; do /tmp/p16/ttfb.sh 18971 1000; /tmp/p16/ttfb.sh 18902 1000; done
jcmd $pid JFR.stop name=b filename=/tmp/mem/burst.jfr > /dev/null
pkill -f megallm-proxy.jar; nginx -s stop -c /tmp/p16/nginx/nginx.conf; pkill -f 'bench.jar mock'

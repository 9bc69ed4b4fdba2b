#!/bin/bash
# Does lowering the access-log writer thread's priority (renice +10) take its slices off the
# event loop's tail? Nginx, the proxy as shipped, the same with its writer reniced, with the log off.
cd /tmp/p16
S=/work/main/proxy-bench/scripts
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
JAR=/work/main/proxy-server/target/megallm-proxy.jar
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
export KEYS_FILE=/tmp/p16/keys.txt
$S/start-proxy.sh /tmp/p16/g1 18951 $JAR "" java
$S/start-proxy.sh /tmp/p16/g2 18952 $JAR "" java
$S/start-proxy.sh /tmp/p16/g3 18953 $JAR "" java -Dlogback.configurationFile=/tmp/p16/off.xml
sleep 8
pid=$(ss -ltnp "sport = :18952" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
for t in /proc/$pid/task/*; do if grep -q AsyncAppender $t/comm; then renice -n 10 -p $(basename $t); fi; done
$S/warm.sh 18951 18952 18953
for c in 16 64; do ROUNDS=5 $S/wrk-ab.sh $c 5 nginx=18902 shipped=18951 writer_nice10=18952 logoff=18953; done

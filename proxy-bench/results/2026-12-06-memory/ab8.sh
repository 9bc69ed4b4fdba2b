#!/bin/bash
# Before/after of acdd2f6 (body released at the committed head) on the request path: same JVM (JDK 17 defaults), old and new jar
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/mem; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf e1 e2
$S/start-proxy.sh /tmp/mem/e1 18991 /tmp/mem/old.jar "" java
$S/start-proxy.sh /tmp/mem/e2 18992 /tmp/mem/new.jar "" java
sleep 8; $S/warm.sh 18991 18992 > /dev/null 2>&1
for c in 64 16; do ROUNDS=4 $S/wrk-ab.sh $c 5 after=18992 before=18991 nginx=18902; done
pkill -f 'old.jar|new.jar'; nginx -s stop -c /tmp/p16/nginx/nginx.conf; pkill -f 'bench.jar mock'

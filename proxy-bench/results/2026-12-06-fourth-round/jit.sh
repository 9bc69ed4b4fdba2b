#!/bin/bash
# What C2 compiles during 100-stream h2load bursts long after warm-up (PrintCompilation), proxy HEAD
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/p17; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf e1; $S/start-proxy.sh /tmp/p17/e1 18991 ${JAR:-/tmp/p16/base.jar} "" java -XX:+PrintCompilation $JOPTS
sleep 8; $S/warm.sh 18991 > /dev/null 2>&1
for i in $(seq 1 40); do ./ttfb.sh 18991 100 >/dev/null; done
echo "=== MARK 40 bursts done" >> e1/out.log
for i in $(seq 1 30); do ./ttfb.sh 18991 100 >/dev/null; done
echo "=== MARK 70 bursts done" >> e1/out.log
pkill -f 'p16/base.jar|p17/.*jar'; sleep 1; pkill -f 'bench.jar mock'

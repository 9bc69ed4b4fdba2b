#!/bin/bash
# Which exceptions the proxy (HEAD) throws per stream set-up and tear-down: JFR JavaExceptionThrow over 20 bursts of 100 streams
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
S=/work/main/proxy-bench/scripts
cd /tmp/p17; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
rm -rf e1; $S/start-proxy.sh /tmp/p17/e1 18991 ${JAR:-/tmp/p16/base.jar} "" java $JOPTS
sleep 8; for i in $(seq 1 10); do ./ttfb.sh 18991 100 >/dev/null; done
pid=$(ss -ltnp 'sport = :18991' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); echo pid $pid
jcmd $pid JFR.start name=x settings=/tmp/p17/exc.jfc > /dev/null
for i in $(seq 1 20); do ./ttfb.sh 18991 100 >/dev/null; done
jcmd $pid JFR.stop name=x filename=/tmp/p17/exc.jfr > /dev/null
pkill -f 'p16/base.jar|p17/.*jar'; sleep 1; pkill -f 'bench.jar mock'

#!/bin/bash
# Same-run before/after of all the nineteenth session's request-path changes (usage estimate for cut answers,
# the scanner's numbers and both names, the any-case body check, a fresh connection for the resend, the key wait):
# the proxy of 132df01 against the new one, JDK 17 defaults, both on core 1, mock and wrk on core 0.
ulimit -n 20000; W=/tmp/s19/ab; rm -rf $W; mkdir -p $W; cd $W
for i in $(seq -w 1 10); do echo "sk-mega-bench-000000000000000000$i"; done > keys.txt
S=/work/main/proxy-bench/scripts
taskset -c 0 java -Xms256m -jar /tmp/s19/bench-after.jar mock 18900 > mock.log 2>&1 & mock=$!
$S/start-proxy.sh $W/before 18991 /tmp/s19/megallm-proxy-before.jar "" java
$S/start-proxy.sh $W/after 18992 /tmp/s19/megallm-proxy-after.jar "" java
sleep 6; $S/warm.sh 18991 18992 >/dev/null 2>&1
for c in 16 64; do ROUNDS=${ROUNDS:-5} $S/wrk-ab.sh $c 5 before=18991 after=18992; done
for port in 18991 18992; do kill $(ss -ltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); done
kill $mock; sleep 1; rm -rf $W/before/logs $W/after/logs

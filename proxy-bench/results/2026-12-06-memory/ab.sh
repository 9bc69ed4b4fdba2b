#!/bin/bash
# heap-size A/B: held RSS (harness, one variant at a time) then wrk interleaved (all variants running)
J=/work/main/proxy-bench/target/megallm-proxy-bench.jar
JAR=/work/main/proxy-server/target/megallm-proxy.jar
T25=/usr/lib/jvm/temurin-25-jdk-amd64/bin/java
IMG="-XX:MaxRAM=2g -XX:MaxRAMPercentage=50 -XX:+UseParallelGC -XX:+ExitOnOutOfMemoryError --enable-native-access=ALL-UNNAMED"
S=/work/main/proxy-bench/scripts
held() { name=$1; jv=$2; opts=$3; $jv -jar $J bench --full --peers proxy --scenarios held --no-profile --out /tmp/mem/out-$name --proxy-jvm-opts "$opts" > /tmp/mem/$name.log 2>&1
  echo "$name $(grep -E '^\| proxy ' /tmp/mem/out-$name/REPORT.md | head -1)"; }
held d17 java ""
held d17-xmn24 java "-Xmn24m"
held img $T25 "$IMG"
held img-xmn24 $T25 "$IMG -Xmn24m"
java -jar $J bench --full --peers nginx --scenarios held --no-profile --out /tmp/mem/out-nginx > /tmp/mem/nginx.log 2>&1; echo "nginx $(grep -E '^\| nginx ' /tmp/mem/out-nginx/REPORT.md | head -1)"
cd /tmp/mem; export KEYS_FILE=/tmp/p16/keys.txt
(taskset -c 0 java -Xms256m -jar $J mock 18900 > mock.log 2>&1 &)
taskset -c 1 nginx -c /tmp/p16/nginx/nginx.conf
rm -rf w1 w2 w3 w4
$S/start-proxy.sh /tmp/mem/w1 18961 $JAR "" java -Xlog:gc:file=/tmp/mem/w1.gc
$S/start-proxy.sh /tmp/mem/w2 18962 $JAR "" java -Xmn24m -Xlog:gc:file=/tmp/mem/w2.gc
$S/start-proxy.sh /tmp/mem/w3 18963 $JAR "$IMG" $T25 -Xlog:gc:file=/tmp/mem/w3.gc
$S/start-proxy.sh /tmp/mem/w4 18964 $JAR "$IMG -Xmn24m" $T25 -Xlog:gc:file=/tmp/mem/w4.gc
sleep 8; $S/warm.sh 18961 18962 18963 18964 > /dev/null 2>&1
for c in 16 64 256; do ROUNDS=3 $S/wrk-ab.sh $c 5 nginx=18902 d17=18961 d17xmn24=18962 img=18963 imgxmn24=18964; done
for p in 18961 18962 18963 18964; do pid=$(ss -ltnp "sport = :$p" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2); echo "$p rss $(grep VmRSS /proc/$pid/status)"; done
for i in 1 2 3 4; do echo "w$i gcs $(grep -c Pause /tmp/mem/w$i.gc) full $(grep -c 'Pause Full' /tmp/mem/w$i.gc)"; grep Pause /tmp/mem/w$i.gc | tail -2; done
pkill -f megallm-proxy.jar; nginx -s stop -c /tmp/p16/nginx/nginx.conf; pkill -f 'bench.jar mock'
